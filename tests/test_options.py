"""odeprune.options: each option defined once (default, check, help), used by the library's entry
points and the command line."""

from __future__ import annotations

import argparse
import inspect

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
])
def test_each_option_refuses_bad_values_with_one_line_naming_it(name, bad, message):
    with pytest.raises(ValueError) as e:
        OPTIONS[name].check(bad)
    text = str(e.value)
    assert message in text and text.startswith(f"{name}=") and "\n" not in text


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


@pytest.mark.parametrize("where", ["odeprune.ode.dynamics:integrate", "odeprune.sim:simulate",
                                   "odeprune.ode.batch:integrate_batch"])
def test_entry_points_use_the_defaults_of_the_table(where):
    """A keyword of an entry point that names an option has the table's default (so that a
    default is written once; ``eta`` is required in the library)."""
    import importlib

    mod, name = where.split(":")
    fn = getattr(importlib.import_module(mod), name)
    shared = {n: d for n, d in _defaults(fn).items() if n in OPTIONS}
    assert shared, "no option shared with the table"
    wrong = {n: (d, OPTIONS[n].default) for n, d in shared.items()
             if d is not None and OPTIONS[n].default is not None and d != OPTIONS[n].default}
    assert wrong == {}
