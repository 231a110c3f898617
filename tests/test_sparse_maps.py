"""Per-class states of the edge rules (docs/theory.md §8): class sums against today's edge maps,
calibrated Monte Carlo errors, joint (rewound) laws and refinement against finite-N weights."""

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams, SparseOrderParams, prune
from odeprune.pruning.edge_rules import random_edge_map
from odeprune.pruning.registry import EDGE_METHODS
from odeprune.pruning.sparse_maps import (
    SPARSE_REWEIGHTS,
    sparse_state,
    sparse_state_from_joint,
)

C_KEEP = 0.3


@pytest.fixture(scope="module")
def trained():
    return odeprune.integrate(OrderParams.random(500, 3, 2, 4.0, seed=0), 0.5, 50).final


def _codes(patterns):
    return [int(p.astype(int) @ (1 << np.arange(p.size))) for p in np.asarray(patterns)]


def _assert_class_invariants(sp):
    np.testing.assert_allclose(sp.f.sum(), 1.0, rtol=0, atol=1e-12)
    m = sp.patterns.astype(float)
    for s in range(sp.n_classes):
        C = np.block([[sp.Q[s], sp.R[s]], [sp.R[s].T, sp.T[s]]])
        assert np.linalg.eigvalsh(C)[0] >= -1e-12 * max(1.0, np.abs(C).max())
        assert np.all(sp.Q[s][(m[s][:, None] * m[s][None, :]) == 0] == 0)
        assert np.all(sp.R[s][m[s] == 0] == 0)


# ------------------------------------------------------------------ against today's edge maps
@pytest.mark.parametrize("rule", EDGE_METHODS)
def test_class_sums_equal_todays_edge_map(trained, rule):
    sp, se = sparse_state(trained, rule, C_KEEP, seed=4)
    _assert_class_invariants(sp)
    ref = prune(trained, rule, c=C_KEEP, seed=4)
    d = sp.dense()
    if rule == "random_edge":        # exact: Lemma 6
        assert se.eg == 0 and se.method == "exact"
        np.testing.assert_allclose(d.Q, random_edge_map(trained, C_KEEP).Q, rtol=1e-14,
                                   atol=1e-15)
        np.testing.assert_allclose(d.R, ref.states[0].R, rtol=1e-14, atol=1e-15)
    elif rule.startswith("snip"):    # the same coordinates as the edge map's Monte Carlo
        np.testing.assert_allclose(d.Q, ref.states[0].Q, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(d.R, ref.states[0].R, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(se.eg, ref.eg_se, rtol=1e-10)
    else:                            # quadrature map; the class sums within their errors
        assert se.eg > 0
        assert np.all(np.abs(d.Q - ref.states[0].Q) <= 4.5 * se.dense_Q + 1e-14)
        assert np.all(np.abs(d.R - ref.states[0].R) <= 4.5 * se.dense_R + 1e-14)
        assert abs(sp.eg() - ref.eg_mean) <= 4.5 * se.eg
    np.testing.assert_allclose(d.T, trained.T, rtol=1e-12)
    # kept fraction per unit (row rules) or overall (global) is c, within binomial noise
    per_unit, overall = sp.density()
    tol = 5 * np.sqrt(C_KEEP * (1 - C_KEEP) / 200_000)
    if rule.endswith("global"):
        np.testing.assert_allclose(overall, C_KEEP, atol=tol)
    else:
        np.testing.assert_allclose(per_unit, C_KEEP, atol=tol)


def test_random_edge_is_random_mask_exactly(trained):
    sp, _ = sparse_state(trained, "random_edge", 0.37)
    ref = SparseOrderParams.random_mask(trained, 0.37)
    assert sp == ref
    np.testing.assert_allclose(sp.dense().Q, random_edge_map(trained, 0.37).Q, rtol=1e-14,
                               atol=1e-15)


@pytest.mark.parametrize("reweight", SPARSE_REWEIGHTS)
def test_reweights_as_prune(trained, reweight):
    # SNIP: identical coordinates, so the reweighted network and its error are prune's exactly
    sp, se = sparse_state(trained, "snip_edge", 0.4, seed=2, reweight=reweight)
    ref = prune(trained, "snip_edge", c=0.4, seed=2, reweight=reweight)
    np.testing.assert_allclose(sp.eg(), ref.eg_mean, rtol=1e-12)
    np.testing.assert_allclose(sp.v, ref.v[0], rtol=1e-12)
    np.testing.assert_allclose(sp.dense().Q, ref.states[0].Q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(se.eg, ref.eg_se, rtol=1e-10)
    # magnitude (quadrature map): within the error
    sp, se = sparse_state(trained, "magnitude_edge", 0.4, seed=2, reweight=reweight)
    ref = prune(trained, "magnitude_edge", c=0.4, reweight=reweight)
    assert abs(sp.eg() - ref.eg_mean) <= 4.5 * se.eg
    if reweight == "rescale_rows":   # variance restored: the row norms are the unpruned ones
        np.testing.assert_allclose(np.diag(sp.dense().Q), np.diag(trained.Q), rtol=1e-12)


def test_standard_error_calibrated_over_seeds(trained):
    """The reported error of eg against the seed-to-seed spread and the exact quadrature."""
    exact = prune(trained, "magnitude_edge_global", c=C_KEEP).eg_mean
    egs, ses = [], []
    for seed in range(32):
        sp, se = sparse_state(trained, "magnitude_edge_global", C_KEEP, seed=seed,
                              n_samples=20_000)
        egs.append(sp.eg())
        ses.append(se.eg)
    egs, ses = np.array(egs), np.array(ses)
    ratio = egs.std(ddof=1) / np.sqrt(np.mean(ses ** 2))
    # sample std of 32 values: relative error ~ 1/sqrt(62) = 0.13; 4 sigma
    assert 0.5 < ratio < 1.5, ratio
    z = (egs - exact) / ses
    assert abs(z.mean()) < 4 / np.sqrt(z.size), z.mean()


# ------------------------------------------------------------------ the hook on PruneResult
def test_prune_result_hook(trained, tmp_path):
    r = prune(trained, "snip_edge_global", c=0.5, seed=11, reweight="rescale")
    np.testing.assert_allclose(r.sparse_state.dense().Q, r.state.Q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.sparse_state.v, r.state.v, rtol=1e-12)
    assert r.sparse_state is r.sparse_state            # cached
    np.testing.assert_allclose(float(r.sparse_state_se), r.eg_se, rtol=1e-10)
    # seed=None: the recorded entropy reproduces it
    r = prune(trained, "dpp_edge", c=0.5)
    again, _ = sparse_state(trained, "dpp_edge", 0.5, seed=r.metadata["seed"])
    assert r.sparse_state == again
    with pytest.raises(ValueError, match="edge rules"):
        _ = prune(trained, "random_node", k=2).sparse_state
    path = r.save(tmp_path / "r.npz")
    # the file holds the masked network, so a result read back gives it
    assert odeprune.PruneResult.load(path).sparse_state == r.sparse_state


# ------------------------------------------------------------------ joint laws, finite N
def _population(seed=0, K=3, M=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(K + M, K + M + 3))
    C0 = X @ X.T / (K + M + 3)
    B = rng.normal(size=(K, M)) * 0.6
    D = np.diag(rng.uniform(0.2, 0.6, K))
    Q0, R0, T = C0[:K, :K], C0[:K, K:], C0[K:, K:]
    P = Q0 + B @ R0.T                                   # cov(wT, w0)
    QT = Q0 + B @ R0.T + R0 @ B.T + B @ T @ B.T + D
    RT = R0 + B @ T
    J = np.block([[Q0, P.T, R0], [P, QT, RT], [R0.T, RT.T, T]])
    v, v_star = rng.normal(size=K), np.ones(M)
    return dict(C0=C0, B=B, D=D, J=J, v=v, v_star=v_star, K=K, M=M,
                state0=OrderParams(Q=Q0, R=R0, T=T, v=v, v_star=v_star))


def _finite_weights(pop, N, seed):
    rng = np.random.default_rng(seed)
    K, M = pop["K"], pop["M"]
    Z = np.linalg.cholesky(pop["C0"]) @ rng.standard_normal((K + M, N))
    w0, w_star = Z[:K], Z[K:]
    wT = w0 + pop["B"] @ w_star + np.sqrt(np.diag(pop["D"]))[:, None] * rng.standard_normal(
        (K, N))
    return w0, wT, w_star


def _compare(limit, se, finite, n_seeds):
    """Every class entry and eg of the limit within the finite-N seeds' standard error."""
    K = limit.K
    by_code = {c: s for s, c in enumerate(_codes(limit.patterns))}
    egs = np.array([sp.eg() for sp in finite])
    assert abs(egs.mean() - limit.eg()) <= 4 * np.sqrt(egs.var(ddof=1) / n_seeds + se.eg ** 2)
    codes = sorted(set().union(*[_codes(sp.patterns) for sp in finite]))
    assert set(codes) == set(by_code), (codes, sorted(by_code))
    for code in codes:
        rows = []
        for sp in finite:
            s = dict(zip(_codes(sp.patterns), range(sp.n_classes))).get(code)
            rows.append(np.zeros(1 + K * K + K * limit.M) if s is None else
                        np.r_[sp.f[s], sp.Q[s].ravel(), sp.R[s].ravel()])
        rows = np.array(rows)
        s = by_code[code]
        lim = np.r_[limit.f[s], limit.Q[s].ravel(), limit.R[s].ravel()]
        lim_se = np.r_[se.f[s], se.Q[s].ravel(), se.R[s].ravel()]
        tol = 4 * np.sqrt(rows.var(axis=0, ddof=1) / n_seeds + lim_se ** 2) + 1e-15
        assert np.all(np.abs(rows.mean(axis=0) - lim) <= tol), (code, rows.mean(0) - lim, tol)


@pytest.mark.parametrize("N, n_seeds", [(2_000, 10), (20_000, 6)])
def test_rewound_magnitude_mask_against_finite_n(N, n_seeds):
    """Mask = top c of |wT| per row, applied to w0 (a lottery ticket)."""
    pop = _population()
    c = 0.4
    limit, se = sparse_state_from_joint(pop["J"], pop["state0"], "magnitude_edge", c, seed=1)
    _assert_class_invariants(limit)
    finite = []
    for seed in range(n_seeds):
        w0, wT, w_star = _finite_weights(pop, N, seed)
        k = int(round(c * N))
        mask = np.zeros(w0.shape, dtype=bool)
        np.put_along_axis(mask, np.argsort(np.abs(wT), axis=1)[:, -k:], True, axis=1)
        finite.append(SparseOrderParams.from_weights(w0, w_star, pop["v"], pop["v_star"], mask))
    _compare(limit, se, finite, n_seeds)


def test_refining_a_sparse_state_against_finite_n():
    """Random mask (0.6), then global magnitude of wT over the *kept* weights (half of them),
    values w0: per-class joint laws of a sparse base, N = 20000."""
    pop = _population(seed=3)
    K, M = pop["K"], pop["M"]
    c1, c2, N, n_seeds = 0.6, 0.5, 20_000, 6
    base = SparseOrderParams.random_mask(pop["state0"], c1)
    Js = []
    for pat in base.patterns:
        m = np.r_[pat, pat, np.ones(M, dtype=bool)].astype(float)
        Js.append(pop["J"] * np.outer(m, m))
    limit, se = sparse_state_from_joint(np.array(Js), base, "magnitude_edge_global", c2,
                                        seed=2)
    _assert_class_invariants(limit)
    np.testing.assert_allclose(limit.density()[1], c1 * c2, atol=0.005)
    finite = []
    for seed in range(n_seeds):
        w0, wT, w_star = _finite_weights(pop, N, 100 + seed)
        mask1 = np.random.default_rng(seed).random((K, N)) < c1
        tau = np.quantile(np.abs(wT[mask1]), 1 - c2)   # kept weights only
        mask = mask1 & (np.abs(wT) > tau)
        finite.append(SparseOrderParams.from_weights(w0, w_star, pop["v"], pop["v_star"], mask))
    _compare(limit, se, finite, n_seeds)


def test_snip_refinement_against_finite_n():
    """Random mask (0.6), then SNIP per row among the kept weights with the gradient of the
    masked network, ``g_i = b_i . (w~, w*)`` (exact for Gaussian inputs at any N, with ``b`` from
    the finite-N order parameters), N = 20000."""
    from odeprune.pruning.gaussian import gradient_covariance

    pop = _population(seed=5)
    K = pop["K"]
    c1, c2, N, n_seeds = 0.6, 0.5, 20_000, 6
    base = SparseOrderParams.random_mask(pop["state0"], c1)
    limit, se = sparse_state(base, "snip_edge", c2, seed=2)
    _assert_class_invariants(limit)
    np.testing.assert_allclose(limit.density()[0], c1 * c2, atol=0.005)
    finite = []
    for seed in range(n_seeds):
        w, _, w_star = _finite_weights(pop, N, 200 + seed)
        mask1 = np.random.default_rng(seed).random((K, N)) < c1
        wm = np.where(mask1, w, 0.0)
        dense = SparseOrderParams.from_weights(w, w_star, pop["v"], pop["v_star"],
                                               mask1).dense()
        C = np.array(dense.covariance())
        b = gradient_covariance(dense) @ np.linalg.pinv(C, hermitian=True)
        g = b @ np.vstack([wm, w_star])
        score = np.where(mask1, np.abs(wm * g), -1.0)
        mask = np.zeros((K, N), dtype=bool)
        for i in range(K):
            kept = np.flatnonzero(mask1[i])
            top = kept[np.argsort(score[i, kept])[-int(round(c2 * kept.size)):]]
            mask[i, top] = True
        finite.append(SparseOrderParams.from_weights(w, w_star, pop["v"], pop["v_star"], mask))
    _compare(limit, se, finite, n_seeds)


def test_joint_with_values_equal_decide_is_todays_map(trained):
    """(w, w, w*) as a joint law gives today's map; SNIP through its linear gradient."""
    K = trained.K
    C = np.array(trained.covariance())
    idx = np.r_[0:K, 0:K, K:C.shape[0]]
    J = C[np.ix_(idx, idx)]
    for rule in ("magnitude_edge", "snip_edge"):
        sp, se = sparse_state_from_joint(J, trained, rule, 0.5, seed=6)
        ref = prune(trained, rule, c=0.5, seed=6)
        assert abs(sp.eg() - ref.eg_mean) <= 4.5 * np.hypot(se.eg, ref.eg_se)


# ------------------------------------------------------------------ refinement, exact cases
def test_refinement_exact_cases(trained):
    sp1 = SparseOrderParams.random_mask(trained, 0.6)
    # random refinement of a random mask: Bernoulli(0.6 * 0.5), classes merged, exact
    sp2, _ = sparse_state(sp1, "random_edge", 0.5, seed=0)
    ref = SparseOrderParams.random_mask(trained, 0.3)
    assert _codes(sp2.patterns) == _codes(ref.patterns)
    for name in ("f", "Q", "R", "T"):
        np.testing.assert_allclose(getattr(sp2, name), getattr(ref, name), rtol=1e-12,
                                   atol=1e-14)
    # keeping every kept weight (c = 1) returns the state
    sp3, _ = sparse_state(sp1, "magnitude_edge", 1.0, seed=0)
    assert _codes(sp3.patterns) == _codes(sp1.patterns)
    for name in ("f", "Q", "R", "T"):
        np.testing.assert_allclose(getattr(sp3, name), getattr(sp1, name), rtol=1e-12,
                                   atol=1e-14)
    # magnitude and DPP refinement: the density is c times the old one, per row
    for rule in ("magnitude_edge", "dpp_edge"):
        sp4, _ = sparse_state(sp1, rule, 0.5, seed=0)
        np.testing.assert_allclose(sp4.density()[0], 0.3, atol=0.005)
    # one unmasked class: the mixture calibration is the rule's own, the map today's
    for rule in ("magnitude_edge", "magnitude_edge_global", "dpp_edge", "snip_edge",
                 "snip_edge_global"):
        sp5, se = sparse_state(SparseOrderParams.from_dense(trained), rule, C_KEEP, seed=1)
        ref = prune(trained, rule, c=C_KEEP, seed=9)
        assert abs(sp5.eg() - ref.eg_mean) <= 4.5 * np.hypot(se.eg, ref.eg_se), rule
        per_unit, overall = sp5.density()
        tol = 5 * np.sqrt(C_KEEP * (1 - C_KEEP) / 200_000)
        np.testing.assert_allclose(overall if rule.endswith("global") else per_unit, C_KEEP,
                                   atol=tol)


def test_with_integrated_two_time_curves(trained):
    """At alpha = 0 the joint law is (w0, w0, w*): a mask decided there is today's map; and a
    masked curve's per-class joint laws at c = 1 give back its initial classes."""
    curve = odeprune.integrate(trained, 0.5, 2.0, track_initial=True)
    sp, se = sparse_state_from_joint(curve.joint_covariance(0), curve.initial,
                                     "magnitude_edge", 0.5, seed=3)
    assert abs(sp.eg() - prune(curve.initial, "magnitude_edge", c=0.5).eg_mean) <= 4.5 * se.eg
    sp0 = SparseOrderParams.random_mask(trained, 0.5)
    scurve = odeprune.integrate(sp0, 0.5, 2.0, track_initial=True)
    back, _ = sparse_state_from_joint(scurve.joint_covariance(-1), scurve.initial,
                                      "magnitude_edge_global", 1.0, seed=3)
    assert _codes(back.patterns) == _codes(sp0.patterns)
    for name in ("f", "Q", "R", "T"):
        np.testing.assert_allclose(getattr(back, name), getattr(sp0, name), rtol=1e-11,
                                   atol=1e-13)
    ticket, se = sparse_state_from_joint(scurve.joint_covariance(-1), scurve.initial,
                                         "magnitude_edge_global", 0.5, seed=3)
    _assert_class_invariants(ticket)
    np.testing.assert_allclose(ticket.density()[1], 0.25, atol=0.005)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(rule="magnitude_edge", c=-0.1), "c="),
    (dict(rule="magnitude_edge", c=1.5), "c="),
    (dict(rule="magnitude", c=0.5), "unknown"),
    (dict(rule="random_node", c=0.5), "node method"),
    (dict(rule="dpp_node", c=0.5), "node method"),
    (dict(rule="magnitude_edge", c=0.5, reweight="preact"), "reweight"),
    (dict(rule="magnitude_edge", c=0.5, n_samples=0), "n_samples"),
    (dict(rule="magnitude_edge", c=0.5, seed=1.5), "seed"),
])
def test_bad_input(trained, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        sparse_state(trained, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_input_joint_and_sizes(trained):
    K, M = trained.K, trained.M
    J = np.eye(2 * K + M)
    Jt = J.copy()
    Jt[2 * K:, 2 * K:] = trained.T
    cases = [
        (lambda: sparse_state_from_joint(np.eye(K + M), trained, "magnitude_edge", 0.5),
         "shape"),
        (lambda: sparse_state_from_joint(-J, trained, "magnitude_edge", 0.5), "semi-definite"),
        (lambda: sparse_state_from_joint(J, trained, "magnitude_edge", 0.5), "teacher block"),
        (lambda: sparse_state_from_joint(Jt, trained, "magnitude_edge", 0.5, v_decide=[1.0]),
         "v_decide"),
        (lambda: sparse_state("Q", "magnitude_edge", 0.5), "OrderParams"),
        (lambda: sparse_state(OrderParams.random(100, 13, 1, seed=0), "magnitude_edge", 0.5),
         "MAX_EXACT_K"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
