r"""Edge pruning as a map on order parameters: the engine of the edge rules in the limit
(``docs/theory.md`` §6, "Edge-pruning rules as Gaussian-coordinate maps").

:func:`edge_prune_map` calibrates a rule (:mod:`odeprune.pruning.edge_rules`) on the state and
computes the pruned order parameters

.. math::

    Q'_{ii} = E[p_i w_i^2],\quad Q'_{ik} = E[p_i p_k w_i w_k]\ (i\ne k),\quad
    R'_{in} = E[p_i w_i w^*_n],\quad T' = T,\quad v' = v,

by one-dimensional quadrature where they reduce to one dimension (diagonal of Q' and R' for every
rule here; Q'_ik for rules depending on ``w_i`` alone, :func:`pair_moment`) and by Gaussian
coordinate Monte Carlo with a standard error otherwise (``method="mc"``, or Q'_ik of SNIP).
:func:`cached_edge_prune_map` memoises it for the CLI and sweeps.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..ode.progress import progress_bar
from ..state import OrderParams, as_generator
from .edge_rules import EdgeRule, SnipEdge, UnitLaws, check_c, rule_class
from .gaussian import (
    GH_W,
    GH_X,
    augmented_covariance,
    expect_x,
    expect_x_smooth,
    factor,
    moment_matched,
    positive,
    trunc_first_moment,
    trunc_prob,
)
from .reweight import row_scales

__all__ = ["EdgeMapResult", "edge_prune_map", "cached_edge_prune_map", "pair_moment",
           "rescale_rows", "snip_marginal_quadrature", "MC_BATCHES", "CACHE_SIZE"]


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
        A rule name (:data:`~odeprune.pruning.registry.EDGE_METHODS`) or a calibrated-on-demand :class:`EdgeRule` instance.
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
    rule.calibrate(UnitLaws.dense(Sigma, K, M, rule.needs_gradient), c)
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
            m2 = rule.kept_second_moment(i, math.sqrt(Q[i, i]))
            Qp[i, i] = m2
            Rp[i] = R[i] / Q[i, i] * m2 if Q[i, i] > 0 else 0.0
        for i in range(K):
            for k in range(i + 1, K):
                Qp[i, k] = Qp[k, i] = pair_moment(rule, Q, i, k)
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
    A = factor(Sigma)                             # Sigma = A A^T
    r = A.shape[1]
    n_batches = MC_BATCHES
    per = max(r + 2, n_samples // n_batches)
    sums_Q = np.zeros((n_batches, K, K))
    sums_R = np.zeros((n_batches, K, M))
    with progress_bar(progress, n_batches, f"{rule.name} Monte Carlo", unit="batch") as bar:
        for b in range(n_batches):
            _mc_batch(rule, moment_matched(rng, A, per), K, M, sums_Q[b], sums_R[b])
            bar.update(1)
    return sums_Q, sums_R


def _mc_batch(rule, z, K, M, out_Q, out_R) -> None:
    """The pruned Q', R' of one batch of coordinates ``z`` (per, L) into ``out_Q``, ``out_R``."""
    per = z.shape[0]
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
    b, s, tau = rule.beta[0, i], rule.s[0, i], rule.tau[i]     # one stratum: the dense state
    sd = math.sqrt(Sigma[i, i])
    m_xx = expect_x_smooth(lambda x: x * x * trunc_prob(b * x, s, tau / positive(np.abs(x))), sd)
    m_xy = expect_x_smooth(
        lambda x: x * trunc_first_moment(b * x, s, tau / positive(np.abs(x))), sd)
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


def pair_moment(rule: EdgeRule, Q: np.ndarray, i: int, k: int) -> float:
    r""":math:`E[p_i(X) X\, p_k(Y) Y]` for :math:`(X, Y) \sim N(0, Q_{[ik],[ik]})`.

    An integral over ``x`` of the inner moment :math:`E[p_k(Y) Y \mid X = x]` with
    :math:`Y \mid x \sim N(\beta x, s^2)`, :math:`\beta = Q_{ik}/Q_{ii}`,
    :math:`s^2 = Q_{kk} - Q_{ik}^2/Q_{ii}`. For a rule with thresholds :math:`b` (magnitude:
    :math:`\pm\tau_k`) the inner moment turns over at :math:`x = b/\beta` within a width
    :math:`s/|\beta|`, which vanishes for nearly aligned units (the duplicated units of a
    trained K > M student): the integration is split there and at a few widths around it,
    besides the rule's own thresholds in ``x``. Smooth rules: Gauss-Hermite.
    """
    sx = math.sqrt(Q[i, i])
    sy = math.sqrt(Q[k, k])
    if sx == 0 or sy == 0:
        return 0.0
    beta = Q[i, k] / Q[i, i]
    s = math.sqrt(max(Q[k, k] - Q[i, k] ** 2 / Q[i, i], 0.0))

    def integrand(x):
        return rule.keep_prob(i, x) * x * rule.inner_first_moment(k, beta * x, s)

    if rule.smooth:
        return float(integrand(sx * GH_X) @ GH_W)
    points = list(rule.breakpoints(i))
    if beta != 0:
        width = s / abs(beta)
        for b in rule.breakpoints(k):
            points += [b / beta + m * width for m in (-8.0, -3.0, -1.0, 0.0, 1.0, 3.0, 8.0)]
    return expect_x(integrand, sx, points)


def rescale_rows(state: OrderParams, original: OrderParams) -> OrderParams:
    r"""Variance-restoring row rescale ``w'_i = w_i \circ m_i / s_i`` with
    :math:`s_i = \sqrt{Q'_{ii}/Q_{ii}}`, so that every pruned row keeps its norm (the rescaling of
    pruning at initialisation, Hayou et al. 2021): :math:`Q''_{ik} = Q'_{ik}/(s_i s_k)`,
    :math:`R''_{in} = R'_{in}/s_i`."""
    s = row_scales(np.diag(state.Q), np.diag(original.Q))
    return state.replace(Q=state.Q / np.outer(s, s), R=state.R / s[:, None])
