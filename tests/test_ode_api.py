"""The entry points of the ODE engine take their options as flat keywords or as the records of
odeprune.options (issue 22): the same numbers either way, one-line refusals, and every option
documented where a newcomer looks (``help(odeprune.integrate)``)."""

from __future__ import annotations

import dataclasses
import pydoc

import numpy as np
import pytest

import odeprune
from odeprune.options import Control, Dynamics, Output, Solver

ETA = 0.5


@pytest.fixture(scope="module")
def state():
    return odeprune.OrderParams.random(200, 3, 2, v_star=2.0, seed=1)


def _same(a, b):
    for name in ("alpha", "eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_records_whole_equal_flat_keywords(state):
    flat = odeprune.integrate(state, ETA, 20.0, [1.0, 5.0], sigma=0.1, eta_v=0.3,
                              method="dopri5", rtol=1e-8, alpha0=2.0)
    whole = odeprune.integrate(state, alpha_max=20.0,
                               dynamics=Dynamics(eta=ETA, sigma=0.1, eta_v=0.3),
                               solver=Solver(method="dopri5", rtol=1e-8),
                               output=Output(save_at=[1.0, 5.0], alpha0=2.0),
                               control=Control(progress=False))
    _same(flat, whole)
    np.testing.assert_array_equal(flat.alpha, [3.0, 7.0, 22.0])
    assert flat.metadata == whole.metadata
    # positional order (state, eta, alpha_max, save_at) as keywords
    _same(odeprune.integrate(state, ETA, 20.0, [1.0, 5.0]),
          odeprune.integrate(state, eta=ETA, alpha_max=20.0, save_at=[1.0, 5.0]))


def test_bad_options_are_refused_in_one_line(state):
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['rtoll'\]"):
        odeprune.integrate(state, ETA, 1.0, rtoll=1e-8)
    with pytest.raises(ValueError, match=r"\['sigma'\] given beside dynamics="):
        odeprune.integrate(state, alpha_max=1.0, dynamics=Dynamics(eta=ETA), sigma=0.1)
    with pytest.raises(ValueError, match=r"\['eta'\] given beside dynamics="):
        odeprune.integrate(state, ETA, 1.0, dynamics=Dynamics(eta=ETA))
    with pytest.raises(ValueError, match="must be an odeprune.options.Solver"):
        odeprune.integrate(state, ETA, 1.0, solver="dopri5")
    with pytest.raises(TypeError, match="missing required argument: 'eta'"):
        odeprune.integrate(state, alpha_max=1.0)
    with pytest.raises(TypeError, match="missing required argument: 'alpha_max'"):
        odeprune.integrate(state, ETA)
    with pytest.raises(ValueError, match="resume=True needs checkpoint=PATH"):
        odeprune.integrate(state, ETA, 1.0, resume=True)
    with pytest.raises(ValueError, match="threads=1 must be True or False"):
        odeprune.integrate(state, ETA, 1.0, threads=1)


def _documented(fn) -> str:
    return pydoc.render_doc(fn, renderer=pydoc.plaintext)


@pytest.mark.parametrize("record", [Dynamics, Solver, Control, Output])
def test_help_of_integrate_names_every_option(record):
    text = _documented(odeprune.integrate)
    missing = [f.name for f in dataclasses.fields(record) if f"``{f.name}``" not in text
               and f"{f.name}," not in text and f"{f.name} :" not in text]
    assert not missing, missing
    assert record.__name__ in text


def test_help_of_integrate_batch_names_its_options():
    text = _documented(odeprune.integrate_batch)
    names = [f.name for r in (Dynamics, Solver) for f in dataclasses.fields(r)
             if f.name != "l1"] + ["progress", "solver"]
    missing = [n for n in names if n not in text]
    assert not missing, missing


def test_batch_takes_the_records_too(state):
    states = [state, state.replace(v=state.v * 0.5)]
    flat = odeprune.integrate_batch(states, eta=ETA, alpha_max=5.0, save_at=[1.0], sigma=0.1,
                                    method="dopri5", n_workers=1)
    whole = odeprune.integrate_batch(states, alpha_max=5.0, save_at=[1.0], n_workers=1,
                                     dynamics=Dynamics(eta=ETA, sigma=0.1),
                                     solver=Solver(method="dopri5"))
    for a, b in zip(flat, whole):
        _same(a, b)
    np.testing.assert_array_equal(whole.sigma, [0.1, 0.1])
    with pytest.raises(ValueError, match=r"\['eta'\] given beside dynamics="):
        odeprune.integrate_batch(states, ETA, 5.0, dynamics=Dynamics(eta=ETA))
    with pytest.raises(ValueError, match=r"\['checkpoint'\] are options of one run"):
        odeprune.integrate_batch(states, ETA, 5.0, checkpoint="x.npz")
    with pytest.raises(TypeError, match="unexpected keyword"):
        odeprune.integrate_batch(states, ETA, 5.0, n_runs=3)


def test_a_coordinate_law_takes_the_records_too():
    from odeprune.coords import CoordinateLaw

    st = odeprune.OrderParams.random(200, 2, 1, v_star=1.0, seed=0)
    law = CoordinateLaw.from_state(st, S=200, replicas=2, seed=0)
    flat = odeprune.integrate(law, ETA, 1.0, save_at=[0.5], sigma=0.1, method="linear")
    whole = odeprune.integrate(law, alpha_max=1.0, dynamics=Dynamics(eta=ETA, sigma=0.1),
                               output=Output(save_at=[0.5]), method="linear")
    np.testing.assert_array_equal(flat.eg, whole.eg)
    with pytest.raises(ValueError, match=r"\['max_steps'\] do not apply"):
        odeprune.integrate(law, ETA, 1.0, solver=Solver(max_steps=5))
    with pytest.raises(TypeError, match="unexpected keyword"):
        odeprune.integrate(law, ETA, 1.0, n_test=5)
