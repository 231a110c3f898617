"""Sparse teachers: constructors, the exact ticket identity, the masked ODE against
masked SGD on sparse teachers, and support recovery by magnitude pruning, limit vs finite N."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import odeprune
from odeprune import teachers
from odeprune.coords import CoordinateLaw, decide
from odeprune.sparse import SparseOrderParams
from odeprune.state import OrderParams


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), True, "x"])
def test_teacher_density_outside_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="teacher_density"):
        teachers.sparse_teacher_state(3, 2, bad)
    with pytest.raises(ValueError, match="teacher_density"):
        teachers.sparse_teacher_weights(50, 3, 2, bad)


def test_teacher_mask_wrong_shape_or_not_binary_is_refused():
    with pytest.raises(ValueError, match=r"teacher_mask must have shape \(M, N\) = \(2, 50\)"):
        teachers.sparse_teacher_weights(50, 3, 2, teacher_mask=np.ones((3, 50)))
    bad = np.ones((2, 50))
    bad[0, 3] = 0.5
    with pytest.raises(ValueError, match="teacher_mask must contain only 0/1"):
        teachers.sparse_teacher_weights(50, 3, 2, teacher_mask=bad)
    with pytest.raises(ValueError, match="exactly one of"):
        teachers.sparse_teacher_weights(50, 3, 2, 0.5, teacher_mask=np.ones((2, 50)))


def test_unknown_student_mask_rule_is_refused():
    with pytest.raises(ValueError, match="student mask rule"):
        teachers.sparse_teacher_state(3, 2, 0.5, "winning")


# ---------------------------------------------------------------------------- constructors
def test_weights_support_and_draw():
    w, ws, v, vs, sup = teachers.sparse_teacher_weights(400, 3, 2, 0.25, v_star=2.0, seed=3)
    w0, ws0, v0, _ = OrderParams.draw_weights(400, 3, 2, v_star=2.0, seed=3)
    np.testing.assert_array_equal(w, w0)            # the same draw as simulate(seed=3)
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_array_equal(ws, np.where(sup, ws0, 0.0))
    assert sup.sum(1).tolist() == [100, 100]        # exactly r = c_t N per unit
    assert not np.array_equal(sup[0], sup[1])       # independent supports
    shared = teachers.sparse_teacher_weights(400, 3, 2, 0.25, seed=3, shared_support=True)[4]
    np.testing.assert_array_equal(shared[0], shared[1])
    wsn = teachers.sparse_teacher_weights(400, 3, 2, 0.25, seed=3, normalise=True)[1]
    np.testing.assert_allclose(wsn, 2.0 * ws)


@pytest.mark.parametrize("rule", [None, "oracle", "oracle_union", 0.4])
def test_finite_state_is_the_masked_network_with_split_classes(rule):
    N, K, M = 300, 3, 2
    st = teachers.sparse_teacher_state(K, M, 0.3, rule, v_star=1.5, seed=2, N=N)
    w, ws, v, vs, sup = teachers.sparse_teacher_weights(N, K, M, 0.3, 1.5, seed=2)
    rng = np.random.default_rng(2)
    teachers.sparse_teacher_weights(N, K, M, 0.3, 1.5, seed=rng)   # advance like the state
    mask = teachers.student_mask(rule, sup, K, rng)
    ref = SparseOrderParams.from_weights(w, ws, v, vs, mask)
    np.testing.assert_allclose(st.dense().Q, ref.dense().Q, atol=1e-13)
    np.testing.assert_allclose(st.dense().R, ref.dense().R, atol=1e-13)
    np.testing.assert_allclose(st.dense().T, ref.dense().T, atol=1e-13)
    # classes split by the teacher's support: each class is on or off each teacher unit
    sp = teachers.support_of_classes(st)
    for s in range(st.n_classes):
        d = np.diag(st.T[s])
        assert np.all((d > 0) == sp[s])
    assert st.n_classes >= ref.n_classes
    if rule == "oracle":
        assert np.allclose(st.density()[0], 0.3)


def test_limit_state_moments():
    c = 0.3
    st = teachers.sparse_teacher_state(4, 2, c, "oracle", v_star=1.0, seed=0)
    d = st.dense()
    np.testing.assert_allclose(d.T, c * np.eye(2), atol=1e-15)
    np.testing.assert_allclose(d.Q, c * np.eye(4), atol=1e-15)   # Q_ii = density of unit i
    np.testing.assert_allclose(st.density()[0], c, atol=1e-15)
    # the oracle mask of unit i is the support of teacher i mod M
    sp = teachers.support_of_classes(st)
    np.testing.assert_array_equal(st.patterns, sp[:, np.arange(4) % 2])
    nrm = teachers.sparse_teacher_state(4, 2, c, None, seed=0, normalise=True)
    np.testing.assert_allclose(nrm.dense().T, np.eye(2), atol=1e-14)
    rnd = teachers.sparse_teacher_state(3, 2, c, 0.5, seed=0)
    assert rnd.n_classes == 4 * 8
    np.testing.assert_allclose(rnd.dense().Q, 0.5 * np.eye(3), atol=1e-15)


# ---------------------------------------------------------------------------- the identity
@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_shared_ticket_is_the_dense_network_at_rescaled_time_and_rates(sigma):
    """docs/sparse_teacher.md: shared mask = shared support of density c; the masked curve at
    alpha equals the dense one (same order parameters) at alpha/c with eta, eta_v times c."""
    st = teachers.oracle_ticket_state(3, 2, 0.3, union=True, v_star=2.0, seed=1, N=400,
                                      shared_support=True)
    dense, c = teachers.dense_equivalent(st)
    assert c == pytest.approx(0.3)
    a = np.linspace(0.0, 60.0, 31)
    tol = dict(rtol=1e-12, atol=1e-14, progress=False, sigma=sigma)
    m = odeprune.integrate(st, 0.7, 60.0, save_at=a, eta_v=0.4, **tol)
    d = odeprune.integrate(dense, 0.7 * c, 60.0 / c, save_at=a / c, eta_v=0.4 * c, **tol)
    np.testing.assert_allclose(m.alpha, d.alpha * c, rtol=1e-12)
    for name in ("eg", "Q", "R", "v"):
        np.testing.assert_allclose(getattr(m, name), getattr(d, name), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    assert m.eg[-1] < 0.5 * m.eg[0]  # it learned something


def test_dense_equivalent_refuses_other_states():
    with pytest.raises(ValueError, match="exactly one live class"):
        teachers.dense_equivalent(teachers.oracle_ticket_state(3, 2, 0.3, seed=0))


# ---------------------------------------------------------------------------- limit vs finite N
def _ode_vs_sgd(N, seeds, alpha_max=8.0):
    """Paired gaps eps_g(SGD) - eps_g(ODE from the same weights) at the saved times."""
    K, M, c = 3, 2, 0.3
    grid = np.array([0.0, 2.0, 4.0, 8.0])
    gaps = []
    for seed in seeds:
        w, ws, v, vs, sup = teachers.sparse_teacher_weights(N, K, M, c, 1.0, seed)
        mask = teachers.oracle_ticket_mask(sup, K)
        st = teachers.from_weights_split(w, ws, v, vs, mask, sup)
        cv = odeprune.integrate(st, 0.5, alpha_max, save_at=grid, progress=False)
        res = odeprune.simulate(N, K, M, 0.5, alpha_max, init=(w, ws, v), mask=mask,
                                seed=seed + 100, v_star=vs, n_test=0, save_at=grid,
                                progress=False)
        assert np.allclose(res.alpha, cv.alpha)
        gaps.append(np.asarray(res.eg) - np.asarray(cv.eg))
    return np.array(gaps)[:, 1:]


def test_masked_ode_matches_masked_sgd_on_sparse_teachers():
    seeds = range(16)
    rms = []
    for N in (500, 2000):
        G = _ode_vs_sgd(N, seeds)
        z = G.mean(0) / (G.std(0, ddof=1) / np.sqrt(G.shape[0]))
        assert np.all(np.abs(z) < 4.0), (N, z)
        rms.append(np.sqrt(np.mean(G ** 2)))
    assert rms[1] < 0.8 * rms[0], rms         # the gap shrinks with N (~1/sqrt(N): 0.5)


def test_support_recovery_limit_matches_finite_n():
    """P(kept | on / off support) after dense training: the exact limit (from each seed's
    initial weights) against magnitude pruning of the real trained weights."""
    gaps_on, gaps_off = [], []
    for N in (500, 2000):
        rows = teachers.support_recovery_experiment(3, 2, 0.25, alpha_T=[10.0], N=N,
                                                    seeds=range(16), v_star=1.0)
        lim = {r["seed"]: r for r in rows if r["layer"] == "limit"}
        fin = {r["seed"]: r for r in rows if r["layer"] == "finite"}
        g_on = np.array([fin[s]["p_on"] - lim[s]["p_on"] for s in lim])
        g_off = np.array([fin[s]["p_off"] - lim[s]["p_off"] for s in lim])
        for g in (g_on, g_off):
            se = g.std(ddof=1) / np.sqrt(g.size)
            assert abs(g.mean()) < 4 * se + 1e-3, (N, g.mean(), se)
        assert np.mean([lim[s]["p_on"] for s in lim]) > np.mean([lim[s]["p_off"] for s in lim])
        gaps_on.append(np.sqrt(np.mean(g_on ** 2)))
        gaps_off.append(np.sqrt(np.mean(g_off ** 2)))
    # the gap shrinks with N (~1/sqrt(N): a ratio of 0.5; measured 0.59, 0.60)
    assert gaps_on[1] < 0.8 * gaps_on[0] and gaps_off[1] < 0.8 * gaps_off[0], (gaps_on,
                                                                               gaps_off)


def test_support_recovery_closed_form_matches_particles():
    st = teachers.sparse_teacher_state(3, 2, 0.25, None, v_star=1.0, seed=0, N=500)
    trained = odeprune.integrate(st, 0.5, 30.0, progress=False).final
    exact = teachers.support_recovery_limit(trained, 0.25)
    law = CoordinateLaw.from_state(trained, S=8000, replicas=8, seed=1)
    small = np.abs(law.w_star)[np.abs(law.w_star) < 1e-6]     # off support: zero to rounding
    assert small.size > 0 and small.max() < 1e-12
    mc = teachers.support_recovery_law(decide(law, "magnitude_edge", 0.25, seed=2),
                                       R=trained.dense().R)
    assert abs(mc["p_on_mean"] - exact["p_on"]) < 5 * mc["p_on_se"] + 1e-4
    assert abs(mc["p_off_mean"] - exact["p_off"]) < 5 * mc["p_off_se"] + 1e-4
    # the kept fraction is c exactly: c = c_t p_on + (1 - c_t) p_off per unit (as T_nn > 0)
    f = trained.f
    on_mass = np.array([(f * teachers.support_of_classes(trained)[:, n]).sum()
                        for n in exact["matched"]])
    np.testing.assert_allclose(on_mass * exact["p_on_units"]
                               + (1 - on_mass) * exact["p_off_units"], 0.25, atol=1e-10)


def test_rank_correlation_limit_and_finite_agree_on_one_network():
    N, K, M = 2000, 3, 2
    w, ws, v, vs, sup = teachers.sparse_teacher_weights(N, K, M, 0.25, 1.0, seed=4)
    st = teachers.from_weights_split(w, ws, v, vs, np.ones((K, N), bool), sup)
    cv = odeprune.integrate(st, 0.5, 10.0, save_at=[0.0, 10.0], track_initial=True,
                            progress=False)
    lim = teachers.rank_correlation_limit(*CoordinateLaw.from_joint(cv, -1, S=6000,
                                                                    replicas=6, seed=0))
    res = odeprune.simulate(N, K, M, 0.5, 10.0, init=(w, ws, v), seed=9, v_star=vs, n_test=0,
                            save_at=[0.0], progress=False)
    fin = teachers.rank_correlation_finite(w, res.w)
    # finite N: the Spearman coefficient of N points has a spread ~ 1/sqrt(N) per row
    assert abs(fin["rho"] - lim["rho_mean"]) < 5 * lim["rho_se"] + 3 / np.sqrt(N * K)


# ---------------------------------------------------------------------------- helpers
def test_weighted_spearman_and_time_to_reach():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    assert teachers.weighted_spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic,
                                                             abs=1e-12)
    # duplicating every point with half weights changes nothing
    assert teachers.weighted_spearman(np.r_[x, x], np.r_[y, y]) == pytest.approx(
        stats.spearmanr(x, y).statistic, abs=2e-3)
    a = np.array([0.0, 1.0, 10.0, 100.0])
    e = np.array([1.0, 0.1, 0.01, 0.001])
    np.testing.assert_allclose(teachers.time_to_reach(a, e, [0.1, 0.0316227766, 1e-4]),
                               [1.0, np.sqrt(10.0), np.nan], rtol=1e-9)


def test_simulate_teacher_mask_and_the_cli_option_give_the_same_network(tmp_path):
    """simulate(teacher_mask=) zeroes the teacher off its support (its initial order parameters
    are the limit state's); integrate/simulate --teacher-density draw the same network."""
    from odeprune.cli import main
    from odeprune.teachers import sparse_teacher_state, teacher_support

    N, K, M = 300, 3, 2
    sup = teacher_support(N, M, 0.25, seed=np.random.SeedSequence([0, 99]))
    st = sparse_teacher_state(K, M, None, None, v_star=4.0, seed=0, N=N, teacher_mask=sup)
    sim = odeprune.simulate(N, K, M, 0.5, 1.0, teacher_mask=sup, n_test=0, progress=False)
    np.testing.assert_allclose(sim.initial.T, st.dense().T, atol=1e-12)
    np.testing.assert_allclose(sim.initial.R, st.dense().R, atol=1e-12)
    assert np.all(sim.w_star[~sup] == 0)
    assert main(["simulate", "--teacher-density", "0.25", "--N", str(N), "--K", str(K), "--M",
                 str(M), "--alpha-max", "1", "-q", "-o", str(tmp_path / "s.npz")]) == 0
    assert main(["integrate", "--teacher-density", "0.25", "--N", str(N), "--K", str(K),
                 "--M", str(M), "--alpha-max", "1", "-q", "-o", str(tmp_path / "c.npz")]) == 0
    s, c = odeprune.load(tmp_path / "s.npz"), odeprune.load(tmp_path / "c.npz")
    np.testing.assert_allclose(s.T, c.T, atol=1e-12)
    np.testing.assert_allclose(s.R[0], c.R[0], atol=1e-12)
    with pytest.raises(ValueError, match="teacher_mask must have shape"):
        odeprune.simulate(N, K, M, 0.5, 1.0, teacher_mask=np.ones((M, N + 1)), progress=False)
