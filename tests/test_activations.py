"""Gaussian averages against plain Monte Carlo (EQUATIONS.md §3)."""

import numpy as np
import pytest
from conftest import random_cov
from scipy.special import erf

from odeprune.activations import get_activation

N_MC = 1_000_000


def _g(name, x):
    return erf(x / np.sqrt(2)) if name == "erf" else x


def _gp(name, x):
    return np.sqrt(2 / np.pi) * np.exp(-x * x / 2) if name == "erf" else np.ones_like(x)


def _check(samples, exact):
    mean = samples.mean()
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    # 5 standard errors: a false alarm has probability ~6e-7 per check
    assert abs(mean - exact) < 5 * se + 1e-12, (mean, exact, se)


@pytest.mark.parametrize("name", ["erf", "linear"])
@pytest.mark.parametrize("case", range(4))
def test_integrals_match_monte_carlo(name, case):
    rng = np.random.default_rng(100 + case)
    C = random_cov(rng, 4, scale=[0.3, 1.0, 3.0, 1.5][case])
    x = rng.multivariate_normal(np.zeros(4), C, size=N_MC, method="cholesky").T
    act = get_activation(name)
    g = _g(name, x)
    gp = _gp(name, x)
    _check(g[0] * g[1], act.I2(C, 0, 1))
    _check(g[2] * g[2], act.I2(C, 2, 2))
    _check(gp[0] * x[1] * g[2], act.I3(C, 0, 1, 2))
    _check(gp[1] * x[1] * g[1], act.I3(C, 1, 1, 1))
    _check(gp[3] * x[0] * g[0], act.I3(C, 3, 0, 0))
    _check(gp[0] * gp[1] * g[2] * g[3], act.I4(C, 0, 1, 2, 3))
    _check(gp[0] * gp[0] * g[1] * g[1], act.I4(C, 0, 0, 1, 1))
    _check(gp[2] * gp[1] * g[2] * g[0], act.I4(C, 2, 1, 2, 0))
    _check(gp[0] * gp[3], act.J2(C, 0, 3))
    _check(gp[1] * gp[1], act.J2(C, 1, 1))


def test_i2_matrix_is_pairwise_i2(rng):
    C = random_cov(rng, 5)
    act = get_activation("erf")
    M = act.I2_matrix(C)
    expected = np.array([[act.I2(C, a, b) for b in range(5)] for a in range(5)])
    np.testing.assert_allclose(M, expected, rtol=0, atol=0)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation='relu' is unknown"):
        get_activation("relu")


def test_fast_asin_accuracy():
    from numba import njit

    from odeprune._rhs import fast_asin

    @njit
    def ev(x):
        out = np.empty_like(x)
        for j in range(x.size):
            out[j] = fast_asin(x[j])
        return out

    xs = np.concatenate([np.linspace(-1, 1, 100_001),
                         np.random.default_rng(0).uniform(-1, 1, 100_000),
                         [0.5, np.nextafter(0.5, 0), 1.0, -1.0, 0.0, 1e-300]])
    exact = np.arcsin(xs)
    # within 3 ulp of numpy's (correctly rounded to ~0.5 ulp) arcsin
    ulp = np.spacing(np.abs(exact))
    assert np.all(np.abs(ev(xs) - exact) <= 3 * ulp)
