"""odeprune.pruning.edge_map: the pair moments of magnitude pruning, Q'_ik = E[x 1{|x|>tau}
y 1{|y|>tau}], on the hard cases (nearly aligned units, the duplicated units of trained K > M
students) against coordinate Monte Carlo with error bars and against an independent closed form
(Rosenbaum 1961, with the bivariate normal orthant probability through Owen's T); and global
magnitude pruning of a trained minimum through odeprune.prune against that closed form."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, special

import odeprune
from odeprune import OrderParams
from odeprune.pruning.edge_map import pair_moment
from odeprune.pruning.edge_rules import MagnitudeEdgeGlobal


# ------------------------------------------------------------------ an independent closed form
def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _orthant(h, k, rho):
    """P(U > h, V > k) for h, k > 0, standard bivariate normal with correlation rho (Owen 1956:
    Phi2 through Owen's T function)."""
    s = math.sqrt((1 - rho) * (1 + rho))
    return (0.5 * (special.ndtr(-h) + special.ndtr(-k))
            - special.owens_t(h, (k - rho * h) / (h * s))
            - special.owens_t(k, (h - rho * k) / (k * s)))


def _upper_moment(h, k, rho):
    """E[UV; U > h, V > k] (Rosenbaum 1961, truncated bivariate normal)."""
    s = math.sqrt((1 - rho) * (1 + rho))
    return (rho * _orthant(h, k, rho)
            + rho * h * _phi(h) * special.ndtr(-(k - rho * h) / s)
            + rho * k * _phi(k) * special.ndtr(-(h - rho * k) / s)
            + s * _phi(h) * _phi((k - rho * h) / s))


def closed_pair_moment(Qii, Qik, Qkk, tau):
    """E[x 1{|x|>tau} y 1{|y|>tau}], (x, y) ~ N(0, [[Qii, Qik], [Qik, Qkk]]): by the symmetry
    (x, y) -> (-x, -y), twice the (+, +) quadrant minus twice the (+, -) quadrant."""
    a, b = math.sqrt(Qii), math.sqrt(Qkk)
    rho = Qik / (a * b)
    h, k = tau / a, tau / b
    return a * b * 2 * (_upper_moment(h, k, rho) - _upper_moment(h, k, -rho))


def _rule(tau, K=2):
    rule = MagnitudeEdgeGlobal()
    rule.tau = np.full(K, float(tau))
    return rule


def _mc_pair(Qii, Qik, Qkk, tau, seed, n=200_000, batches=10):
    """Coordinate Monte Carlo of the pair moment: (mean, standard error) over batches."""
    rng = np.random.default_rng(seed)
    C = np.array([[Qii, Qik], [Qik, Qkk]])
    ev, U = np.linalg.eigh(C)
    A = U * np.sqrt(np.clip(ev, 0, None))
    vals = []
    for _ in range(batches):
        z = rng.standard_normal((n, 2)) @ A.T
        x, y = z[:, 0], z[:, 1]
        vals.append(np.mean(x * (np.abs(x) > tau) * y * (np.abs(y) > tau)))
    return float(np.mean(vals)), float(np.std(vals, ddof=1) / math.sqrt(batches))


#: (Q_ii, Q_kk, correlation, tau): nearly (anti-)aligned pairs, 1 - |rho| down to 1e-9, and
#: an ordinary one
HARD = [(0.9, 1.1, -(1 - 1e-7), 0.4), (1.0, 1.0, 1 - 1e-9, 0.3), (2.0, 0.7, -(1 - 1e-5), 0.1),
        (1.3, 1.2, 1 - 1e-8, 1.5), (0.5, 2.0, 0.3, 0.7)]


@pytest.mark.parametrize(("Qii", "Qkk", "rho", "tau"), HARD)
def test_pair_moment_against_closed_form_and_monte_carlo(Qii, Qkk, rho, tau):
    Qik = rho * math.sqrt(Qii * Qkk)
    Q = np.array([[Qii, Qik], [Qik, Qkk]])
    rule = _rule(tau)
    quad = pair_moment(rule, Q, 0, 1)
    # the quadrature split at x = +-tau/beta is exact to rounding (before the split: 1e-6 off at
    # 1 - rho = 1e-9)
    assert quad == pytest.approx(closed_pair_moment(Qii, Qik, Qkk, tau), rel=1e-9, abs=1e-12)
    assert pair_moment(rule, Q, 1, 0) == pytest.approx(quad, rel=1e-9, abs=1e-12)
    # Cauchy-Schwarz with the kept second moments
    assert abs(quad) <= math.sqrt(rule.kept_second_moment(0, math.sqrt(Qii))
                                  * rule.kept_second_moment(1, math.sqrt(Qkk)))
    mc, se = _mc_pair(Qii, Qik, Qkk, tau, seed=0)
    assert abs(mc - quad) < 5 * se


def test_closed_form_reference_against_monte_carlo():
    """The test's own closed form, checked where it is independent of the package."""
    for Qii, Qkk, rho, tau in HARD:
        Qik = rho * math.sqrt(Qii * Qkk)
        mc, se = _mc_pair(Qii, Qik, Qkk, tau, seed=1)
        assert abs(mc - closed_pair_moment(Qii, Qik, Qkk, tau)) < 5 * se


@pytest.fixture(scope="module")
def minimum():
    """A gradient-flow minimum (M=2, K=4, v*=2), alpha = 2e4 (the state of test_landscape)."""
    s = OrderParams.random(500, 4, 2, v_star=2.0, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", odeprune.OdepruneAccuracyWarning)
        return odeprune.integrate(s, 1.0, 2e4, gradient_flow=True, rtol=1e-10, atol=1e-12,
                                  save_at=[0.0, 2e4]).final


def test_global_magnitude_map_of_a_minimum_against_closed_form(minimum):
    """prune(state, "magnitude_edge_global") against the closed form: the threshold solved
    here, the diagonal E[w^2 1{|w|>tau}] = s^2 (erfc(t/sqrt2) + 2 t phi(t)), the pair moments
    by Rosenbaum's formula."""
    Q = np.array(minimum.Q)
    K = minimum.K
    d = np.diag(Q)
    for c in (0.2, 0.6, 0.9):
        tau = optimize.brentq(
            lambda t: np.mean(special.erfc(t / np.sqrt(2 * d))) - c, 0.0, 20 * d.max(),
            xtol=1e-15, rtol=1e-15)
        t = tau / np.sqrt(d)
        Qp = np.diag(d * (special.erfc(t / math.sqrt(2)) + 2 * t * np.exp(-t * t / 2)
                          / math.sqrt(2 * math.pi)))
        for i in range(K):
            for k in range(i + 1, K):
                Qp[i, k] = Qp[k, i] = closed_pair_moment(d[i], Q[i, k], d[k], tau)
        Rp = np.array(minimum.R) * (np.diag(Qp) / d)[:, None]
        ref = odeprune.prune(minimum, "magnitude_edge_global", c=c)
        np.testing.assert_allclose(ref.Q[0], Qp, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(ref.R[0], Rp, rtol=1e-10, atol=1e-13)
