"""odeprune.landscape: the order-parameter Hessian spectrum against the dense finite-N Hessian
(JAX autodiff of an eps_g written here from the closed-form I2), the W = W* values of
docs/theory.md §10, the gradient against finite differences, the pruning limit (refusal at
non-minima, the removed mass against the edge map, the fixed point against a finite-N evaluation
of Zhang et al.'s formula) and the one-shot actual limit against direct prune calls."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest

from odeprune import landscape as ls
from odeprune.state import OrderParams

jax = pytest.importorskip("jax")
jnp = jax.numpy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _state(w, w_star, v, v_star, activation):
    try:
        return OrderParams.from_weights(w, w_star, v, v_star, activation=activation)
    except TypeError:  # OrderParams without an activation attribute
        return OrderParams.from_weights(w, w_star, v, v_star)


# ------------------------------------------------------------------ an independent eps_g in JAX
def _eg_jax(activation):
    """eps_g(W, v; W*, v*) = 1/2 a^T I2(C) a, C from Q = W W^T/N, R = W W*^T/N (docs/theory.md
    §3, §5)."""

    def eg(W, v, ws, vs):
        N = W.shape[1]
        Z = jnp.concatenate([W, ws])
        C = Z @ Z.T / N
        d = jnp.diag(C)
        if activation == "erf":
            I2 = 2 / jnp.pi * jnp.arcsin(C / jnp.sqrt((1 + d)[:, None] * (1 + d)[None, :]))
        elif activation == "relu":  # docs/theory.md §3b off the diagonal, E[relu(a)^2] = C_aa/2 on it
            off = ~jnp.eye(C.shape[0], dtype=bool)
            xz = d[:, None] * d[None, :]
            sD = jnp.sqrt(jnp.where(off, xz - C * C, 1.0))
            rho = jnp.where(off, C / jnp.sqrt(xz), 0.0)
            I2 = jnp.where(off, (sD + C * (jnp.pi / 2 + jnp.arcsin(rho))) / (2 * jnp.pi), C / 2)
        else:
            I2 = C
        a = jnp.concatenate([v, -vs])
        return 0.5 * jnp.sum(a[:, None] * a[None, :] * I2)

    return eg


@functools.cache
def _jitted(activation, K):
    """Compiled Hessian over (W.ravel(), v) and gradient (one compile per activation/shape)."""
    eg = _eg_jax(activation)

    def flat(theta, ws, vs):
        N = ws.shape[1]
        return eg(theta[:K * N].reshape(K, N), theta[K * N:], ws, vs)

    return jax.jit(jax.hessian(flat)), jax.jit(jax.grad(eg, argnums=(0, 1)))


def _dense_hessian(w, w_star, v, v_star, activation):
    """Hessian over (W.ravel(), v) by jax.hessian, float64."""
    K = w.shape[0]
    with jax.enable_x64(True):
        hess, _ = _jitted(activation, K)
        theta = jnp.concatenate([jnp.asarray(w).ravel(), jnp.asarray(v)])
        return np.asarray(hess(theta, jnp.asarray(w_star), jnp.asarray(v_star)))


def _jax_grad(w, w_star, v, v_star, activation):
    with jax.enable_x64(True):
        _, grad = _jitted(activation, w.shape[0])
        gW, gv = grad(jnp.asarray(w), jnp.asarray(v), jnp.asarray(w_star), jnp.asarray(v_star))
        return np.asarray(gW), np.asarray(gv)


def _trained(N, K, M, activation, seed, steps=400, lr=None):
    """Weights after full-batch gradient descent on eps_g (JAX gradient), from random ones."""
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=1.0, seed=seed)
    lr = lr if lr is not None else (0.5 if activation == "erf" else 0.02)
    with jax.enable_x64(True):
        _, grad = _jitted(activation, K)
        W, V = jnp.asarray(w), jnp.asarray(v)
        ws, vs = jnp.asarray(w_star), jnp.asarray(v_star)
        for _ in range(steps):
            gW, gV = grad(W, V, ws, vs)
            W, V = W - lr * N * gW, V - lr * gV   # N * grad_W: the natural step on rows
        return np.asarray(W), w_star, np.asarray(V), v_star


def _cases():
    for activation in ("erf", "linear"):
        for N in (50, 100):
            for kind in ("random", "trained"):
                yield activation, N, kind
    yield "relu", 50, "random"   # ReLU: I2 is smooth only for non-aligned fields


@pytest.mark.parametrize("activation,N,kind", list(_cases()))
def test_spectrum_equals_dense_finite_N_hessian(activation, N, kind):
    K, M, seed = 4, 2, 7 + N
    if kind == "random":
        w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=[1.0, -2.0], seed=seed)
    else:
        w, w_star, v, v_star = _trained(N, K, M, activation, seed)
    state = _state(w, w_star, v, v_star, activation)
    spec = ls.hessian_spectrum(state, N, activation=activation)
    H = _dense_hessian(w, w_star, v, v_star, activation)
    KN = K * N
    dense_w = np.linalg.eigvalsh(H[:KN, :KN]) * N           # natural units
    scale = np.max(np.abs(dense_w))
    assert spec.multiplicities.sum() == KN
    np.testing.assert_allclose(spec.first_layer(), dense_w, rtol=1e-9, atol=1e-9 * scale)
    dense_joint = np.linalg.eigvalsh(H)
    np.testing.assert_allclose(spec.joint(), dense_joint, rtol=1e-9,
                               atol=1e-9 * np.max(np.abs(dense_joint)))
    # second-layer block and the library's own JAX Hessian
    np.testing.assert_allclose(spec.second_layer_matrix, H[KN:, KN:], rtol=1e-9, atol=1e-12)
    if N == 50:  # the library's optional-JAX Hessian (the same maths, written separately)
        H_lib = ls.population_hessian_weights(w, w_star, v, v_star, activation)
        np.testing.assert_allclose(H_lib, H, rtol=1e-9, atol=1e-12 * np.max(np.abs(H)))
    if kind == "trained":  # the training reached a small gradient: it is a trained state
        assert ls.gradient(state, activation).norm < 0.1 * ls.gradient(
            _state(*OrderParams.draw_weights(N, K, M, 1.0, seed), activation), activation).norm


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_masked_spectrum_equals_dense_submatrix(activation):
    """A masked network's Hessian lives on the kept weights: the principal submatrix of the
    dense Hessian at the masked weights; per class bulk 2G[s,s] with multiplicity N f_s - r_s."""
    sparse = pytest.importorskip("odeprune.sparse")
    N, K, M = 40, 3, 2
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=[1.0, -2.0], seed=3)
    mask = np.random.default_rng(0).random((K, N)) < 0.6
    state = sparse.SparseOrderParams.from_weights(w, w_star, v, v_star, mask,
                                                  activation=activation)
    spec = ls.hessian_spectrum(state, N)
    wm = np.where(mask, w, 0.0)
    H = _dense_hessian(wm, w_star, v, v_star, activation)
    keep = np.concatenate([mask.ravel(), np.ones(K, dtype=bool)])
    Hk = H[np.ix_(keep, keep)]
    n_kept = int(mask.sum())
    dense_w = np.linalg.eigvalsh(Hk[:n_kept, :n_kept]) * N
    assert spec.multiplicities.sum() == n_kept
    np.testing.assert_allclose(spec.first_layer(), dense_w, rtol=1e-9,
                               atol=1e-9 * np.max(np.abs(dense_w)))
    dense_joint = np.linalg.eigvalsh(Hk)
    np.testing.assert_allclose(spec.joint(), dense_joint, rtol=1e-9,
                               atol=1e-9 * np.max(np.abs(dense_joint)))
    np.testing.assert_allclose(ls.sharpness(state, N).trace, np.trace(Hk[:n_kept, :n_kept]),
                               rtol=1e-10)
    g = ls.gradient(state)
    gW, _ = _jax_grad(wm, w_star, v, v_star, activation)
    np.testing.assert_allclose(g.weight_norm, math.sqrt(N) * np.linalg.norm(gW[mask]),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="dense OrderParams"):
        ls.pruning_limit(state, 0.1)


def test_bulk_at_teacher_equals_closed_form():
    """docs/theory.md §10: W = W*, K = M, v = v* = 1, Q = T = I, erf."""
    K, N = 3, 60
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((N, K)))
    w = math.sqrt(N) * U.T
    state = _state(w, w, np.ones(K), np.ones(K), "erf")
    np.testing.assert_allclose(state.Q, np.eye(K), atol=1e-12)
    spec = ls.hessian_spectrum(state, N)
    lo, hi = 2 / (math.pi * math.sqrt(3)) - 1 / math.pi, 2 / (math.pi * math.sqrt(3)) + (K - 1) / math.pi
    np.testing.assert_allclose(spec.bulk, [lo] * (K - 1) + [hi], rtol=1e-12)
    assert spec.rank == K
    np.testing.assert_array_equal(spec.multiplicities[:K], N - K)
    # the dense Hessian at the same weights has these values with multiplicity ~(K-1)N and ~N
    H = _dense_hessian(w, w, np.ones(K), np.ones(K), "erf")
    dense = np.linalg.eigvalsh(H[:K * N, :K * N]) * N
    np.testing.assert_allclose(spec.first_layer(), dense, rtol=1e-9, atol=1e-12)
    assert np.sum(np.isclose(dense, lo, rtol=1e-9)) >= (K - 1) * (N - K)
    assert np.sum(np.isclose(dense, hi, rtol=1e-9)) >= N - K
    # the limit, from the order parameters alone
    teacher = OrderParams(Q=np.eye(K), R=np.eye(K), T=np.eye(K), v=np.ones(K), v_star=np.ones(K))
    limit = ls.hessian_spectrum(teacher)
    np.testing.assert_allclose(limit.bulk, [lo] * (K - 1) + [hi], rtol=1e-12)
    np.testing.assert_array_equal(limit.multiplicities, [1] * K + [0] * (K * K))
    assert ls.gradient(teacher).norm < 1e-14


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_gradient_against_finite_differences(activation):
    N, K, M = 40, 3, 2
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=[1.5, -1.0], seed=3)
    s = _state(w, w_star, v, v_star, activation)
    g = ls.gradient(s, activation)
    assert g.eg == pytest.approx(s.eg(activation), rel=1e-13)
    h = 1e-6

    def eg(**kw):
        return s.replace(**kw).eg(activation)

    for i in range(K):
        for k in range(K):
            E = np.zeros((K, K))
            E[i, k] = E[k, i] = h
            fd = (eg(Q=s.Q + E) - eg(Q=s.Q - E)) / (2 * h)
            expect = g.dQ[i, i] if i == k else 2 * g.dQ[i, k]   # the pair Q_ik = Q_ki moves
            np.testing.assert_allclose(fd, expect, rtol=1e-6, atol=1e-8)
        for n in range(M):
            E = np.zeros((K, M))
            E[i, n] = h
            fd = (eg(R=s.R + E) - eg(R=s.R - E)) / (2 * h)
            np.testing.assert_allclose(fd, g.dR[i, n], rtol=1e-6, atol=1e-8)
        e = np.zeros(K)
        e[i] = h
        fd = (eg(v=s.v + e) - eg(v=s.v - e)) / (2 * h)
        np.testing.assert_allclose(fd, g.dv[i], rtol=1e-6, atol=1e-8)
    # weight gradient and its norm against JAX at the weights
    gW, gv = _jax_grad(w, w_star, v, v_star, activation)
    np.testing.assert_allclose(g.weight_gradient(w, w_star), np.asarray(gW), rtol=1e-9,
                               atol=1e-13)
    np.testing.assert_allclose(g.weight_norm, math.sqrt(N) * np.linalg.norm(np.asarray(gW)),
                               rtol=1e-10)
    np.testing.assert_allclose(g.dv, np.asarray(gv), rtol=1e-10, atol=1e-13)


def test_sharpness_trace_and_top():
    N, K, M = 30, 3, 2
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=1.0, seed=5)
    s = _state(w, w_star, v, v_star, "erf")
    sh = ls.sharpness(s, N)
    H = _dense_hessian(w, w_star, v, v_star, "erf")[:K * N, :K * N]
    np.testing.assert_allclose(sh.trace, np.trace(H), rtol=1e-10)
    np.testing.assert_allclose(sh.top, N * np.linalg.eigvalsh(H)[-1], rtol=1e-10)
    np.testing.assert_allclose(ls.sharpness(s).trace, 2 * np.trace(ls.gradient(s).dQ), rtol=1e-12)


# ------------------------------------------------------------------ pruning limit
@pytest.fixture(scope="module")
def minimum():
    """A gradient-flow minimum (M=2, K=4, v*=2), alpha = 2e4."""
    import odeprune

    s = OrderParams.random(500, 4, 2, v_star=2.0, seed=1)
    # eps_g ~ 2e-9 at the minimum is below what these tolerances resolve (the integrator says
    # so with an OdepruneAccuracyWarning); the tests use the state's Q, R, v, which are accurate
    with pytest.warns(odeprune.OdepruneAccuracyWarning):
        return odeprune.integrate(s, 1.0, 2e4, gradient_flow=True, rtol=1e-10, atol=1e-12,
                                  save_at=[0.0, 2e4]).final


def test_pruning_limit_refuses_non_minimum():
    s = OrderParams.random(500, 4, 2, v_star=2.0, seed=1)
    with pytest.raises(ValueError, match="gradient_flow=True"):
        ls.pruning_limit(s, 0.01)
    with pytest.warns(RuntimeWarning, match="not|minimum"):
        res = ls.pruning_limit(s, 0.01, check="warn", upper_samples=0)
    assert 0 <= res.rho <= 1
    with pytest.raises(ValueError, match="eps"):
        ls.pruning_limit(s, 0.0, check="ignore")
    with pytest.raises(ValueError, match="check"):
        ls.pruning_limit(s, 0.1, check="maybe")


def test_removed_mass_against_edge_map(minimum):
    from scipy import optimize, special

    from odeprune.pruning.edge_map import edge_prune_map

    d = np.diag(minimum.Q)
    for rho in (0.1, 0.4, 0.8):
        pruned = edge_prune_map(minimum, "magnitude_edge_global", rho).state
        np.testing.assert_allclose(ls.removed_mass(minimum.Q, rho),
                                   np.trace(minimum.Q) - np.trace(pruned.Q), rtol=1e-8)
        # independently: the threshold solved here, E[w^2 1{|w|<tau}] = s^2 (erf - 2 t phi)
        tau = optimize.brentq(lambda t: np.mean(special.erfc(t / np.sqrt(2 * d))) - rho, 0.0,
                              20 * d.max(), xtol=1e-15, rtol=1e-15)
        assert ls.global_threshold(minimum.Q, rho) == pytest.approx(tau, rel=1e-12)
        t = tau / np.sqrt(d)
        m = np.sum(d * (special.erf(t / np.sqrt(2)) - 2 * t * np.exp(-t * t / 2)
                        / np.sqrt(2 * np.pi)))
        np.testing.assert_allclose(ls.removed_mass(minimum.Q, rho), m, rtol=1e-10)


def test_pruning_limit_fixed_point_and_finite_N(minimum):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ls.pruning_limit(minimum, 0.01, upper_samples=4000, seed=0)
    mu, m = res.mu, res.removed_mass
    rhs = 1 - np.mean(0.01 / (m * np.clip(mu, 0, None) + 0.01))
    np.testing.assert_allclose(res.rho, rhs, atol=1e-10)
    assert res.rho <= res.rho_upper + 5 * res.rho_upper_se
    assert res.rho <= res.rho_trace + 1e-12
    # Zhang et al.'s formula at finite N: the exact eigenvalues (KN of them, with the outliers)
    # and the removed norm of real weights with coordinates N(0, Q), global magnitude pruning.
    K, N = minimum.K, 20_000
    lam = ls.hessian_spectrum(minimum, N).first_layer() / N
    rng = np.random.default_rng(0)
    ev, U = np.linalg.eigh(minimum.Q)
    W = (U * np.sqrt(np.clip(ev, 0, None))) @ rng.standard_normal((K, N))
    w2 = np.sort((W * W).ravel())
    cum = np.concatenate([[0.0], np.cumsum(w2)])
    D = K * N
    r2 = np.where(lam > 0, 2 * 0.01 / np.where(lam > 0, lam, 1), np.inf)

    def excess(k):  # k kept weights
        wr = cum[D - k]
        term = np.where(np.isinf(r2), 1.0, r2 / (wr + np.where(np.isinf(r2), 0, r2)))
        return k / D - (1 - term.mean())

    lo, hi = 0, D
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    # seed-to-seed spread of the finite-N fixed point (removed norm sampled, K r outliers of
    # weight 1/N): about 4e-4 at N = 20000 (seeds 0-2); 5 spreads
    np.testing.assert_allclose(hi / D, res.rho, atol=2e-3)


def test_upper_bound_against_finite_N_restricted_hessian(minimum):
    """Their upper bound at fixed rho: eigenvalues of the dense population Hessian (jax) of real
    Gaussian weights at N = 300 restricted to the magnitude-removed coordinates, against the
    limit's Monte Carlo over coordinate patterns."""
    K, M, eps, rho, N = minimum.K, minimum.M, 0.01, 0.5, 300
    Q = np.array(minimum.Q)
    m = ls.removed_mass(Q, rho)
    limit, se = ls._upper_bound(Q, ls.gradient(minimum).dQ, eps, m, ls.global_threshold(Q, rho),
                                100_000, np.random.default_rng(0))
    ev, U = np.linalg.eigh(np.array(minimum.covariance()))
    A = U * np.sqrt(np.clip(ev, 0, None))
    finite = []
    for seed in range(2):
        Z = A @ np.random.default_rng(seed).standard_normal((K + M, N))
        H = _dense_hessian(Z[:K], Z[K:], np.array(minimum.v), np.array(minimum.v_star),
                           "erf")[:K * N, :K * N]
        D, k = K * N, int(round(rho * K * N))
        a = np.abs(Z[:K]).ravel()
        removed = np.argsort(a)[:D - k]
        lam = np.linalg.eigvalsh(H[np.ix_(removed, removed)])
        r2 = 2 * eps / np.where(lam > 0, lam, 1.0)
        term = np.where(lam > 0, r2 / (np.sum(a[removed] ** 2) + r2), 1.0)
        finite.append(1 - term.sum() / D)
    # seeds at N = 300 deviate by ~1.5e-3 from the limit (N = 150: up to 2e-2); MC se ~7e-4
    np.testing.assert_allclose(np.mean(finite), limit, atol=5e-3)


def test_actual_limit_consistent_with_prune(minimum):
    import odeprune

    eps = np.array([0.003, 0.03])
    res = ls.actual_limit(minimum, eps, reweight="none", xtol=2e-3)
    eg_star = minimum.eg()
    for r, e in zip(res, eps, strict=True):
        at = odeprune.prune(minimum, "magnitude_edge_global", c=r.c, reweight="none").eg_mean
        below = odeprune.prune(minimum, "magnitude_edge_global", c=r.c - 2e-3,
                               reweight="none").eg_mean
        assert at <= eg_star + e < below
        assert r.eg == pytest.approx(at, rel=1e-12)
    assert res[0].c > res[1].c
    with pytest.raises(ValueError, match="eps"):
        ls.actual_limit(minimum, -1.0)


def test_actual_limit_has_no_silent_fallback(minimum):
    """A failing prune call raises, naming the call (no second implementation to fall back
    on)."""
    with pytest.raises(ValueError, match="actual_limit: prune.*failed.*reweight"):
        ls.actual_limit(minimum, 0.01, reweight="preact")
    assert not hasattr(ls, "magnitude_global_map")


def test_actual_limit_after_retraining(minimum):
    """Retrained (masked gradient flow) errors at the returned c and just below it bracket the
    tolerance; retraining lowers the kept fraction needed."""
    import odeprune

    eps, xtol, alpha = 0.03, 1e-2, 50.0
    res = ls.actual_limit(minimum, eps, retrain_alpha=alpha, xtol=xtol, seed=3)
    assert res.reweight.startswith("retrained")

    def retrained(c):
        sparse = odeprune.prune(minimum, "magnitude_edge_global", c=c, seed=3).sparse_state
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", odeprune.OdepruneAccuracyWarning)
            return odeprune.integrate(sparse, 1.0, alpha, gradient_flow=True,
                                      save_at=[0.0, alpha]).eg[-1]

    assert retrained(res.c) <= minimum.eg() + eps < retrained(res.c - xtol)
    assert res.c < ls.actual_limit(minimum, eps, reweight="refit", xtol=xtol).c


# ------------------------------------------------------------------ finite N: empirical Hessian
def test_empirical_hessian_against_autodiff():
    N, K, M, n = 8, 3, 2, 40
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=1.0, seed=2)
    H = ls.empirical_hessian(w, w_star, v, v_star, n, seed=4, sigma=0.1)
    rng = np.random.default_rng(4)          # the same draws: x, then the label noise
    x = rng.standard_normal((n, N))
    zeta = rng.standard_normal(n)
    from scipy.special import erf

    y = erf(x @ w_star.T / math.sqrt(N) / math.sqrt(2)) @ v_star + 0.1 * zeta
    with jax.enable_x64(True):
        X, Y = jnp.asarray(x), jnp.asarray(y)

        def loss(theta):
            W = theta[:K * N].reshape(K, N)
            phi = jax.scipy.special.erf(X @ W.T / math.sqrt(N) / math.sqrt(2)) @ theta[K * N:]
            return 0.5 * jnp.mean((phi - Y) ** 2)

        H_ad = np.asarray(jax.jit(jax.hessian(loss))(jnp.concatenate([jnp.asarray(w).ravel(),
                                                              jnp.asarray(v)])))
    np.testing.assert_allclose(H, H_ad, rtol=1e-9, atol=1e-12 * np.max(np.abs(H_ad)))


def test_empirical_hessian_converges_to_population():
    N, K, M = 10, 2, 1
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=1.0, seed=6)
    H_pop = ls.population_hessian_weights(w, w_star, v, v_star)
    err = [np.linalg.norm(ls.empirical_hessian(w, w_star, v, v_star, n, seed=s) - H_pop)
           for n in (500, 32_000) for s in range(3)]
    small, large = np.mean(err[:3]), np.mean(err[3:])
    assert large < small / 4          # 1/sqrt(n): a factor 8 expected


def test_bad_input():
    s = OrderParams.random(100, 2, 1)
    with pytest.raises(ValueError, match="N="):
        ls.hessian_spectrum(s, N=2)
    with pytest.raises(ValueError, match="state"):
        ls.gradient(s.Q)
    with pytest.raises(ValueError, match="share N"):
        ls.empirical_hessian(np.ones((2, 3)), np.ones((1, 4)), np.ones(2), np.ones(1), 5)


# ------------------------------------------------------------------ the figure
def test_quick_figure(tmp_path):
    from odeprune.figures import make

    out = make("limit", tmp_path, quick=True, progress=False)
    d = out["data"]
    rows = [r for r in d["rows"] if r["panel"] == "limit"]
    assert rows and all(np.isfinite(r["value"]) for r in rows)
    for r in rows:
        assert 0 <= r["value"] <= 1
    for suffix in (".png", ".json", ".csv"):
        assert (tmp_path / f"limit{suffix}").exists()
