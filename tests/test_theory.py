"""prune() on the specialised ansatz against the closed forms of Acharyya et al. (2021).

Lemma 2 (Eq. 9, 10), Lemma 3 (Eq. 21), Lemma 4 (Eq. 11), Theorem 3 (Eq. 15) to machine
precision; Theorems 1 and 2 on the ansatz; and a record of whether Theorems 1 and 2 hold on
ODE-converged students (they are stated for the ansatz only).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.pruning import prune, theory

RTOL = 1e-12


def close(a, b, scale):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale)


GRID = [(M, Z) for M in (1, 2, 3) for Z in (1, 2, 4, 5)]


@pytest.mark.parametrize("M,Z", GRID)
@pytest.mark.parametrize("kernel", ["Q", "activation"])
def test_lemma2_dpp_node(M, Z, kernel):
    v_star = 4.0
    s = OrderParams.specialised(M, Z, v_star)
    for k in range(1, M + 1):
        r = prune(s, "dpp_node", k=k, kernel=kernel)
        close(r.eg_mean, theory.lemma2_dpp_node(M, Z, k, v_star), v_star**2)
        # the k-DPP keeps one unit per block (Lemma 2's proof): other subsets have det ~ 0
        one_per_block = np.array([len(set(b)) == k for b in r.subsets // Z])
        assert r.probabilities[~one_per_block].sum() < 1e-12
        close(r.probabilities.sum(), 1.0, 1.0)


@pytest.mark.parametrize("M,Z", GRID)
@pytest.mark.parametrize("rw", ["preact", "activation", "refit"])
def test_lemma2_dpp_node_reweighted(M, Z, rw):
    """Eq. 10 holds for all three node reweightings on the ansatz."""
    v_star = 4.0
    s = OrderParams.specialised(M, Z, v_star)
    for k in range(1, M + 1):
        r = prune(s, "dpp_node", k=k, reweight=rw)
        close(r.eg_mean, theory.lemma2_dpp_node_reweighted(M, Z, k, v_star), v_star**2)
        close(r.eg_std, 0.0, v_star**2)


@pytest.mark.parametrize("M,Z", [(2, 3), (3, 2), (2, 4)])
def test_lemma3_every_subset(M, Z):
    """Lemma 3 (Eq. 21) for every subset of every size, and its reweighted form."""
    v_star = np.arange(1.0, M + 1.0) * 1.5  # per-teacher v*, beyond the paper's equal weights
    s = OrderParams.specialised(M, Z, v_star)
    K = M * Z
    for k in range(1, K + 1):
        r = prune(s, "random_node", k=k)
        assert r.n_outcomes == len(list(itertools.combinations(range(K), k)))
        counts = np.stack([np.bincount(S // Z, minlength=M) for S in r.subsets])
        close(r.eg_values, theory.lemma3_node_subset(M, Z, counts, v_star), 10.0)
        for rw in ("preact", "activation", "refit"):
            rr = prune(s, "random_node", k=k, reweight=rw)
            close(rr.eg_values, theory.lemma3_node_subset_reweighted(M, Z, counts, v_star), 10.0)


@pytest.mark.parametrize("M,Z", GRID)
def test_random_node_expectation(M, Z):
    v_star = 4.0
    s = OrderParams.specialised(M, Z, v_star)
    for k in range(1, M * Z + 1):
        close(prune(s, "random_node", k=k).eg_mean,
              theory.random_node_expected(M, Z, k, v_star), v_star**2)
        close(prune(s, "random_node", k=k, reweight="preact").eg_mean,
              theory.random_node_expected_reweighted(M, Z, k, v_star), v_star**2)


@pytest.mark.parametrize("M,Z", GRID)
def test_lemma4_random_edge(M, Z):
    v_star = 4.0
    s = OrderParams.specialised(M, Z, v_star)
    for c in np.linspace(0.0, 1.0, 11):
        r = prune(s, "random_edge", c=c)
        close(r.eg_mean, theory.lemma4_random_edge(M, Z, c, v_star), v_star**2)
        assert r.eg_std == 0.0


@pytest.mark.parametrize("M,Z", GRID)
def test_theorem3_rescaled_edge(M, Z):
    v_star = 4.0
    s = OrderParams.specialised(M, Z, v_star)
    for c in np.linspace(0.0, 1.0, 11):
        r = prune(s, "random_edge", c=c, reweight="rescale")
        eg, A = theory.theorem3_rescaled_edge(M, Z, c, v_star)
        close(r.eg_mean, eg, v_star**2)
        close(r.metadata["A"], A, 1.0)
        # the minimum over A: no other scale does better
        for A2 in (0.5 * A, 0.9 * A, 1.1 * A + 0.1):
            worse = prune(s.replace(v=A2 / A * np.array(s.v)) if A else s, "random_edge", c=c)
            assert worse.eg_mean >= eg - 1e-12
        # refit optimises over more than a scale, so it is at least as good
        assert prune(s, "random_edge", c=c, reweight="refit").eg_mean <= eg + 1e-12


def test_theory_vectorised_over_grid():
    Z = np.arange(4, 31)[:, None]
    c = np.linspace(0.0, 1.0, 101)[None, :] / Z
    d2 = theory.theorem2_difference(Z, c)
    d3 = theory.theorem3_difference(Z, c)
    assert d2.shape == d3.shape == (27, 101)
    eg, A = theory.theorem3_rescaled_edge(2, Z, c, 4.0)
    assert eg.shape == A.shape == (27, 101)


def test_theorem2_on_ansatz():
    """Theorem 2 / Fig. 4A: DPP node - random edge >= 0 for Z >= 4, c <= 1/Z (k = cZM real)."""
    for M in (1, 2, 5):
        Z = np.arange(4, 31)[:, None]
        c = np.linspace(0.0, 1.0, 201)[None, :] / Z
        assert np.all(theory.theorem2_difference(Z, c, M=M, v_star=4.0) >= -1e-12)
    # and it fails for Z < 4, as Remark 1 says the bound needs Z >= 4
    for Z in (2, 3):
        assert theory.theorem2_difference(Z, np.linspace(0, 1 / Z, 51)).min() < 0


def test_theorem2_via_prune_at_integer_k():
    """The same comparison through prune() at integer k = cK."""
    for M, Z in [(2, 4), (3, 5), (5, 4)]:
        s = OrderParams.specialised(M, Z, 4.0)
        for k in range(1, M + 1):
            dpp_eg = prune(s, "dpp_node", k=k).eg_mean
            edge_eg = prune(s, "random_edge", c=k / (M * Z)).eg_mean
            assert dpp_eg >= edge_eg


def test_theorem3_on_ansatz():
    """Theorem 3 / Fig. 4B: reweighted DPP node - best rescaled edge <= 0 (Z >= 4, c <= 1/Z)."""
    Z = np.arange(4, 31)[:, None]
    c = np.linspace(0.0, 1.0, 201)[None, :] / Z
    assert np.all(theory.theorem3_difference(Z, c, M=3, v_star=4.0) <= 1e-12)
    for M, Z in [(2, 4), (5, 4)]:
        s = OrderParams.specialised(M, Z, 4.0)
        for k in range(1, M + 1):
            assert (prune(s, "dpp_node", k=k, reweight="preact").eg_mean
                    <= prune(s, "random_edge", c=k / (M * Z), reweight="rescale").eg_mean)


@pytest.mark.parametrize("M,Z", [(2, 3), (2, 4), (3, 4), (5, 4)])
def test_theorem1_on_ansatz(M, Z):
    """Eq. 2 (random >= DPP, with and without reweighting) and Eq. 3 (importance >= reweighted
    DPP) for k <= M. Importance ties go to the lower index: it keeps one block's units first."""
    s = OrderParams.specialised(M, Z, 4.0)
    for k in range(1, M + 1):
        dpp = prune(s, "dpp_node", k=k).eg_mean
        dpp_rw = prune(s, "dpp_node", k=k, reweight="activation").eg_mean
        assert prune(s, "random_node", k=k).eg_mean >= dpp - 1e-12
        assert prune(s, "random_node", k=k, reweight="activation").eg_mean >= dpp_rw - 1e-12
        assert prune(s, "importance_node", k=k).eg_mean >= dpp_rw - 1e-12
        # every single random subset is no better than DPP (the proof's per-subset bound)
        assert prune(s, "random_node", k=k).eg_values.min() >= dpp - 1e-12


def test_theory_bad_input():
    with pytest.raises(ValueError, match="k="):
        theory.lemma2_dpp_node(2, 4, 3)
    with pytest.raises(ValueError, match="c="):
        theory.lemma4_random_edge(2, 4, 1.5)
    with pytest.raises(ValueError, match="c="):
        theory.theorem2_difference(4, 0.5)
    with pytest.raises(ValueError, match="counts"):
        theory.lemma3_node_subset(2, 4, [5, 0])


# ------------------------------------------------------------------------------------------
# Theorems 1 and 2 on ODE-converged students: recorded, not assumed
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converged_6_2():
    return odeprune.integrate(OrderParams.random(500, 6, 2, 4.0, seed=0), eta=0.5,
                              alpha_max=1000.0).final


@pytest.fixture(scope="module")
def converged_8_2():
    return odeprune.integrate(OrderParams.random(500, 8, 2, 4.0, seed=0), eta=0.5,
                              alpha_max=1000.0).final


def _theorem1_table(s, k):
    return dict(
        random=prune(s, "random_node", k=k).eg_mean,
        importance=prune(s, "importance_node", k=k).eg_mean,
        dpp=prune(s, "dpp_node", k=k).eg_mean,
        random_rw=prune(s, "random_node", k=k, reweight="preact").eg_mean,
        dpp_rw=prune(s, "dpp_node", k=k, reweight="preact").eg_mean,
    )


@pytest.mark.parametrize("k", [1, 2])
def test_theorem1_on_converged_student(converged_6_2, record_property, k):
    """Theorem 1 on the ODE-converged M=2, K=6 student of the paper's Fig. 2A setting (seed 0,
    alpha=1000). The converged state is not the exact ansatz (unequal v_i within a block,
    sign-flipped units, blocks of unequal size), so the k-DPP is not confined to one unit per
    block. Eq. 2 without reweighting and Eq. 3 hold here (seeds 0, 1, 2 all agree)."""
    t = _theorem1_table(converged_6_2, k)
    record_property(f"theorem1_k{k}", {key: float(val) for key, val in t.items()})
    assert t["random"] >= t["dpp"], t           # Eq. 2, no reweighting
    assert t["importance"] >= t["dpp_rw"], t    # Eq. 3


def test_theorem1_reweighted_k2_on_converged_student(converged_6_2):
    """Eq. 2 with reweighting holds at k = M = 2 (0.91 vs 0.25 for seed 0)."""
    t = _theorem1_table(converged_6_2, 2)
    assert t["random_rw"] >= t["dpp_rw"], t


@pytest.mark.xfail(strict=True, reason="Eq. 2 with reweighting FAILS at k=1 on ODE-converged "
                   "students: random 2.45 < DPP 2.53 (seed 0; also seeds 1, 2). The theorem is "
                   "proved for the exact ansatz only.")
def test_theorem1_reweighted_k1_on_converged_student(converged_6_2):
    t = _theorem1_table(converged_6_2, 1)
    assert t["random_rw"] >= t["dpp_rw"], t


@pytest.mark.xfail(strict=True, reason="Theorem 2 FAILS on the ODE-converged M=2, K=8 (Z=4) "
                   "student at k=2 (c=1/4): DPP node 2.77 < random edge 3.03 (seed 0; seeds 1, 2 "
                   "alike). Converged blocks are uneven and v_i unequal, unlike the ansatz.")
def test_theorem2_on_converged_student(converged_8_2, record_property):
    s = converged_8_2
    dpp = prune(s, "dpp_node", k=2).eg_mean
    edge = prune(s, "random_edge", c=2 / s.K).eg_mean
    record_property("theorem2_k2", {"dpp_node": dpp, "random_edge": edge})
    assert dpp >= edge, (dpp, edge)


def test_theorem2_k1_on_converged_student(converged_8_2, record_property):
    """At k=1 (c=1/8) the direction depends on the seed: seed 0 gives DPP 3.989 < edge 4.006
    (fails), seeds 1 and 2 hold. Recorded, and checked to be within 1% either way."""
    s = converged_8_2
    dpp = prune(s, "dpp_node", k=1).eg_mean
    edge = prune(s, "random_edge", c=1 / s.K).eg_mean
    record_property("theorem2_k1", {"dpp_node": dpp, "random_edge": edge})
    np.testing.assert_allclose(dpp, edge, rtol=0.01)
