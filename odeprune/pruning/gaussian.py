r"""Gaussian-coordinate integrals of the edge maps (``docs/theory.md`` §6, "Edge-pruning rules
as Gaussian-coordinate maps").

In the thermodynamic limit a coordinate ``z_j = (w_1j..w_Kj, w*_1j..w*_Mj)`` of the weights is a
centred Gaussian vector with the covariance of the order parameters; the edge rules
(:mod:`odeprune.pruning.edge_rules`) and their maps (:mod:`odeprune.pruning.edge_map`) reduce to
one-dimensional expectations over it, computed here:

- Gauss-Hermite (:data:`GH_X`, :data:`GH_W`) for smooth integrands, adaptive quadrature split at
  given points for the others (:func:`expect_x`);
- the truncated moments of a Gaussian (:func:`trunc_prob`, :func:`trunc_first_moment`,
  :func:`trunc_second_moment`), the closed forms of magnitude pruning;
- :func:`solve_threshold`, the threshold that keeps a given fraction;
- :func:`gradient_covariance`, :func:`augmented_covariance`: the law of the gradient coordinate
  ``g_i`` that SNIP scores with (Goldt et al. 2019, S3).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, special

from ..activations import get_activation
from ..ode.rhs import s3_sums
from ..state import OrderParams

__all__ = ["GH_X", "GH_W", "normal_pdf", "normal_sf", "trunc_prob", "trunc_first_moment",
           "trunc_second_moment", "expect_x", "expect_x_smooth", "solve_threshold",
           "positive", "gradient_covariance", "augmented_covariance", "factor",
           "moment_matched"]

#: probabilists' Gauss-Hermite nodes and weights: E f(X) = f(GH_X) @ GH_W, X ~ N(0, 1)
GH_X, GH_W = special.roots_hermitenorm(120)
GH_W = GH_W / np.sqrt(2.0 * np.pi)
_SQRT2 = math.sqrt(2.0)
#: the standard deviations beyond which :func:`expect_x` treats the Gaussian tail as zero
_CUT = 12.0


def normal_pdf(x):
    """Standard normal density."""
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


def normal_sf(x):
    """P(X > x), X ~ N(0, 1)."""
    return 0.5 * special.erfc(np.asarray(x) / _SQRT2)


def positive(x):
    """``x`` floored at the smallest normal double (a safe divisor of magnitudes)."""
    return np.maximum(x, 1e-300)


def trunc_prob(mu, s, tau):
    r""":math:`P(|Y| > \tau)`, :math:`Y \sim N(\mu, s^2)` (vectorised; s may be 0)."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if s <= 0:
        return (np.abs(mu) > tau).astype(float)
    return normal_sf((tau - mu) / s) + special.ndtr((-tau - mu) / s)


def trunc_first_moment(mu, s, tau):
    r""":math:`E[Y 1\{|Y| > \tau\}]`, :math:`Y \sim N(\mu, s^2)` (vectorised; s may be 0)."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if s <= 0:
        return np.where(np.abs(mu) > tau, mu, 0.0)
    a = (tau - mu) / s
    b = (-tau - mu) / s
    return mu * (normal_sf(a) + special.ndtr(b)) + s * (normal_pdf(a) - normal_pdf(b))


def trunc_second_moment(sd: float, tau: float) -> float:
    r""":math:`E[X^2 1\{|X| > \tau\}]`, :math:`X \sim N(0, sd^2)`.

    .. math:: E[X^2 1\{|X|>\tau\}] = sd^2\,[\mathrm{erfc}(t/\sqrt2) + 2t\varphi(t)],\ t = \tau/sd.
    """
    if sd <= 0 or math.isinf(tau):
        return 0.0
    t = tau / sd
    return sd * sd * (float(special.erfc(t / _SQRT2)) + 2.0 * t * float(normal_pdf(t)))


def expect_x_smooth(f, sd):
    """:math:`E[f(X)]`, :math:`X \\sim N(0, sd^2)`, for smooth vectorised ``f``: Gauss-Hermite."""
    return float(f(sd * GH_X) @ GH_W)


def expect_x(f, sd, points=()):
    """:math:`E[f(X)]`, :math:`X \\sim N(0, sd^2)`, by adaptive quadrature (``f`` vectorised)
    over ``|X| < 12 sd``, split at ``points`` (where ``f`` jumps or turns over sharply)."""
    if sd <= 0:
        return float(f(np.array([0.0]))[0])
    pts = sorted({float(p) / sd for p in points if np.isfinite(p) and abs(p) / sd < _CUT})
    edges = [-_CUT, *pts, _CUT]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        val, _ = integrate.quad(lambda u: float(f(np.array([sd * u]))[0]) * normal_pdf(u), lo,
                                hi, epsabs=1e-15, epsrel=1e-12, limit=200)
        total += val
    return total


def solve_threshold(kept_fraction, c, scale):
    """Threshold ``t >= 0`` with ``kept_fraction(t) = c`` (``kept_fraction`` decreasing in
    ``t``; ``scale`` the order of the threshold); 0 when ``kept_fraction(0) <= c``."""
    if c >= 1.0:
        return 0.0
    if c <= 0.0:
        return np.inf
    if kept_fraction(0.0) <= c:
        return 0.0
    hi = scale
    while kept_fraction(hi) > c:
        hi *= 4.0
    return optimize.brentq(lambda t: kept_fraction(t) - c, 0.0, hi, xtol=1e-15 * scale,
                           rtol=1e-14)


def gradient_covariance(state: OrderParams, activation: str | None = None) -> np.ndarray:
    r"""``G`` (K, K+M): covariance of the gradient coordinate ``g_i`` with every field.

    .. math:: G_{i,f} = E[v_i \Delta g'(\lambda_i)\, f] = v_i \sum_c a_c I_3(i, f, c),

    the Stein coefficient of :math:`\partial\epsilon_g/\partial w_i` (up to the positive factor
    ``1/N``, which no score-ranking rule sees). Goldt et al. (2019), S3.
    """
    act = get_activation(state.check_activation(activation))
    S3 = s3_sums(act.code, state.covariance(), state.signed_weights(), state.K)
    return state.v[:, None] * S3


def augmented_covariance(state: OrderParams, activation: str | None = None) -> np.ndarray:
    """Covariance of ``(w_1..w_K, w*_1..w*_M, g_1..g_K)``, shape (2K+M, 2K+M).

    ``var(g_i) = G_i C^+ G_i^T`` (``g_i = b_i . z`` with ``C b_i = G_i``; the pseudo-inverse picks
    the minimum-norm ``b_i``, which gives the same ``g`` on the support of ``z``).
    """
    C = np.array(state.covariance(), dtype=float)
    G = gradient_covariance(state, activation)
    Gg = G @ np.linalg.pinv(C, rcond=1e-12, hermitian=True) @ G.T
    Gg = 0.5 * (Gg + Gg.T)
    return np.block([[C, G.T], [G, Gg]])


def factor(Sigma: np.ndarray) -> np.ndarray:
    """``A`` (L, r) with ``A A^T = Sigma`` on its numerical support (eigenvalues above 1e-12
    times the largest, or 1e-12)."""
    lam, U = np.linalg.eigh(Sigma)
    keep = lam > 1e-12 * max(1.0, float(lam[-1]))
    return U[:, keep] * np.sqrt(lam[keep])


def moment_matched(rng: np.random.Generator, A: np.ndarray, per: int) -> np.ndarray:
    """``per`` coordinates (per, L) with covariance ``A A^T``, moment-matched: the standard
    normal draws are centred and whitened so that their sample covariance is exactly the
    identity, hence that of the coordinates exactly ``A A^T``."""
    r = A.shape[1]
    if r == 0:
        return np.zeros((per, A.shape[0]))
    u = rng.standard_normal((per, r))
    u -= u.mean(axis=0)
    S = u.T @ u / per
    ev, V = np.linalg.eigh(S)
    u = u @ (V / np.sqrt(ev)) @ V.T             # sample covariance exactly I
    return u @ A.T
