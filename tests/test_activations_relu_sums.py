"""The ReLU I4 bracket by sets of four fields (issue 27 item 4): the six moments of one set
against the one-moment path integral and Monte Carlo, the one-merge closed forms against the
general merge, and the whole-matrix sum against relu_I4 summed term by term."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_relu import _near_aligned, _relu_states, mc_means

from odeprune import activations as A
from odeprune.activations import relu as R

PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _corr(C):
    sd = np.sqrt(np.diag(C))
    return C / np.outer(sd, sd)


def _entries(Rm):
    return [Rm[i, j] for i, j in PAIRS]


SETS = {
    "generic": _corr(_near_aligned(1, [], 0.0)),
    "c~d 1e-4": _corr(_near_aligned(8, [(2, 3)], 1e-4)),
    "a~c 1e-3": _corr(_near_aligned(4, [(0, 2)], 1e-3)),
    "b~d, a~c 1e-2": _corr(_near_aligned(9, [(1, 3), (0, 2)], 1e-2)),
    "rank 3": _corr((lambda B: B @ B.T)(np.random.default_rng(6).normal(size=(4, 3)))),
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_six_moments_equal_the_one_moment_integral_permuted(name):
    """Moment (c, d) of _relu_m4_all is _relu_m4 of the matrix with (c, d) moved to slots
    (2, 3): the same rule and panels, another order of the fields (round-off)."""
    Rm = SETS[name]
    out = np.empty(6)
    R._relu_m4_all(*_entries(Rm), out)
    for m, (c, d) in enumerate(PAIRS):
        perm = [x for x in range(4) if x not in (c, d)] + [c, d]
        ref = R._relu_m4(*_entries(Rm[np.ix_(perm, perm)]))
        np.testing.assert_allclose(out[m], ref, rtol=0, atol=1e-12)


def test_six_moments_match_monte_carlo():
    C = _near_aligned(2, [], 0.0)
    Rm = _corr(C)
    out = np.empty(6)
    R._relu_m4_all(*_entries(Rm), out)
    fns = [(lambda x, r, t, c=c, d=d: r[c] * r[d] * t.prod(0)) for c, d in PAIRS]
    mean, se = mc_means(Rm, fns, 4_000_000, seed=5)
    assert np.all(np.abs(mean - out) < 5 * se), (mean - out) / se


@pytest.mark.parametrize("which", range(6))
def test_one_merge_closed_form_is_the_general_merge_bit_for_bit(which):
    rng = np.random.default_rng(which)
    scratch = (np.empty((4, 4)), np.empty(4, dtype=np.int64), np.empty(4, dtype=np.int64),
               np.empty((3, 3)))
    for _ in range(20):
        B = rng.normal(size=(4, 7))
        i, j = PAIRS[which]
        B[j] = B[i] * rng.uniform(0.5, 2.0)
        p = _entries(np.clip(_corr(B @ B.T), -1.0, 1.0))
        p[which] = 1.0
        scale = rng.uniform(0.1, 3.0)
        ref = A.relu_I4_merged(scale, *p, *scratch)
        assert scale * R._m3_one_merge(*p, np.empty((3, 3))) == ref


@pytest.mark.parametrize("state", range(4))
def test_relu_s4_sums_equal_relu_I4_summed(state):
    """relu_s4_sums against relu_I4 summed in plain Python, for random, trained and
    degenerate states (a dead unit, exactly aligned and anti-aligned students); only the
    upper triangle is written."""
    Q, Rt, T, v, vs = _relu_states()[state]
    K, M = Rt.shape
    C = np.block([[Q, Rt], [Rt.T, T]]).astype(float)
    a = np.concatenate([v, -np.asarray(vs, dtype=float)])
    S4 = np.full((K, K), np.nan)
    A.relu_s4_sums(C, a, K, S4)
    for i in range(K):
        for k in range(K):
            if k < i:
                assert math.isnan(S4[i, k])
                continue
            terms = [(1.0 if c == d else 2.0) * a[c] * a[d]
                     * A.relu_I4(C[i, i], C[i, k], C[i, c], C[i, d], C[k, k], C[k, c], C[k, d],
                                 C[c, c], C[c, d], C[d, d])
                     for c in range(K + M) for d in range(c, K + M)]
            np.testing.assert_allclose(S4[i, k], sum(terms), rtol=0,
                                       atol=1e-13 * (1.0 + sum(map(abs, terms))))


def test_relu_s4_sums_larger_network_and_dead_teacher():
    """K=7, M=3 with a zero-norm teacher (every term with it is 0) against the per-term sum."""
    rng = np.random.default_rng(12)
    W = rng.normal(size=(7, 40)) / np.sqrt(40)
    B = rng.normal(size=(3, 40)) / np.sqrt(40)
    B[1] = 0.0
    F = np.vstack([W, B])
    C = F @ F.T
    a = rng.normal(size=10)
    S4 = np.zeros((7, 7))
    A.relu_s4_sums(C, a, 7, S4)
    for i in range(7):
        for k in range(i, 7):
            ref = sum((1.0 if c == d else 2.0) * a[c] * a[d] * A.I4_at(A.RELU, C, i, k, c, d)
                      for c in range(10) for d in range(c, 10))
            np.testing.assert_allclose(S4[i, k], ref, rtol=0, atol=1e-12)
