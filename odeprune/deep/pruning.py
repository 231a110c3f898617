"""Pruning at initialisation as maps on the mean-field quantities (``docs/deep.md`` §2-§4).

* random pruning (keep a fraction ``p``): ``sigma_w^2 -> p sigma_w^2``;
* magnitude pruning (keep the fraction ``p`` of largest ``|W|``): ``sigma_w^2 -> v(p)
  sigma_w^2`` with the kept variance fraction ``v(p) = 2 [tau phi(tau) + Phibar(tau)]``,
  ``tau = Phibar^{-1}(p / 2)``;
* sensitivity-based pruning (SBP, SNIP's ``|W dL/dW|``) with one global threshold over all
  layers, and its critical sparsity ``s_cr`` (Hayou et al. 2021);
* the rescaling ``rho_l = (E[W^2] / E[(delta W)^2])^{1/2}`` that puts the pruned network back
  on the edge of chaos (SBP-SR).

The SBP score law (one Gaussian input; loss ``(u . h^L / sqrt(N_L) - y*)^2 / 2`` through a
fixed independent readout ``u``; gradient independence): the score of ``W^l_ij`` is
``|W^l_ij| |delta^l_i| |y^{l-1}_j|`` with, independently,
``W^l_ij = sigma_w / sqrt(N_{l-1}) Z1``; ``delta^l_i = eps_i phi'(h^l_i)``,
``eps_i = (sigma_w^2 N_{l+1} / N_l qt^{l+1})^{1/2} Z2``, ``h^l_i = sqrt(q^l) Z3`` (``l < L``;
``delta^L_i = sqrt(qt^L) Z2``, ``qt^L = 1`` after dividing out the common factor);
``y^{l-1}_j = phi(sqrt(q^{l-1}) Z4)`` (``y^0_j = sqrt(q0) Z4``). So ``score = s_l |Z1 Z2| A_l``
and, with ``T(x) = P(|Z1 Z2| > x) =
1 - (2/pi) int_0^x K_0`` and ``T_2(x) = E[Z1^2 1{|Z1 Z2| > x}] = T(x) + (2/pi) x K_0(x)``,
the kept fraction and kept variance fraction of layer ``l`` at threshold ``t`` are
``E_A[T(t / (s_l A))]`` and ``E_A[T_2(t / (s_l A))]``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy.optimize import brentq
from scipy.stats import norm

from . import _checks
from . import gauss as G
from . import meanfield as MF

__all__ = ["random_kept_variance", "magnitude_kept_variance", "score_tail",
           "score_tail_variance", "SBPPrediction", "sbp_prediction", "critical_sparsity",
           "pruned_sigma_w"]


def random_kept_variance(p: float) -> float:
    """Kept variance fraction of random pruning keeping a fraction ``p``: ``p``."""
    return _checks.real("p", p, 0.0, 1.0)


def magnitude_kept_variance(p) -> np.ndarray | float:
    """Kept variance fraction ``E[W^2 1{|W| > tau}] / E[W^2] = 2 [tau phi(tau) + Phibar(tau)]``
    of magnitude pruning keeping the fraction ``p`` of largest ``|W|`` of Gaussian weights,
    ``tau = Phibar^{-1}(p / 2)`` (``phi``, ``Phibar``: the standard normal pdf and upper tail).
    """
    scalar = np.ndim(p) == 0
    if scalar:
        _checks.real("p", p, 0.0, 1.0)
    p = np.asarray(p, dtype=float)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p must lie in [0, 1]")
    tau = norm.isf(p / 2.0)
    v = np.where(p > 0, 2.0 * (np.where(np.isfinite(tau), tau * norm.pdf(tau), 0.0)
                               + norm.sf(tau)), 0.0)
    return float(v) if scalar else v


def pruned_sigma_w(sigma_w: float, kept_variance: float, rescale: bool = False) -> float:
    """The effective ``sigma_w`` of a pruned layer, ``sigma_w sqrt(v)``; ``sigma_w`` itself after
    the rescaling ``rho = v^{-1/2}`` (the map is variance preserving)."""
    sw = _checks.sigma_w(sigma_w)
    v = _checks.real("kept_variance", kept_variance, 0.0, 1.0, lo_open=True)
    return sw if rescale else sw * math.sqrt(v)


# --------------------------------------------------------------------- the product-normal law
def score_tail(x):
    """``T(x) = P(|Z1 Z2| > x)`` for independent standard normals (the density of ``Z1 Z2`` is
    ``K_0(|u|) / pi``): ``1 - (2/pi) int_0^x K_0`` (``scipy.special.iti0k0``) for ``x < 1``;
    ``(2/pi) e^{-x} int_0^inf e^{-u} k0e(x + u) du`` by 40-node Gauss-Laguerre for ``x >= 1``
    (no cancellation in the far tail)."""
    x = np.asarray(x, dtype=float)
    small = 1.0 - 2.0 / math.pi * special.iti0k0(np.minimum(x, 1.0))[1]
    u, w = _laguerre()
    xb = np.maximum(x, 1.0)
    big = 2.0 / math.pi * np.exp(-xb) * (special.k0e(xb[..., None] + u) @ w)
    return np.clip(np.where(x < 1.0, small, big), 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def _laguerre():
    return np.polynomial.laguerre.laggauss(40)


def score_tail_variance(x):
    """``T_2(x) = E[Z1^2 1{|Z1 Z2| > x}] = T(x) + (2/pi) x K_0(x)`` (``T_2' = -(2/pi) x K_1``)."""
    x = np.asarray(x, dtype=float)
    return np.clip(score_tail(x) + 2.0 / math.pi * x * special.k0(np.maximum(x, 1e-300)),
                   0.0, 1.0)


_LOGX = np.linspace(-45.0, math.log(120.0), 9000)


@functools.lru_cache(maxsize=1)
def _tables():
    x = np.exp(_LOGX)
    return (np.log(np.maximum(score_tail(x), 1e-300)),
            np.log(np.maximum(score_tail_variance(x), 1e-300)))


def _interp(logx, table):
    out = np.exp(np.interp(logx, _LOGX, table))
    return np.where(logx > _LOGX[-1], 0.0, out)


# ------------------------------------------------------------------- the per-layer law of A
_U = np.arange(-20.0, 2.6, 0.1)          # |z| = exp(u): log-trapezoid nodes of a half-normal
_Z = np.exp(_U)
_WZ = 2.0 * norm.pdf(_Z) * _Z * 0.1


def _factor(kind: str, act: str, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(values, weights) of a factor's law, the zero atom left out (it scores 0)."""
    if kind == "one":
        return np.ones(1), np.ones(1)
    if kind == "gauss":
        return math.sqrt(q) * _Z, _WZ
    if kind == "phi":
        if act == "relu":  # half the units are 0
            return math.sqrt(q) * _Z, 0.5 * _WZ
        return np.abs(G.phi(act, math.sqrt(q) * _Z)), _WZ
    if act == "relu":  # dphi: an atom at 1 of mass 1/2
        return np.ones(1), np.full(1, 0.5)
    return G.dphi(act, math.sqrt(q) * _Z), _WZ


def _bin(la, w, n_bins: int = 1500, span: float = 40.0):
    """Weighted bin means of ``log A`` and bin weights; values below ``max - span`` dropped."""
    ok = np.isfinite(la) & (w > 0)
    la, w = la[ok], w[ok]
    top = la.max()
    keep = la > top - span
    la, w = la[keep], w[keep]
    idx = np.minimum(((la - (top - span)) / span * n_bins).astype(int), n_bins - 1)
    wb = np.bincount(idx, weights=w, minlength=n_bins)
    lb = np.bincount(idx, weights=w * la, minlength=n_bins)
    nz = wb > 0
    return lb[nz] / wb[nz], wb[nz]


def _layer_law(a, b, log_var: float = 0.0):
    """``log A`` and weights of the product ``A = a b`` of independent factors ``a``, ``b``
    (each (values, weights)), times an independent log-normal factor ``F`` of log-variance
    ``log_var`` and ``E[F^2] = 1`` when ``log_var > 0`` (the finite-width correction: the
    score scale is the square root of a gradient variance whose mean is the mean field's)."""
    with np.errstate(divide="ignore"):
        la = np.add.outer(np.log(a[0]), np.log(b[0])).ravel()
    la, w = _bin(la, np.outer(a[1], b[1]).ravel())
    if log_var > 0.0:
        xi, om = _nodes_lognormal()
        la = np.add.outer(la, math.sqrt(log_var) * xi - log_var).ravel()
        la, w = _bin(la, np.outer(w, om).ravel())
    return la, w


@functools.lru_cache(maxsize=1)
def _nodes_lognormal():
    z, w = np.polynomial.hermite_e.hermegauss(24)
    return z, w / w.sum()


def _log_variances(act, sw, q, N) -> np.ndarray:
    """``V_m``, the variance of ``log qt^m`` of a finite network (``m = 1..L``; shape ``(L,)``):
    ``0`` at the top layer (its fluctuation is common to all layers) plus ``kappa_k / N_k`` per
    layer below, with
    ``kappa = (3 E[phi'^4] - E[phi'^2]^2) / E[phi'^2]^2`` the squared coefficient of variation
    of one ratio ``qt^k / qt^{k+1}`` (a sum of ``N_k`` independent terms ``phi'^2 eps^2``)."""
    L = len(q)
    V = np.empty(L)
    V[L - 1] = 0.0
    for k in range(L - 2, -1, -1):
        m2 = G.dphi_second_moment(act, q[k])
        kappa = (3.0 * G.dphi_fourth_moment(act, q[k]) - m2 * m2) / (m2 * m2)
        V[k] = V[k + 1] + kappa / N[k + 1]
    return V


@dataclass(frozen=True)
class SBPPrediction:
    """The mean-field prediction of global SBP at sparsity ``s`` (:func:`sbp_prediction`).

    Attributes
    ----------
    kept : ndarray, shape (L,)
        Fraction of the weights of layer ``l = 1..L`` kept.
    kept_variance : ndarray, shape (L,)
        ``E[W^2 1{kept}] / E[W^2]`` per layer (the factor on ``sigma_w^2`` after pruning).
    rho : ndarray, shape (L,)
        The SBP-SR rescaling ``kept_variance^{-1/2}`` (``inf`` for a fully pruned layer).
    threshold : float
        The global score threshold ``t``.
    scale : ndarray, shape (L,)
        The layer score scales ``s_l``.
    q, qt : ndarray, shape (L,)
        Forward and backward variances of the dense network.
    widths : ndarray, shape (L + 1,)
    s : float
    params : dict
    """

    kept: np.ndarray
    kept_variance: np.ndarray
    rho: np.ndarray
    threshold: float
    scale: np.ndarray
    q: np.ndarray
    qt: np.ndarray
    widths: np.ndarray
    s: float
    params: dict


class _ScoreLaw:
    """The per-layer score laws of one network: kept counts at any threshold."""

    def __init__(self, act, sw, sb, L, N, q0, finite_width=False):
        self.q = MF._qprofile(act, sw, sb, L, q0, np.ones(L))
        self.qt = MF.backward_profile(act, sw, sb, L, N, q0)
        Nf = N.astype(float)
        self.n = Nf[1:] * Nf[:-1]                                  # weights per layer
        self.scale = np.empty(L)
        self.laws = []
        V = _log_variances(act, sw, self.q, Nf) if finite_width else np.zeros(L)
        for l in range(L):  # 0-based index of layer l + 1
            if l == L - 1:
                eps, a = 1.0, ("one", None)
            else:
                eps = math.sqrt(sw * sw * Nf[l + 2] / Nf[l + 1] * self.qt[l + 1])
                a = ("dphi", self.q[l])
            b = ("gauss", q0) if l == 0 else ("phi", self.q[l - 1])
            self.scale[l] = sw / math.sqrt(Nf[l]) * eps
            # score ~ sqrt(qt^{l+1}): a quarter of the log-variance of qt^{l+1}
            lv = V[l + 1] / 4.0 if l < L - 1 else 0.0
            self.laws.append(_layer_law(_factor(a[0], act, a[1]), _factor(b[0], act, b[1]),
                                        lv))

    def kept(self, t: float, variance: bool = False) -> np.ndarray:
        return np.array([self.kept_layer(t, l, variance) for l in range(len(self.laws))])

    def kept_layer(self, t: float, l: int, variance: bool = False) -> float:
        la, w = self.laws[l]
        table = _tables()[1 if variance else 0]
        return float(w @ _interp(math.log(t) - math.log(self.scale[l]) - la, table))

    def total(self, log_t: float) -> float:
        return float(self.n @ self.kept(math.exp(log_t)))

    def bracket(self) -> tuple[float, float]:
        ls = np.log(self.scale)
        tops = [la.max() for la, _ in self.laws]
        return float(np.min(ls) - 60.0), float(np.max(ls + tops) + math.log(130.0))


def _setup(activation, sigma_w, sigma_b, depth, width, q0):
    act = _checks.activation(activation)
    sw, sb = _checks.sigma_w(sigma_w), _checks.sigma_b(sigma_b)
    L = _checks.depth(depth)
    N = _checks.widths(width, L)
    q0 = _checks.real("q0", q0, 0.0, lo_open=True)
    return act, sw, sb, L, N, q0


def sbp_prediction(activation: str, sigma_w: float, sigma_b: float, depth: int, width,
                   s: float, q0: float = 1.0, finite_width: bool = False) -> SBPPrediction:
    """Kept fraction per layer after SBP with one global threshold at sparsity ``s``.

    Solves ``sum_l n_l K_l(t) = (1 - s) sum_l n_l`` for ``t`` (brentq on ``log t``), with
    ``n_l = N_l N_{l-1}`` and ``K_l(t) = E_A[T(t / (s_l A))]`` (module docstring). ``width``:
    one integer or ``(N_0, ..., N_L)``; it sets the counts and the width ratios (the law of one
    score does not depend on ``N`` beyond ``s_l``).

    ``finite_width=True`` adds the leading finite-width effect: the gradient variance of a
    finite network is a product of ``L - l`` independent random ratios, log-normal with
    log-variance ``V_l = O((L - l) / N)`` (:func:`_log_variances`) and the mean-field mean, so
    each layer's score scale gets an independent log-normal factor (``docs/deep.md`` §3.3)."""
    act, sw, sb, L, N, q0 = _setup(activation, sigma_w, sigma_b, depth, width, q0)
    s = _checks.sparsity(s)
    law = _ScoreLaw(act, sw, sb, L, N, q0, bool(finite_width))
    target = (1.0 - s) * law.n.sum()
    lo, hi = law.bracket()
    if law.total(lo) < target:
        raise ValueError(f"s={s!r} is below the fraction of weights whose score is 0 "
                         f"({1 - law.total(lo) / law.n.sum():.3g}); SBP cannot rank them")
    lt = brentq(lambda x: law.total(x) - target, lo, hi, xtol=1e-12) if s > 0 else lo
    t = math.exp(lt)
    kv = law.kept(t, variance=True)
    with np.errstate(divide="ignore"):
        rho = 1.0 / np.sqrt(kv)
    return SBPPrediction(kept=law.kept(t), kept_variance=kv, rho=rho, threshold=t,
                         scale=law.scale, q=law.q, qt=law.qt, widths=N, s=s,
                         params=dict(activation=act, sigma_w=sw, sigma_b=sb, depth=L, q0=q0,
                                    finite_width=bool(finite_width)))


def critical_sparsity(activation: str, sigma_w: float, sigma_b: float, depth: int, width,
                      q0: float = 1.0, finite_width: bool = False) -> float:
    """Predicted critical sparsity ``s_cr``: the smallest ``s`` at which some layer's expected
    number of kept weights ``n_l K_l(t)`` falls to 1 (a finite-width layer is then fully
    pruned). ``t_l`` solves ``n_l K_l(t_l) = 1``; ``t_cr = min_l t_l`` and
    ``s_cr = 1 - sum_l n_l K_l(t_cr) / sum_l n_l``. ``finite_width``: as in
    :func:`sbp_prediction`."""
    act, sw, sb, L, N, q0 = _setup(activation, sigma_w, sigma_b, depth, width, q0)
    law = _ScoreLaw(act, sw, sb, L, N, q0, bool(finite_width))
    lo, hi = law.bracket()
    t_l = []
    for l in range(L):
        def f(x, l=l):
            return law.n[l] * law.kept_layer(math.exp(x), l) - 1.0
        t_l.append(brentq(f, lo, hi, xtol=1e-10))
    return float(1.0 - law.total(min(t_l)) / law.n.sum())
