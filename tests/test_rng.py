"""The SGD input generator (odeprune._rng): known answers, the plain-Python twin, and the
statistics of its normals (moments, tails, lag and cross-stream correlations) over >= 1e7 draws,
each within 5 standard errors of the exact Gaussian value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from odeprune._rng import (
    Xoshiro256pp,
    fill_normals,
    normals_numpy,
    splitmix64_py,
    xoshiro_next,
)
from odeprune.sim import sgd_streams

N_STEP = 500  # normals per step, as in the SGD benchmark


@njit(cache=True)
def _many(rng, n_steps, n):
    out = np.empty((n_steps, n))
    x = np.empty(n)
    for t in range(n_steps):
        fill_normals(rng, x)
        out[t] = x
    return out


@njit(cache=True)
def _xoshiro_words(state, k):
    out = np.empty(k, dtype=np.uint64)
    for i in range(k):
        out[i] = xoshiro_next(state)
    return out


@pytest.fixture(scope="module")
def draws():
    """2e7 normals: 40 000 steps of 500 from one run's input stream (seed 0)."""
    rng, _, _ = sgd_streams(0)
    return _many(rng, 40_000, N_STEP)


# ------------------------------------------------------------------ known answers and twin
def test_splitmix64_known_answers():
    # Vigna's splitmix64.c from state 0: the first three outputs
    gamma, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    out = [splitmix64_py(((i + 1) * gamma) & mask) for i in range(3)]
    assert out == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_xoshiro256pp_known_answers_and_compiled_twin():
    # reference values of the C implementation from state (1, 2, 3, 4) (rand_xoshiro's test)
    ref = [41943041, 58720359, 3588806011781223, 3591011842654386, 9228616714210784205,
           9973669472204895162, 14011001112246962877, 12406186145184390807,
           15849039046786891736, 10450023813501588000]
    g = Xoshiro256pp([1, 2, 3, 4])
    assert [g() for _ in range(10)] == ref
    state = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert [int(w) for w in _xoshiro_words(state, 10)] == ref
    # and far into a random state
    s0 = np.random.default_rng(3).integers(0, 2**63, 4).astype(np.uint64) * np.uint64(2) + 1
    g = Xoshiro256pp(s0)
    assert [int(w) for w in _xoshiro_words(s0.copy(), 1000)] == [g() for _ in range(1000)]


@pytest.mark.parametrize("n", [1, 2, 7, 500, 2001])
def test_compiled_normals_equal_plain_twin(n):
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    x = np.empty(n)
    for _ in range(6):
        fill_normals(r1, x)
        np.testing.assert_array_equal(x, normals_numpy(r2, n))
    # one step consumes exactly two doubles of the run's generator
    r3 = np.random.default_rng(5)
    for _ in range(12):
        r3.random()
    assert r1.bit_generator.state == r3.bit_generator.state


def test_slow_paths_are_exercised_and_match_twin():
    # 20 000 draws: ~140 go through the wedge/tail code; the twin must agree on all of them
    r1, r2 = np.random.default_rng(8), np.random.default_rng(8)
    x = np.empty(20_000)
    fill_normals(r1, x)
    np.testing.assert_array_equal(x, normals_numpy(r2, 20_000))
    assert np.sum(np.abs(x) > 3.6541528853610088) > 0  # the tail beyond the base layer


def test_same_seed_same_numbers_other_seed_differs():
    a = _many(sgd_streams(4)[0], 3, N_STEP)
    b = _many(sgd_streams(4)[0], 3, N_STEP)
    c = _many(sgd_streams(5)[0], 3, N_STEP)
    np.testing.assert_array_equal(a, b)
    assert not np.any(a == c)


# ------------------------------------------------------------------ statistics
def test_moments_within_5_standard_errors(draws):
    x = draws.ravel()
    n = x.size
    assert n >= 10**7
    # raw moments of N(0,1) and the exact standard errors sqrt(Var(x^k) / n)
    for k, exact, var in [(1, 0.0, 1.0), (2, 1.0, 2.0), (3, 0.0, 15.0), (4, 3.0, 96.0)]:
        m = float(np.mean(x ** k))
        assert abs(m - exact) < 5 * math.sqrt(var / n), (k, m)


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0, 3.0, 3.6541528853610088, 4.5])
def test_tail_probabilities(draws, c):
    x = draws.ravel()
    p = math.erfc(c / math.sqrt(2))  # P(|x| > c)
    phat = float(np.mean(np.abs(x) > c))
    assert abs(phat - p) < 5 * math.sqrt(p * (1 - p) / x.size), (c, phat, p)
    # and symmetric
    up = float(np.mean(x > c))
    assert abs(up - p / 2) < 5 * math.sqrt(p / 2 * (1 - p / 2) / x.size)


@pytest.mark.parametrize("lag", [1, 2, 3, 64, 499])
def test_no_lag_correlation_within_a_step(draws, lag):
    a, b = draws[:, :-lag].ravel(), draws[:, lag:].ravel()
    r = float(np.mean(a * b))  # E[x_j x_{j+lag}] = 0, standard error 1/sqrt(n)
    assert abs(r) < 5 / math.sqrt(a.size)
    r2 = float(np.mean((a * a - 1) * (b * b - 1)))  # squares (variance dependence): SE sqrt(4/n)
    assert abs(r2) < 5 * 2 / math.sqrt(a.size)


def test_no_correlation_between_consecutive_steps(draws):
    a, b = draws[:-1].ravel(), draws[1:].ravel()
    assert abs(float(np.mean(a * b))) < 5 / math.sqrt(a.size)
    # the same position in consecutive steps (stream restarts each step)
    col = draws[:, 0]
    assert abs(float(np.mean(col[:-1] * col[1:]))) < 5 / math.sqrt(col.size - 1)


def test_independent_across_seeds_and_streams():
    n_steps = 4000
    x0 = _many(sgd_streams(0)[0], n_steps, N_STEP).ravel()
    x1 = _many(sgd_streams(1)[0], n_steps, N_STEP).ravel()
    noise0 = _many(sgd_streams(0)[1], n_steps, N_STEP).ravel()  # another child of seed 0
    for other in (x1, noise0):
        assert abs(float(np.mean(x0 * other))) < 5 / math.sqrt(x0.size)
        assert abs(float(np.mean((x0 ** 2 - 1) * (other ** 2 - 1)))) < 5 * 2 / math.sqrt(x0.size)
