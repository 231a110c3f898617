r"""Edge-pruning rules as exact maps on order parameters, through Gaussian coordinates.

In the thermodynamic limit the coordinates ``j = 1..N`` of the weight vectors,
``z_j = (w_1j..w_Kj, w*_1j..w*_Mj)``, are distributed as a Gaussian vector with covariance
``C = [[Q, R], [R^T, T]]``. A rule that keeps ``w_ij`` with probability ``p_i(z_j)``, independently
across rows given the coordinate, maps the order parameters to Gaussian expectations (the pruned
overlaps self-average by the law of large numbers over j):

.. math::

    Q'_{ii} = E[p_i w_i^2],\quad Q'_{ik} = E[p_i p_k w_i w_k]\ (i\ne k),\quad
    R'_{in} = E[p_i w_i w^*_n],\quad T' = T,\quad v' = v.

A rule is an :class:`EdgeRule`: it is *calibrated* on the state (thresholds set by the kept
fraction ``c``) and gives the keep probability ``p_i`` as a function of the row's coordinate
``w_i`` and, for sensitivity rules, of the gradient coordinate ``g_i``. The engine
(:func:`edge_prune_map`) computes the expectations by one-dimensional quadrature where they reduce
to one dimension (diagonal of Q' and R' for every rule here; Q'_ik for rules depending on ``w_i``
alone, with a closed-form or Gauss-Hermite inner integral) and by Gaussian coordinate Monte Carlo
with a standard error otherwise (``method="mc"``, or Q'_ik of SNIP). Adding a rule is writing its
``keep_prob`` (and ``calibrate``).

Every rule also has its finite-N form, :meth:`EdgeRule.mask` (a (K, N) mask of real weights,
used by :func:`odeprune.pruning.finite_edges.edge_mask`), next to its limit map; the rule classes
declare the rule names (:data:`RULES`), which :mod:`odeprune.pruning.registry` lists with the node
methods.

Rules (``prune(state, name, c=...)``):

- ``random_edge`` -- ``p = c``; equals Lemma 6 of Acharyya et al. (2021).
- ``magnitude_edge`` -- keep the largest ``|w_ij|`` of each row: ``p_i = 1{|w_i| > tau_i}`` with
  ``tau_i = sqrt(Q_ii) Phi^{-1}(1 - c/2)``; ``Q'_ii = Q_ii m(c)``, ``R' = m(c) R`` with
  ``m(c) = c + 2 z phi(z)``. ``magnitude_edge_global``: one threshold over all rows (fraction c of
  all first-layer weights), as in global magnitude pruning (lottery tickets, Frankle & Carbin 2019).
- ``dpp_edge`` -- the per-unit DPP over incoming edges of the authors: with i.i.d. inputs its kernel
  is ``diag(w_ij^2)``; a k-DPP with a diagonal kernel keeps each edge independently with
  probability ``lambda w^2 / (1 + lambda w^2)`` in the large-N limit, ``lambda_i`` set by ``c``.
- ``snip_edge`` -- score ``|w_ij g_ij|`` with ``g = d eg / d w`` (SNIP, Lee et al. 2019), keeping
  the top fraction ``c`` of each row; ``snip_edge_global``: over all rows. The gradient of unit i is
  a linear combination of the weight vectors, ``g_i = sum_c b_ic z_c``, whose covariance with the
  fields, ``C b_i = E[v_i Delta g'(lambda_i) z]``, is the first-order term of the ODE
  (:mod:`odeprune.ode.rhs`), so ``(z, g)`` is jointly Gaussian with a covariance computed from the
  state.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, optimize, special

from ..activations import get_activation
from ..ode.progress import progress_bar
from ..ode.rhs import s3_sums
from ..state import OrderParams, as_generator
from . import dpp

__all__ = ["EDGE_RULES", "RULES", "EdgeRule", "edge_prune_map", "cached_edge_prune_map",
           "EdgeMapResult", "gradient_covariance", "augmented_covariance", "rescale_rows",
           "check_c", "random_edge_map", "rule_class", "top_mask", "GH_X", "GH_W", "normal_sf",
           "solve_threshold"]

#: probabilists' Gauss-Hermite nodes and weights: E f(X) = f(GH_X) @ GH_W, X ~ N(0, 1)
GH_X, GH_W = special.roots_hermitenorm(120)
GH_W = GH_W / np.sqrt(2.0 * np.pi)
_SQRT2 = math.sqrt(2.0)


def _phi(x):
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


def normal_sf(x):
    """P(X > x), X ~ N(0, 1)."""
    return 0.5 * special.erfc(np.asarray(x) / _SQRT2)


def check_c(c) -> float:
    """Validate the kept fraction of edges, ``0 <= c <= 1``."""
    if isinstance(c, (bool, np.bool_)):
        raise ValueError(f"c={c!r} must be a number in [0, 1]")
    try:
        value = float(c)
    except (TypeError, ValueError):
        raise ValueError(f"c={c!r} must be a number in [0, 1]") from None
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"c={c!r} is out of range; allowed 0 <= c <= 1")
    return value


def random_edge_map(state: OrderParams, c: float) -> OrderParams:
    r"""Order parameters of the expected network after random edge pruning (Lemma 6).

    Parameters
    ----------
    state : OrderParams
    c : float
        Kept fraction of first-layer weights, in [0, 1].

    Returns
    -------
    OrderParams
        :math:`Q' = c^2 Q + (c - c^2)\,\mathrm{diag}(Q)`, :math:`R' = cR`, ``T``, ``v`` unchanged.
    """
    c = check_c(c)
    Q = c * c * np.array(state.Q)
    np.fill_diagonal(Q, c * np.diag(state.Q))
    return state.replace(Q=Q, R=c * np.array(state.R))  # keeps T, v, v_star, activation


# ---------------------------------------------------------------------------------------------
# gradient coordinates
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------
class EdgeRule:
    """A keep-probability rule for first-layer weights. Subclasses set ``name`` and implement
    :meth:`calibrate` and :meth:`keep_prob`; optionally :meth:`inner_first_moment` (a closed form
    of :math:`E[p_k(Y) Y]` for :math:`Y\\sim N(\\mu, s^2)`), used by the Q'_ik quadrature.
    The rules of :data:`RULES` also implement :meth:`mask`, their finite-N form."""

    name = "rule"
    #: one line for ``--help`` and the registry
    description = ""
    #: the finite-N mask is a function of the weights (one mask, no randomness)
    deterministic = False
    needs_gradient = False
    #: thresholds / discontinuities of p as multiples of the row scale (for quadrature points)
    smooth = True

    def calibrate(self, Sigma: np.ndarray, K: int, M: int, c: float) -> None:
        raise NotImplementedError

    def keep_prob(self, i: int, w: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def breakpoints(self, i: int) -> list[float]:
        return []

    def inner_first_moment(self, k: int, mu: np.ndarray, s: float) -> np.ndarray:
        """:math:`E[p_k(Y) Y]`, :math:`Y \\sim N(\\mu, s^2)`; default: Gauss-Hermite (smooth p)."""
        y = mu[..., None] + s * GH_X
        return (self.keep_prob(k, y) * y) @ GH_W

    def limit(self, state: OrderParams, c: float, *, seed, n_samples: int, progress
              ) -> tuple[OrderParams, EdgeMapResult | None]:
        """The limit map of a rule of :data:`RULES`: ``(pruned state, EdgeMapResult or None)``
        (:func:`cached_edge_prune_map`; a closed form returns None)."""
        mapped = cached_edge_prune_map(state, self.name, c, seed=seed, n_samples=n_samples,
                                       progress=progress)
        return mapped.state, mapped

    def mask(self, w: np.ndarray, c: float, rng: np.random.Generator, *, v, w_star, v_star,
             n_samples: int, activation: str, dpp_exact_max_N: int
             ) -> tuple[np.ndarray, dict[str, Any]]:
        """The finite-N form: a (K, N) boolean mask of the kept weights of ``w`` and what to
        record about how it was made."""
        raise NotImplementedError(f"edge rule {self.name!r} has no finite-N mask")


class RandomEdge(EdgeRule):
    name = "random_edge"
    description = "keep every first-layer weight independently with probability c (Lemma 6)"

    def calibrate(self, Sigma, K, M, c):
        self.c = c

    def keep_prob(self, i, w, g=None):
        return np.full(np.shape(w), self.c)

    def inner_first_moment(self, k, mu, s):
        return self.c * mu

    def limit(self, state, c, *, seed, n_samples, progress):
        return random_edge_map(state, c), None      # Lemma 6, closed form

    def mask(self, w, c, rng, **_):
        return rng.random(w.shape) < c, {}


def _trunc_first_moment(mu, s, tau):
    """:math:`E[Y 1\\{|Y| > \\tau\\}]`, :math:`Y \\sim N(\\mu, s^2)` (vectorised; s may be 0)."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if s <= 0:
        return np.where(np.abs(mu) > tau, mu, 0.0)
    a = (tau - mu) / s
    b = (-tau - mu) / s
    return mu * (normal_sf(a) + special.ndtr(b)) + s * (_phi(a) - _phi(b))


def _trunc_prob(mu, s, tau):
    """:math:`P(|Y| > \\tau)`, :math:`Y \\sim N(\\mu, s^2)`."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if s <= 0:
        return (np.abs(mu) > tau).astype(float)
    return normal_sf((tau - mu) / s) + special.ndtr((-tau - mu) / s)


class MagnitudeEdge(EdgeRule):
    """Keep ``|w_ij| > tau_i``; per row (``scope="row"``) or one threshold (``"global"``,
    :class:`MagnitudeEdgeGlobal`)."""

    name = "magnitude_edge"
    description = "keep the largest |w_ij| of each row"
    deterministic = True
    smooth = False
    scope = "row"

    def __init__(self, scope: str | None = None):
        if scope is not None and scope != self.scope:
            self.scope = scope
            self.name = MagnitudeEdgeGlobal.name if scope == "global" else MagnitudeEdge.name

    def calibrate(self, Sigma, K, M, c):
        sd = np.sqrt(np.diag(Sigma)[:K])
        if self.scope == "row":
            z = special.ndtri(1.0 - c / 2.0) if c > 0 else np.inf
            self.tau = sd * z
        else:
            self.tau = np.full(K, solve_threshold(lambda t: np.mean(2 * normal_sf(t / _safe(sd))), c,
                                                float(np.max(sd))))
        self.sd = sd

    def keep_prob(self, i, w, g=None):
        return (np.abs(w) > self.tau[i]).astype(float)

    def breakpoints(self, i):
        return [-self.tau[i], self.tau[i]] if np.isfinite(self.tau[i]) else []

    def inner_first_moment(self, k, mu, s):
        return _trunc_first_moment(mu, s, self.tau[k])

    def mask(self, w, c, rng, **_):
        return _top(np.abs(w), c, self.scope), {}


class MagnitudeEdgeGlobal(MagnitudeEdge):
    name = "magnitude_edge_global"
    description = "keep the largest |w_ij| over the whole first layer (lottery tickets)"
    scope = "global"


class DPPEdge(EdgeRule):
    """``p = lambda_i w^2 / (1 + lambda_i w^2)`` with ``E[p_i] = c`` per row."""

    name = "dpp_edge"
    description = "per-unit k-DPP over the incoming edges (the authors' kernel)"

    def calibrate(self, Sigma, K, M, c):
        sd = np.sqrt(np.diag(Sigma)[:K])
        lam = np.zeros(K)
        for i in range(K):
            if c == 1.0:
                lam[i] = np.inf
            elif c > 0 and sd[i] > 0:
                def frac(log_l, s=sd[i]):
                    ell = math.exp(log_l)
                    y2 = (s * GH_X) ** 2
                    return float((ell * y2 / (1 + ell * y2)) @ GH_W) - c

                lam[i] = math.exp(optimize.brentq(frac, -60, 60, xtol=1e-14))
        self.lam = lam

    def keep_prob(self, i, w, g=None):
        lam = self.lam[i]
        if np.isinf(lam):
            return np.ones(np.shape(w))
        w2 = np.square(w)
        return lam * w2 / (1.0 + lam * w2)

    def mask(self, w, c, rng, *, n_samples, dpp_exact_max_N, **_):
        """A k-DPP per unit (``k = round(c N)``) with the empirical kernel
        :math:`w_{ij} w_{ij'} (X^T X / n)_{jj'}`; above ``dpp_exact_max_N`` its large-N limit."""
        K, N = w.shape
        k = int(round(c * N))
        if k == 0:
            return np.zeros((K, N), dtype=bool), {}
        if k == N:
            return np.ones((K, N), dtype=bool), {}
        mask = np.zeros((K, N), dtype=bool)
        if N <= dpp_exact_max_N:
            X = rng.standard_normal((n_samples, N))
            G = X.T @ X / n_samples
            for i in range(K):
                L = w[i][:, None] * G * w[i][None, :]
                S = dpp.sample_k_dpp(L, k, size=1, seed=rng)[0]
                mask[i, S] = True
            return mask, {"mode": "exact k-DPP, empirical kernel", "n_samples": n_samples}
        for i in range(K):
            w2 = w[i] ** 2
            lam = math.exp(optimize.brentq(
                lambda t, w2=w2: float(np.mean(np.exp(t) * w2 / (1 + np.exp(t) * w2))) - c,
                -60, 60))
            mask[i] = rng.random(N) < lam * w2 / (1 + lam * w2)
        return mask, {"mode": "large-N limit: independent edges, p = lam w^2 / (1 + lam w^2)"}


class SnipEdge(EdgeRule):
    """Keep the top fraction ``c`` of ``|w_ij g_ij|`` per row, or over all rows (``"global"``,
    :class:`SnipEdgeGlobal`)."""

    name = "snip_edge"
    description = "keep the largest |w_ij g_ij| of each row (SNIP; g the loss gradient)"
    needs_gradient = True
    smooth = False
    scope = "row"

    def __init__(self, scope: str | None = None):
        if scope is not None and scope != self.scope:
            self.scope = scope
            self.name = SnipEdgeGlobal.name if scope == "global" else SnipEdge.name

    def calibrate(self, Sigma, K, M, c):
        L = K + M
        self.K = K
        self.sd_w = np.sqrt(np.diag(Sigma)[:K])
        # Y | X for (X, Y) = (w_i, g_i): Y = beta_i X + s_i eps
        self.beta = np.zeros(K)
        self.s = np.zeros(K)
        for i in range(K):
            vx, cxy, vy = Sigma[i, i], Sigma[i, L + i], Sigma[L + i, L + i]
            self.beta[i] = cxy / vx if vx > 0 else 0.0
            self.s[i] = math.sqrt(max(vy - (cxy * cxy / vx if vx > 0 else 0.0), 0.0))
        if c == 0:
            self.tau = np.full(K, np.inf)
        elif self.scope == "row":
            self.tau = np.array([solve_threshold(lambda t, i=i: self._kept(i, t), c,
                                               self._scale(i)) for i in range(K)])
        else:
            scale = max(self._scale(i) for i in range(K))
            t = solve_threshold(lambda t: np.mean([self._kept(i, t) for i in range(K)]), c, scale)
            self.tau = np.full(K, t)

    def _scale(self, i):
        return self.sd_w[i] * (abs(self.beta[i]) * self.sd_w[i] + self.s[i]) + 1e-300

    def _kept(self, i, tau):
        """P(|X Y| > tau) = E_X[P(|Y| > tau/|X| | X)] (smooth in X: Gauss-Hermite)."""
        return _expect_x_smooth(lambda x: _trunc_prob(self.beta[i] * x, self.s[i],
                                                      tau / _safe(np.abs(x))), self.sd_w[i])

    def keep_prob(self, i, w, g=None):
        return (np.abs(w * g) > self.tau[i]).astype(float)

    def mask(self, w, c, rng, *, v, w_star, v_star, n_samples, activation, **_):
        """Scores :math:`|w_{ij} g_{ij}|` with the empirical gradient over ``n_samples``
        inputs."""
        if v is None or w_star is None or v_star is None:
            raise ValueError(f"rule={self.name!r} needs v, w_star and v_star (the gradient)")
        X = rng.standard_normal((n_samples, w.shape[1]))
        g = _empirical_gradient(w, np.asarray(v, float), np.asarray(w_star, float),
                                np.asarray(v_star, float), X, get_activation(activation))
        return _top(np.abs(w * g), c, self.scope), {"n_samples": n_samples}


class SnipEdgeGlobal(SnipEdge):
    name = "snip_edge_global"
    description = "keep the largest |w_ij g_ij| over the whole first layer"
    scope = "global"


def _safe(x):
    return np.maximum(x, 1e-300)


def solve_threshold(kept_fraction, c, scale):
    """Threshold ``t >= 0`` with ``kept_fraction(t) = c`` (monotone decreasing in t)."""
    if c >= 1.0:
        return 0.0
    if c <= 0.0:
        return np.inf
    hi = scale
    while kept_fraction(hi) > c:
        hi *= 4.0
    return optimize.brentq(lambda t: kept_fraction(t) - c, 0.0, hi, xtol=1e-15 * scale,
                           rtol=1e-14)


def _expect_x_smooth(f, sd):
    """:math:`E[f(X)]`, :math:`X \\sim N(0, sd^2)`, for smooth vectorised ``f``: Gauss-Hermite."""
    return float(f(sd * GH_X) @ GH_W)


def _expect_x(f, sd, points=()):
    """:math:`E[f(X)]`, :math:`X \\sim N(0, sd^2)`, adaptive quadrature (f vectorised)."""
    if sd <= 0:
        return float(f(np.array([0.0]))[0])
    pts = sorted({float(p) / sd for p in points if np.isfinite(p) and abs(p) / sd < 12})
    edges = [-12.0, *pts, 12.0]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        val, _ = integrate.quad(lambda u: float(f(np.array([sd * u]))[0]) * _phi(u), lo, hi,
                                epsabs=1e-15, epsrel=1e-12, limit=200)
        total += val
    return total


# ---------------------------------------------------------------------------------------------
# finite-N masks
# ---------------------------------------------------------------------------------------------
def top_mask(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean mask of the ``n_keep`` largest entries of ``scores`` (1-D); ties: lower index."""
    mask = np.zeros(scores.shape, dtype=bool)
    if n_keep > 0:
        order = np.argsort(-scores, kind="stable")
        mask[order[:n_keep]] = True
    return mask


def _top(scores: np.ndarray, c: float, scope: str) -> np.ndarray:
    """The top fraction ``c`` of ``scores`` (K, N): ``round(c N)`` per row (``scope="row"``) or
    ``round(c K N)`` over all entries (``"global"``)."""
    if scope == "row":
        n_keep = int(round(c * scores.shape[1]))
        return np.stack([top_mask(row, n_keep) for row in scores])
    return top_mask(scores.ravel(), int(round(c * scores.size))).reshape(scores.shape)


def _empirical_gradient(w, v, w_star, v_star, X, act):
    """``g`` (K, N): gradient of the mean squared loss over the samples ``X`` (n, N)."""
    N = w.shape[1]
    lam = X @ w.T / math.sqrt(N)
    nu = X @ w_star.T / math.sqrt(N)
    delta = act.g(lam) @ v - act.g(nu) @ v_star
    coef = delta[:, None] * v[None, :] * act.g_prime(lam)      # (n, K)
    return coef.T @ X / (X.shape[0] * math.sqrt(N))


#: the edge rules by name, in the order of :data:`odeprune.pruning.METHODS`; each class declares
#: its name once
RULES: dict[str, type[EdgeRule]] = {cls.name: cls for cls in (
    RandomEdge, MagnitudeEdge, MagnitudeEdgeGlobal, DPPEdge, SnipEdge, SnipEdgeGlobal)}
#: the rule names accepted by :func:`edge_prune_map`
EDGE_RULES = tuple(RULES)


def rule_class(name: str) -> type[EdgeRule]:
    """The :class:`EdgeRule` subclass of a rule name; ``ValueError`` listing the names."""
    if not isinstance(name, str) or name not in RULES:
        raise ValueError(f"rule={name!r} is unknown; expected one of {list(EDGE_RULES)}")
    return RULES[name]


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EdgeMapResult:
    """Pruned order parameters and the Monte Carlo standard errors of their entries (0 where
    computed by quadrature). For a Monte Carlo map, ``Q_batches`` (B, K, K) and ``R_batches``
    (B, K, M) are the estimates of ``B`` independent batches (``state`` holds their mean): the
    error of any function of the pruned state is the spread of its value over the batches
    divided by ``sqrt(B)``, with every covariance between the entries included."""

    state: OrderParams
    Q_se: np.ndarray
    R_se: np.ndarray
    method: str
    rule: EdgeRule
    Q_batches: np.ndarray | None = None
    R_batches: np.ndarray | None = None

    def batch_states(self) -> list[OrderParams]:
        """The pruned state of every Monte Carlo batch (empty for quadrature)."""
        if self.Q_batches is None:
            return []
        return [self.state.replace(Q=q, R=r) for q, r in zip(self.Q_batches, self.R_batches,
                                                             strict=True)]


def edge_prune_map(state: OrderParams, rule: str | EdgeRule, c: float, method: str = "auto",
                   n_samples: int = 400_000, seed=0, activation: str | None = None,
                   progress: bool | None = None) -> EdgeMapResult:
    r"""The order parameters after edge pruning with ``rule`` keeping a fraction ``c``.

    Parameters
    ----------
    state : OrderParams
    rule : str or EdgeRule
        One of :data:`EDGE_RULES` or a calibrated-on-demand :class:`EdgeRule` instance.
    c : float
        Kept fraction of first-layer weights, ``0 <= c <= 1``.
    method : {"auto", "quadrature", "mc"}
        ``auto``: quadrature for rules whose keep probability depends on ``w_ij`` alone (the
        expectations are one- and two-dimensional), Gaussian coordinate Monte Carlo for rules
        that also see the gradient (SNIP; ``Q'_ik`` is four-dimensional there, and one consistent
        sample keeps the pruned covariance PSD). ``mc``: Monte Carlo for every rule.
    n_samples : int
        Monte Carlo coordinates.
    seed : int or Generator
    activation : str, optional
        Must be the state's activation when given (the state's is used).
    progress : bool or None
        Progress bar over the Monte Carlo batches (None: when stderr is a terminal).

    Returns
    -------
    EdgeMapResult
        ``.state`` (v unchanged) and standard errors ``Q_se`` (K, K), ``R_se`` (K, M).

    Notes
    -----
    .. math:: Q'_{ii} = E[p_i w_i^2],\ Q'_{ik} = E[p_i p_k w_i w_k],\ R'_{in} = E[p_i w_i w^*_n]
    """
    c = check_c(c)
    activation = state.check_activation(activation)
    if method not in ("auto", "quadrature", "mc"):
        raise ValueError(f"method={method!r} is unknown; expected 'auto', 'quadrature' or 'mc'")
    if isinstance(rule, str):
        rule = rule_class(rule)()
    K, M = state.K, state.M
    Sigma = (augmented_covariance(state, activation) if rule.needs_gradient
             else np.array(state.covariance(), dtype=float))
    rule.calibrate(Sigma, K, M, c)
    _check_probabilities(rule, Sigma, K, M)
    Q = np.array(state.Q, dtype=float)
    R = np.array(state.R, dtype=float)
    Qp = np.zeros((K, K))
    Rp = np.zeros((K, M))
    Q_se = np.zeros((K, K))
    R_se = np.zeros((K, M))
    Q_batches = R_batches = None
    if method == "quadrature" and rule.needs_gradient:
        raise ValueError(f"rule {rule.name!r} needs Monte Carlo for Q'_ik; use method='auto'")
    n_samples = int(n_samples)

    if method == "mc" or rule.needs_gradient:
        # Gaussian coordinate Monte Carlo for every entry (one consistent sample: the pruned
        # overlaps are then a Gram matrix, and with moment matching the sample covariance of the
        # coordinates is exactly Sigma, so [[Q', R'], [R'^T, T]] is PSD and c = 1 is exact)
        Q_batches, R_batches = _coordinate_mc(rule, Sigma, K, M, n_samples, as_generator(seed),
                                              progress)
        n_batches = Q_batches.shape[0]
        Qp, Rp = Q_batches.mean(axis=0), R_batches.mean(axis=0)
        Q_se = Q_batches.std(axis=0, ddof=1) / math.sqrt(n_batches)
        R_se = R_batches.std(axis=0, ddof=1) / math.sqrt(n_batches)
    else:
        for i in range(K):
            m2 = _expect_x(lambda x: rule.keep_prob(i, x) * x * x, math.sqrt(Q[i, i]),
                           rule.breakpoints(i))
            Qp[i, i] = m2
            Rp[i] = R[i] / Q[i, i] * m2 if Q[i, i] > 0 else 0.0
        for i in range(K):
            for k in range(i + 1, K):
                Qp[i, k] = Qp[k, i] = _pair_moment(rule, Q, i, k)
    return EdgeMapResult(
        state=state.replace(Q=Qp, R=Rp), Q_se=Q_se, R_se=R_se, method=method, rule=rule,
        Q_batches=Q_batches, R_batches=R_batches)


#: independent Monte Carlo batches of a coordinate Monte Carlo edge map
MC_BATCHES = 20
#: edge maps kept by :func:`cached_edge_prune_map` (least recently used dropped first)
CACHE_SIZE = 64


class _ByValue:
    """An OrderParams hashed and compared by the bytes of its arrays (a cache key)."""

    __slots__ = ("state", "_key")

    def __init__(self, state: OrderParams):
        self.state = state
        self._key = (tuple(np.asarray(a).tobytes() for a in (state.Q, state.R, state.T, state.v,
                                                             state.v_star)),
                     state.K, state.M, state.activation)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _ByValue) and self._key == other._key


@functools.lru_cache(maxsize=CACHE_SIZE)
def _edge_prune_map_by_value(key: _ByValue, rule: str, c: float, seed, n_samples: int, progress):
    return edge_prune_map(key.state, rule, c, seed=seed, n_samples=n_samples, progress=progress)


def cached_edge_prune_map(state: OrderParams, rule: str, c: float, *, seed, n_samples: int,
                          progress: bool | None = None) -> EdgeMapResult:
    """:func:`edge_prune_map` (``method="auto"``), memoised when its result is a function of the
    arguments: an integer seed, or ``seed=None`` for a rule mapped by quadrature (not SNIP). The
    CLI and sweeps map one state once per reweighting; the Monte Carlo maps are the expensive
    ones. The memo is ``functools.lru_cache`` over the state's values, at most
    :data:`CACHE_SIZE` maps (``cached_edge_prune_map.cache_clear()`` empties it); a Generator
    seed is never memoised. The result is shared between hits: do not modify its arrays."""
    integer = seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool))
    if not integer or (seed is None and rule_class(rule).needs_gradient):
        return edge_prune_map(state, rule, c, seed=seed, n_samples=n_samples, progress=progress)
    return _edge_prune_map_by_value(_ByValue(state), rule, float(c), seed, n_samples, progress)


cached_edge_prune_map.cache_clear = _edge_prune_map_by_value.cache_clear


def _coordinate_mc(rule: EdgeRule, Sigma: np.ndarray, K: int, M: int, n_samples: int, rng,
                   progress: bool | None = False):
    """Pruned Q', R' of each of ``MC_BATCHES`` independent batches, shapes (B, K, K) and
    (B, K, M), by coordinate Monte Carlo.

    Each batch's coordinates are moment-matched: the standard normal draws are whitened so that
    their sample covariance is exactly the identity, hence that of ``z`` exactly ``Sigma``.
    """
    lam, U = np.linalg.eigh(Sigma)
    keep = lam > 1e-12 * max(1.0, float(lam[-1]))
    A = U[:, keep] * np.sqrt(lam[keep])           # Sigma = A A^T
    r = A.shape[1]
    n_batches = MC_BATCHES
    per = max(r + 2, n_samples // n_batches)
    sums_Q = np.zeros((n_batches, K, K))
    sums_R = np.zeros((n_batches, K, M))
    with progress_bar(progress, n_batches, f"{rule.name} Monte Carlo", unit="batch") as bar:
        for b in range(n_batches):
            _mc_batch(rule, A, K, M, per, r, rng, sums_Q[b], sums_R[b])
            bar.update(1)
    return sums_Q, sums_R


def _mc_batch(rule, A, K, M, per, r, rng, out_Q, out_R) -> None:
    """One moment-matched batch of ``per`` coordinate samples into ``out_Q``, ``out_R``."""
    u = rng.standard_normal((per, r))
    u -= u.mean(axis=0)
    S = u.T @ u / per
    ev, V = np.linalg.eigh(S)
    u = u @ (V / np.sqrt(ev)) @ V.T             # sample covariance exactly I
    z = u @ A.T
    w = z[:, :K]
    g = z[:, K + M:] if rule.needs_gradient else None
    P = np.column_stack([rule.keep_prob(i, w[:, i], None if g is None else g[:, i])
                         for i in range(K)])
    pw = P * w
    out_Q[...] = pw.T @ pw / per
    out_Q[np.diag_indices(K)] = np.mean(P * w * w, axis=0)
    out_R[...] = pw.T @ z[:, K:K + M] / per


def snip_marginal_quadrature(rule: SnipEdge, Sigma: np.ndarray, K: int, M: int, i: int
                             ) -> tuple[float, np.ndarray]:
    """``(Q'_ii, R'_i)`` of SNIP by one-dimensional quadrature (an independent check of the
    Monte Carlo): with (X, Y) = (w_i, g_i), :math:`E[w^*_n | X, Y]` is linear in (X, Y)."""
    b, s, tau = rule.beta[i], rule.s[i], rule.tau[i]
    sd = math.sqrt(Sigma[i, i])
    m_xx = _expect_x_smooth(lambda x: x * x * _trunc_prob(b * x, s, tau / _safe(np.abs(x))), sd)
    m_xy = _expect_x_smooth(
        lambda x: x * _trunc_first_moment(b * x, s, tau / _safe(np.abs(x))), sd)
    idx = [i, K + M + i]
    coef = np.linalg.lstsq(Sigma[np.ix_(idx, idx)], Sigma[np.ix_(idx, range(K, K + M))],
                           rcond=1e-12)[0]
    return m_xx, coef[0] * m_xx + coef[1] * m_xy


def _check_probabilities(rule: EdgeRule, Sigma: np.ndarray, K: int, M: int) -> None:
    for i in range(K):
        x = math.sqrt(Sigma[i, i]) * GH_X
        g = (math.sqrt(Sigma[K + M + i, K + M + i]) * GH_X[::-1] if rule.needs_gradient
             else None)
        p = np.asarray(rule.keep_prob(i, x, g), dtype=float)
        if p.shape != x.shape or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
            bad = p[~((p >= 0) & (p <= 1))] if p.shape == x.shape else p
            raise ValueError(f"edge rule {rule.name!r} returned keep probabilities outside [0, 1] "
                             f"(e.g. {float(np.ravel(bad)[0]) if np.size(bad) else p!r}) for row "
                             f"{i}; keep_prob must return values in [0, 1] of the shape of w")


def _pair_moment(rule: EdgeRule, Q: np.ndarray, i: int, k: int) -> float:
    """:math:`E[p_i(X) X\\, p_k(Y) Y]` for (X, Y) ~ N(0, Q[[i,k]][:, [i,k]])."""
    sx = math.sqrt(Q[i, i])
    sy = math.sqrt(Q[k, k])
    if sx == 0 or sy == 0:
        return 0.0
    beta = Q[i, k] / Q[i, i]
    s = math.sqrt(max(Q[k, k] - Q[i, k] ** 2 / Q[i, i], 0.0))
    if rule.smooth:
        x = sx * GH_X
        return float((rule.keep_prob(i, x) * x * rule.inner_first_moment(k, beta * x, s))
                     @ GH_W)
    return _expect_x(lambda x: rule.keep_prob(i, x) * x * rule.inner_first_moment(k, beta * x, s),
                     sx, rule.breakpoints(i))


def rescale_rows(state: OrderParams, original: OrderParams) -> OrderParams:
    r"""Variance-restoring row rescale ``w'_i = w_i \circ m_i / s_i`` with
    :math:`s_i = \sqrt{Q'_{ii}/Q_{ii}}`, so that every pruned row keeps its norm (the rescaling of
    pruning at initialisation, Hayou et al. 2021): :math:`Q''_{ik} = Q'_{ik}/(s_i s_k)`,
    :math:`R''_{in} = R'_{in}/s_i`."""
    s = np.sqrt(np.where(np.diag(original.Q) > 0,
                         np.diag(state.Q) / np.where(np.diag(original.Q) > 0,
                                                     np.diag(original.Q), 1.0), 1.0))
    s = np.where(s > 0, s, 1.0)
    return state.replace(Q=state.Q / np.outer(s, s), R=state.R / s[:, None])
