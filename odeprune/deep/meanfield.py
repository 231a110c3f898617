"""Signal propagation in deep fully-connected networks at initialisation, in the mean-field
(infinite-width) limit: the variance and correlation maps, their fixed points, chi_1, the depth
scales, the edge of chaos and the phase diagram (Poole et al. 2016; Schoenholz et al. 2017;
Hayou et al. 2019), and the backward (gradient) variances per layer.

Network: ``h^1 = W^1 x + b^1``, ``h^l = W^l phi(h^{l-1}) + b^l`` (``l = 2..L``), with
``W^l_ij ~ N(0, sigma_w^2 / N_{l-1})``, ``b^l_i ~ N(0, sigma_b^2)`` and inputs of mean square
``q0 = |x|^2 / N_0``. Equations (``u ~ N(0, q)``; ``docs/deep.md`` §1):

.. math::

    q^{l+1} = \\sigma_w^2 E[\\phi(u)^2] + \\sigma_b^2, \\qquad
    c^{l+1} = (\\sigma_w^2 E[\\phi(u_a)\\phi(u_b)] + \\sigma_b^2) / q^{l+1}, \\qquad
    \\chi_1 = \\sigma_w^2 E[\\phi'(\\sqrt{q^*} z)^2].
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from . import _checks
from . import gauss as G

__all__ = ["variance_map", "variance_fixed_point", "correlation_map",
           "correlation_fixed_point", "chi1", "depth_scales", "edge_of_chaos", "phase",
           "variance_profile", "correlation_profile", "backward_profile", "chi_profile"]

_XTOL = 1e-15
_RTOL = 1e-15


def _args(activation, sigma_w, sigma_b):
    return _checks.activation(activation), _checks.sigma_w(sigma_w), _checks.sigma_b(sigma_b)


def _vmap(act: str, sw: float, sb: float, q: float) -> float:
    return sw * sw * G.second_moment(act, q) + sb * sb


def variance_map(activation: str, sigma_w: float, sigma_b: float, q: float) -> float:
    """One layer of the variance map, ``q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2``."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    return _vmap(act, sw, sb, _checks.real("q", q, 0.0))


def _qstar(act: str, sw: float, sb: float, q0: float = 1.0) -> float:
    if act == "relu":  # q' = sigma_w^2 q / 2 + sigma_b^2
        r = sw * sw / 2.0
        if r < 1.0:
            return sb * sb / (1.0 - r)
        if r == 1.0 and sb == 0.0:
            return sw * sw * q0  # every q is fixed: the chain stays at q^1 = 2 q0
        return math.inf
    # tanh, erf: the map is increasing, concave and bounded by sigma_w^2 + sigma_b^2
    upper = sw * sw + sb * sb
    if sb == 0.0:
        if sw * sw * G.slope_at_zero(act) ** 2 <= 1.0:
            return 0.0  # the only fixed point
        lo = 1e-300
        for lo in 10.0 ** -np.arange(1.0, 300.0, 1.0):  # a q with map(q) > q
            if _vmap(act, sw, sb, lo) > lo:
                break
        return brentq(lambda q: _vmap(act, sw, sb, q) - q, lo, upper, xtol=_XTOL, rtol=_RTOL)
    return brentq(lambda q: _vmap(act, sw, sb, q) - q, 0.0, upper, xtol=_XTOL, rtol=_RTOL)


def variance_fixed_point(activation: str, sigma_w: float, sigma_b: float,
                         q0: float = 1.0) -> float:
    """The fixed point ``q*`` of the variance map (Poole et al. 2016).

    tanh and erf: the unique positive root of ``map(q) = q`` (brentq; ``0`` when ``sigma_b =
    0`` and ``sigma_w phi'(0) <= 1``). ReLU: ``sigma_b^2 / (1 - sigma_w^2 / 2)`` for
    ``sigma_w^2 < 2``, ``inf`` when the variance diverges, and -- on the ReLU edge of chaos
    ``(sigma_b, sigma_w) = (0, sqrt 2)``, where every ``q`` is fixed -- ``q^1 = 2 q0``, where
    the chain started by inputs of mean square ``q0`` stays.
    """
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    return _qstar(act, sw, sb, _checks.real("q0", q0, 0.0, lo_open=True))


def _cmap(act: str, sw: float, sb: float, c: float, q: float, q_next: float) -> float:
    if q == 0.0:
        return 1.0
    return (sw * sw * G.cross_moment(act, q, q, c * q) + sb * sb) / q_next


def correlation_map(activation: str, sigma_w: float, sigma_b: float, c: float,
                    q: float) -> float:
    """One layer of the correlation map of two inputs of equal variance ``q``:
    ``c -> (sigma_w^2 E[phi(u_a) phi(u_b)] + sigma_b^2) / q'`` with ``q'`` the variance map."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    c = _checks.real("c", c, -1.0, 1.0)
    q = _checks.real("q", q, 0.0)
    return _cmap(act, sw, sb, c, q, _vmap(act, sw, sb, q))


def _chi1(act: str, sw: float, sb: float) -> float:
    q = _qstar(act, sw, sb)
    if not math.isfinite(q):
        return math.inf if act != "relu" else sw * sw / 2.0
    return sw * sw * G.dphi_second_moment(act, q)


def chi1(activation: str, sigma_w: float, sigma_b: float) -> float:
    """``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]``: the slope of the correlation map at ``c = 1``
    and the per-layer growth of gradient variances (Schoenholz et al. 2017, Eq. 5).
    ``< 1`` ordered, ``= 1`` edge of chaos, ``> 1`` chaotic."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    return _chi1(act, sw, sb)


def _cstar(act: str, sw: float, sb: float) -> float:
    if _chi1(act, sw, sb) <= 1.0:
        return 1.0
    q = _qstar(act, sw, sb)
    if not math.isfinite(q):
        return math.nan
    f = lambda c: _cmap(act, sw, sb, c, q, q) - c  # noqa: E731
    lo = 0.0 if act != "relu" else -1.0
    if f(lo) <= 0.0:
        return lo
    for eps in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        if f(1.0 - eps) < 0.0:
            return brentq(f, lo, 1.0 - eps, xtol=1e-14)
    return 1.0


def correlation_fixed_point(activation: str, sigma_w: float, sigma_b: float) -> float:
    """``c*``: ``1`` in the ordered phase and on the edge of chaos; in the chaotic phase the
    stable root ``< 1`` of ``c = map(c)`` at ``q = q*`` (brentq)."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    return _cstar(act, sw, sb)


def depth_scales(activation: str, sigma_w: float, sigma_b: float) -> tuple[float, float]:
    """``(xi_q, xi_c)`` of Schoenholz et al. (2017), Eqs. 6 and 9:
    ``xi_q^{-1} = -log(sigma_w^2 E[phi'(u)^2 + phi(u) phi''(u)])`` and
    ``xi_c^{-1} = -log(sigma_w^2 E[phi'(u_a) phi'(u_b)])`` at ``(q*, c*)`` (``= -log chi_1``
    when ``c* = 1``); ``inf`` on the edge of chaos."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    q = _qstar(act, sw, sb)
    c = _cstar(act, sw, sb)
    chi_q = sw * sw * G.chi_q_integral(act, q)
    chi_c = sw * sw * (G.dphi_second_moment(act, q) if c == 1.0 else
                       G.dphi_cross_moment(act, q, q, c * q))

    def xi(chi):
        return math.inf if chi >= 1.0 else 0.0 if chi <= 0.0 else -1.0 / math.log(chi)

    return xi(chi_q), xi(chi_c)


def edge_of_chaos(activation: str, sigma_b: float) -> float:
    """``sigma_w`` on the edge of chaos for bias standard deviation ``sigma_b``: the root of
    ``chi_1(sigma_w, sigma_b) = 1`` at the variance fixed point (brentq, to 1e-13).

    tanh and erf: one ``sigma_w`` for every ``sigma_b >= 0`` (``1 / phi'(0)`` at
    ``sigma_b = 0``). ReLU: ``chi_1 = sigma_w^2 / 2`` and a finite ``q*`` exists on the edge only
    at ``sigma_b = 0`` (Hayou et al. 2019): ``sqrt 2``; ``sigma_b > 0`` is refused.
    """
    act, sb = _checks.activation(activation), _checks.sigma_b(sigma_b)
    if act == "relu":
        if sb != 0.0:
            raise ValueError(f"sigma_b={sigma_b!r}: relu has an edge of chaos only at "
                             "sigma_b = 0 (sigma_w = sqrt 2)")
        return math.sqrt(2.0)
    lo = 1.0 / G.slope_at_zero(act)
    if sb == 0.0:
        return lo
    hi = 2.0 * lo
    while _chi1(act, hi, sb) <= 1.0:
        hi *= 2.0
        if hi > 1e4:
            raise ValueError(f"sigma_b={sigma_b!r}: no edge of chaos below sigma_w = 1e4")
    return brentq(lambda s: _chi1(act, s, sb) - 1.0, lo, hi, xtol=1e-14, rtol=_RTOL)


def phase(activation: str, sigma_w: float, sigma_b: float, tol: float = 1e-3) -> str:
    """``"ordered"`` (``chi_1 < 1 - tol``), ``"eoc"`` (``|chi_1 - 1| <= tol``) or
    ``"chaotic"`` (``chi_1 > 1 + tol``)."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    tol = _checks.real("tol", tol, 0.0)
    x = _chi1(act, sw, sb)
    return "ordered" if x < 1.0 - tol else "chaotic" if x > 1.0 + tol else "eoc"


# ------------------------------------------------------------------------ profiles over depth
def _factors(variance_factors, L: int) -> np.ndarray:
    if variance_factors is None:
        return np.ones(L)
    v = np.asarray(variance_factors, dtype=float)
    if v.shape != (L,) or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError(f"variance_factors must be {L} finite numbers >= 0 (one per layer), "
                         f"got shape {v.shape}")
    return v


def _qprofile(act, sw, sb, L, q0, v) -> np.ndarray:
    q = np.empty(L)
    q[0] = sw * sw * v[0] * q0 + sb * sb  # the first layer is linear in the input
    for l in range(1, L):
        q[l] = sw * sw * v[l] * G.second_moment(act, q[l - 1]) + sb * sb
    return q


def variance_profile(activation: str, sigma_w: float, sigma_b: float, depth: int,
                     q0: float = 1.0, variance_factors=None) -> np.ndarray:
    """``q^l``, ``l = 1..L``, shape ``(L,)``: ``q^1 = sigma_w^2 v_1 q0 + sigma_b^2``, then the
    variance map with ``sigma_w^2 -> v_l sigma_w^2`` in layer ``l`` (``variance_factors`` ``v``:
    the kept variance fraction of a pruned layer, times ``rho_l^2`` after rescaling)."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    L = _checks.depth(depth)
    return _qprofile(act, sw, sb, L, _checks.real("q0", q0, 0.0, lo_open=True),
                     _factors(variance_factors, L))


def correlation_profile(activation: str, sigma_w: float, sigma_b: float, depth: int, c0: float,
                        q0: float = 1.0, variance_factors=None) -> np.ndarray:
    """``c^l``, ``l = 1..L``, shape ``(L,)``, for two inputs of mean square ``q0`` and
    correlation ``c0``: ``c^1 = (sigma_w^2 v_1 q0 c0 + sigma_b^2) / q^1``, then the correlation
    map (layer ``l`` with ``v_l sigma_w^2``)."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    L = _checks.depth(depth)
    q0 = _checks.real("q0", q0, 0.0, lo_open=True)
    c0 = _checks.real("c0", c0, -1.0, 1.0)
    v = _factors(variance_factors, L)
    q = _qprofile(act, sw, sb, L, q0, v)
    c = np.empty(L)
    c[0] = (sw * sw * v[0] * q0 * c0 + sb * sb) / q[0]
    for l in range(1, L):
        c[l] = _cmap(act, sw * math.sqrt(v[l]), sb, c[l - 1], q[l - 1], q[l])
    return c


def backward_profile(activation: str, sigma_w: float, sigma_b: float, depth: int,
                     width=None, q0: float = 1.0, variance_factors=None) -> np.ndarray:
    """Gradient variances ``qt^l = E[(dL/dh^l_i)^2]``, ``l = 1..L``, shape ``(L,)``, relative
    to the top layer (``qt^L = 1``), by the backward recursion

    .. math:: \\tilde q^l = \\tilde q^{l+1} v_{l+1} \\sigma_w^2 (N_{l+1}/N_l) E[\\phi'(h^l)^2]

    (gradient independence, Schoenholz et al. 2017 §3; exact as ``N -> inf`` for a loss read
    out through independent weights, here ``L = (u . h^L / sqrt(N_L) - y*)^2 / 2``, whose
    ``qt^L = (f - y*)^2 / N_L`` is one factor common to all layers). ``width``: ``None``
    (equal widths), one integer, or ``(N_0, ..., N_L)``."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    L = _checks.depth(depth)
    N = np.ones(L + 1) if width is None else _checks.widths(width, L).astype(float)
    v = _factors(variance_factors, L)
    q = _qprofile(act, sw, sb, L, _checks.real("q0", q0, 0.0, lo_open=True), v)
    qt = np.empty(L)
    qt[L - 1] = 1.0
    for l in range(L - 2, -1, -1):  # 0-based: layer l + 1
        qt[l] = qt[l + 1] * v[l + 1] * sw * sw * N[l + 2] / N[l + 1] * \
            G.dphi_second_moment(act, q[l])
    return qt


def chi_profile(activation: str, sigma_w: float, sigma_b: float, depth: int, q0: float = 1.0,
                variance_factors=None) -> np.ndarray:
    """Per-layer slopes ``chi^l = v_{l+1} sigma_w^2 E[phi'(h^l)^2]`` (``l = 1..L-1``, shape
    ``(L - 1,)``): the ratio ``qt^l / qt^{l+1}`` at equal widths; ``-> chi_1`` with depth."""
    act, sw, sb = _args(activation, sigma_w, sigma_b)
    L = _checks.depth(depth)
    v = _factors(variance_factors, L)
    q = _qprofile(act, sw, sb, L, _checks.real("q0", q0, 0.0, lo_open=True), v)
    return np.array([v[l + 1] * sw * sw * G.dphi_second_moment(act, q[l]) for l in range(L - 1)])
