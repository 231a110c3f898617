"""prune() in the thermodynamic limit: Monte Carlo vs exact, reweighting optimality,
invariants over random states (hypothesis), files, CLI and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import odeprune
from odeprune import OrderParams
from odeprune.cli import main
from odeprune.pruning import PruneResult, prune
from odeprune.pruning.node import MAX_ENUMERATE

NODE = ("random_node", "importance_node", "dpp_node", "dpp_map_node")


@pytest.fixture(scope="module")
def converged():
    """ODE-converged M=2, K=6 student (seed 0): Q nearly singular, not the exact ansatz."""
    return odeprune.integrate(OrderParams.random(500, 6, 2, 4.0, seed=0), eta=0.5,
                              alpha_max=1000.0).final


@pytest.fixture(scope="module")
def random_state():
    return OrderParams.random(40, 6, 2, 4.0, seed=3)


# ------------------------------------------------------------------------------ Monte Carlo
@pytest.mark.parametrize("method", ["random_node", "dpp_node"])
@pytest.mark.parametrize("kernel", ["Q", "activation"])
@pytest.mark.parametrize("reweight", ["none", "activation"])
def test_monte_carlo_agrees_with_exact(converged, method, kernel, reweight):
    if method == "random_node" and kernel == "activation":
        pytest.skip("kernel is unused by random_node")
    for k in (2, 3):
        exact = prune(converged, method, k=k, kernel=kernel, reweight=reweight)
        mc = prune(converged, method, k=k, kernel=kernel, reweight=reweight, exact=False,
                   n_samples=3000, seed=11)
        assert exact.exact and exact.eg_se == 0.0
        assert not mc.exact and mc.eg_se > 0
        assert abs(mc.eg_mean - exact.eg_mean) < 5 * mc.eg_se
        np.testing.assert_allclose(mc.eg_std, exact.eg_std, rtol=0.25)  # heavy-tailed


def test_large_K_falls_back_to_monte_carlo():
    s = OrderParams.random(100, 20, 4, 2.0, seed=0)
    assert math.comb(20, 10) > MAX_ENUMERATE
    r = prune(s, "random_node", k=10, n_samples=500, seed=1)
    assert not r.exact and r.metadata["n_draws"] == 500 and r.eg_se > 0
    np.testing.assert_allclose(r.probabilities.sum(), 1.0)
    d = prune(s, "dpp_node", k=10, n_samples=200, seed=1)
    assert not d.exact and d.eg_se > 0


def test_monte_carlo_is_seeded(converged):
    a = prune(converged, "dpp_node", k=2, exact=False, n_samples=200, seed=4)
    b = prune(converged, "dpp_node", k=2, exact=False, n_samples=200, seed=4)
    assert a.eg_mean == b.eg_mean
    assert a.metadata["seed"] == 4


# ------------------------------------------------------------------------------ consistency
@pytest.mark.parametrize("method", NODE)
@pytest.mark.parametrize("reweight", ["none", "preact", "activation", "refit"])
def test_eg_values_equal_state_eg(converged, method, reweight):
    r = prune(converged, method, k=2, reweight=reweight)
    for j in range(min(r.n_outcomes, 5)):
        np.testing.assert_allclose(r.eg_values[j], r.states[j].eg(), rtol=1e-12, atol=1e-12)
        S = r.subsets[j]
        np.testing.assert_array_equal(r.states[j].Q, converged.Q[np.ix_(S, S)])
        np.testing.assert_array_equal(r.states[j].R, converged.R[S])


def test_refit_is_best_second_layer(converged):
    """For every subset, 'refit' (the least-squares v_S) beats the other reweightings; and the
    'activation' reweighting is the least-squares fit of the full student's output."""
    for k in (1, 2, 3, 4):
        ref = prune(converged, "random_node", k=k, reweight="refit")
        for rw in ("none", "preact", "activation"):
            other = prune(converged, "random_node", k=k, reweight=rw)
            assert np.all(ref.eg_values <= other.eg_values + 1e-12)
    # 'activation' minimises E[(phi_S - phi_full)^2]: perturbing v_S increases it
    r = prune(converged, "importance_node", k=3, reweight="activation")
    S, vS = r.subsets[0], r.v[0]

    def dist(vs):
        # the pruned student against the full student, as a "teacher"
        full = OrderParams(Q=converged.Q, R=converged.Q[:, S], T=converged.Q[np.ix_(S, S)],
                           v=converged.v, v_star=vs)
        return full.eg()

    base = dist(vS)
    for e in np.eye(3):
        assert dist(vS + 1e-3 * e) >= base and dist(vS - 1e-3 * e) >= base


def test_edge_rescale_and_refit_order(converged):
    for c in (0.1, 0.3, 0.7):
        none = prune(converged, "random_edge", c=c).eg_mean
        rescale = prune(converged, "random_edge", c=c, reweight="rescale")
        refit = prune(converged, "random_edge", c=c, reweight="refit").eg_mean
        assert refit <= rescale.eg_mean + 1e-12 <= none + 2e-12
        np.testing.assert_allclose(rescale.v[0], rescale.metadata["A"] * converged.v)


def test_edge_map_lemma6(converged):
    r = prune(converged, "random_edge", c=0.4)
    s = r.state
    np.testing.assert_allclose(np.diag(s.Q), 0.4 * np.diag(converged.Q))
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(s.Q[off], 0.16 * converged.Q[off])
    np.testing.assert_allclose(s.R, 0.4 * converged.R)
    np.testing.assert_array_equal(s.v, converged.v)
    assert prune(converged, "random_edge", c=1.0).eg_mean == pytest.approx(converged.eg(),
                                                                           abs=1e-12)


def test_importance_ties_lower_index_first():
    s = OrderParams.specialised(2, 3, 4.0)  # all |v_i| equal
    np.testing.assert_array_equal(prune(s, "importance_node", k=2).subsets, [[0, 1]])
    v = np.array([1.0, -3.0, 2.0, 3.0, 0.5, -2.0])
    s2 = s.replace(v=v)
    np.testing.assert_array_equal(prune(s2, "importance_node", k=3).subsets, [[1, 2, 3]])


def test_deterministic_state_property(converged):
    assert prune(converged, "dpp_map_node", k=2).state.K == 2
    with pytest.raises(ValueError, match="outcomes"):
        _ = prune(converged, "random_node", k=2).state


def test_linear_activation(converged):
    r = prune(converged.replace(activation="linear"), "random_node", k=3)
    assert r.metadata["activation"] == "linear"
    np.testing.assert_allclose(r.eg_values[0], r.states[0].eg("linear"), rtol=1e-12)


# ------------------------------------------------------------------------------ files
def test_save_load_roundtrip(converged, tmp_path):
    r = prune(converged, "dpp_node", k=2, reweight="preact", exact=False, n_samples=100, seed=2)
    path = r.save(tmp_path / "r.npz")
    for loaded in (PruneResult.load(path), odeprune.load(path)):
        assert isinstance(loaded, PruneResult)
        assert loaded.eg_mean == r.eg_mean and loaded.eg_se == r.eg_se
        np.testing.assert_array_equal(loaded.subsets, r.subsets)
        assert loaded.metadata["method"] == "dpp_node" and loaded.metadata["seed"] == 2
        assert loaded.states[0] == r.states[0]
    e = prune(converged, "random_edge", c=0.3, reweight="rescale")
    assert PruneResult.load(e.save(tmp_path / "e.npz")).metadata["A"] == e.metadata["A"]


# ------------------------------------------------------------------------------ hypothesis
@st.composite
def states(draw):
    K = draw(st.integers(1, 6))
    M = draw(st.integers(1, 3))
    N = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((K, N)) * draw(st.floats(0.1, 3.0))
    w_star = rng.standard_normal((M, N))
    v = rng.standard_normal(K) * draw(st.floats(0.1, 4.0))
    return OrderParams.from_weights(w, w_star, v, rng.standard_normal(M) * 2)


@settings(derandomize=True, max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(state=states(), data=st.data())
def test_invariants_over_random_states(state, data):
    method = data.draw(st.sampled_from(NODE + ("random_edge",)))
    if method == "random_edge":
        c = data.draw(st.floats(0.0, 1.0))
        rw = data.draw(st.sampled_from(["none", "rescale", "refit"]))
        r = prune(state, method, c=c, reweight=rw)
        assert r.state.K == state.K
    else:
        k = data.draw(st.integers(1, state.K))
        rw = data.draw(st.sampled_from(["none", "preact", "activation", "refit"]))
        kernel = data.draw(st.sampled_from(["Q", "activation"]))
        if method in ("dpp_node", "dpp_map_node"):
            from odeprune.pruning.dpp import kernel_rank
            from odeprune.pruning.node import node_kernel

            if kernel_rank(node_kernel(state, kernel)) < k:
                with pytest.raises(ValueError, match="exceeds the rank"):
                    prune(state, method, k=k, kernel=kernel)
                return
        r = prune(state, method, k=k, reweight=rw, kernel=kernel)
        assert r.subsets.shape[1] == k <= state.K
    for s in r.states:  # valid, validated OrderParams
        assert isinstance(s, OrderParams) and s.M == state.M
        assert s.K <= state.K
    np.testing.assert_allclose(r.probabilities.sum(), 1.0, rtol=1e-10)
    assert np.all(r.probabilities >= 0)
    scale = 1e-10 * max(1.0, np.max(np.abs(r.eg_values)))
    assert r.eg_values.min() - scale <= r.eg_mean <= r.eg_values.max() + scale
    assert r.eg_std >= 0 and np.all(r.eg_values >= -scale)


# ------------------------------------------------------------------------------ bad input
@pytest.fixture
def s6():
    return OrderParams.specialised(2, 3, 4.0)


def test_bad_k_zero(s6):
    with pytest.raises(ValueError, match=r"k=0 is out of range; allowed 1\.\.6"):
        prune(s6, "random_node", k=0)


def test_bad_k_too_large(s6):
    with pytest.raises(ValueError, match=r"k=7 is out of range; allowed 1\.\.6"):
        prune(s6, "random_node", k=7)


def test_bad_k_not_integer(s6):
    with pytest.raises(ValueError, match=r"k=2\.5 must be an integer"):
        prune(s6, "random_node", k=2.5)


def test_missing_k(s6):
    with pytest.raises(ValueError, match="needs k"):
        prune(s6, "dpp_node")


def test_c_for_node_method(s6):
    with pytest.raises(ValueError, match="c=0.5 applies to edge pruning only"):
        prune(s6, "dpp_node", c=0.5)


def test_k_for_edge_method(s6):
    with pytest.raises(ValueError, match="k=2 applies to node pruning only"):
        prune(s6, "random_edge", k=2)


def test_bad_c_negative(s6):
    with pytest.raises(ValueError, match=r"c=-0\.1 is out of range; allowed 0 <= c <= 1"):
        prune(s6, "random_edge", c=-0.1)


def test_bad_c_above_one(s6):
    with pytest.raises(ValueError, match=r"c=1\.5 is out of range"):
        prune(s6, "random_edge", c=1.5)


def test_unknown_method(s6):
    with pytest.raises(ValueError, match="method='magic' is unknown; allowed"):
        prune(s6, "magic", k=2)


def test_unknown_reweight(s6):
    with pytest.raises(ValueError, match="reweight='best' does not apply to random_node"):
        prune(s6, "random_node", k=2, reweight="best")


def test_reweight_not_for_edge(s6):
    with pytest.raises(ValueError, match=r"reweight='preact' does not apply to random_edge; "
                                         r"allowed \('none', 'rescale', 'refit', 'rescale_rows'\)"):
        prune(s6, "random_edge", c=0.5, reweight="preact")


def test_rescale_not_for_node(s6):
    with pytest.raises(ValueError, match="reweight='rescale' does not apply to dpp_node"):
        prune(s6, "dpp_node", k=2, reweight="rescale")


def test_unknown_kernel(s6):
    with pytest.raises(ValueError, match="kernel='gram' is unknown"):
        prune(s6, "dpp_node", k=2, kernel="gram")


def test_kernel_not_psd(s6):
    L = np.eye(6)
    L[0, 0] = -1.0
    with pytest.raises(ValueError, match="kernel is not positive semi-definite"):
        prune(s6, "dpp_node", k=2, kernel=L)


def test_kernel_wrong_shape(s6):
    with pytest.raises(ValueError, match=r"kernel must have shape \(6, 6\)"):
        prune(s6, "dpp_node", k=2, kernel=np.eye(5))


def test_rank_below_k(s6):
    with pytest.raises(ValueError, match=r"k=3 exceeds the rank 2 of the DPP kernel"):
        prune(s6, "dpp_node", k=3)


def test_not_a_state():
    with pytest.raises(ValueError, match="state must be an OrderParams"):
        prune(np.eye(3), "random_node", k=1)


def test_bad_n_samples(s6):
    with pytest.raises(ValueError, match="n_samples=0"):
        prune(s6, "random_node", k=2, n_samples=0)


def test_explicit_kernel_is_used(s6):
    r = prune(s6, "dpp_node", k=2, kernel=np.eye(6))  # identity: uniform k-DPP
    assert r.metadata["kernel"] == "custom"
    np.testing.assert_allclose(r.eg_mean, prune(s6, "random_node", k=2).eg_mean, rtol=1e-12)


# ------------------------------------------------------------------------------ CLI
@pytest.fixture
def saved_curve(tmp_path):
    curve = odeprune.integrate(OrderParams.random(500, 6, 2, 4.0, seed=0), eta=0.5,
                               alpha_max=50.0)
    return curve.save(tmp_path / "curve.npz")


def test_cli_single(saved_curve, tmp_path, capsys):
    out = tmp_path / "p.npz"
    assert main(["prune", str(saved_curve), "--method", "dpp_node", "--k", "2",
                 "--reweight", "preact", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dpp_node" in text and "preact" in text
    r = odeprune.load(out)
    expected = prune(OrderParams.load(saved_curve), "dpp_node", k=2, reweight="preact")
    assert r.eg_mean == pytest.approx(expected.eg_mean, rel=1e-12)


def test_cli_all(saved_curve, tmp_path, capsys):
    assert main(["prune", str(saved_curve), "--method", "all", "--k", "all", "--reweight",
                 "all", "-o", str(tmp_path / "t.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    from odeprune.pruning.reweight import EDGE_REWEIGHTS

    assert sum(line.startswith("random_edge") for line in lines) == 6 * len(EDGE_REWEIGHTS)
    assert (tmp_path / "t.csv").exists()


def test_cli_state_file_and_c(tmp_path, capsys):
    path = OrderParams.specialised(2, 4, 4.0).save(tmp_path / "s.npz")
    assert main(["prune", str(path), "--c", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "random_edge" in out and "dpp_node" in out


@pytest.mark.parametrize("argv,needle", [
    (["--method", "dpp_node"], "give --k"),
    (["--method", "random_edge", "--c", "0.3", "--reweight", "preact"], "does not apply"),
    (["--method", "dpp_node", "--k", "9"], "out of range"),
    (["--method", "dpp_node", "--k", "3"], "exceeds the rank"),
    (["--method", "dpp_node", "--c", "0.3"], "not an integer"),
])
def test_cli_bad_args(tmp_path, capsys, argv, needle):
    path = OrderParams.specialised(2, 3, 4.0).save(tmp_path / "s.npz")
    assert main(["prune", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_cli_bad_c_value(tmp_path):
    path = OrderParams.specialised(2, 3, 4.0).save(tmp_path / "s.npz")
    with pytest.raises(SystemExit) as exc:
        main(["prune", str(path), "--c", "2"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ the method's options
def test_prune_options_are_one_record():
    """reweight, kernel, exact, n_samples, progress: one record (PruneOptions), as keywords or
    whole; a keyword prune does not read is a TypeError naming it."""
    from odeprune.pruning._api import PruneOptions
    from odeprune.pruning.finite import prune_weights
    from odeprune.pruning.finite_edges import prune_edges_weights

    s = OrderParams.random(200, 5, 2, v_star=2.0, seed=3)
    flat = prune(s, "dpp_node", k=2, kernel="activation", exact=False, n_samples=200, seed=1)
    whole = prune(s, "dpp_node", k=2, seed=1,
                  options=PruneOptions(kernel="activation", exact=False, n_samples=200))
    np.testing.assert_array_equal(flat.eg_values, whole.eg_values)
    np.testing.assert_array_equal(flat.subsets, whole.subsets)
    assert flat.metadata["kernel"] == "activation" and flat.metadata["n_samples"] == 200
    with pytest.raises(TypeError, match=r"prune\(\) got unexpected keyword.*\['n_masks'\]"):
        prune(s, "random_node", k=2, n_masks=3)
    with pytest.raises(ValueError, match=r"\['exact'\] given beside options="):
        prune(s, "random_node", k=2, exact=False, options=PruneOptions())
    with pytest.raises(ValueError, match="n_samples=0 is out of range"):
        prune(s, "random_node", k=2, exact=False, n_samples=0)
    w, ws, v, vs = OrderParams.draw_weights(40, 3, 1, 2.0, 0)
    with pytest.raises(TypeError, match=r"prune_weights\(\) got unexpected.*\['exact'\]"):
        prune_weights(w, v, ws, vs, method="random_node", k=1, exact=True)
    with pytest.raises(ValueError, match="n_test=1 cannot give a standard error"):
        prune_edges_weights(w, v, ws, vs, rule="random_edge", c=0.5, n_test=1)
    # prune_edges_weights' own defaults: five masks (a random rule), 20000 test inputs
    r = prune_edges_weights(w, v, ws, vs, rule="random_edge", c=0.5, n_samples=50,
                            predict=False)
    assert r.metadata["n_masks"] == 5 and r.metadata["n_test"] == 20_000
    assert np.isnan(r.eg_limit)
