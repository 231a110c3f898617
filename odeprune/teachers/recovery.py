"""What a trained network's magnitudes say about its teacher's support: first-crossing times of
learning curves, the matched teacher of each unit, support recovery of per-row magnitude pruning
(exact in the limit, ``docs/theory.md`` §11; on real weights; on a coordinate law's particles)
and the rank correlation of ``|w|`` at initialisation and after training."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize, special, stats

from .._stats import sem
from .._validate import check_real
from ..coords.decide import decide
from ..coords.law import CoordinateLaw
from ..sparse import SparseOrderParams
from .states import support_of_classes

__all__ = ["time_to_reach", "matched_teacher", "magnitude_threshold_limit",
           "support_recovery_limit", "support_recovery_finite", "support_recovery_law",
           "rank_correlation_limit", "rank_correlation_finite", "weighted_spearman"]


# ---------------------------------------------------------------------------- helpers
def time_to_reach(alpha, eg, thresholds) -> np.ndarray:
    """First time at which ``eg`` falls to each threshold, by log-log interpolation between the
    saved points (``alpha`` increasing); NaN where it never does (or already does at the first
    point: 0 is returned then). ``eg`` may have a leading axis (replicas, seeds)."""
    alpha = np.asarray(alpha, float)
    E = np.atleast_2d(np.asarray(eg, float))
    th = np.atleast_1d(np.asarray(thresholds, float))
    out = np.full((E.shape[0], th.size), np.nan)
    for r, e in enumerate(E):
        for k, t in enumerate(th):
            below = np.flatnonzero(e <= t)
            if below.size == 0:
                continue
            j = below[0]
            if j == 0:
                out[r, k] = alpha[0]
                continue
            a0, a1, e0, e1 = alpha[j - 1], alpha[j], e[j - 1], e[j]
            if a0 > 0 and e0 > 0 and e1 > 0:
                x = (np.log(t) - np.log(e0)) / (np.log(e1) - np.log(e0))
                out[r, k] = float(np.exp(np.log(a0) + x * (np.log(a1) - np.log(a0))))
            else:
                out[r, k] = a0 + (t - e0) / (e1 - e0) * (a1 - a0)
    return out if np.ndim(eg) > 1 else out[0]


def matched_teacher(R) -> np.ndarray:
    """The teacher unit each student unit learns: ``argmax_n |R_in|`` (``docs/theory.md`` §7)."""
    return np.argmax(np.abs(np.asarray(R)), axis=1)


# ---------------------------------------------------------------------------- support recovery
def magnitude_threshold_limit(state: SparseOrderParams, c: float) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    r"""Per-row magnitude pruning of a masked state's Gaussian classes, exactly.

    In class ``s`` the coordinate ``w_ij`` of a kept unit is ``N(0, Q^s_ii / f_s)`` (Gaussian per
    class: the initial law is, and training maps it linearly, ``docs/theory.md`` §11). Keeping
    the fraction ``c`` of each row's weights of largest ``|w|`` means the threshold ``t_i`` with

    .. math:: \sum_s f_s\, \mathrm{erfc}\big(t_i / \sqrt{2 Q^s_{ii}/f_s}\big) = c\,
              \sum_{s \ni i} f_s ,

    and class ``s`` keeps its coordinates with probability ``erfc(t_i / sqrt(2 Q^s_ii / f_s))``.

    Returns
    -------
    t : ndarray (K,)
        The thresholds.
    keep : ndarray (n_classes, K)
        Probability that a weight of unit ``i`` in class ``s`` is kept (0 where ``i`` is pruned).
    """
    c = check_real("c", c)
    if c > 1:
        raise ValueError(f"c={c!r} must be in (0, 1] (the kept fraction per row)")
    f = np.asarray(state.f)
    var = np.diagonal(np.asarray(state.Q), axis1=1, axis2=2) / np.where(f > 0, f, 1.0)[:, None]
    present = np.asarray(state.patterns) & (f[:, None] > 0)
    t = np.zeros(state.K)
    keep = np.zeros((state.n_classes, state.K))
    for i in range(state.K):
        sel = present[:, i] & (var[:, i] > 0)
        if not sel.any():
            continue
        fs, sd = f[sel], np.sqrt(var[sel, i])
        target = c * f[present[:, i]].sum()
        if c >= 1:
            t[i] = 0.0
        else:
            def excess(x, fs=fs, sd=sd, target=target):
                return float((fs * special.erfc(x / (np.sqrt(2.0) * sd))).sum()) - target
            hi = 40.0 * float(sd.max())
            t[i] = optimize.brentq(excess, 0.0, hi, xtol=1e-14 * hi, rtol=1e-14)
        keep[sel, i] = special.erfc(t[i] / (np.sqrt(2.0) * sd))
    return t, keep


def support_recovery_limit(state: SparseOrderParams, c: float) -> dict:
    """Does magnitude pruning (per row, kept fraction ``c``) of a trained network keep its
    teacher's support? Exact in the limit (:func:`magnitude_threshold_limit`).

    Unit ``i`` is matched to teacher ``n(i) = argmax_n |R_in|`` (:func:`matched_teacher`); a
    coordinate is *on support* when the matched teacher's weight there is non-zero (the class's
    teacher pattern, :func:`support_of_classes`).

    Returns
    -------
    dict
        ``p_on``, ``p_off`` (means over units of ``P(kept | on support)`` and
        ``P(kept | off support)``), ``p_on_units``, ``p_off_units`` (K,), ``matched`` (K,).
    """
    _, keep = magnitude_threshold_limit(state, c)
    sup = support_of_classes(state)
    matched = matched_teacher(np.asarray(state.R).sum(0))
    f = np.asarray(state.f)
    p_on, p_off = np.full(state.K, np.nan), np.full(state.K, np.nan)
    for i in range(state.K):
        on = sup[:, matched[i]]
        if (f * on).sum() > 0:
            p_on[i] = (f * on * keep[:, i]).sum() / (f * on).sum()
        if (f * ~on).sum() > 0:
            p_off[i] = (f * ~on * keep[:, i]).sum() / (f * ~on).sum()
    return dict(p_on=float(np.nanmean(p_on)), p_off=float(np.nanmean(p_off)),
                p_on_units=p_on, p_off_units=p_off, matched=matched)


def top_rows(w: np.ndarray, c: float) -> np.ndarray:
    """Per row, the ``round(c N)`` largest ``|w|`` (K, N) bool."""
    K, N = w.shape
    n = int(round(c * N))
    out = np.zeros((K, N), bool)
    if n > 0:
        idx = np.argpartition(-np.abs(w), n - 1, axis=1)[:, :n]
        np.put_along_axis(out, idx, True, axis=1)
    return out


def support_recovery_finite(w, w_star, c: float, R=None) -> dict:
    """:func:`support_recovery_limit` on real weights: per row, keep the ``round(c N)`` weights of
    largest ``|w_ij|``; ``P(kept | on support)`` over the coordinates where the matched teacher's
    weight (``R`` (K, M) for the matching; default the weights' overlaps) is non-zero."""
    w = np.asarray(w, float)
    w_star = np.asarray(w_star, float)
    c = check_real("c", c)
    R = w @ w_star.T / w.shape[1] if R is None else np.asarray(R)
    matched = matched_teacher(R)
    keep = top_rows(w, c)
    on = w_star[matched] != 0
    with np.errstate(invalid="ignore"):
        p_on = (keep & on).sum(1) / on.sum(1)
        p_off = (keep & ~on).sum(1) / (~on).sum(1)
    return dict(p_on=float(np.nanmean(p_on)), p_off=float(np.nanmean(p_off)),
                p_on_units=p_on, p_off_units=p_off, matched=matched)


def support_recovery_law(law: CoordinateLaw, R=None) -> dict:
    """``P(kept | on support)`` of a decided law (its ``mask``), weighted over particles, per
    replica: ``p_on`` and ``p_off`` (R,) means over units, with ``*_mean`` and ``*_se`` (the
    Monte-Carlo error over replicas). On support: the matched teacher coordinate is non-zero
    (``|w*| > 1e-9``; a class off the support carries zeros to rounding, ~1e-15)."""
    Rm = law.dense().R if R is None else np.asarray(R)
    matched = matched_teacher(Rm)
    p_on, p_off = np.zeros(law.replicas), np.zeros(law.replicas)
    for r in range(law.replicas):
        wt = law.weights[r]
        on = np.abs(law.w_star[r][:, matched]) > 1e-9        # (S, K)
        kept = law.mask[r]
        a = (wt[:, None] * (kept & on)).sum(0) / (wt[:, None] * on).sum(0)
        b = (wt[:, None] * (kept & ~on)).sum(0) / (wt[:, None] * ~on).sum(0)
        p_on[r], p_off[r] = np.nanmean(a), np.nanmean(b)
    return dict(p_on=p_on, p_off=p_off, p_on_mean=float(p_on.mean()),
                p_on_se=float(sem(p_on)), p_off_mean=float(p_off.mean()),
                p_off_se=float(sem(p_off)), matched=matched)


# ---------------------------------------------------------------------------- rank correlation
def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
                      ) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` under particle ``weights``: the Pearson
    correlation of the weighted mid-rank CDF values ``F(x_j) = sum_{x_k < x_j} w_k + w_j / 2``
    (equal weights: the ordinary Spearman coefficient, without ties)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    wt = np.full(x.size, 1.0 / x.size) if weights is None else np.asarray(weights, float)
    wt = wt / wt.sum()

    def cdf(a):
        order = np.argsort(a, kind="stable")
        F = np.empty(a.size)
        F[order] = np.cumsum(wt[order]) - 0.5 * wt[order]
        return F

    Fx, Fy = cdf(x), cdf(y)
    mx, my = (wt * Fx).sum(), (wt * Fy).sum()
    cov = (wt * (Fx - mx) * (Fy - my)).sum()
    return float(cov / np.sqrt((wt * (Fx - mx) ** 2).sum() * (wt * (Fy - my) ** 2).sum()))


def rank_correlation_limit(law_T: CoordinateLaw, law_0: CoordinateLaw, c: float | None = None,
                           seed: Any = 0) -> dict:
    """"Good at initialisation stays good", in the limit: per replica, the Spearman correlation
    of ``|w_ij(0)|`` and ``|w_ij(alpha_T)|`` over the particles of each row (the same particles
    at both times: :meth:`CoordinateLaw.from_joint`), mean over rows; with ``c``, also the
    fraction of the magnitude mask at ``alpha_T`` (kept fraction ``c`` per row) that the
    magnitude mask at 0 already holds. Means and Monte-Carlo errors over replicas."""
    if law_T.w.shape != law_0.w.shape:
        raise ValueError("law_T and law_0 must be the same particles (from_joint)")
    rho = np.array([np.mean([weighted_spearman(np.abs(law_0.w[r, :, i]),
                                               np.abs(law_T.w[r, :, i]), law_T.weights[r])
                             for i in range(law_T.K)]) for r in range(law_T.replicas)])
    out = dict(rho=rho, rho_mean=float(rho.mean()), rho_se=float(sem(rho)))
    if c is not None:
        mT = decide(law_T, "magnitude_edge", c, seed=seed).mask
        m0 = decide(law_0, "magnitude_edge", c, seed=seed).mask
        wt = law_T.weights[:, :, None]
        ov = ((wt * (mT & m0)).sum(1) / (wt * mT).sum(1)).mean(1)
        out.update(overlap=ov, overlap_mean=float(ov.mean()), overlap_se=float(sem(ov)))
    return out


def rank_correlation_finite(w0, wT, c: float | None = None) -> dict:
    """:func:`rank_correlation_limit` on real weights (K, N): Spearman per row, mean over rows;
    with ``c``, the overlap of the magnitude masks at 0 and at ``alpha_T``."""
    w0, wT = np.abs(np.asarray(w0, float)), np.abs(np.asarray(wT, float))
    rho = float(np.mean([stats.spearmanr(w0[i], wT[i]).statistic for i in range(w0.shape[0])]))
    out = dict(rho=rho)
    if c is not None:
        m0, mT = top_rows(w0, c), top_rows(wT, c)
        out["overlap"] = float(((m0 & mT).sum(1) / mT.sum(1)).mean())
    return out
