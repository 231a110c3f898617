"""The k-DPP code of odeprune.pruning.dpp against brute force, its own sampler, and DPPy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from odeprune import OrderParams
from odeprune.pruning import dpp


def random_kernel(K, rank=None, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((K, rank or K))
    return B @ B.T / (rank or K)


def brute_force(L, k):
    subsets = list(itertools.combinations(range(L.shape[0]), k))
    dets = np.array([np.linalg.det(L[np.ix_(S, S)]) for S in subsets])
    return np.array(subsets), dets / dets.sum()


def test_elementary_symmetric_against_brute_force():
    lam = np.array([0.3, 1.2, 2.0, 0.0, 0.7])
    E = dpp.elementary_symmetric(lam, 5)
    for n in range(6):
        for l in range(6):
            expected = sum(np.prod(c) for c in itertools.combinations(lam[:n], l)) if l else 1.0
            np.testing.assert_allclose(E[n, l], expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("K,k", [(5, 1), (6, 2), (7, 3), (8, 8)])
def test_probabilities_match_brute_force_and_sum_to_one(K, k):
    L = random_kernel(K, seed=K)
    subsets, p = dpp.k_dpp_probabilities(L, k)
    assert subsets.shape == (math.comb(K, k), k)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    bf_subsets, bf_p = brute_force(L, k)
    np.testing.assert_array_equal(subsets, bf_subsets)
    np.testing.assert_allclose(p, bf_p, rtol=1e-9, atol=1e-14)


def test_inclusion_probabilities_match_enumeration():
    L = random_kernel(7, seed=3)
    for k in (1, 2, 4):
        subsets, p = dpp.k_dpp_probabilities(L, k)
        incl = np.array([p[(subsets == i).any(axis=1)].sum() for i in range(7)])
        np.testing.assert_allclose(dpp.k_dpp_inclusion_probabilities(L, k), incl, rtol=1e-10)
        np.testing.assert_allclose(incl.sum(), k, rtol=1e-12)


def test_sampler_matches_exact_probabilities():
    """Subset and inclusion frequencies of 4000 samples within 5 standard errors."""
    L = random_kernel(6, seed=1)
    k, n = 2, 4000
    samples = dpp.sample_k_dpp(L, k, size=n, seed=123)
    assert samples.shape == (n, k)
    assert np.all(np.diff(samples, axis=1) > 0)
    subsets, p = dpp.k_dpp_probabilities(L, k)
    freq = np.array([np.all(samples == S, axis=1).mean() for S in subsets])
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-12)
    pi = dpp.k_dpp_inclusion_probabilities(L, k)
    incl = np.array([(samples == i).any(axis=1).mean() for i in range(6)])
    assert np.all(np.abs(incl - pi) <= 5 * np.sqrt(pi * (1 - pi) / n))


def test_sampler_is_reproducible():
    L = random_kernel(6, seed=1)
    np.testing.assert_array_equal(dpp.sample_k_dpp(L, 3, 20, seed=5),
                                  dpp.sample_k_dpp(L, 3, 20, seed=5))


def test_against_dppy_exact_k_dpp_sampler():
    """DPPy's exact k-DPP sampler: inclusion frequencies within 5 SE of our exact marginals,
    and within sampling error of our sampler's frequencies."""
    dppy_finite = pytest.importorskip("dppy.finite_dpps")
    L = random_kernel(6, seed=2)
    k, n = 3, 2000
    state = np.random.RandomState(0)  # DPPy takes a legacy RandomState
    ref = dppy_finite.FiniteDPP("likelihood", L=L)
    theirs = np.array([sorted(ref.sample_exact_k_dpp(size=k, random_state=state))
                       for _ in range(n)])
    ours = dpp.sample_k_dpp(L, k, size=n, seed=0)
    pi = dpp.k_dpp_inclusion_probabilities(L, k)
    se = np.sqrt(pi * (1 - pi) / n)
    f_theirs = np.array([(theirs == i).any(axis=1).mean() for i in range(6)])
    f_ours = np.array([(ours == i).any(axis=1).mean() for i in range(6)])
    assert np.all(np.abs(f_theirs - pi) <= 5 * se)
    assert np.all(np.abs(f_ours - f_theirs) <= 5 * np.sqrt(2) * se)


def test_rank_deficient_kernel_ansatz():
    """Q of the specialised ansatz has rank M: a k-DPP with k <= M keeps one unit per block;
    k > M is undefined."""
    M, Z = 3, 4
    Q = np.array(OrderParams.specialised(M, Z).Q)
    assert dpp.kernel_rank(Q) == M
    samples = dpp.sample_k_dpp(Q, M, size=200, seed=0)
    assert all(len(set(S // Z)) == M for S in samples)
    subsets, p = dpp.k_dpp_probabilities(Q, 2)
    one_per_block = np.array([len(set(S // Z)) == 2 for S in subsets])
    np.testing.assert_allclose(p[one_per_block], 1.0 / one_per_block.sum(), rtol=1e-10)
    assert p[~one_per_block].sum() < 1e-12
    S = dpp.k_dpp_map_greedy(Q, M)
    assert len(set(S // Z)) == M
    with pytest.raises(ValueError, match=r"k=4 exceeds the rank 3"):
        dpp.sample_k_dpp(Q, 4)
    with pytest.raises(ValueError, match=r"k=4 exceeds the rank 3"):
        dpp.k_dpp_probabilities(Q, 4)
    with pytest.raises(ValueError, match=r"k=4 exceeds the rank 3"):
        dpp.k_dpp_map_greedy(Q, 4)


def test_nearly_singular_kernel():
    """Two nearly identical units (a trained student): still a valid distribution."""
    rng = np.random.default_rng(0)
    B = rng.standard_normal((5, 50))
    B[1] = B[0] + 1e-6 * rng.standard_normal(50)
    L = B @ B.T / 50
    subsets, p = dpp.k_dpp_probabilities(L, 2)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-10)
    both = np.all(subsets[:, :, None] == np.array([0, 1])[None, None, :], axis=1).all(axis=1)
    assert p[both].sum() < 1e-10
    assert dpp.sample_k_dpp(L, 2, size=50, seed=1).shape == (50, 2)


def test_greedy_map_first_pick_and_positive_det():
    L = random_kernel(7, seed=4)
    S = dpp.k_dpp_map_greedy(L, 3)
    assert np.argmax(np.diag(L)) in S
    assert np.linalg.det(L[np.ix_(S, S)]) > 0
    # greedy MAP is at least as likely as the median subset
    subsets, p = dpp.k_dpp_probabilities(L, 3)
    p_S = p[np.all(subsets == S, axis=1)][0]
    assert p_S >= np.median(p)


def test_kernel_not_psd():
    L = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not positive semi-definite"):
        dpp.k_dpp_probabilities(L, 1)


def test_kernel_not_symmetric():
    with pytest.raises(ValueError, match="symmetric"):
        dpp.sample_k_dpp(np.array([[1.0, 0.5], [0.0, 1.0]]), 1)


def test_kernel_not_square():
    with pytest.raises(ValueError, match="square"):
        dpp.check_kernel(np.ones((2, 3)))


@pytest.mark.parametrize("k", [0, 7, 2.0])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match="k="):
        dpp.sample_k_dpp(random_kernel(6), k)


def test_large_kernel_sampler_does_not_overflow():
    """e_k of hundreds of eigenvalues overflows float64; the sampler works in log space."""
    import warnings

    from odeprune.pruning.dpp import (
        elementary_symmetric,
        log_elementary_symmetric,
        sample_k_dpp,
    )

    rng = np.random.default_rng(0)
    lam = rng.uniform(0.5, 20, size=12)
    np.testing.assert_allclose(np.exp(log_elementary_symmetric(lam, 6)),
                               elementary_symmetric(lam, 6), rtol=1e-12)
    w = rng.normal(size=400) * 3
    L = np.diag(w**2) * 50.0  # diagonal kernel: k-DPP = conditional Bernoulli on the weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S = sample_k_dpp(L, 200, size=40, seed=1)
    assert S.shape == (40, 200) and all(len(set(r)) == 200 for r in S)
    freq = np.bincount(S.ravel(), minlength=400) / 40
    # a k-DPP with a diagonal kernel is conditional Poisson sampling: for many items each is
    # kept nearly independently with probability t d_j / (1 + t d_j), sum = k
    from scipy.optimize import brentq

    from odeprune.pruning.dpp import k_dpp_inclusion_probabilities

    incl = k_dpp_inclusion_probabilities(L, 200)  # exact marginals, also in log space
    assert np.all(np.isfinite(incl)) and incl.sum() == pytest.approx(200, rel=1e-10)
    d = np.diag(L)
    t = brentq(lambda t: np.sum(t * d / (1 + t * d)) - 200, 1e-12, 1e12)
    p = t * d / (1 + t * d)
    order = np.argsort(np.abs(w))
    for group in np.split(order, 8):  # 50 items x 40 samples per group
        se = np.sqrt(np.mean(p[group] * (1 - p[group])) / (50 * 40))
        assert abs(freq[group].mean() - p[group].mean()) < 5 * se + 0.01
