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
  (:mod:`odeprune._rhs`), so ``(z, g)`` is jointly Gaussian with a covariance computed from the
  state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, special

from .._progress import progress_bar
from .._rhs import s3_sums
from ..activations import get_activation
from ..state import OrderParams, as_generator

__all__ = ["EDGE_RULES", "EdgeRule", "edge_prune_map", "EdgeMapResult", "gradient_covariance",
           "augmented_covariance", "rescale_rows"]

_GH_X, _GH_W = special.roots_hermitenorm(120)  # probabilists' Gauss-Hermite: E f(X), X~N(0,1)
_GH_W = _GH_W / np.sqrt(2.0 * np.pi)
_SQRT2 = math.sqrt(2.0)


def _phi(x):
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


def _sf(x):
    return 0.5 * special.erfc(np.asarray(x) / _SQRT2)


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
    of :math:`E[p_k(Y) Y]` for :math:`Y\\sim N(\\mu, s^2)`), used by the Q'_ik quadrature."""

    name = "rule"
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
        y = mu[..., None] + s * _GH_X
        return (self.keep_prob(k, y) * y) @ _GH_W


class RandomEdge(EdgeRule):
    name = "random_edge"

    def calibrate(self, Sigma, K, M, c):
        self.c = c

    def keep_prob(self, i, w, g=None):
        return np.full(np.shape(w), self.c)

    def inner_first_moment(self, k, mu, s):
        return self.c * mu


def _trunc_first_moment(mu, s, tau):
    """:math:`E[Y 1\\{|Y| > \\tau\\}]`, :math:`Y \\sim N(\\mu, s^2)` (vectorised; s may be 0)."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if s <= 0:
        return np.where(np.abs(mu) > tau, mu, 0.0)
    a = (tau - mu) / s
    b = (-tau - mu) / s
    return mu * (_sf(a) + special.ndtr(b)) + s * (_phi(a) - _phi(b))


def _trunc_prob(mu, s, tau):
    """:math:`P(|Y| > \\tau)`, :math:`Y \\sim N(\\mu, s^2)`."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if s <= 0:
        return (np.abs(mu) > tau).astype(float)
    return _sf((tau - mu) / s) + special.ndtr((-tau - mu) / s)


class MagnitudeEdge(EdgeRule):
    """Keep ``|w_ij| > tau_i``; per row (``scope="row"``) or one threshold (``"global"``)."""

    smooth = False

    def __init__(self, scope: str = "row"):
        self.scope = scope
        self.name = "magnitude_edge" if scope == "row" else "magnitude_edge_global"

    def calibrate(self, Sigma, K, M, c):
        sd = np.sqrt(np.diag(Sigma)[:K])
        if self.scope == "row":
            z = special.ndtri(1.0 - c / 2.0) if c > 0 else np.inf
            self.tau = sd * z
        else:
            self.tau = np.full(K, _solve_global(lambda t: np.mean(2 * _sf(t / _safe(sd))), c,
                                                float(np.max(sd))))
        self.sd = sd

    def keep_prob(self, i, w, g=None):
        return (np.abs(w) > self.tau[i]).astype(float)

    def breakpoints(self, i):
        return [-self.tau[i], self.tau[i]] if np.isfinite(self.tau[i]) else []

    def inner_first_moment(self, k, mu, s):
        return _trunc_first_moment(mu, s, self.tau[k])


class DPPEdge(EdgeRule):
    """``p = lambda_i w^2 / (1 + lambda_i w^2)`` with ``E[p_i] = c`` per row."""

    name = "dpp_edge"

    def calibrate(self, Sigma, K, M, c):
        sd = np.sqrt(np.diag(Sigma)[:K])
        lam = np.zeros(K)
        for i in range(K):
            if c == 1.0:
                lam[i] = np.inf
            elif c > 0 and sd[i] > 0:
                def frac(log_l, s=sd[i]):
                    ell = math.exp(log_l)
                    y2 = (s * _GH_X) ** 2
                    return float((ell * y2 / (1 + ell * y2)) @ _GH_W) - c

                lam[i] = math.exp(optimize.brentq(frac, -60, 60, xtol=1e-14))
        self.lam = lam

    def keep_prob(self, i, w, g=None):
        lam = self.lam[i]
        if np.isinf(lam):
            return np.ones(np.shape(w))
        w2 = np.square(w)
        return lam * w2 / (1.0 + lam * w2)


class SnipEdge(EdgeRule):
    """Keep the top fraction ``c`` of ``|w_ij g_ij|`` per row, or over all rows (``"global"``)."""

    needs_gradient = True
    smooth = False

    def __init__(self, scope: str = "row"):
        self.scope = scope
        self.name = "snip_edge" if scope == "row" else "snip_edge_global"

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
            self.tau = np.array([_solve_global(lambda t, i=i: self._kept(i, t), c,
                                               self._scale(i)) for i in range(K)])
        else:
            scale = max(self._scale(i) for i in range(K))
            t = _solve_global(lambda t: np.mean([self._kept(i, t) for i in range(K)]), c, scale)
            self.tau = np.full(K, t)

    def _scale(self, i):
        return self.sd_w[i] * (abs(self.beta[i]) * self.sd_w[i] + self.s[i]) + 1e-300

    def _kept(self, i, tau):
        """P(|X Y| > tau) = E_X[P(|Y| > tau/|X| | X)] (smooth in X: Gauss-Hermite)."""
        return _expect_x_smooth(lambda x: _trunc_prob(self.beta[i] * x, self.s[i],
                                                      tau / _safe(np.abs(x))), self.sd_w[i])

    def keep_prob(self, i, w, g=None):
        return (np.abs(w * g) > self.tau[i]).astype(float)


def _safe(x):
    return np.maximum(x, 1e-300)


def _solve_global(kept_fraction, c, scale):
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
    return float(f(sd * _GH_X) @ _GH_W)


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


RULES = {
    "random_edge": RandomEdge,
    "magnitude_edge": lambda: MagnitudeEdge("row"),
    "magnitude_edge_global": lambda: MagnitudeEdge("global"),
    "dpp_edge": DPPEdge,
    "snip_edge": lambda: SnipEdge("row"),
    "snip_edge_global": lambda: SnipEdge("global"),
}
#: the rule names accepted by :func:`edge_prune_map`
EDGE_RULES = tuple(RULES)


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
    from .edge import check_c

    c = check_c(c)
    activation = state.check_activation(activation)
    if method not in ("auto", "quadrature", "mc"):
        raise ValueError(f"method={method!r} is unknown; expected 'auto', 'quadrature' or 'mc'")
    if isinstance(rule, str):
        if rule not in RULES:
            raise ValueError(f"rule={rule!r} is unknown; expected one of {list(EDGE_RULES)}")
        rule = RULES[rule]()
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
        x = math.sqrt(Sigma[i, i]) * _GH_X
        g = (math.sqrt(Sigma[K + M + i, K + M + i]) * _GH_X[::-1] if rule.needs_gradient
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
        x = sx * _GH_X
        return float((rule.keep_prob(i, x) * x * rule.inner_first_moment(k, beta * x, s))
                     @ _GH_W)
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
