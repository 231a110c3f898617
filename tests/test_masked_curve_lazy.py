"""A masked curve's network overlaps come from the class sums of its saved states, and its
per-class arrays are unpacked when first read (issue 27 item 4): both against the plain forms
(``unpack_classes`` and numpy's sum over the class axis), bit for bit, and what a user reads is
the same (properties, pickling, files, ``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.ode import rhs as _rhs
from odeprune.sparse import MaskClasses, SparseLearningCurve, SparseOrderParams, all_patterns


def _bits(a):
    return np.ascontiguousarray(a, dtype=float).view(np.int64)


def _pattern_sets(K):
    rng = np.random.default_rng(K)
    pats = all_patterns(K)
    pruned = pats[~pats[:, 0]]  # unit 0 pruned in every class: its entries are sums of nothing
    return [pats, pats[rng.random(len(pats)) < 0.5], np.ones((1, K), bool), pats[1:2],
            np.repeat(pats, 2, axis=0), pruned]


@pytest.mark.parametrize("track_P", [False, True])
@pytest.mark.parametrize("K,M", [(1, 1), (3, 2), (4, 1), (5, 3)])
def test_class_sums_are_numpys_sums_of_the_unpacked_classes(K, M, track_P):
    rng = np.random.default_rng(10 * K + M)
    for pats in _pattern_sets(K):
        if len(pats) == 0:
            continue
        nv = _rhs.state_layout(pats, M, track_P)[3]
        for lead in ((), (3,), (2, 3)):
            size = lead + (nv + K,)
            y = rng.normal(size=size) * 10.0 ** rng.integers(-6, 7, size)
            y[rng.random(size) < 0.2] = -0.0  # signed zeros: the sum starts at +0.0
            y[rng.random(size) < 0.1] = 0.0
            if lead:
                y[(0,) * len(lead)] = -0.0
            Qc, Rc, Pc, v = _rhs.unpack_classes(y, M, pats, track_P)
            Q, R, P, v2 = _rhs.class_sums(y, M, pats, track_P)
            assert Q.shape == lead + (K, K) and R.shape == lead + (K, M)
            np.testing.assert_array_equal(_bits(Q), _bits(Qc.sum(-3)))
            np.testing.assert_array_equal(_bits(R), _bits(Rc.sum(-3)))
            np.testing.assert_array_equal(v2, v)
            if track_P:
                np.testing.assert_array_equal(_bits(P), _bits(Pc.sum(-3)))
            else:
                assert P is None


def _curve(track_initial=False, method="dopri5"):
    s = OrderParams.random(400, 4, 2, v_star=2.0, seed=5)
    sp = SparseOrderParams.random_mask(s, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sp, odeprune.integrate(sp, 0.5, 20.0, progress=False, method=method,
                                      track_initial=track_initial)


@pytest.mark.parametrize("track_initial", [False, True])
def test_masked_curve_unpacks_its_classes_once_when_first_read(track_initial):
    sp, c = _curve(track_initial)
    assert isinstance(c, SparseLearningCurve)
    assert "classes" not in vars(c)  # not built by integrate
    # the network's overlaps are the class sums of the per-class arrays, bit for bit
    np.testing.assert_array_equal(_bits(c.Q), _bits(c.curve.Q))
    assert "classes" not in vars(c)
    classes = c.classes
    assert isinstance(classes, MaskClasses) and c.classes is classes  # built once, kept
    np.testing.assert_array_equal(_bits(c.Q), _bits(c.Q_cls.sum(1)))
    np.testing.assert_array_equal(_bits(c.R), _bits(c.R_cls.sum(1)))
    if track_initial:
        np.testing.assert_array_equal(_bits(c.P), _bits(c.P_cls.sum(1)))
        assert c.P_cls.shape == c.Q_cls.shape
    else:
        assert c.P is None and c.P_cls is None
    for a in (c.Q_cls, c.R_cls, c.patterns, c.f, c.T_cls):
        assert not a.flags.writeable
    # handed over frozen: kept without a copy (views of the unpacked gathers)
    assert c.Q_cls.base is not None and c.R_cls.base is not None
    np.testing.assert_array_equal(c.patterns, sp.patterns)
    np.testing.assert_array_equal(c.f, sp.f)
    np.testing.assert_array_equal(c.T_cls, sp.T)
    # the first saved state is the initial state
    np.testing.assert_array_equal(c.Q_cls[0], sp.Q)
    np.testing.assert_array_equal(c.R_cls[0], sp.R)
    # the public constructor accepts the same arrays (it checks the class sums)
    again = SparseLearningCurve(c.curve, classes)
    np.testing.assert_array_equal(again.Q_cls, c.Q_cls)


def test_what_a_user_reads_is_the_same_before_and_after_unpacking(tmp_path):
    _, c = _curve(True)
    _, ref = _curve(True)
    ref.classes  # noqa: B018 - unpacked first
    state = c.final  # reads the classes
    np.testing.assert_array_equal(state.Q, ref.Q_cls[-1])
    for name in ("Q_cls", "R_cls", "P_cls", "patterns", "f", "T_cls"):
        np.testing.assert_array_equal(getattr(c, name), getattr(ref, name))
    # pickling and copies, before the classes are unpacked
    _, fresh = _curve(True)
    back = pickle.loads(pickle.dumps(fresh))
    assert "classes" not in vars(back)
    np.testing.assert_array_equal(back.Q_cls, ref.Q_cls)
    np.testing.assert_array_equal(back.eg, ref.eg)
    _, fresh = _curve(True)
    np.testing.assert_array_equal(dataclasses.replace(fresh).R_cls, ref.R_cls)
    _, fresh = _curve(True)
    path = fresh.save(tmp_path / "c.npz")
    loaded = odeprune.load(path)
    assert isinstance(loaded, SparseLearningCurve)
    for name in ("Q_cls", "R_cls", "P_cls", "eg", "Q", "R", "P", "v"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(ref, name))
    _, fresh = _curve(True)
    assert "SparseLearningCurve(K=4" in repr(fresh)  # reads f: unpacks the classes
    assert "classes" in vars(fresh) and "_per_class" not in vars(fresh)
    # other attributes are still missing, with the usual error
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fresh.nope  # noqa: B018
    assert not hasattr(fresh, "nope")


def test_masked_curve_of_every_method_matches_its_classes():
    for method in ("auto", "rk4"):
        _, c = _curve(False, method)
        np.testing.assert_array_equal(_bits(c.Q), _bits(c.Q_cls.sum(1)))
        np.testing.assert_array_equal(_bits(c.R), _bits(c.R_cls.sum(1)))
