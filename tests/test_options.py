"""odeprune.options: each option defined once (default, check, help), used by the library's entry
points and the command line."""

from __future__ import annotations

import argparse
import inspect

import numpy as np
import pytest

from odeprune import options
from odeprune.options import OPTIONS, Control, Dynamics, Solver, add_cli_options, given, split


@pytest.mark.parametrize("name,bad,message", [
    ("eta", True, "must be a real number"),
    ("eta", 0.0, "must be > 0"),
    ("sigma", -1.0, "must be >= 0"),
    ("sigma", float("nan"), "finite"),
    ("train_second_layer", 1, "must be True or False"),
    ("gradient_flow", "yes", "must be True or False"),
    ("method", "rk45", "is unknown"),
    ("max_steps", 1.5, "positive integer"),
    ("max_steps", True, "positive integer"),
    ("chunk_steps", 0, "positive integer"),
    ("progress", 1, "True or False (or None"),
    ("checkpoint", 3, "must be a path"),
    ("K", 0, "positive integer"),
    ("N", 2.0, "positive integer"),
    ("seed", -1, "integer >= 0"),
    ("seed", True, "integer >= 0"),
    ("v_star", float("inf"), "finite real number"),
    ("v_star", [], "non-empty list"),
    ("v_star", [1.0, True], "finite real number"),
    ("v_star", "4", "finite real number"),
    ("alpha_max", 0.0, "must be > 0"),
])
def test_each_option_refuses_bad_values_with_one_line_naming_it(name, bad, message):
    with pytest.raises(ValueError) as e:
        OPTIONS[name].check(bad)
    text = str(e.value)
    assert message in text and text.startswith(f"{name}=") and "\n" not in text


def test_the_network_options_keep_clean_values():
    assert OPTIONS["v_star"].check(4) == 4.0 and isinstance(OPTIONS["v_star"].check(4), float)
    assert OPTIONS["v_star"].check((1, -2.5)) == [1.0, -2.5]  # a teacher unit may be negative
    assert OPTIONS["seed"].check(np.int64(3)) == 3 and OPTIONS["K"].check(np.int32(6)) == 6


def test_value_is_the_given_flag_else_the_cli_default_else_the_default():
    p = _parser(["K", "seed", "eta_v", "alpha_max"])
    args = p.parse_args([])
    assert [options.value(args, n) for n in ("K", "seed", "eta_v", "alpha_max")] == \
        [OPTIONS["K"].cli_default, OPTIONS["seed"].default, None, None]
    args = p.parse_args(["--K", "3", "--seed", "0", "--eta-v", "0"])
    assert [options.value(args, n) for n in ("K", "seed", "eta_v")] == [3, 0, 0.0]
    # a command's own default is its flag's value, and its help says so
    p = argparse.ArgumentParser()
    add_cli_options(p, ["alpha_max"], defaults={"alpha_max": 100.0})
    assert p.parse_args([]).alpha_max == 100.0
    assert "(default 100)" in " ".join(p.format_help().split())
    with pytest.raises(ValueError, match="alpha_max=-1"):  # and it obeys the table's check
        add_cli_options(argparse.ArgumentParser(), ["alpha_max"], defaults={"alpha_max": -1})


def test_records_check_on_construction_and_keep_clean_values():
    d = Dynamics(eta=1, sigma=0)
    assert d.eta == 1.0 and isinstance(d.eta, float) and d.second_layer_rate == 1.0
    assert Dynamics(eta=0.5, eta_v=0.0).second_layer_rate == 0.0
    with pytest.raises(ValueError, match="rtol=1e-20"):
        Solver(rtol=1e-20)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        Control(resume=True)
    with pytest.raises(TypeError):  # a misspelt keyword is not silently dropped
        Dynamics(eta=0.5, sgima=0.1)


def test_split_sorts_flat_keywords_into_the_records_and_returns_the_rest():
    (dyn, sol, ctl), rest = split(dict(eta=0.3, sigma=0.1, rtol=1e-8, method="rk4", dt=0.02,
                                       progress=False, seed=4))
    assert (dyn.eta, dyn.sigma, dyn.eta_v) == (0.3, 0.1, None)
    assert (sol.method, sol.rtol, sol.dt, sol.atol) == ("rk4", 1e-8, 0.02, options.DEFAULT_ATOL)
    assert ctl.progress is False and rest == {"seed": 4}


def _parser(names):
    p = argparse.ArgumentParser(exit_on_error=False)
    add_cli_options(p, names)
    return p


def test_cli_flags_come_from_the_table_and_left_out_flags_leave_the_library_default():
    names = ["eta", "eta_v", "sigma", "train_second_layer", "gradient_flow", "method", "rtol"]
    p = _parser(names)
    args = p.parse_args([])
    assert given(args, names) == {"eta": OPTIONS["eta"].cli_default}
    args = p.parse_args(["--eta", "0.3", "--freeze-v", "--gradient-flow", "--method", "auto",
                         "--rtol", "1e-9"])
    assert given(args, names) == {"eta": 0.3, "train_second_layer": False,
                                  "gradient_flow": True, "method": "auto", "rtol": 1e-9}
    with pytest.raises(argparse.ArgumentError, match="must be > 0"):
        p.parse_args(["--eta", "-1"])
    with pytest.raises(argparse.ArgumentError, match="expected a number"):
        p.parse_args(["--sigma", "x"])
    text = p.format_help()
    assert "(default 1e-07)" in text and "(default 0.5)" in text


def _defaults(fn) -> dict:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


#: keywords of entry points that share a name with an option of the table but not its default,
#: and why (each must still differ: a difference that went away is an error too)
DIFFERENT = {
    "odeprune.coords.run:integrate_law": {
        "dt": "the particle SDE's step PARTICLE_DT (its error is Monte Carlo, not the step)"},
    "odeprune.coords.particles:particle_run": {
        "dt": "the particle SDE's step PARTICLE_DT"},
}

ENTRY_POINTS = [
    "odeprune.ode.dynamics:integrate", "odeprune.sim:simulate",
    "odeprune.ode.batch:integrate_batch",
    "odeprune.coords.run:integrate_law", "odeprune.coords.particles:particle_run",
    *(f"odeprune.workflows:{n}" for n in (
        "retrain", "retrain_finite", "prune_at_init", "prune_at_init_finite", "lottery_ticket",
        "lottery_ticket_finite", "iterative_magnitude_pruning",
        "iterative_magnitude_pruning_finite", "gradual_magnitude_pruning",
        "gradual_magnitude_pruning_finite")),
]


@pytest.mark.parametrize("where", ENTRY_POINTS)
def test_entry_points_use_the_defaults_of_the_table(where):
    """A keyword of an entry point that names an option has the table's default (so that a
    default is written once; ``eta`` is required in the library); where the library has none
    (``eta`` of the integrators) but a workflow has one, it is the command line's
    ``cli_default``. The differences are listed in :data:`DIFFERENT`, with their reason."""
    import importlib

    mod, name = where.split(":")
    fn = getattr(importlib.import_module(mod), name)
    shared = {n: d for n, d in _defaults(fn).items() if n in OPTIONS}
    # (the workflows route every shared option through **options: none is a keyword there)
    assert shared or where.startswith("odeprune.workflows"), "no option shared with the table"
    wrong = {}
    for n, d in shared.items():
        opt = OPTIONS[n]
        want = opt.default if opt.default is not None else opt.cli_default
        if d is not None and want is not None and d != want:
            wrong[n] = (d, want)
    assert set(wrong) == set(DIFFERENT.get(where, {})), wrong


def test_the_particle_step_is_the_one_constant():
    from odeprune.coords.particles import particle_run
    from odeprune.coords.run import integrate_law

    assert _defaults(integrate_law)["dt"] == _defaults(particle_run)["dt"] == options.PARTICLE_DT


def _table_error(name, bad) -> str:
    with pytest.raises(ValueError) as e:
        OPTIONS[name].check(bad)
    return str(e.value)


@pytest.mark.parametrize("name,bad,call", [
    ("sigma", -1.0, lambda w, s: w.retrain(s, "random_node", k=1, sigma=-1.0)),
    ("eta", 0.0, lambda w, s: w.prune_at_init(s, "random_edge", 0.5, eta=0.0)),
    ("eta_v", -1.0, lambda w, s: w.lottery_ticket(s, 0.5, eta_v=-1.0)),
    ("sigma", -1.0, lambda w, s: w.iterative_magnitude_pruning(s, sigma=-1.0)),
    ("eta", True, lambda w, s: w.gradual_magnitude_pruning(s, ([1.0], [0.5]), 2.0, eta=True)),
    ("eta", -0.5, lambda w, s: w.lottery_ticket_finite(40, 2, 1, 0.5, eta=-0.5)),
    ("sigma", -1.0, lambda w, s: w.prune_at_init_finite(40, 2, 1, "random_edge", 0.5,
                                                         sigma=-1.0)),
    ("sigma", -1.0, lambda w, s: w.iterative_magnitude_pruning_finite(40, 2, 1, sigma=-1.0)),
    ("eta", 0.0, lambda w, s: w.gradual_magnitude_pruning_finite(40, 2, 1, ([1.0], [0.5]), 2.0,
                                                                 eta=0.0)),
    ("alpha_max", -1.0, lambda w, s: w.prune_at_init(s, "random_edge", 0.5, alpha_max=-1.0)),
])
def test_workflows_check_the_learning_rule_by_the_table(name, bad, call):
    """Each workflow refuses a bad shared option before any work, with the table's one line."""
    from odeprune import OrderParams, workflows

    state = OrderParams.random(40, 2, 1, v_star=1.0, seed=0)
    with pytest.raises(ValueError) as e:
        call(workflows, state)
    assert str(e.value) == _table_error(name, bad)


def test_the_workflows_rule_is_a_dynamics_record():
    from odeprune.workflows._common import Rule

    rule = Rule.of(0.3, None, 0.1, False)
    assert rule.dynamics == Dynamics(eta=0.3, sigma=0.1, train_second_layer=False)
    assert (rule.eta, rule.eta_v, rule.sigma) == (0.3, None, 0.1)
    with pytest.raises(ValueError) as e:
        Rule.of(0.3, sigma=float("nan"))
    assert str(e.value) == _table_error("sigma", float("nan"))


@pytest.mark.parametrize("engine", ["integrate_law", "particle_run"])
@pytest.mark.parametrize("name,bad", [("eta_v", -1.0), ("weight_decay", -0.1), ("l1", True),
                                      ("train_second_layer", 1), ("dt", 0.0),
                                      ("alpha_max", float("inf"))])
def test_the_coordinate_law_checks_its_options_by_the_table(engine, name, bad):
    from odeprune import OrderParams
    from odeprune.coords import CoordinateLaw
    from odeprune.coords.particles import particle_run
    from odeprune.coords.run import integrate_law

    law = CoordinateLaw.from_state(OrderParams.random(40, 2, 1, v_star=1.0, seed=0), S=20,
                                   replicas=2, seed=0)
    fn = integrate_law if engine == "integrate_law" else particle_run
    kw = dict(eta=0.5, alpha_max=1.0)
    kw[name] = bad
    with pytest.raises(ValueError) as e:
        fn(law, **kw)
    assert str(e.value) == _table_error(name, bad)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):  # one Control record
        fn(law, 0.5, 1.0, resume=True)
