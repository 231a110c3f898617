"""The quadrature rule of the ReLU I4 path integral (issue 27 item 4): every rule integrates
polynomials in t exactly, the eigenvalue bounds that pick a rule bracket the spectrum, the
six moments agree with an independent fine composite rule (random, strongly correlated and
nearly aligned fields) and with adaptive cubature at a trained state; and the looked-up
closed forms of the repeated-index terms are bit for bit the merged ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from test_activations_relu_sums import PAIRS, _corr, _entries
from test_relu import _near_aligned, cubature_I4

import odeprune
from odeprune import activations as A
from odeprune.activations import relu as R
from odeprune.activations import relu_m4 as M


def _random_corr(rng, lam_min):
    U, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    lam = rng.uniform(0.2, 2.0, 4)
    lam[0] = lam_min
    return _corr((U * lam) @ U.T)


def _trained_sets():
    """Every set of four distinct fields of the M=2/K=6 state at alpha = 100 (strongly
    correlated fields, lambda_max up to 3.3, one pair within 1e-3 of alignment)."""
    s = odeprune.OrderParams.random(500, 6, 2, v_star=4.0, seed=0, activation="relu")
    c = odeprune.integrate(s, 0.5, 100.0, save_at=[0.0, 100.0], method="dopri5",
                           progress=False)
    Q, Rst = c.Q[-1], c.R[-1]
    Rm = _corr(np.block([[Q, Rst], [Rst.T, s.T]]))
    return [[Rm[w, x], Rm[w, y], Rm[w, z], Rm[x, y], Rm[x, z], Rm[y, z]]
            for w in range(6) for x in range(w + 1, 6) for y in range(x + 1, 8)
            for z in range(y + 1, 8)]


@njit(cache=False, error_model="numpy")
def _fine(p, nodes, weights, out):
    # the six moments on a given composite rule (the same integrand as _relu_m4_all)
    t = np.zeros(6)
    for j in range(nodes.shape[0]):
        u = nodes[j]
        g = M._relu_m4_moments(u * u, p[0], p[1], p[2], p[3], p[4], p[5])
        for m in range(6):
            t[m] += weights[j] * g[m]
    for m in range(6):
        out[m] = 0.125 / math.pi + p[m] / 16.0 + t[m]


def _fine_rule():
    """30-node Gauss-Legendre on the u-panels [2^-(j+1), 2^-j], j < 50, and [0, 2^-50]:
    another rule than any of _m4_rule's (nodes, and weights for the integral over t)."""
    x, w = np.polynomial.legendre.leggauss(30)
    x, w = 0.5 * (x + 1.0), 0.5 * w
    edges = np.concatenate([2.0 ** -np.arange(51), [0.0]])
    u = np.concatenate([lo + (hi - lo) * x for hi, lo in zip(edges[:-1], edges[1:])])
    wu = np.concatenate([(hi - lo) * w for hi, lo in zip(edges[:-1], edges[1:])])
    return u, 2.0 * u * wu


def test_every_rule_integrates_polynomials_in_t():
    """sum_j W_j t_j^k = 1 / (k + 1) (t = 1 - u^2) for every rule of the grid (exact on the
    u-panels, to the rule's accuracy on the ln u panels: 2.4e-13 measured), each a whole number
    of vectors of nodes, each node in [0, 1]."""
    for r in range(M._RULE_COUNT.shape[0]):
        first, n = M._RULE_START[r], M._RULE_COUNT[r]
        assert n % M._VEC == 0
        u = M._RULE_U[first:first + n]
        w = M._RULE_W[first:first + n]
        assert np.all((u >= 0.0) & (u <= 1.0))
        for k in range(6):
            np.testing.assert_allclose(np.sum(w * (1.0 - u * u) ** k), 1.0 / (k + 1),
                                       rtol=0, atol=1e-12)


def test_eigenvalue_bounds_bracket_the_spectrum():
    rng = np.random.default_rng(4)
    mats = [_random_corr(rng, 10.0 ** -e) for e in np.linspace(0, 12, 40)]
    mats += [_corr(_near_aligned(s, [(0, 1), (2, 3)], d)) for s, d in
             enumerate((1e-1, 1e-3, 1e-5))]
    mats += [np.eye(4), np.full((4, 4), 0.9) + 0.1 * np.eye(4)]
    for Rm in mats:
        lam = np.linalg.eigvalsh(Rm)
        lo, hi = M._m4_eig_bounds(*_entries(Rm))
        assert lo <= lam[0] + 1e-15 * (1 + abs(lam[0]))
        assert hi >= lam[-1] - 1e-15 and hi <= 4.0


@pytest.mark.parametrize("kind", ["random", "trained", "aligned"])
def test_six_moments_against_a_fine_composite_rule(kind):
    """_relu_m4_all (the adaptive rule) against 30-node Gauss-Legendre on 51 panels, to 1e-11
    (measured: 2.5e-12; the rule before item 4 was off by up to 5e-10 at trained states)."""
    rng = np.random.default_rng(9)
    if kind == "random":
        sets = [_entries(_random_corr(rng, 10.0 ** -e)) for e in np.linspace(0, 12, 25)]
    elif kind == "trained":
        sets = _trained_sets()
    else:
        sets = [_entries(_corr(_near_aligned(s, pat, d)))
                for s, (pat, d) in enumerate([([(2, 3)], 1e-3), ([(0, 1)], 1e-5),
                                              ([(0, 2), (1, 3)], 1e-4), ([(1, 2)], 1e-6)])]
    nodes, weights = _fine_rule()
    got, ref = np.empty(6), np.empty(6)
    for p in sets:
        p = np.asarray(p, dtype=float)
        A._relu_m4_all(*p, got)
        _fine(p, nodes, weights, ref)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11)


@pytest.mark.slow
def test_trained_state_I4_against_adaptive_cubature():
    """The set of the trained state with the largest lambda_max (a singularity of the integrand
    near u = 1, which the rule before resolved to 5e-10) against scipy's cubature."""
    sets = _trained_sets()
    lam_max = [np.linalg.eigvalsh(np.array([[1, a, b, c], [a, 1, d, e], [b, d, 1, f],
                                            [c, e, f, 1]]))[-1]
               for a, b, c, d, e, f in sets]
    p = sets[int(np.argmax(lam_max))]
    C = np.eye(4)
    for (i, j), x in zip(PAIRS, p):
        C[i, j] = C[j, i] = x
    ref, err = cubature_I4(C)
    assert err < 1e-11
    np.testing.assert_allclose(A.I4(A.RELU, *(C[i, j] for i, j in
                                              [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2),
                                               (1, 3), (2, 2), (2, 3), (3, 3)])),
                               ref, rtol=0, atol=1e-11)


def _merged(p, scale):
    # relu_s4_sums' route for a term with a merge (before the looked-up closed forms)
    scratch = (np.empty((4, 4)), np.empty(4, dtype=np.int64), np.empty(4, dtype=np.int64),
               np.empty((3, 3)))
    if sum(x >= 1.0 for x in p) == 1 and min(p) > -1.0:
        return scale * R._m3_one_merge(*p, np.empty((3, 3)))
    return A.relu_I4_merged(scale, *p, *scratch)


def test_repeated_terms_are_the_merged_closed_forms_bit_for_bit():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(6, 9))
    C = W @ W.T
    L, K = 6, 4
    sd = np.sqrt(np.diag(C))
    Rm = np.array([[A._corr(C[x, y], C[x, x], C[y, y]) for y in range(L)] for x in range(L)])
    As = np.array([[math.asin(r) if abs(r) < 1 else 0.0 for r in row] for row in Rm])
    Sq = np.array([[math.sqrt(max(1 - r * r, 1e-300)) if abs(r) < 1 else 1.0 for r in row]
                   for row in Rm])
    n = 0
    for i in range(K):
        for k in range(i, K):
            for c in range(L):
                for d in range(c, L):
                    if len({i, k, c, d}) == 4:
                        assert math.isnan(R._repeated_term(Rm, As, Sq, i, k, c, d, 1.0))
                        continue
                    p = [Rm[i, k], Rm[i, c], Rm[i, d], Rm[k, c], Rm[k, d], Rm[c, d]]
                    scale = sd[c] * sd[d]
                    assert R._repeated_term(Rm, As, Sq, i, k, c, d, scale) == _merged(p, scale)
                    n += 1
    assert n > 150
    # exactly aligned distinct fields are left to the merge (NaN)
    Rm[0, 1] = Rm[1, 0] = 1.0
    assert math.isnan(R._repeated_term(Rm, As, Sq, 0, 0, 1, 2, 1.0))
