"""ReLU networks in the limit (issue 18): the Gaussian averages of EQUATIONS.md §3b and the
four-point average I4 against Monte Carlo and adaptive cubature, the ODE against finite
differences of eg and against finite-N SGD, JAX against numba, pruning maps, the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import random_cov
from scipy.integrate import cubature
from scipy.special import ndtr

import odeprune
from odeprune import OrderParams
from odeprune import activations as A
from odeprune._rng import normals_numpy
from odeprune.ode.dynamics import rhs_state
from odeprune.sim import simulate

RELU = A.RELU
act = A.get_activation("relu")


# ------------------------------------------------------------------ independent references
def relu(x):
    return np.where(x > 0, x, 0.0)


def theta(x):
    return (x > 0).astype(float)


def mc_means(C, fns, n, seed, chunk=1_000_000):
    """Means and standard errors of ``fns[j](x, r, t)`` over ``x ~ N(0, C)`` (shape (L, m)),
    with ``r = relu(x)`` and ``t = theta(x)``; ``n`` samples in chunks.

    ``C`` may be singular (sampled through its eigendecomposition)."""
    rng = np.random.default_rng(seed)
    lam, U = np.linalg.eigh(C)
    B = U * np.sqrt(np.clip(lam, 0, None))
    s1 = np.zeros(len(fns))
    s2 = np.zeros(len(fns))
    done = 0
    while done < n:
        m = min(chunk, n - done)
        x = B @ rng.standard_normal((C.shape[0], m))
        r, t = relu(x), theta(x)
        for j, f in enumerate(fns):
            v = f(x, r, t)
            s1[j] += v.sum()
            s2[j] += (v * v).sum()
        done += m
    mean = s1 / n
    se = np.sqrt(np.maximum(s2 / n - mean ** 2, 0) / (n - 1))
    return mean, se


def cubature_I4(C, rtol=1e-11, atol=1e-13):
    """I4(0,1,2,3) by adaptive cubature over a, b, c > 0 with E[relu(d) | a, b, c] in closed form
    (mu Phi(mu/s) + s phi(mu/s)): an independent 3-D reference, slow and accurate."""
    S = C[:3, :3]
    Si = np.linalg.inv(S)
    beta = Si @ C[:3, 3]
    s = math.sqrt(C[3, 3] - C[:3, 3] @ beta)
    norm = 1 / math.sqrt((2 * math.pi) ** 3 * np.linalg.det(S))

    def f(x):
        mu = x @ beta
        z = mu / s
        er = mu * ndtr(z) + s * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return norm * np.exp(-0.5 * np.einsum("...i,ij,...j->...", x, Si, x)) * x[..., 2] * er

    res = cubature(f, np.zeros(3), np.full(3, np.inf), rtol=rtol, atol=atol,
                   max_subdivisions=200_000)
    assert res.status == "converged"
    return res.estimate, res.error


def _near_aligned(seed, pairs, delta):
    """A 4x4 covariance from 6-vectors with the rows of each pair (i, j) within ``delta``."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(4, 6)) / math.sqrt(6)
    for i, j in pairs:
        B[j] = B[i] + delta * rng.normal(size=6)
    return B @ B.T


COVS = {
    "generic-0.3": random_cov(np.random.default_rng(1), 4, scale=0.3),
    "generic-1": random_cov(np.random.default_rng(2), 4, scale=1.0),
    "generic-3": random_cov(np.random.default_rng(3), 4, scale=3.0),
    "a~c 1e-3": _near_aligned(4, [(0, 2)], 1e-3),
    "c~d 1e-6, a~b 1e-3": _near_aligned(5, [(2, 3), (0, 1)], (1e-6)),
    "rank 3": (lambda B: B @ B.T)(np.random.default_rng(6).normal(size=(4, 3))),
    "anti-aligned a,c": (lambda B: B @ B.T)(
        np.vstack([b := np.random.default_rng(7).normal(size=(3, 6)), -b[:1]])),
}


@pytest.mark.parametrize("name", sorted(COVS))
def test_relu_averages_match_monte_carlo(name):
    """I2, I3, J2 (§3b) and I4, with repeated and distinct fields, within 5 standard errors of
    10^7 samples."""
    C = COVS[name]
    checks = [
        (lambda x, r, t: r[0] * r[1], act.I2(C, 0, 1)),
        (lambda x, r, t: r[2] * r[3], act.I2(C, 2, 3)),
        (lambda x, r, t: r[1] * r[1], act.I2(C, 1, 1)),
        (lambda x, r, t: t[0] * x[1] * r[2], act.I3(C, 0, 1, 2)),
        (lambda x, r, t: t[3] * x[3] * r[0], act.I3(C, 3, 3, 0)),
        (lambda x, r, t: t[2] * x[0] * r[2], act.I3(C, 2, 0, 2)),
        (lambda x, r, t: t[0] * t[3], act.J2(C, 0, 3)),
        (lambda x, r, t: t[0] * t[1] * r[2] * r[3], act.I4(C, 0, 1, 2, 3)),
        (lambda x, r, t: t[0] * r[1] * r[1], act.I4(C, 0, 0, 1, 1)),
        (lambda x, r, t: t[1] * r[2] * r[0], act.I4(C, 2, 1, 2, 0)),
        (lambda x, r, t: t[1] * t[3] * r[0] * r[0], act.I4(C, 1, 3, 0, 0)),
        (lambda x, r, t: r[3] * r[3], act.I4(C, 3, 3, 3, 3)),
    ]
    exact = np.array([e for _, e in checks])
    assert np.all(np.isfinite(exact))
    mean, se = mc_means(C, [f for f, _ in checks], 10_000_000, seed=sorted(COVS).index(name))
    # 5 standard errors (plus round-off for the exactly-zero averages of the anti-aligned case)
    assert np.all(np.abs(mean - exact) < 5 * se + 1e-12), (mean - exact) / np.maximum(se, 1e-300)


def test_relu_closed_forms_against_elementary_cases():
    # Cho & Saul's arc-cosine kernel of degree 1 and Sheppard's quadrant probability
    for rho in (-0.9, -0.3, 0.0, 0.5, 0.99):
        C = np.array([[2.0, 2 * rho], [2 * rho, 2.0]])
        theta_ = math.acos(rho)
        np.testing.assert_allclose(
            act.I2(C, 0, 1), 2.0 / (2 * math.pi) * (math.sin(theta_) + (math.pi - theta_) * rho),
            rtol=1e-14)
        np.testing.assert_allclose(act.J2(C, 0, 1), (math.pi - theta_) / (2 * math.pi),
                                   rtol=1e-14)
    # one field: E[theta(x) x^2] = C/2, E[theta(x) relu(x) y] = C_xy/2
    C = np.array([[1.7, 0.4], [0.4, 0.9]])
    np.testing.assert_allclose(act.I4(C, 0, 0, 0, 0), 1.7 / 2, rtol=1e-15)
    np.testing.assert_allclose(act.I2(C, 0, 0), 1.7 / 2, rtol=1e-15)
    np.testing.assert_allclose(act.I3(C, 0, 1, 0), 0.4 / 2, rtol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["generic-0.3", "generic-1", "generic-3", "c~d 1e-4",
                                  "b~d 1e-2"])
def test_relu_I4_against_adaptive_cubature(name):
    C = {"c~d 1e-4": _near_aligned(8, [(2, 3)], 1e-4),
         "b~d 1e-2": _near_aligned(9, [(1, 3)], 1e-2)}.get(name, COVS.get(name))
    ref, err = cubature_I4(C)
    assert err < 1e-11
    np.testing.assert_allclose(act.I4(C, 0, 1, 2, 3), ref, rtol=0, atol=1e-9)


def test_relu_I4_is_continuous_towards_exact_alignment():
    """The merged closed forms (exactly aligned fields) are the limits of the 4-D integral: the
    gap closes linearly in the distance (the perturbation changes the norms at first order)."""
    rng = np.random.default_rng(11)
    B0 = rng.normal(size=(4, 6))
    pert = rng.normal(size=6)
    for i, j in [(0, 1), (0, 2), (2, 3), (1, 3)]:
        def I4(delta):
            B = B0.copy()
            B[j] = B[i] + delta * pert
            return act.I4(B @ B.T, 0, 1, 2, 3)
        exact = I4(0.0)
        gaps = np.array([abs(I4(d) - exact) for d in (1e-4, 1e-5, 1e-6)])
        np.testing.assert_allclose(gaps[1:] / gaps[:-1], 0.1, rtol=0.05)


def test_relu_degenerate_covariances_are_finite():
    z = np.zeros((4, 4))
    C = random_cov(np.random.default_rng(0), 4)
    # a zero-norm unit is dead: theta(0) = relu(0) = 0
    for k in range(4):
        Ck = C.copy()
        Ck[k, :] = Ck[:, k] = 0.0
        assert act.I4(Ck, 0, 1, 2, 3) == 0.0
        assert act.I2(Ck, k, (k + 1) % 4) == 0.0
        assert act.I3(Ck, k, (k + 1) % 4, (k + 2) % 4) == 0.0
        assert act.J2(Ck, k, (k + 1) % 4) == 0.0
    assert act.I4(z, 0, 1, 2, 3) == 0.0
    # singular Q and aligned units: finite everywhere in the ODE
    Q = np.ones((3, 3)) * 1.3
    s = OrderParams(Q=Q, R=np.full((3, 2), 0.5), T=np.eye(2), v=[1.0, -0.5, 2.0],
                    v_star=[1.0, 1.0], activation="relu")
    dQ, dR, dv = rhs_state(s, eta=0.5, eta_v=0.5, sigma=0.3)
    assert np.all(np.isfinite(dQ)) and np.all(np.isfinite(dR)) and np.all(np.isfinite(dv))
    # a rank-deficient 4x4 block without aligned pairs (d = a + b - c/2)
    B = np.random.default_rng(1).normal(size=(3, 5))
    B = np.vstack([B, B[0] + B[1] - 0.5 * B[2]])
    assert np.isfinite(act.I4(B @ B.T, 0, 1, 2, 3))


# ------------------------------------------------------------------ the ODE
def _eg_relu_numpy(Q, R, T, v, v_star):
    """eg (EQUATIONS.md §5) with the ReLU I2 of §3b, in plain numpy."""
    C = np.block([[Q, R], [R.T, T]])
    a = np.concatenate([v, -v_star])
    dd = np.outer(np.diag(C), np.diag(C))
    rho = np.clip(C / np.sqrt(dd), -1, 1)
    I2 = (np.sqrt(np.clip(dd - C ** 2, 0, None)) + C * (np.pi / 2 + np.arcsin(rho))) / (2 * np.pi)
    return 0.5 * a @ I2 @ a


def test_relu_first_order_terms_are_the_gradient_of_eg():
    s = OrderParams.random(80, 4, 3, v_star=[2.0, -1.0, 1.5], seed=7, activation="relu")
    dQ, dR, dv = rhs_state(s, eta=0.7, eta_v=0.3, gradient_flow=True)
    Q, R, T, v, vs = (np.array(x, dtype=float) for x in (s.Q, s.R, s.T, s.v, s.v_star))
    K, M = R.shape
    h = 1e-6

    def diff(f, X):
        out = np.zeros_like(X)
        for idx in np.ndindex(X.shape):
            E = np.zeros_like(X)
            E[idx] = h
            out[idx] = (f(X + E) - f(X - E)) / (2 * h)
        return out

    D = diff(lambda X: _eg_relu_numpy(X, R, T, v, vs), Q)
    F = diff(lambda X: _eg_relu_numpy(Q, X, T, v, vs), R)
    gv = diff(lambda X: _eg_relu_numpy(Q, R, T, X, vs), v)
    S = D + D.T
    G = S @ Q + F @ R.T
    np.testing.assert_allclose(dQ, -0.7 * (G + G.T), atol=1e-7)  # O(h^2) + round-off/h
    np.testing.assert_allclose(dR, -0.7 * (S @ R + F @ T), atol=1e-7)
    np.testing.assert_allclose(dv, -0.3 * gv, atol=1e-7)
    np.testing.assert_allclose(s.eg(), _eg_relu_numpy(Q, R, T, v, vs), rtol=1e-13)


def test_relu_second_order_terms_match_monte_carlo():
    # eta^2 v_i v_k E[theta(l_i) theta(l_k) Delta^2]: the whole I4 sum with every index pattern
    s = OrderParams.random(60, 3, 2, v_star=[1.5, -2.0], seed=3, activation="relu")
    eta, sigma = 0.6, 0.4
    second = (rhs_state(s, eta=eta, eta_v=eta, sigma=sigma)[0]
              - rhs_state(s, eta=eta, eta_v=eta, gradient_flow=True)[0])
    a = s.signed_weights()
    fns = [(lambda x, r, t, i=i, k=k: eta ** 2 * s.v[i] * s.v[k] * t[i] * t[k]
            * ((a @ r) ** 2 + sigma ** 2)) for i in range(3) for k in range(i, 3)]
    mean, se = mc_means(s.covariance(), fns, 4_000_000, seed=5)
    expected = np.array([second[i, k] for i in range(3) for k in range(i, 3)])
    assert np.all(np.abs(mean - expected) < 5 * se), (mean - expected) / se


def test_relu_fixed_point_teacher_equals_student():
    T = np.array([[1.0, 0.3], [0.3, 0.8]])
    s = OrderParams(Q=T, R=T, T=T, v=[1.0, 2.0], v_star=[1.0, 2.0], activation="relu")
    for part in rhs_state(s, eta=0.5, eta_v=0.5):
        np.testing.assert_allclose(part, 0.0, atol=1e-15)
    assert abs(s.eg()) < 1e-15


def _gaps(N, seeds, alpha_max, save_at, K, M):
    ens = simulate(N, K, M, 0.5, alpha_max, save_at=save_at, seeds=seeds, n_test=0,
                   activation="relu", v_star=1.0)
    return np.array([r.eg - odeprune.integrate(r.initial, 0.5, alpha_max, save_at=r.alpha).eg
                     for r in ens])


@pytest.mark.slow
def test_relu_ode_agrees_with_sgd_and_gap_shrinks_with_N():
    """ODE vs finite-N online SGD (K=3, M=2, eta=0.5, v*=1), 8 seeds at N = 500, 2000, 8000: the
    mean gap is zero within 5 standard errors at every time, and the typical gap shrinks with N
    (like 1/sqrt N: a factor ~2 per 4x N). The gaps are heavy-tailed (a seed that leaves the
    early transient late is off by ~0.1 at alpha=0.5 for N=500 and 2000 alike), so the typical
    size is the median of |gap| over seeds and times, not the RMS."""
    save_at = [0.5, 1, 2, 3, 4]
    typical = {}
    for N in (500, 2000, 8000):
        D = _gaps(N, list(range(8)), 4, save_at, 3, 2)[:, 1:]  # alpha = 0 is a zero gap
        mean, sem = D.mean(axis=0), D.std(axis=0, ddof=1) / math.sqrt(D.shape[0])
        assert np.all(np.abs(mean) <= 5 * sem), (N, mean, sem)
        typical[N] = float(np.median(np.abs(D)))
    assert typical[2000] < 0.8 * typical[500] and typical[8000] < 0.8 * typical[2000], typical


def test_relu_sgd_kernel_matches_numpy_twin():
    N, K, M, steps, eta, eta_v, sigma = 20, 3, 2, 40, 0.7, 0.3, 0.2
    res = simulate(N, K, M, eta=eta, alpha_max=steps / N, eta_v=eta_v, sigma=sigma, v_star=1.5,
                   activation="relu", seed=11, n_test=0)
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, 1.5, 11)
    rng, noise_rng, _ = odeprune.sim.sgd_streams(11)
    for _ in range(steps):
        x = normals_numpy(rng, N)  # the documented input stream (odeprune._rng)
        y = v_star @ relu(w_star @ x / math.sqrt(N)) + sigma * noise_rng.standard_normal()
        lam = w @ x / math.sqrt(N)
        delta = v @ relu(lam) - y
        w, v = (w - (eta / math.sqrt(N)) * (v * delta * theta(lam))[:, None] * x[None, :],
                v - (eta_v / N) * delta * relu(lam))
    np.testing.assert_allclose(res.w, w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.v_final, v, rtol=1e-12, atol=1e-12)
    assert res.metadata["activation"] == "relu"


def test_unknown_activation_code_raises_in_simulation_kernel():
    from odeprune.sim.kernel import make_sgd_params, sgd_steps

    K, N, M = 2, 5, 1
    rng, noise_rng, _ = odeprune.sim.sgd_streams(0)
    p = make_sgd_params(np.ones((M, N)), np.ones(M), 0.1, 0.1, 0.0, 9, True)
    with pytest.raises(ValueError, match="unknown activation code"):
        sgd_steps(np.ones((K, N)), np.ones(K), np.empty(N), np.zeros(1, np.int64), rng,
                  noise_rng, 1, p)
    with pytest.raises(ValueError, match="activation='tanh' is unknown"):
        simulate(10, 2, 1, 0.5, 1.0, activation="tanh")


def _relu_states():
    """Covariances for the S4 sums: random, trained (nearly aligned students), and degenerate
    ones (a zero-norm unit, exactly aligned and anti-aligned students, a unit aligned with a
    teacher), each as (Q, R, T, v, v_star)."""
    rng = np.random.default_rng(3)
    K, M = 4, 2
    out = []
    s = OrderParams.random(500, K, M, v_star=4.0, seed=0, activation="relu")
    out.append((s.Q, s.R, s.T, s.v, s.v_star))
    late = odeprune.integrate(s, 0.5, 60.0, save_at=[0.0, 60.0], progress=False,
                              method="dopri5").final
    out.append((late.Q, late.R, late.T, late.v, late.v_star))
    W = rng.normal(size=(K, 50)) / np.sqrt(50)
    B = rng.normal(size=(M, 50)) / np.sqrt(50)
    W[1] = 0.0                 # a zero-norm (dead) unit
    W[2] = 1.7 * W[0]          # exactly aligned with unit 0 (correlation rounds to 1 or not)
    W[3] = -0.4 * B[1]         # anti-aligned with teacher 1
    for Wx in (W, np.vstack([W[:1], 2.0 * W[:1], B[:1], W[3:]])):
        out.append((Wx @ Wx.T, Wx @ B.T, B @ B.T, rng.normal(size=K), np.array([1.0, -2.0])))
    return out


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_relu_specialised_s4_equals_generic_to_roundoff(sigma):
    # the ReLU right-hand side (fast=True: activations.relu_s4_sums, one path integral per set
    # of four fields, the terms summed per set) against the generic sum of relu_I4 calls
    # (fast=False): the same terms in another order, so equal to the round-off of the sums
    # (before the all-pairs kernel the two were equal bit for bit; the bitwise check of the
    # terms themselves is tests/test_activations_relu_sums.py)
    from odeprune.ode.rhs import make_params, make_work, pack, rhs, s4_sums, unpack_cov

    for Q, R, T, v, vs in _relu_states():
        y = pack(Q, R, v)
        K, M = R.shape
        fast = rhs(y, K, M, T, vs, 0.5, 0.3, sigma, act=RELU, fast=True)
        slow = rhs(y, K, M, T, vs, 0.5, 0.3, sigma, act=RELU, fast=False)
        assert np.all(np.isfinite(fast))
        np.testing.assert_allclose(fast, slow, rtol=0,
                                   atol=1e-14 * (1.0 + np.max(np.abs(slow))))
        # and each pair's sum against relu_I4 summed in plain Python (independent loop)
        p = make_params(K, M, T, vs, 0.5, 0.3, sigma, act=RELU)
        w = make_work(K, M)
        unpack_cov(y, p, w.C, w.a)
        s4_sums(p, w)
        C, a = w.C, w.a
        for i in range(K):
            for k in range(i, K):
                # c <= d, off-diagonal doubled (I4 is symmetric in c, d only to the accuracy of
                # its quadrature, ~1e-11)
                terms = [(1.0 if c == d else 2.0) * a[c] * a[d]
                         * A.relu_I4(C[i, i], C[i, k], C[i, c], C[i, d], C[k, k], C[k, c],
                                     C[k, d], C[c, c], C[c, d], C[d, d])
                         for c in range(K + M) for d in range(c, K + M)]
                terms.append(sigma ** 2 * A.relu_J2(C[i, i], C[i, k], C[k, k]))
                # round-off of a sum in another order: relative to the sum of |terms|
                np.testing.assert_allclose(w.S4[i, k], sum(terms), rtol=0,
                                           atol=1e-14 * (1.0 + sum(map(abs, terms))))


# ------------------------------------------------------------------ JAX backend
@pytest.fixture
def jax():
    """The optional JAX extra (only these tests skip without it)."""
    return pytest.importorskip("jax")


def test_relu_jax_rhs_and_eg_equal_numba(jax):
    from odeprune.ode import jax_backend as jb
    from odeprune.ode.rhs import pack, rhs

    states = [OrderParams.random(200, 4, 2, v_star=[1.0, 2.0], seed=s, activation="relu")
              for s in range(2)]
    Q = np.kron(np.eye(2), np.ones((2, 2)))  # exactly aligned students (specialised)
    states.append(OrderParams(Q=Q, R=np.kron(np.eye(2), np.ones((2, 1))), T=np.eye(2),
                              v=np.full(4, 0.5), v_star=np.ones(2), activation="relu"))
    for s in states:
        y = pack(s.Q, s.R, s.v)
        for gf in (True, False):
            ref = rhs(y, s.K, s.M, s.T, s.v_star, 0.5, 0.3, 0.25, act=RELU, train_v=True,
                      sgd=not gf, fast=True)
            got = jb.rhs(y, s.K, s.M, s.T, s.v_star, 0.5, 0.3, 0.25, "relu", gradient_flow=gf)
            # first-order terms: closed forms on both sides; eta^2 terms: JAX's fixed 252-node
            # rule against numba's adaptive one (1e-12), and for the distinct but exactly
            # aligned students of the last state integral (JAX) against merged closed form
            # (numba; 3e-11 measured)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15 if gf else 1e-10)
        np.testing.assert_allclose(jb.eg(s), s.eg(), rtol=1e-13, atol=1e-16)


def test_unknown_activation_code_raises_in_jax(jax):
    from odeprune.ode import jax_backend as jb

    C = jax.numpy.eye(3)
    a = jax.numpy.ones(3)
    for fn in (lambda: jb._S3(C, a, 2, 7), lambda: jb._I2_rows(C, 2, 7),
               lambda: jb._S4_J2(C, a, jb._layout(2, 1), 7)):
        with pytest.raises(ValueError, match="unknown activation code"):
            fn()


# ------------------------------------------------------------------ pruning maps
def test_relu_activation_gram_kernel_and_refit():
    """The activation-Gram DPP kernel is I2 (checked by Monte Carlo), and the 'refit' second
    layer is the minimiser of eg over the kept units' weights (gradient zero by differences)."""
    from odeprune.pruning import node

    s = odeprune.integrate(OrderParams.random(300, 4, 2, v_star=1.0, seed=2, activation="relu"),
                           0.5, 20.0).final
    L = node.node_kernel(s, "activation")
    iu = np.triu_indices(4)
    fns = [(lambda x, r, t, i=i, k=k: r[i] * r[k]) for i, k in zip(*iu)]
    mean, se = mc_means(s.covariance(), fns, 4_000_000, seed=9)
    assert np.all(np.abs(mean - L[iu]) < 5 * se)
    res = odeprune.prune(s, method="importance_node", k=2, reweight="refit")
    kept = res.subsets[0]
    pruned = OrderParams(Q=res.Q[0], R=res.R[0], T=s.T, v=res.v[0], v_star=s.v_star,
                         activation="relu")
    h = 1e-6
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        grad = (pruned.replace(v=pruned.v + e).eg() - pruned.replace(v=pruned.v - e).eg()) / (2 * h)
        assert abs(grad) < 1e-7, (kept, grad)
    none = odeprune.prune(s, method="importance_node", k=2, reweight="none").eg_values[0]
    assert res.eg_values[0] <= none


# ------------------------------------------------------------------ the figure
def test_relu_quick_figure(tmp_path):
    from odeprune.figures import FIGURES, get, make

    assert FIGURES["relu"] == "relu"
    out = make("relu", tmp_path, quick=True, cache_dir=None, progress=False)
    d = out["data"]
    for suffix in (".png", ".pdf", ".json", ".csv"):
        path = tmp_path / f"relu{suffix}"
        assert path.exists() and path.stat().st_size > 0, path
    assert d["figure"] == "relu" and d["params"] == get("relu").QUICK
    assert np.all(np.isfinite([r["mean"] for r in d["rows"]]))
    for K in d["params"]["Ks"]:
        c = d["curves"][str(K)]
        # both layers start from the same initial order parameters
        np.testing.assert_allclose(np.array(c["sim"])[:, 0], np.array(c["ode"])[:, 0],
                                   rtol=1e-12)
    assert "NaN" not in (tmp_path / "relu.json").read_text()
    prune = [r for r in d["rows"] if r["panel"] == "prune"]
    unpruned = [r["mean"] for r in prune if r["method"] == "unpruned"][0]
    # keeping everything (k = K, c = 1) is the unpruned network for every method; refitting its
    # second layer can only lower the error (the least-squares optimum over v)
    full = [r["mean"] for r in prune if r["k"] == r["K"] and r["method"] != "unpruned"
            and r["reweight"] == "none"]
    np.testing.assert_allclose(full, unpruned, rtol=1e-8, atol=1e-12)
    refit = [r["mean"] for r in prune if r["k"] == r["K"] and r["reweight"] == "refit"]
    assert refit and np.all(np.array(refit) <= unpruned * (1 + 1e-12))

