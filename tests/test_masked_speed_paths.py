"""The masked network's fast paths (issue 27 item 4) against plain references, bit for bit.

The state layout and the unpacking (vectorised, memoised gathers) against the per-class loops
they replaced; the class sums of the global covariance (gathers of :func:`class_tables`)
against the sums over classes in class order; the masked right-hand side against a plain
Python evaluation of the per-class formula (``docs/theory.md`` §8, the module docstring of
``odeprune.ode.rhs``) in the same order of additions; the per-class arrays of a curve are not
copied when handed over frozen.
"""

from __future__ import annotations

import numpy as np
import pytest

from odeprune import OrderParams
from odeprune.ode import rhs as _rhs
from odeprune.ode.sums import s4_sums
from odeprune.sparse import MaskClasses, SparseOrderParams, all_patterns


def _plain_layout(patterns, M, track_P):
    """The state layout as per-class loops (the form the vectorised one replaced)."""
    Q_idx, R_idx, P_idx, pos = [], [], [], 0
    for s, pat in enumerate(np.asarray(patterns, bool)):
        u = np.flatnonzero(pat)
        for x in range(len(u)):
            for z in range(x, len(u)):
                Q_idx.append((s, u[x], u[z], pos))
                pos += 1
        for x in range(len(u)):
            for n in range(M):
                R_idx.append((s, u[x], n, pos))
                pos += 1
        if track_P:
            for x in range(len(u)):
                for z in range(len(u)):
                    P_idx.append((s, u[x], u[z], pos))
                    pos += 1

    def arr(rows):
        return np.array(rows, dtype=np.int64).reshape(-1, 4).T

    return arr(Q_idx), arr(R_idx), (arr(P_idx) if track_P else None), pos


def _pattern_sets():
    rng = np.random.default_rng(3)
    pats = all_patterns(4)
    return [pats, pats[1:], pats[rng.permutation(len(pats))], np.ones((1, 4), bool),
            np.repeat(pats, 2, axis=0), pats[[5, 0, 5, 15, 3]]]


@pytest.mark.parametrize("track_P", [False, True])
@pytest.mark.parametrize("M", [1, 3])
def test_layout_and_unpacking_are_the_per_class_loops(track_P, M):
    rng = np.random.default_rng(0)
    for pats in _pattern_sets():
        want = _plain_layout(pats, M, track_P)
        got = _rhs.state_layout(pats, M, track_P)
        for a, b in zip(want[:3], got[:3]):
            if a is None:
                assert b is None
            else:
                assert b.dtype == np.int64
                np.testing.assert_array_equal(b, a)
        assert got[3] == want[3] and isinstance(got[3], int)
        qi, ri, pi, nv = want
        S, K = pats.shape
        for lead in ((), (3,), (2, 3)):
            y = rng.normal(size=lead + (nv + K,))
            Q, R, P, v = _rhs.unpack_classes(y, M, pats, track_P)
            Qw, Rw = np.zeros(lead + (S, K, K)), np.zeros(lead + (S, K, M))
            for s, i, k, q in qi.T:
                Qw[..., s, i, k] = Qw[..., s, k, i] = y[..., q]
            for s, i, n, q in ri.T:
                Rw[..., s, i, n] = y[..., q]
            np.testing.assert_array_equal(Q, Qw)
            np.testing.assert_array_equal(R, Rw)
            np.testing.assert_array_equal(v, y[..., nv:])
            if track_P:
                Pw = np.zeros(lead + (S, K, K))
                for s, i, k, q in pi.T:
                    Pw[..., s, i, k] = y[..., q]
                np.testing.assert_array_equal(P, Pw)
            else:
                assert P is None
            if lead == ():
                back = _rhs.pack_classes(pats, Q, R, v, P)
                np.testing.assert_array_equal(back, y)
    # the memoised arrays cannot be changed by a caller
    with pytest.raises(ValueError, match="read-only"):
        _rhs.state_layout(all_patterns(3), 2, False)[0][3, 0] = 7


def _masked(K, M, c, seed, split=1):
    s = OrderParams.random(300, K, M, v_star=2.0, seed=seed)
    sp = SparseOrderParams.random_mask(s, c)
    return sp.split(split) if split > 1 else sp


@pytest.mark.parametrize("K,M,c,split", [(4, 2, 0.5, 1), (5, 1, 0.3, 2), (3, 3, 0.8, 1)])
def test_class_sums_are_the_sums_in_class_order(K, M, c, split):
    sp = _masked(K, M, c, K, split)
    rng = np.random.default_rng(1)
    Q = sp.Q * (1 + 0.1 * rng.random(sp.Q.shape))
    Q = 0.5 * (Q + Q.transpose(0, 2, 1))
    R = sp.R * (1 + 0.1 * rng.random(sp.R.shape))
    for order in (np.arange(sp.n_classes), rng.permutation(sp.n_classes)):
        pats = sp.patterns[order]
        p = _rhs.make_params(K, M, sp.T.sum(0), sp.v_star, 0.5, 0.5, patterns=pats,
                             f=sp.f[order], T_cls=sp.T[order])
        y = _rhs.pack_classes(pats, Q[order], R[order], sp.v)
        C, a = np.zeros((K + M, K + M)), np.zeros(K + M)
        _rhs.unpack_cov(y, p, C, a)
        want = np.zeros((K + M, K + M))
        for i in range(K):
            for k in range(i, K + M):
                t = 0.0
                for s in order:
                    if k < K and sp.patterns[s, i] and sp.patterns[s, k]:
                        t += Q[s, i, k]
                    elif k >= K and sp.patterns[s, i]:
                        t += R[s, i, k - K]
                want[i, k] = want[k, i] = t
        want[K:, K:] = p.T
        np.testing.assert_array_equal(C, want)
        np.testing.assert_array_equal(a, np.concatenate([sp.v, -sp.v_star]))


def _plain_masked_rhs(y, p):
    """The masked right-hand side as plain Python loops over the per-class formula, each sum
    in the kernel's order of additions (``S3`` over the class's kept units, then teachers)."""
    K, M = p.K, p.M
    w = _rhs.make_work(K, M)
    _rhs.unpack_cov(y, p, w.C, w.a)
    _rhs.i3_coefficients(p.act, w.C, w.a, K, w.U, w.b)
    s4_sums(p, w)
    U, b, a, S4 = w.U, w.b, w.a, w.S4
    eta, decay = p.eta, p.decay
    dy = np.zeros_like(y)
    for s in range(p.n_cls):
        nk = p.nk[s]
        u = list(p.units[s, :nk])
        fields = u + [K + n for n in range(M)]
        Ls = nk + M
        q0 = p.off[s]
        Cs = np.zeros((Ls, Ls))
        q = q0
        for x in range(nk):
            for z in range(x, nk):
                Cs[x, z] = Cs[z, x] = y[q]
                q += 1
        for x in range(nk):
            for n in range(M):
                Cs[x, nk + n] = Cs[nk + n, x] = y[q]
                q += 1
        Cs[nk:, nk:] = p.T_cls[s]
        S3 = np.zeros((nk, Ls))
        for x in range(nk):
            for col in range(Ls):
                t = 0.0
                for c in range(Ls):
                    t += U[u[x], fields[c]] * Cs[col, c]
                S3[x, col] = t + b[u[x]] * Cs[col, x]
        q = q0
        for x in range(nk):
            for z in range(x, nk):
                i, k = u[x], u[z]
                d = -eta * a[i] * S3[x, z] - eta * a[k] * S3[z, x] - 2.0 * decay * y[q]
                if p.sgd:
                    d += eta * eta * p.f[s] * a[i] * a[k] * S4[i, k]
                dy[q] = d
                q += 1
        for x in range(nk):
            for n in range(M):
                dy[q] = -eta * a[u[x]] * S3[x, nk + n] - decay * y[q]
                q += 1
    q = p.off[p.n_cls]
    dy[q:] = _rhs.rhs_eval(y, p)[q:]  # dv: the dense network's code (tests/test_rhs*)
    return dy


@pytest.mark.parametrize("K,M,c,split,sgd,decay", [(4, 2, 0.5, 1, True, 0.0),
                                                   (5, 1, 0.3, 2, True, 0.01),
                                                   (3, 3, 0.8, 1, False, 0.02)])
def test_masked_rhs_is_the_per_class_formula_bit_for_bit(K, M, c, split, sgd, decay):
    sp = _masked(K, M, c, 10 + K, split)
    p = _rhs.make_params(K, M, sp.T.sum(0), sp.v_star, 0.5, 0.4, 0.1, patterns=sp.patterns,
                         f=sp.f, T_cls=sp.T, sgd=sgd, weight_decay=decay)
    y = _rhs.pack_classes(sp.patterns, sp.Q, sp.R, sp.v)
    y = y * (1 + 1e-2 * np.random.default_rng(2).normal(size=y.size))
    np.testing.assert_array_equal(_rhs.rhs_eval(y, p), _plain_masked_rhs(y, p))


def test_frozen_class_arrays_are_not_copied_and_others_are():
    sp = _masked(3, 2, 0.5, 1)
    n = 4
    Q = np.repeat(sp.Q[None], n, 0)
    R = np.repeat(sp.R[None], n, 0)
    Q.setflags(write=False)
    view = R[:]  # a read-only view of a writeable array: copied
    view.setflags(write=False)
    mc = MaskClasses(sp.patterns, sp.f, sp.T, Q, view)
    assert mc.Q is Q
    assert mc.R is not view and not mc.R.flags.writeable
    np.testing.assert_array_equal(mc.R, R)
    R[0, 0, 0, 0] += 1.0
    assert mc.R[0, 0, 0, 0] != R[0, 0, 0, 0]
    writeable = np.repeat(sp.Q[None], n, 0)
    mc = MaskClasses(sp.patterns, sp.f, sp.T, writeable, mc.R)
    assert mc.Q is not writeable and not mc.Q.flags.writeable
