"""Gaussian integrals of the deep-network activations: one- and two-dimensional expectations
by Gauss-Hermite quadrature, and the closed forms where they exist.

The activations are ``"tanh"``, ``"erf"`` -- **erf(x / sqrt 2)**, the package's convention
(Saad & Solla 1995), whose slope at 0 is sqrt(2/pi) -- and ``"relu"``. With ``u ~ N(0, q)``
and ``(u, v)`` centred Gaussian with variances ``qa, qb`` and covariance ``qab``:

* erf (the arcsine kernel, Williams 1997):
  ``E[phi(u)phi(v)] = (2/pi) arcsin(qab / sqrt((1+qa)(1+qb)))``,
  ``E[phi'(u)phi'(v)] = (2/pi) / sqrt((1+qa)(1+qb) - qab^2)``;
* ReLU (the arc-cosine kernel, Cho & Saul 2009), ``c = qab / sqrt(qa qb) = cos(theta)``:
  ``E[phi(u)phi(v)] = sqrt(qa qb) (sin(theta) + (pi - theta) c) / (2 pi)``,
  ``E[phi'(u)phi'(v)] = (pi - theta) / (2 pi)``;
* tanh: quadrature, in two dimensions through the Cholesky factor ``u = sqrt(qa) z1``,
  ``v = sqrt(qb) (c z1 + sqrt(1 - c^2) z2)``. The rule is the trapezoid rule on a uniform grid
  (step ``h``, ``|z| <= 13`` / ``9``), not Gauss-Hermite: for an integrand analytic in a strip
  ``|Im z| < d`` and Gaussian-decaying it converges like ``exp(-2 pi d / h)``, and tanh's
  poles at ``z = i pi / (2 sqrt q)`` keep ``d`` small when ``q`` is large -- 160-node
  Gauss-Hermite is off by 1e-7 at ``q = 4`` (``tests/test_deep.py``), the trapezoid rule
  with ``h = 0.02`` is within 1e-12 of ``scipy.integrate.quad`` up to ``q = 15``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import special

from . import _checks

__all__ = ["phi", "dphi", "slope_at_zero", "gauss_1d", "gauss_2d", "second_moment",
           "dphi_second_moment", "dphi_fourth_moment", "cross_moment", "dphi_cross_moment",
           "chi_q_integral",
           "N_QUAD_1D", "N_QUAD_2D"]

#: trapezoid nodes of the one- and two-dimensional expectations (steps 0.02 and 0.05)
N_QUAD_1D = 1301
N_QUAD_2D = 361
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def phi(activation: str, x):
    """The activation ``phi(x)``."""
    x = np.asarray(x, dtype=float)
    if activation == "tanh":
        return np.tanh(x)
    if activation == "erf":
        return special.erf(x / math.sqrt(2.0))
    return np.maximum(x, 0.0)


def dphi(activation: str, x):
    """Its derivative ``phi'(x)`` (ReLU: the step ``1{x > 0}``)."""
    x = np.asarray(x, dtype=float)
    if activation == "tanh":
        return 1.0 / np.cosh(np.minimum(np.abs(x), 350.0)) ** 2
    if activation == "erf":
        return _SQRT_2_OVER_PI * np.exp(-0.5 * x * x)
    return (x > 0).astype(float)


def slope_at_zero(activation: str) -> float:
    """``phi'(0)`` (ReLU: 1, the right derivative)."""
    return _SQRT_2_OVER_PI if activation == "erf" else 1.0


@functools.lru_cache(maxsize=8)
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` trapezoid nodes on ``|z| <= zmax`` (13 for ``n >= 1000``, else 9) with weights
    ``h phi(z)`` (the end points carry ``exp(-40)``: the trapezoid is the plain sum)."""
    zmax = 13.0 if n >= 1000 else 9.0
    z = np.linspace(-zmax, zmax, n)
    w = (z[1] - z[0]) * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z, w


def gauss_1d(f: Callable, q: float, n: int = N_QUAD_1D) -> float:
    """``E[f(sqrt(q) z)]``, ``z ~ N(0, 1)``, by the ``n``-node trapezoid rule."""
    z, w = _nodes(n)
    return float(w @ f(math.sqrt(q) * z))


def gauss_2d(f: Callable, g: Callable, qa: float, qb: float, qab: float,
             n: int = N_QUAD_2D) -> float:
    """``E[f(u) g(v)]`` for centred Gaussian ``(u, v)`` with variances ``qa, qb`` and
    covariance ``qab``: the tensor trapezoid rule through the Cholesky factor."""
    z, w = _nodes(n)
    c = 0.0 if qa * qb == 0 else float(np.clip(qab / math.sqrt(qa * qb), -1.0, 1.0))
    fu = f(math.sqrt(qa) * z)                                           # (n,)
    v = math.sqrt(qb) * (c * z[:, None] + math.sqrt(max(1.0 - c * c, 0.0)) * z[None, :])
    return float(w @ (fu * (g(v) @ w)))


def _arccos_corr(qa, qb, qab):
    c = 1.0 if qa * qb == 0 else min(max(qab / math.sqrt(qa * qb), -1.0), 1.0)
    return c, math.acos(c)


def second_moment(activation: str, q: float) -> float:
    """``E[phi(u)^2]``, ``u ~ N(0, q)``."""
    if activation == "erf":
        return 2.0 / math.pi * math.asin(q / (1.0 + q))
    if activation == "relu":
        return 0.5 * q
    return gauss_1d(lambda x: np.tanh(x) ** 2, q)


def dphi_second_moment(activation: str, q: float) -> float:
    """``E[phi'(u)^2]``, ``u ~ N(0, q)``."""
    if activation == "erf":
        return 2.0 / math.pi / math.sqrt(1.0 + 2.0 * q)
    if activation == "relu":
        return 0.5
    return gauss_1d(lambda x: dphi("tanh", x) ** 2, q)


def dphi_fourth_moment(activation: str, q: float) -> float:
    """``E[phi'(u)^4]``, ``u ~ N(0, q)`` (erf: ``(4/pi^2) / sqrt(1 + 4q)``; ReLU: 1/2)."""
    if activation == "erf":
        return 4.0 / math.pi ** 2 / math.sqrt(1.0 + 4.0 * q)
    if activation == "relu":
        return 0.5
    return gauss_1d(lambda x: dphi("tanh", x) ** 4, q)


def cross_moment(activation: str, qa: float, qb: float, qab: float) -> float:
    """``E[phi(u) phi(v)]`` (variances ``qa, qb``, covariance ``qab``)."""
    if activation == "erf":
        r = qab / math.sqrt((1.0 + qa) * (1.0 + qb))
        return 2.0 / math.pi * math.asin(min(max(r, -1.0), 1.0))
    if activation == "relu":
        c, th = _arccos_corr(qa, qb, qab)
        return math.sqrt(qa * qb) * (math.sin(th) + (math.pi - th) * c) / (2.0 * math.pi)
    return gauss_2d(np.tanh, np.tanh, qa, qb, qab)


def dphi_cross_moment(activation: str, qa: float, qb: float, qab: float) -> float:
    """``E[phi'(u) phi'(v)]`` (variances ``qa, qb``, covariance ``qab``)."""
    if activation == "erf":
        return 2.0 / math.pi / math.sqrt(max((1.0 + qa) * (1.0 + qb) - qab * qab, 1e-300))
    if activation == "relu":
        _, th = _arccos_corr(qa, qb, qab)
        return (math.pi - th) / (2.0 * math.pi)
    d = functools.partial(dphi, "tanh")
    return gauss_2d(d, d, qa, qb, qab)


def chi_q_integral(activation: str, q: float) -> float:
    """``d E[phi(sqrt(q) z)^2] / dq = E[phi'(u)^2 + phi(u) phi''(u)]`` (``u ~ N(0, q)``), the
    slope of the variance map divided by ``sigma_w^2`` (Stein's lemma:
    ``E[phi(u) phi'(u) z] / sqrt(q)``; ReLU: 1/2; erf, the derivative of the arcsine closed
    form: ``(2/pi) / ((1 + q) sqrt(1 + 2q))``)."""
    if activation == "relu":
        return 0.5
    if activation == "erf":
        return 2.0 / math.pi / ((1.0 + q) * math.sqrt(1.0 + 2.0 * q))
    if q == 0.0:
        return 1.0  # phi'(0)^2 + phi(0) phi''(0)
    return gauss_1d(lambda x: np.tanh(x) * dphi("tanh", x) * x, q) / q


def check(activation) -> str:
    """The activation's name (one-line ValueError for an unsupported one)."""
    return _checks.activation(activation)
