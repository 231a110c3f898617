"""The built-in tasks name options by their keywords: the parameters a sweep records (and keys
its cache by) keep their names and defaults; the other options of the records a task routes
to are taken when a grid names them; a keyword no task takes is refused before any work."""

import inspect

import numpy as np
import pytest

import odeprune
from odeprune.options import OPTIONS
from odeprune.sweeps import check, point_key, task_integrate, task_prune, task_simulate
from odeprune.sweeps.run import run_points
from odeprune.sweeps.tasks import SWEEP_DEFAULTS

#: what a sweep recorded before the tasks took **options: the same names and defaults give the
#: same cache keys, so a cache written then still hits
RECORDED = {
    "integrate": ["N", "K", "M", "v_star", "seed", "init", "eta", "alpha_max", "save_at",
                  "eta_v", "sigma", "rtol", "atol", "method", "activation",
                  "train_second_layer", "gradient_flow", "dt"],
    "simulate": ["N", "K", "M", "eta", "alpha_max", "save_at", "eta_v", "sigma", "v_star",
                 "activation", "seed", "n_test", "train_second_layer", "n_train"],
    "prune": ["N", "K", "M", "v_star", "seed", "init", "eta", "alpha_max", "sigma", "method",
              "k", "c", "reweight", "kernel", "prune_seed", "exact", "n_samples", "activation"],
}


@pytest.mark.parametrize("task", [task_integrate, task_simulate, task_prune])
def test_recorded_parameters_and_their_defaults(task):
    name = task.__name__.removeprefix("task_")
    assert list(task.parameters) == RECORDED[name]
    sig = inspect.signature(task)
    assert [n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY] == RECORDED[name]
    for n, default in task.parameters.items():
        if n in SWEEP_DEFAULTS:
            assert default == SWEEP_DEFAULTS[n]
        elif n in OPTIONS and n != "alpha_max" and (name, n) != ("prune", "method"):
            assert default == OPTIONS[n].default, n
    plan = check(name, {"seed": [0]}, executor="serial")
    assert list(plan.fixed) == [n for n in RECORDED[name] if n != "seed"]
    # the key of a point with its defaults spelled out is the key of the point without them
    full = check(name, {"seed": [0]}, fixed={n: task.parameters[n] for n in RECORDED[name]
                                             if n != "seed"}, executor="serial")
    assert point_key(name, plan.points[0]) == point_key(name, full.points[0])


def test_a_grid_over_an_option_the_task_routes():
    """weight_decay and max_steps are options of integrate's records (Dynamics, Solver), not
    recorded by default: a grid over them runs, a given value enters the key."""
    pts = run_points("integrate", {"weight_decay": [0.0, 2.0]},
                     fixed={"alpha_max": 2.0, "K": 2, "M": 1, "N": 100, "max_steps": 10_000},
                     executor="serial", progress=False, errors="raise")
    free = odeprune.integrate(odeprune.OrderParams.random(100, 2, 1, 4.0, seed=0), eta=0.5,
                              alpha_max=2.0, activation="erf")
    np.testing.assert_array_equal(pts[0]["outputs"]["eg"], free.eg)
    assert not np.allclose(pts[1]["outputs"]["eg"], free.eg)
    assert pts[1]["params"]["weight_decay"] == 2.0
    assert "weight_decay" not in check("integrate", {"eta": [0.5]}).fixed


def test_unknown_names_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"task 'simulate' has no parameter\(s\) \['rtol'\]"):
        check("simulate", {"rtol": [1e-6]})
    with pytest.raises(ValueError, match=r"task 'prune' has no parameter\(s\) \['n_masks'\]"):
        check("prune", {"n_masks": [2]})
    with pytest.raises(ValueError, match="fixed parameter 'n_samples': n_samples=0"):
        check("prune", {"k": [1]}, fixed={"n_samples": 0})
    with pytest.raises(ValueError, match="grid axis 'weight_decay': weight_decay=-1"):
        check("integrate", {"weight_decay": [-1.0]})
    with pytest.raises(TypeError, match=r"task_integrate\(\) got unexpected.*\['etta'\]"):
        task_integrate(etta=0.5)
    with pytest.raises(TypeError, match=r"sweep\(\) got unexpected keyword.*\['workers'\]"):
        odeprune.sweep("integrate", {"eta": [0.5]}, workers=2)
    with pytest.raises(TypeError, match=r"run_points\(\) got unexpected.*\['cach'\]"):
        run_points("integrate", {"eta": [0.5]}, cach="x")
