"""The node integrand of the ReLU I4 path integral (issue 27, fourth round): its branch-free
atan2 against libm, the determinant polynomial and Sylvester's identity it rests on against
numpy, and the six moments at single nodes against the arcsine formulas of docs/relu.md
evaluated independently in extended precision (numpy longdouble)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from test_activations_relu_sums import PAIRS, _corr, _entries
from test_relu import _near_aligned

from odeprune.activations import relu_m4 as M


@njit(cache=False, error_model="numpy")
def _atan2_code(y, x):
    # the integrand's atan2(y, x) (y >= 0), one value (the node loop shares the divisions)
    num, den, off = M._atan_red(y, x)
    zp, q = M._atan_pq(num / den)
    return M._angle(x, num / den, off, zp, 1.0 / q)


def test_atan2_against_libm():
    """Every branch of the reduction (|y/x| below 0.66, up to tan(3 pi/8), above), both signs
    of x, ratios from 1e-20 to 1e20, x = 0 and y = 0: within 2 ulp of libm's atan2 (an angle
    in [0, pi])."""
    rng = np.random.default_rng(3)
    ys = np.concatenate([10.0 ** rng.uniform(-40, 2, 4000), [0.0, 1.0, 1e-30]])
    ratio = 10.0 ** rng.uniform(-20, 20, ys.size)
    xs = ys / ratio * rng.choice([-1.0, 1.0], ys.size)
    xs[-3:] = [1.0, 0.0, -1e-30]
    for edge in (0.66, M._T3P8):  # both sides of each reduction threshold
        for sgn in (1.0, -1.0):
            x = np.full(50, sgn)
            y = edge * (1.0 + np.linspace(-1e-13, 1e-13, 50))
            xs, ys = np.concatenate([xs, x]), np.concatenate([ys, y])
    got = np.array([_atan2_code(y, x) for x, y in zip(xs, ys)])
    ref = np.array([math.atan2(y, x) for x, y in zip(xs, ys)])
    assert np.all((got >= 0.0) & (got <= math.pi))
    np.testing.assert_allclose(got, ref, rtol=2.3e-16, atol=2 * np.spacing(math.pi))


def _random_sets(seed, n, e_max=12.0):
    # n random correlation matrices, lambda_min from 1 down to 10^-e_max
    rng = np.random.default_rng(seed)
    out = []
    for e in np.linspace(0, e_max, n):
        U, _ = np.linalg.qr(rng.normal(size=(4, 4)))
        lam = rng.uniform(0.2, 2.0, 4)
        lam[0] = 10.0 ** -e
        out.append(_corr((U * lam) @ U.T))
    return out


def test_det_polynomial_and_sylvester_identity():
    """det R(t) = s^4 + 4 s^3 t + E2 s^2 t^2 + E3 s t^3 + E4 t^4 (R(t) = sI + tR) with the
    coefficients of _det_coeffs, and e_k e_l - n_ij^2 = det R(t) (1 - r_ij^2) for every pair
    (n_ij the partial-correlation numerator of the complementary pair, e_k the 3x3
    determinant without k): the two facts that give the integrand its roots and angles."""
    for Rm in _random_sets(11, 12):
        c2, c3, c4 = M._det_coeffs(*_entries(Rm))
        for t in (0.0, 0.3, 0.9, 0.999):
            s = 1.0 - t
            Rt = s * np.eye(4) + t * Rm
            det = np.linalg.det(Rt)
            poly = s ** 4 + 4 * s ** 3 * t + c2 * s * s * t * t + c3 * s * t ** 3 + c4 * t ** 4
            np.testing.assert_allclose(poly, det, rtol=1e-12, atol=1e-15)
            for i, j in PAIRS:
                k, l = [x for x in range(4) if x not in (i, j)]
                n = M._num(*(t * Rm[x, y] for x, y in [(i, j), (i, k), (i, l), (j, k), (j, l),
                                                       (k, l)]))
                # n is the (i, j, k) x (i, j, l) minor of R(t)
                np.testing.assert_allclose(n, np.linalg.det(Rt[np.ix_([i, j, k], [i, j, l])]),
                                           rtol=1e-12, atol=1e-15)
                ek = np.linalg.det(Rt[np.ix_([i, j, k], [i, j, k])])
                el = np.linalg.det(Rt[np.ix_([i, j, l], [i, j, l])])
                np.testing.assert_allclose(ek * el - n * n, det * (1.0 - Rt[i, j] ** 2),
                                           rtol=1e-10, atol=1e-15)


_LD = np.longdouble
_LD_PI = _LD("3.14159265358979323846264338327950288")


def _moments_longdouble(s, p):
    """The six integrands G_cd of docs/relu.md (D_ab from sqrt(e_k e_l - n^2) and
    pi/2 + arcsin(n / sqrt(e_k e_l)), q_ij = (1/4 + arcsin / 2pi) / sqrt(1 - r_ij^2), the
    conditional trivariate sums E) in numpy longdouble, term by term."""
    s = _LD(s)
    t = 1 - s
    r = {pair: t * _LD(x) for pair, x in zip(PAIRS, p)}
    P = {pair: _LD(x) for pair, x in zip(PAIRS, p)}

    def rr(i, j):
        return r[(min(i, j), max(i, j))]

    def minor(rows, cols):
        m = np.array([[1 if a == b else rr(a, b) for b in cols] for a in rows], dtype=_LD)
        return (m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
                - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
                + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))

    q, D, o = {}, {}, {}
    for i, j in PAIRS:
        k, l = [x for x in range(4) if x not in (i, j)]
        n = minor([i, j, k], [i, j, l])
        ek, el = minor([i, j, k], [i, j, k]), minor([i, j, l], [i, j, l])
        o[i, j] = (1 - r[i, j]) * (1 + r[i, j])
        a = np.arcsin(np.clip(n / np.sqrt(ek * el), _LD(-1), _LD(1)))
        q[i, j] = (_LD(0.25) + a / (2 * _LD_PI)) / np.sqrt(o[i, j])
        D[i, j] = ((np.sqrt(max(ek * el - n * n, _LD(0))) + n * (_LD_PI / 2 + a))
                   / (4 * _LD_PI ** 2) / (o[i, j] * np.sqrt(o[i, j])))

    def key(i, j):
        return (min(i, j), max(i, j))

    def E(i, x):
        tot = _LD(0)
        for m in range(4):
            if m != i:
                cov = o[key(i, x)] if m == x else rr(x, m) - rr(i, x) * rr(i, m)
                tot += cov * q[key(i, m)]
        return tot

    dP4 = s * sum(P[pair] * q[pair] for pair in PAIRS)
    out = []
    for c, d in PAIRS:
        a, b = [x for x in range(4) if x not in (c, d)]
        out.append(P[a, b] * D[a, b]
                   + (P[key(a, c)] * E(a, d) + P[key(a, d)] * E(a, c) + P[key(b, c)] * E(b, d)
                      + P[key(b, d)] * E(b, c) + P[c, d] * dP4) / (2 * _LD_PI))
    return np.array(out, dtype=float)


@pytest.mark.parametrize("kind", ["random", "aligned"])
def test_moments_against_extended_precision(kind):
    """_relu_m4_moments at nodes u from 1e-6 to 1 against _moments_longdouble, relative to the
    largest moment: to 1e-13 on random sets with lambda_min >= 1e-4 (measured 9.6e-16; the
    arcsine code before: 3.3e-15); to 1e-9 on nearly aligned sets (lambda_min 1.5e-7 ...
    2.7e-4), where the extended-precision arcsine formula itself is only that accurate
    (measured 2.8e-10; the code before: 2.4e-10). (Against 40-digit mpmath at a set with
    lambda_min = 2.5e-6: <= 4.4e-11 here, 2.5e-8 for the code before.)"""
    if kind == "random":
        mats, tol = _random_sets(12, 10, e_max=4.0), 1e-13
    else:
        mats = [_corr(_near_aligned(s, pat, d))
                for s, (pat, d) in enumerate([([(2, 3)], 1e-3), ([(0, 1)], 1e-3),
                                              ([(0, 2), (1, 3)], 1e-2)])]
        tol = 1e-9
    worst = 0.0
    for Rm in mats:
        p = _entries(Rm)
        for u in np.geomspace(1e-6, 1.0, 13)[:-1]:
            got = np.array(M._relu_m4_moments(u * u, *p))
            ref = _moments_longdouble(u * u, p)
            worst = max(worst, np.abs(got - ref).max() / np.abs(ref).max())
    assert worst < tol, worst
