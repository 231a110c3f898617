r"""Edge-pruning rules: keep probabilities of first-layer weights, their calibration and their
finite-N masks (``docs/theory.md`` §6, "Edge-pruning rules as Gaussian-coordinate maps").

In the thermodynamic limit the coordinates ``j = 1..N`` of the weight vectors,
``z_j = (w_1j..w_Kj, w*_1j..w*_Mj)``, are distributed as a Gaussian vector with covariance
``C = [[Q, R], [R^T, T]]``. A rule keeps ``w_ij`` with probability ``p_i(z_j)``, independently
across rows given the coordinate; the map of the order parameters that follows is computed by
:mod:`odeprune.pruning.edge_map`:

.. math::

    Q'_{ii} = E[p_i w_i^2],\quad Q'_{ik} = E[p_i p_k w_i w_k]\ (i\ne k),\quad
    R'_{in} = E[p_i w_i w^*_n],\quad T' = T,\quad v' = v.

A rule is an :class:`EdgeRule`: it is *calibrated* on the law of each unit's deciding
coordinates (:class:`UnitLaws`: thresholds set by the kept fraction ``c``) and gives the keep
probability ``p_i`` as a function of the row's coordinate ``w_i`` and, for sensitivity rules,
of the gradient coordinate ``g_i``. A dense network is one stratum of :class:`UnitLaws`; an
already masked network (:mod:`odeprune.pruning.sparse_maps`) is a mixture of strata, one per
mask class, and the same :meth:`EdgeRule.calibrate` serves both. Adding a rule is writing its
``keep_prob`` and ``calibrate``.

Every rule also has its finite-N form, :meth:`EdgeRule.mask` (a (K, N) mask of real weights,
used by :func:`odeprune.pruning.finite_edges.edge_mask`), next to its limit form; the rule classes
declare the rule names (:data:`RULES`), from which :mod:`odeprune.pruning.registry` derives every
list of method names.

Rules (``prune(state, name, c=...)``):

- ``random_edge`` -- ``p = c``; equals Lemma 6 of Acharyya et al. (2021) (:func:`random_edge_map`).
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
  fields is :func:`~odeprune.pruning.gaussian.gradient_covariance`, so ``(z, g)`` is jointly
  Gaussian with a covariance computed from the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from ..activations import get_activation
from ..state import OrderParams
from . import dpp
from .gaussian import (
    GH_W,
    GH_X,
    expect_x,
    normal_sf,
    positive,
    solve_threshold,
    trunc_first_moment,
    trunc_second_moment,
)

__all__ = ["RULES", "EdgeRule", "UnitLaws", "check_c", "random_edge_map", "rule_class",
           "top_mask"]


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

    Keeping every first-layer weight independently with probability ``c`` gives these exact
    expectations at any N; as N grows the pruned overlaps self-average, so in the limit the
    pruned network *is* this map (no spread over masks; ``docs/theory.md`` §6, "Random edge
    pruning").

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
# what a rule is calibrated on
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class UnitLaws:
    r"""The law of each unit's deciding coordinates, per stratum: what a rule is calibrated on.

    A dense network is one stratum of mass 1 (:meth:`dense`); a masked network a mixture of its
    mask classes (:meth:`from_strata`), where the kept fraction counts the weights that are still
    kept only.

    Attributes
    ----------
    mass : ndarray, shape (S, K)
        Weight of the kept coordinates of unit ``i`` in stratum ``s`` (``f_s m_si``).
    var_w : ndarray, shape (S, K)
        Variance of the deciding weight ``w_i`` in each stratum.
    cov_wg, var_g : ndarray, shape (S, K), or None
        Covariance of ``w_i`` with the gradient coordinate ``g_i``, and the variance of ``g_i``
        (rules that score with the gradient).
    """

    mass: np.ndarray
    var_w: np.ndarray
    cov_wg: np.ndarray | None = None
    var_g: np.ndarray | None = None

    @classmethod
    def from_strata(cls, Sigmas, mass, decide_cols, grad_cols=None) -> UnitLaws:
        """From per-stratum covariances ``Sigmas`` (S, L, L) of one coordinate, the kept mass
        (S, K) and the columns of the deciding weights (and of the gradient coordinates)."""
        Sigmas = np.asarray(Sigmas, dtype=float)
        d = np.asarray(decide_cols)
        var_w = np.maximum(Sigmas[:, d, d], 0.0)
        if grad_cols is None:
            return cls(np.asarray(mass, dtype=float), var_w)
        g = np.asarray(grad_cols)
        return cls(np.asarray(mass, dtype=float), var_w, Sigmas[:, d, g],
                   np.maximum(Sigmas[:, g, g], 0.0))

    @classmethod
    def dense(cls, Sigma, K: int, M: int, needs_gradient: bool = False) -> UnitLaws:
        """One stratum: ``Sigma`` the covariance of ``(w, w*)`` or, with the gradient, of
        ``(w, w*, g)`` (:func:`~odeprune.pruning.gaussian.augmented_covariance`)."""
        return cls.from_strata(np.asarray(Sigma, dtype=float)[None], np.ones((1, K)),
                               list(range(K)),
                               list(range(K + M, 2 * K + M)) if needs_gradient else None)

    @property
    def K(self) -> int:
        return self.mass.shape[1]

    @property
    def sd(self) -> np.ndarray:
        """Standard deviation of the deciding weights, (S, K)."""
        return np.sqrt(self.var_w)

    def kept_fraction(self, p: np.ndarray, rows) -> float:
        """The mass-weighted mean over strata and ``rows`` of per-(stratum, unit) keep
        fractions ``p`` (S, K)."""
        wk = self.mass[:, rows]
        return float((wk * p[:, rows]).sum() / wk.sum())

    def threshold(self, kept, c: float, scope: str, scales: np.ndarray) -> np.ndarray:
        """Thresholds (K,) with kept fraction ``c`` per row (``scope="row"``) or over all rows
        (``"global"``); ``kept(t)`` gives the (S, K) keep fractions at threshold ``t``;
        ``scales`` (K,) the order of each unit's threshold (the solver's absolute tolerance is
        1e-15 times the scale of the rows solved for)."""
        scales = np.asarray(scales, dtype=float)

        def solve(rows):
            if self.mass[:, rows].sum() <= 0:
                return np.inf
            return solve_threshold(lambda t: self.kept_fraction(kept(t), rows), c,
                                   float(positive(scales[rows].max())))

        if scope == "row":
            return np.array([solve([i]) for i in range(self.K)])
        return np.full(self.K, solve(list(range(self.K))))


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------
class EdgeRule:
    """A keep-probability rule for first-layer weights. Subclasses set ``name`` and implement
    :meth:`calibrate` and :meth:`keep_prob`; optionally :meth:`inner_first_moment` (a closed form
    of :math:`E[p_k(Y) Y]` for :math:`Y\\sim N(\\mu, s^2)`), used by the Q'_ik quadrature, and
    :meth:`kept_second_moment`. The rules of :data:`RULES` also implement :meth:`mask`, their
    finite-N form."""

    name = "rule"
    #: one line for ``--help`` and the registry
    description = ""
    #: the rule's family and scope (``"row"``: per unit; ``"global"``: over all rows), as
    #: :func:`odeprune.coords.decide` names them
    family = "rule"
    scope = "row"
    #: the finite-N mask is a function of the weights (one mask, no randomness)
    deterministic = False
    needs_gradient = False
    #: p is smooth in w (Gauss-Hermite); otherwise it jumps at :meth:`breakpoints`
    smooth = True

    def calibrate(self, laws: UnitLaws, c: float) -> None:
        """Set the rule's thresholds so that it keeps a fraction ``c`` under ``laws``."""
        raise NotImplementedError

    def keep_prob(self, i: int, w: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def breakpoints(self, i: int) -> list[float]:
        """Values of ``w_i`` where the keep probability jumps (for the quadrature)."""
        return []

    def inner_first_moment(self, k: int, mu: np.ndarray, s: float) -> np.ndarray:
        """:math:`E[p_k(Y) Y]`, :math:`Y \\sim N(\\mu, s^2)`; default: Gauss-Hermite (smooth p)."""
        y = mu[..., None] + s * GH_X
        return (self.keep_prob(k, y) * y) @ GH_W

    def kept_second_moment(self, i: int, sd: float) -> float:
        """:math:`E[p_i(X) X^2]`, :math:`X \\sim N(0, sd^2)`; default: quadrature split at the
        :meth:`breakpoints`."""
        return expect_x(lambda x: self.keep_prob(i, x) * x * x, sd, self.breakpoints(i))

    def closed_form(self, state: OrderParams, c: float) -> OrderParams | None:
        """The limit map in closed form, or None (then :mod:`~odeprune.pruning.edge_map`)."""
        return None

    def mask(self, w: np.ndarray, c: float, rng: np.random.Generator, *, v, w_star, v_star,
             n_samples: int, activation: str, dpp_exact_max_N: int
             ) -> tuple[np.ndarray, dict[str, Any]]:
        """The finite-N form: a (K, N) boolean mask of the kept weights of ``w`` and what to
        record about how it was made."""
        raise NotImplementedError(f"edge rule {self.name!r} has no finite-N mask")


class RandomEdge(EdgeRule):
    name = "random_edge"
    description = "keep every first-layer weight independently with probability c (Lemma 6)"
    family = "random"

    def calibrate(self, laws, c):
        self.c = c

    def keep_prob(self, i, w, g=None):
        return np.full(np.shape(w), self.c)

    def inner_first_moment(self, k, mu, s):
        return self.c * mu

    def closed_form(self, state, c):
        return random_edge_map(state, c)      # Lemma 6

    def mask(self, w, c, rng, **_):
        return rng.random(w.shape) < c, {}


class MagnitudeEdge(EdgeRule):
    """Keep ``|w_ij| > tau_i``, per row (global: :class:`MagnitudeEdgeGlobal`)."""

    name = "magnitude_edge"
    description = "keep the largest |w_ij| of each row"
    family = "magnitude"
    deterministic = True
    smooth = False

    def calibrate(self, laws, c):
        sd = laws.sd

        def kept(t):
            # P(|w| > t) per stratum and unit; zero-variance weights are never kept (|0| > t)
            return np.where(sd > 0, 2.0 * normal_sf(t / np.where(sd > 0, sd, 1.0)), 0.0)

        self.tau = laws.threshold(kept, c, self.scope, sd.max(axis=0))

    def keep_prob(self, i, w, g=None):
        return (np.abs(w) > self.tau[i]).astype(float)

    def breakpoints(self, i):
        return [-self.tau[i], self.tau[i]] if np.isfinite(self.tau[i]) else []

    def inner_first_moment(self, k, mu, s):
        return trunc_first_moment(mu, s, self.tau[k])

    def kept_second_moment(self, i, sd):
        return trunc_second_moment(sd, float(self.tau[i]))

    def mask(self, w, c, rng, **_):
        return _top(np.abs(w), c, self.scope), {}


class MagnitudeEdgeGlobal(MagnitudeEdge):
    name = "magnitude_edge_global"
    description = "keep the largest |w_ij| over the whole first layer (lottery tickets)"
    scope = "global"


class DPPEdge(EdgeRule):
    """``p = lambda_i w^2 / (1 + lambda_i w^2)`` with a kept fraction ``c`` per row."""

    name = "dpp_edge"
    description = "per-unit k-DPP over the incoming edges (the authors' kernel)"
    family = "dpp"

    def calibrate(self, laws, c):
        sd, wk = laws.sd, laws.mass
        lam = np.zeros(laws.K)
        for i in range(laws.K):
            if c == 1.0:
                lam[i] = np.inf
            elif c > 0 and np.any(wk[:, i] * sd[:, i] > 0):
                y2 = (sd[:, i, None] * GH_X[None]) ** 2                   # (S, n_gh)
                wts = wk[:, i] / wk[:, i].sum()

                def frac(log_l, y2=y2, wts=wts):
                    ell = math.exp(log_l)
                    return float(wts @ ((ell * y2 / (1 + ell * y2)) @ GH_W)) - c

                if frac(60.0) < 0:   # the zero-weight mass cannot reach c
                    lam[i] = np.inf
                else:
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
    """Keep the top fraction ``c`` of ``|w_ij g_ij|`` per row (global: :class:`SnipEdgeGlobal`).

    Given ``w_i = x``, the gradient coordinate is ``g_i | x ~ N(beta x, s^2)`` in each stratum
    (``beta``, ``s``: arrays (S, K) after :meth:`calibrate`)."""

    name = "snip_edge"
    description = "keep the largest |w_ij g_ij| of each row (SNIP; g the loss gradient)"
    family = "snip"
    needs_gradient = True
    smooth = False

    def calibrate(self, laws, c):
        vx, cxy, vy = laws.var_w, laws.cov_wg, laws.var_g
        pos = vx > 0
        self.beta = np.where(pos, cxy / np.where(pos, vx, 1.0), 0.0)
        self.s = np.sqrt(np.maximum(vy - np.where(pos, cxy * cxy / np.where(pos, vx, 1.0), 0.0),
                                    0.0))
        self.sd_w = np.sqrt(vx)
        x = self.sd_w[..., None] * GH_X                              # (S, K, n)
        mu = self.beta[..., None] * x
        ss = self.s[..., None]
        ss_safe = np.where(ss > 0, ss, 1.0)
        ax = positive(np.abs(x))

        def kept(t):
            """P(|w_i g_i| > t) = E_x[P(|g_i| > t/|x| | x)] per stratum and unit (Gauss-Hermite
            over x: smooth in x)."""
            tau = t / ax
            p = np.where(ss > 0,
                         normal_sf((tau - mu) / ss_safe) + special.ndtr((-tau - mu) / ss_safe),
                         (np.abs(mu) > tau).astype(float))
            return p @ GH_W

        scales = (self.sd_w * (np.abs(self.beta) * self.sd_w + self.s)).max(axis=0)
        self.tau = laws.threshold(kept, c, self.scope, scales)

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


#: the edge rules by name, in the order of :data:`odeprune.pruning.registry.METHODS`; each class
#: declares its name once, and every list of edge-method names derives from this table
RULES: dict[str, type[EdgeRule]] = {cls.name: cls for cls in (
    RandomEdge, MagnitudeEdge, MagnitudeEdgeGlobal, DPPEdge, SnipEdge, SnipEdgeGlobal)}


def rule_class(name: str) -> type[EdgeRule]:
    """The :class:`EdgeRule` subclass of a rule name; ``ValueError`` listing the names."""
    if not isinstance(name, str) or name not in RULES:
        raise ValueError(f"rule={name!r} is unknown; expected one of {list(RULES)}")
    return RULES[name]


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
