r"""The compiled online-SGD step (``docs/theory.md`` §1; Goldt et al. 2019, Section 2).

.. math::

    w_k \leftarrow w_k - \frac{\eta}{\sqrt N} v_k \Delta g'(\lambda_k) x, \qquad
    v_k \leftarrow v_k - \frac{\eta_v}{N} \Delta g(\lambda_k), \qquad
    \Delta = \sum_k v_k g(\lambda_k) - \Big(\sum_n v^*_n g(\nu_n) + \sigma\zeta\Big),

with ``lambda_k = w_k . x / sqrt(N)``, ``nu_n = w*_n . x / sqrt(N)``. Kernels take arrays, the
run's generators and one :class:`SGDParams` record (fixed per run), as the ODE kernels take
:class:`odeprune.ode.rhs.Params`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .._rng import fill_normals
from ..activations import check_code
from ..activations import g as _g
from ..activations import g_prime as _g_prime

__all__ = ["SGDParams", "make_sgd_params", "sgd_steps", "fields", "FASTMATH"]

# Reassociation lets LLVM vectorise the dot products; no 'nnan'/'ninf' so that divergence
# (a non-finite error) is still detected.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


class SGDParams(NamedTuple):
    """What a run's SGD steps need besides the weights and the generators.

    ``eta_w = eta / sqrt(N)``; ``eta_v`` is already divided by N; ``mask`` (K, N) multiplies
    every first-layer update when ``has_mask`` (pruned weights stay zero)."""

    w_star: np.ndarray
    v_star: np.ndarray
    mask: np.ndarray
    has_mask: bool
    eta_w: float
    eta_v: float
    sigma: float
    act: int
    train_v: bool
    inv_sqrt_N: float
    decay: float
    l1_step: float


def make_sgd_params(w_star, v_star, eta, eta_v, sigma, act, train_v, mask=None,
                    weight_decay=0.0, l1=0.0) -> SGDParams:
    """The record of a run at input dimension ``N = w_star.shape[1]`` (learning rates as the user
    gives them: ``eta``, ``eta_v``). Regularisers (``docs/theory.md`` §11), per step:
    ``w <- (1 - eta gamma / N) w`` (weight decay ``gamma``) and the L1 proximal step
    ``w <- sign(w) max(|w| - eta lambda / N, 0)`` (``lambda = l1``), after the gradient step."""
    w_star = np.ascontiguousarray(w_star, dtype=float)
    N = w_star.shape[1]
    inv_sqrt_N = 1.0 / math.sqrt(N)
    has_mask = mask is not None
    return SGDParams(w_star, np.ascontiguousarray(v_star, dtype=float),
                     np.ascontiguousarray(mask, dtype=float) if has_mask else np.ones((1, 1)),
                     has_mask, float(eta) * inv_sqrt_N, float(eta_v) / N, float(sigma),
                     int(act), bool(train_v), inv_sqrt_N, float(eta) * float(weight_decay) / N,
                     float(eta) * float(l1) / N)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)
def sgd_steps(w, v, x, counter, rng, noise_rng, n_steps, p):
    """``n_steps`` online-SGD steps, in place on ``w`` (K, N), ``v`` (K,), ``rng``, ``counter``.

    ``x`` (N,) is scratch. ``counter[0]`` counts the steps done (updated with the weights, so the
    state seen from Python is always consistent). Returns ``False`` (and stops before updating)
    when the error ``Delta`` of a step is not finite.
    """
    act = p.act
    check_code(act)  # an unknown activation code is an error (registry: odeprune.activations)
    K, N = w.shape
    w_star, v_star, mask = p.w_star, p.v_star, p.mask
    M = w_star.shape[0]
    inv_sqrt_N, eta_w, eta_v, sigma = p.inv_sqrt_N, p.eta_w, p.eta_v, p.sigma
    has_mask, train_v = p.has_mask, p.train_v
    gl = np.empty(K)
    gp = np.empty(K)
    for _ in range(n_steps):
        fill_normals(rng, x)  # x ~ N(0, I_N): xoshiro256++ seeded from rng, ziggurat (_rng.py)
        y = 0.0
        for n in range(M):
            acc = 0.0
            for j in range(N):
                acc += w_star[n, j] * x[j]
            nu = acc * inv_sqrt_N
            y += v_star[n] * _g(act, nu)
        if sigma > 0.0:
            y += sigma * noise_rng.standard_normal()
        phi = 0.0
        for k in range(K):
            acc = 0.0
            for j in range(N):
                acc += w[k, j] * x[j]
            lam = acc * inv_sqrt_N
            gl[k] = _g(act, lam)
            gp[k] = _g_prime(act, lam)
            phi += v[k] * gl[k]
        delta = phi - y
        if not math.isfinite(delta):
            return False
        for k in range(K):
            c = eta_w * v[k] * delta * gp[k]
            if has_mask:
                for j in range(N):
                    w[k, j] -= c * x[j] * mask[k, j]
            else:
                for j in range(N):
                    w[k, j] -= c * x[j]
        if p.decay > 0.0:
            shrink = 1.0 - p.decay
            for k in range(K):
                for j in range(N):
                    w[k, j] *= shrink
        if p.l1_step > 0.0:
            t = p.l1_step
            for k in range(K):
                for j in range(N):
                    a = abs(w[k, j]) - t
                    w[k, j] = math.copysign(a, w[k, j]) if a > 0.0 else 0.0
        if train_v:
            for k in range(K):
                v[k] -= eta_v * delta * gl[k]
        counter[0] += 1
    return True


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)
def fields(X, w, scale, out):
    """``out[i, k] = scale * X[i] . w[k]``: fields of a test set, ``X`` (n, N), ``w`` (K, N)."""
    n, N = X.shape
    K = w.shape[0]
    for i in range(n):
        for k in range(K):
            acc = 0.0
            for j in range(N):
                acc += X[i, j] * w[k, j]
            out[i, k] = acc * scale
