"""odeprune.pruning.gaussian: the truncated Gaussian moments against direct quadrature of the
density, the split quadrature against closed forms, the threshold solver, and the
moment-matched draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from odeprune.pruning import gaussian as g


def _quad(f, mu, s, tau):
    """int_{|y| > tau} f(y) N(y; mu, s^2) dy by scipy quad on the two tails."""
    dens = stats.norm(mu, s).pdf
    lo = integrate.quad(lambda y: f(y) * dens(y), -np.inf, -tau, epsabs=1e-14, epsrel=1e-12)[0]
    hi = integrate.quad(lambda y: f(y) * dens(y), tau, np.inf, epsabs=1e-14, epsrel=1e-12)[0]
    return lo + hi


@pytest.mark.parametrize(("mu", "s", "tau"), [(0.0, 1.0, 0.5), (0.7, 0.3, 0.4), (-2.0, 1.5, 1.0),
                                              (0.2, 1e-3, 0.2005)])
def test_truncated_moments_against_quadrature(mu, s, tau):
    assert g.trunc_prob(mu, s, tau) == pytest.approx(_quad(lambda y: 1.0, mu, s, tau),
                                                     rel=1e-9, abs=1e-13)
    assert g.trunc_first_moment(mu, s, tau) == pytest.approx(_quad(lambda y: y, mu, s, tau),
                                                             rel=1e-9, abs=1e-13)


def test_truncated_moments_without_noise():
    np.testing.assert_array_equal(g.trunc_prob(np.array([0.1, 0.5, -0.6]), 0.0, 0.4),
                                  [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(g.trunc_first_moment(np.array([0.1, 0.5, -0.6]), 0.0, 0.4),
                                  [0.0, 0.5, -0.6])


@pytest.mark.parametrize(("sd", "tau"), [(1.0, 0.0), (0.7, 0.3), (2.0, 5.0)])
def test_second_moment_and_split_quadrature(sd, tau):
    ref = _quad(lambda y: y * y, 0.0, sd, tau)
    assert g.trunc_second_moment(sd, tau) == pytest.approx(ref, rel=1e-10, abs=1e-14)
    got = g.expect_x(lambda x: (np.abs(x) > tau) * x * x, sd, [-tau, tau])
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-14)
    assert g.trunc_second_moment(sd, math.inf) == 0.0
    assert g.trunc_second_moment(0.0, tau) == 0.0


def test_gauss_hermite_is_the_standard_normal():
    for k, moment in ((0, 1.0), (2, 1.0), (4, 3.0), (6, 15.0)):
        assert g.GH_X ** k @ g.GH_W == pytest.approx(moment, rel=1e-12)
    assert g.expect_x_smooth(np.cos, 1.3) == pytest.approx(math.exp(-1.3 ** 2 / 2), rel=1e-12)


def test_solve_threshold():
    c = 0.3
    t = g.solve_threshold(lambda t: 2 * g.normal_sf(t / 1.7), c, 1.7)
    assert 2 * g.normal_sf(t / 1.7) == pytest.approx(c, rel=1e-13)
    assert g.solve_threshold(lambda t: 1.0, 1.0, 1.0) == 0.0
    assert g.solve_threshold(lambda t: 1.0, 0.0, 1.0) == math.inf
    assert g.solve_threshold(lambda t: 0.2, 0.5, 1.0) == 0.0   # cannot reach c: keep all


def test_factor_and_moment_matched_draws():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((5, 3))
    Sigma = B @ B.T                     # rank 3
    A = g.factor(Sigma)
    assert A.shape == (5, 3)
    np.testing.assert_allclose(A @ A.T, Sigma, atol=1e-12)
    z = g.moment_matched(rng, A, 50)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.T @ z / 50, Sigma, atol=1e-11)
    assert g.moment_matched(rng, np.zeros((4, 0)), 7).shape == (7, 4)
