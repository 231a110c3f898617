"""The sparse-teacher experiments' options (issue 22): the teacher and the clock as records,
flat keywords or whole, with the same numbers; bad input refused before any work."""

import numpy as np
import pytest

from odeprune import teachers
from odeprune.options import Dynamics
from odeprune.teachers import V_STAR, Convergence, Teacher


def _same_state(a, b):
    return all(np.array_equal(getattr(a, n), getattr(b, n))
               for n in ("Q", "R", "T", "v", "v_star", "f", "patterns"))


def test_the_teacher_record_is_the_flat_keywords():
    flat = teachers.sparse_teacher_state(3, 2, 0.3, "oracle", v_star=1.5, seed=2, N=200,
                                         shared_support=True, normalise=True)
    whole = teachers.sparse_teacher_state(
        3, 2, 0.3, "oracle", seed=2, N=200,
        teacher=Teacher(v_star=1.5, shared_support=True, normalise=True))
    assert _same_state(flat, whole)
    # the default teacher of a state is the table's v_star = 4
    assert np.array_equal(teachers.sparse_teacher_state(3, 2, 0.5).v_star, [4.0, 4.0])
    with pytest.raises(ValueError, match=r"\['v_star'\] given beside teacher="):
        teachers.sparse_teacher_state(3, 2, 0.5, v_star=1.0, teacher=Teacher())
    with pytest.raises(ValueError, match="normalise=1 must be True or False"):
        teachers.sparse_teacher_state(3, 2, 0.5, normalise=1)
    with pytest.raises(TypeError, match="sparse_teacher_state.*sigma"):
        teachers.sparse_teacher_state(3, 2, 0.5, sigma=0.1)


def test_experiments_take_their_records_whole_and_default_to_v_star_one():
    kw = dict(alpha_T=[1.0], N=40, seeds=(0,), workers=1)
    flat = teachers.support_recovery_experiment(3, 2, 0.5, v_star=V_STAR, eta=0.5,
                                                shared_support=True, **kw)
    default = teachers.support_recovery_experiment(3, 2, 0.5, shared_support=True, **kw)
    whole = teachers.support_recovery_experiment(3, 2, 0.5, teacher=Teacher(
        v_star=1.0, shared_support=True), dynamics=Dynamics(eta=0.5), **kw)
    assert flat == default == whole
    other = teachers.support_recovery_experiment(3, 2, 0.5, v_star=2.0, shared_support=True,
                                                 **kw)
    assert other != flat


def test_the_convergence_clock_as_a_record():
    kw = dict(N=30, seeds=(0,), workers=1)
    a = teachers.convergence_finite(2, 1, 0.5, alpha_max=2.0, alpha_T=1.0, thresholds=[0.1],
                                    **kw)
    b = teachers.convergence_finite(2, 1, 0.5, convergence=Convergence(
        alpha_max=2.0, alpha_T=1.0, thresholds=[0.1]), **kw)
    assert a.keys() == b.keys() and a["arms"].keys() == b["arms"].keys()
    for arm in a["arms"]:
        assert np.array_equal(a["arms"][arm]["eg"], b["arms"][arm]["eg"])
    assert a["arms"]["dense"]["alpha"][-1] == 2.0


@pytest.mark.parametrize("call, err, match", [
    (lambda: teachers.convergence_limit(2, 1, 0.5, alpha_T=-1.0), ValueError, "alpha_T=-1.0"),
    (lambda: teachers.convergence_limit(2, 1, 0.5, thresholds=[]), ValueError, "thresholds"),
    (lambda: teachers.convergence_limit(2, 1, 0.5, rtol=-1.0), ValueError, "rtol=-1.0"),
    (lambda: teachers.convergence_limit(2, 1, 0.5, eta=0.0), ValueError, "eta=0.0"),
    (lambda: teachers.convergence_limit(2, 1, 0.5, alpha_mx=10.0), TypeError, "alpha_mx"),
    (lambda: teachers.convergence_finite(2, 1, 0.5, rtol=1e-9), TypeError, "rtol"),
    (lambda: teachers.convergence_finite(2, 1, 0.5, gradient_flow=True), ValueError,
     "gradient_flow does not apply"),
    (lambda: teachers.support_recovery_experiment(2, 1, 0.5, alpha_T=[1.0], normalise="yes"),
     ValueError, "normalise"),
])
def test_bad_options_are_refused_before_any_work(call, err, match):
    with pytest.raises(err, match=match):
        call()
