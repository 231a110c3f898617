r"""Hessians of finite-N weights: the dense population Hessian of real weights (JAX) and the
Hessian of the empirical loss on ``n`` samples (numpy) -- the finite-N counterparts of
:mod:`odeprune.landscape.spectrum` (docs/theory.md §10).
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import get_activation
from ..state import as_generator, check_weights
from .derivatives import _2_PI

__all__ = ["population_hessian_weights", "empirical_hessian"]


def _weights(w, w_star, v, v_star):
    """Checked ``(w, w_star, v, v_star)`` (:func:`odeprune.state.check_weights`, and ``v``,
    ``v_star`` of one entry per row)."""
    w, w_star = check_weights(w, w_star)
    v, v_star = np.asarray(v, float).ravel(), np.asarray(v_star, float).ravel()
    if v.shape != (w.shape[0],) or v_star.shape != (w_star.shape[0],):
        raise ValueError(f"v must have shape ({w.shape[0]},) and v_star ({w_star.shape[0]},); "
                         f"got {v.shape} and {v_star.shape}")
    return w, w_star, v, v_star


def population_hessian_weights(w, w_star, v, v_star, activation: str = "erf") -> np.ndarray:
    r"""Dense Hessian of the population error :math:`\epsilon_g(W, v)` of finite weights, by JAX.

    Parameters
    ----------
    w : array_like, shape (K, N)
    w_star : array_like, shape (M, N)
    v : array_like, shape (K,)
    v_star : array_like, shape (M,)
    activation : {"erf", "linear", "relu"}

    Returns
    -------
    ndarray, shape (K N + K, K N + K)
        Over ``(w.ravel(), v)`` (row-major ``w``), raw units.

    Notes
    -----
    :math:`\epsilon_g = \frac12 a^T I_2(C) a` with :math:`C` from :math:`Q = WW^T/N`,
    :math:`R = WW^{*T}/N` (docs/theory.md §5), differentiated twice by ``jax.hessian`` in float64
    (a scoped ``jax.enable_x64``). Needs the optional JAX extra (imported here only). The
    independent check of :func:`hessian_spectrum`.
    """
    import jax
    import jax.numpy as jnp

    name = get_activation(activation).name
    w, w_star, v, v_star = _weights(w, w_star, v, v_star)
    K, N = w.shape

    with jax.enable_x64(True):
        ws, vs = jnp.asarray(w_star), jnp.asarray(v_star)

        def eg(theta):
            W = theta[: K * N].reshape(K, N)
            a = jnp.concatenate([theta[K * N:], -vs])
            Z = jnp.concatenate([W, ws])
            C = Z @ Z.T / N
            d = jnp.diag(C)
            if name == "erf":
                I2 = _2_PI * jnp.arcsin(C / jnp.sqrt(jnp.outer(1 + d, 1 + d)))
            elif name == "linear":
                I2 = C
            else:  # relu: off-diagonal closed form, diagonal C_cc / 2 (safe where-trick)
                L = C.shape[0]
                off = ~jnp.eye(L, dtype=bool)
                xz = jnp.outer(d, d)
                Dm = jnp.where(off, xz - C * C, 1.0)
                rho = jnp.where(off, C / jnp.sqrt(xz), 0.0)
                I2 = jnp.where(off, (jnp.sqrt(Dm) + C * (jnp.pi / 2 + jnp.arcsin(rho)))
                               / (2 * jnp.pi), 0.5 * C)
            return 0.5 * a @ I2 @ a

        theta = jnp.concatenate([jnp.asarray(w).ravel(), jnp.asarray(v)])
        H = jax.jit(jax.hessian(eg))(theta)
        return np.asarray(H, dtype=float)


def _g_second(name: str, x: np.ndarray) -> np.ndarray:
    if name == "erf":
        return -x * math.sqrt(2.0 / math.pi) * np.exp(-0.5 * x * x)
    return np.zeros_like(x)     # linear; ReLU almost everywhere


def empirical_hessian(w, w_star, v, v_star, n: int, seed: int | np.random.Generator | None = 0,
                      activation: str = "erf", sigma: float = 0.0,
                      second_layer: bool = True) -> np.ndarray:
    r"""Dense Hessian of the empirical loss on ``n`` fresh Gaussian samples (numpy).

    .. math:: \hat L(W, v) = \frac{1}{2n}\sum_{\mu=1}^n (\phi(x_\mu) - y_\mu)^2,\quad
              \nabla^2\hat L = \frac1n\sum_\mu \big[\nabla\phi\nabla\phi^T + \Delta_\mu\nabla^2\phi\big]

    with :math:`\nabla_{w_i}\phi = v_i g'(\lambda_i)x/\sqrt N`, :math:`\nabla_{v_i}\phi = g(\lambda_i)`,
    :math:`\nabla^2_{w_iw_i}\phi = v_i g''(\lambda_i)xx^T/N`,
    :math:`\nabla^2_{v_iw_i}\phi = g'(\lambda_i)x/\sqrt N`. For ReLU :math:`g'' = 0` almost everywhere
    (the kink has measure zero for a finite sample).

    Parameters
    ----------
    w, w_star, v, v_star : array_like
        As :func:`population_hessian_weights`.
    n : int
        Training-set size; inputs :math:`x\sim N(0, I_N)`, labels
        :math:`y = \sum_n v^*_n g(\nu_n) + \sigma\zeta`.
    seed : int or Generator
    activation : {"erf", "linear", "relu"}
    sigma : float
        Label-noise standard deviation.
    second_layer : bool
        Include ``v`` (shape ``(K N + K, K N + K)``) or only ``W`` (``(K N, K N)``).

    Returns
    -------
    ndarray
        Over ``(w.ravel(), v)`` as :func:`population_hessian_weights`.
    """
    act = get_activation(activation)
    name = act.name
    w, w_star, v, v_star = _weights(w, w_star, v, v_star)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer (training-set size)")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma={sigma!r} must be >= 0")
    rng = as_generator(seed)
    K, N = w.shape
    x = rng.standard_normal((n, N))
    lam = x @ w.T / math.sqrt(N)
    nu = x @ w_star.T / math.sqrt(N)
    y = act.g(nu) @ v_star + sigma * rng.standard_normal(n)
    gl, g1, g2 = act.g(lam), act.g_prime(lam), _g_second(name, lam)
    delta = gl @ v - y
    # J: (n, K N): d phi / d w_ij = v_i g'(lam_i) x_j / sqrt(N)
    Jw = ((v * g1)[:, :, None] * x[:, None, :]).reshape(n, K * N) / math.sqrt(N)
    H = Jw.T @ Jw / n
    for i in range(K):
        blk = slice(i * N, (i + 1) * N)
        H[blk, blk] += (x * (delta * v[i] * g2[:, i])[:, None]).T @ x / (n * N)
    if not second_layer:
        return H
    Hv = gl.T @ gl / n
    Hwv = Jw.T @ gl / n                            # (K N, K): Gauss-Newton cross term
    for i in range(K):
        Hwv[i * N:(i + 1) * N, i] += x.T @ (delta * g1[:, i]) / (n * math.sqrt(N))
    return np.block([[H, Hwv], [Hwv.T, Hv]])
