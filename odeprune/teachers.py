r"""Sparse teachers: the lottery-ticket papers in their own setting (issue 24).

Zhang et al. (NeurIPS 2021, "Why lottery ticket wins?"; ICLR 2023) take a **sparse** ground
truth: teacher unit ``n`` has non-zero first-layer weights only on its support ``Omega_n``
(``r = c_t N`` coordinates, the per-unit density ``c_t``), and the winning ticket is a student mask
that contains the support. In the order-parameter picture a sparse teacher needs nothing new
(``docs/theory.md`` §8): split the input coordinates by (student mask pattern, teacher support
pattern); a class off the support of teacher ``n`` has ``T^s_nn = 0``, and the masked-network ODE
moves the classes as for any teacher. This module builds those states, in the limit and from real
weights, the **oracle ticket** (student mask = teacher support), and answers the papers'
questions (``docs/sparse_teacher.md``):

- how fast does a ticket converge (α to reach ε_g ≤ θ) -- :func:`convergence_limit`,
  :func:`convergence_finite`, :func:`time_to_reach`;
- does magnitude pruning of the trained dense student find the support --
  :func:`support_recovery_limit` (exact closed form), :func:`support_recovery_finite`;
- is a unit's good coordinate at initialisation still good after training (rank correlation of
  ``|w|`` at 0 and at α_T) -- :func:`rank_correlation_limit` (joint-law particles, §9/§11),
  :func:`rank_correlation_finite`.

**Exact identity** (``docs/sparse_teacher.md``, tested): if every student unit is masked with the
same set of density ``c`` and that set is the support of every teacher unit, the masked curve at
α equals the dense curve of the same order parameters at ``α / c`` with ``η`` and ``η_v``
multiplied by ``c`` (:func:`dense_equivalent`).

Conventions: teacher coordinates i.i.d. N(0, 1) on the support (``normalise=True``: N(0, 1/c_t),
so that ``T_nn = 1``), student coordinates and ``v`` i.i.d. N(0, 1) as in
:meth:`~odeprune.OrderParams.draw_weights` (same ``w, w*, v`` for the same seed; the support is
drawn after them from the same stream). Finite N: every teacher unit has exactly
``r = max(1, round(c_t N))`` non-zero weights at uniformly random positions (independently per
unit, or one set for all units with ``shared_support=True``).
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from . import schedules
from ._stats import sem
from ._validate import as_generator, check_mask, check_real, check_size
from .coords.decide import decide
from .coords.law import CoordinateLaw
from .coords.run import integrate_law
from .ode.dynamics import integrate
from .sim import simulate
from .sparse import SparseOrderParams
from .state import OrderParams, broadcast_v_star

__all__ = ["check_teacher_density", "check_teacher_mask", "teacher_support",
           "sparse_teacher_weights", "student_mask", "oracle_ticket_mask",
           "sparse_teacher_state", "oracle_ticket_state", "from_weights_split",
           "support_of_classes", "dense_equivalent", "time_to_reach", "matched_teacher",
           "magnitude_threshold_limit", "support_recovery_limit", "support_recovery_finite",
           "rank_correlation_limit", "rank_correlation_finite", "weighted_spearman",
           "magnitude_ticket_limit", "convergence_limit", "convergence_finite",
           "support_recovery_experiment", "support_recovery_law", "ORACLE_RULES"]

#: student-mask rules that derive the mask from the teacher's support
ORACLE_RULES = ("oracle", "oracle_union")


# ---------------------------------------------------------------------------- validation
def check_teacher_density(teacher_density: Any) -> float:
    """The per-unit density of the teacher's support, a real number in (0, 1]."""
    if isinstance(teacher_density, (bool, np.bool_)):
        raise ValueError(f"teacher_density={teacher_density!r} must be a real number in (0, 1]")
    try:
        c = float(teacher_density)
    except (TypeError, ValueError):
        raise ValueError(f"teacher_density={teacher_density!r} must be a real number in "
                         "(0, 1]") from None
    if not np.isfinite(c) or not 0 < c <= 1:
        raise ValueError(f"teacher_density={teacher_density!r} must be in (0, 1] (the fraction "
                         "of non-zero first-layer weights of each teacher unit)")
    return c


def check_teacher_mask(teacher_mask: Any, M: int, N: int) -> np.ndarray:
    """A teacher support ``(M, N)`` of 0/1 (or bool) entries, as a bool array."""
    return check_mask("teacher_mask", teacher_mask, (M, N), "(M, N)")


# ---------------------------------------------------------------------------- finite N
def teacher_support(N: int, M: int, teacher_density: float, seed: Any = 0,
                    shared_support: bool = False) -> np.ndarray:
    """A random teacher support ``(M, N)`` bool: ``r = max(1, round(c_t N))`` positions per unit,
    uniform without replacement, independently per unit (or one set for all units)."""
    N, M = check_size("N", N), check_size("M", M)
    c = check_teacher_density(teacher_density)
    rng = as_generator(seed)
    r = max(1, int(round(c * N)))
    out = np.zeros((M, N), bool)
    for n in range(M):
        if n == 0 or not shared_support:
            pos = rng.choice(N, size=r, replace=False)
        out[n, pos] = True
    return out


def sparse_teacher_weights(N: int, K: int, M: int, teacher_density: float | None = None,
                           v_star: Any = 4.0, seed: Any = 0, *, shared_support: bool = False,
                           teacher_mask=None, normalise: bool = False):
    """Real weights of a student and a sparse teacher, for ``simulate(init=(w, w_star, v))``.

    ``w`` (K, N), ``v`` (K,) and the teacher's Gaussian coordinates are those of
    :meth:`OrderParams.draw_weights` with the same seed; the support (``teacher_mask`` (M, N)
    given, or drawn after the weights from the same stream with density ``teacher_density``)
    zeroes the teacher off its support (``normalise``: the kept coordinates scaled by
    ``1/sqrt(c_t)``).

    Returns
    -------
    w, w_star, v, v_star, teacher_mask : ndarray
        ``w_star`` is zero off ``teacher_mask``.
    """
    N, K, M = check_size("N", N), check_size("K", K), check_size("M", M)
    if (teacher_density is None) == (teacher_mask is None):
        raise ValueError("give exactly one of teacher_density and teacher_mask")
    if teacher_mask is not None:
        support = check_teacher_mask(teacher_mask, M, N)
    else:
        check_teacher_density(teacher_density)
    rng = as_generator(seed)
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=v_star, seed=rng)
    if teacher_mask is None:
        support = teacher_support(N, M, teacher_density, rng, shared_support)
    w_star = np.where(support, w_star, 0.0)
    if normalise:
        c = np.maximum(support.mean(1, keepdims=True), 1.0 / N)
        w_star = w_star / np.sqrt(c)
    return w, w_star, v, v_star, support


def oracle_ticket_mask(support: Any, K: int, union: bool = False) -> np.ndarray:
    """The oracle ticket's student mask (K, N) from a teacher support (M, N).

    Per unit (default, Zhang et al. 2021: student unit ``j`` of a network as wide as the teacher
    is masked with the support of teacher unit ``j``, the mask contains the ground truth's):
    student unit ``i`` gets the support of teacher unit ``i mod M``. ``union=True``: every unit
    gets the union of all supports (the smallest shared mask that contains the ground truth)."""
    s = np.asarray(support, bool)
    if s.ndim != 2:
        raise ValueError(f"support must have shape (M, N), got {s.shape}")
    K = check_size("K", K)
    if union:
        return np.broadcast_to(s.any(0), (K, s.shape[1])).copy()
    return s[np.arange(K) % s.shape[0]].copy()


def student_mask(rule: Any, support: np.ndarray, K: int, seed: Any = 0) -> np.ndarray:
    """A student mask (K, N) by ``rule``: None (dense), a density ``c`` in (0, 1] (independent
    Bernoulli(c) per weight), ``"oracle"`` / ``"oracle_union"`` (:func:`oracle_ticket_mask`) or
    an explicit 0/1 array (K, N)."""
    N = support.shape[1]
    if rule is None:
        return np.ones((K, N), bool)
    if isinstance(rule, str):
        if rule not in ORACLE_RULES:
            raise ValueError(f"student mask rule {rule!r}: expected None, a density, an array "
                             f"or one of {ORACLE_RULES}")
        return oracle_ticket_mask(support, K, union=rule == "oracle_union")
    if np.ndim(rule) == 0:
        c = check_real("student mask density", rule)
        if c > 1:
            raise ValueError(f"student mask density {c!r} must be in (0, 1]")
        return as_generator(seed).random((K, N)) < c
    m = np.asarray(rule)
    if m.shape != (K, N):
        raise ValueError(f"student mask must have shape (K, N) = ({K}, {N}), got {m.shape}")
    if m.dtype != bool and not np.all((m == 0) | (m == 1)):
        raise ValueError("student mask must contain only 0/1 (or False/True) entries")
    return m.astype(bool)


def from_weights_split(w, w_star, v, v_star, mask, support, activation: str = "erf"
                       ) -> SparseOrderParams:
    """Exact per-class order parameters of finite-N weights, classes split by (student mask
    pattern, teacher support pattern): as :meth:`SparseOrderParams.from_weights`, with the
    teacher's support kept apart (the same network, finer classes)."""
    w = np.asarray(w, float)
    w_star = np.asarray(w_star, float)
    K, N = w.shape
    M = w_star.shape[0]
    mask = np.asarray(mask, bool)
    support = check_teacher_mask(support, M, N)
    if mask.shape != (K, N):
        raise ValueError(f"mask must have shape ({K}, {N}), got {mask.shape}")
    key = np.vstack([mask, support]).T
    pats, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    wm = np.where(mask, w, 0.0)
    S = pats.shape[0]
    Q, R, T, f = np.zeros((S, K, K)), np.zeros((S, K, M)), np.zeros((S, M, M)), np.zeros(S)
    for s in range(S):
        cols = inverse == s
        ws, xs = wm[:, cols], w_star[:, cols]
        Q[s], R[s], T[s], f[s] = ws @ ws.T / N, ws @ xs.T / N, xs @ xs.T / N, cols.sum() / N
    return SparseOrderParams(patterns=pats[:, :K], f=f, Q=Q, R=R, T=T, v=v, v_star=v_star,
                             activation=activation)


# ---------------------------------------------------------------------------- states
def _limit_classes(K: int, M: int, c_t: float, rule: Any, shared: bool):
    """``(student patterns, teacher patterns, f)`` of the limit's classes."""
    if shared:
        tpats = [np.zeros(M, bool), np.ones(M, bool)]
        tprob = [1.0 - c_t, c_t]
    else:
        tpats = [np.array(b, bool) for b in itertools.product([False, True], repeat=M)]
        tprob = [float(np.prod(np.where(b, c_t, 1.0 - c_t))) for b in tpats]
    spat, tpat, f = [], [], []
    for b, pb in zip(tpats, tprob):
        if pb <= 0:
            continue
        if rule is None:
            choices = [(np.ones(K, bool), 1.0)]
        elif isinstance(rule, str):
            m = b[np.arange(K) % M] if rule == "oracle" else np.full(K, b.any())
            choices = [(m, 1.0)]
        else:
            c = float(rule)
            choices = []
            for m in itertools.product([False, True], repeat=K):
                m = np.array(m, bool)
                pm = float(np.prod(np.where(m, c, 1.0 - c)))
                if pm > 0:
                    choices.append((m, pm))
        for m, pm in choices:
            spat.append(m)
            tpat.append(b)
            f.append(pb * pm)
    return np.array(spat), np.array(tpat), np.array(f)


def sparse_teacher_state(K: int, M: int, teacher_density: float | None = None,
                         student_mask_rule: Any = None, *, v_star: Any = 4.0, seed: Any = 0,
                         N: int | None = None, shared_support: bool = False,
                         teacher_mask=None, normalise: bool = False,
                         activation: str = "erf") -> SparseOrderParams:
    r"""Per-class order parameters of a student (masked or not) and a sparse teacher.

    Classes are split by (student mask pattern, teacher support pattern) (``docs/theory.md``
    §8): a class off the support of teacher ``n`` has ``T^s_nn = 0``.

    Parameters
    ----------
    K, M : int
    teacher_density : float in (0, 1]
        Per-unit density ``c_t`` of the teacher's support (or ``teacher_mask`` at finite N).
    student_mask_rule : None, float, "oracle", "oracle_union" or array (K, N)
        Dense student (None), independent Bernoulli(c) mask of density ``c``, the oracle ticket
        (:func:`oracle_ticket_mask`), or an explicit mask (finite N only).
    v_star : float or array (M,)
    seed : int or Generator
        The weights (finite N) or ``v`` (limit).
    N : int, optional
        None: the limit with Gaussian weights, ``f_s = P(b) P(m | b)`` over teacher patterns
        ``b`` (independent Bernoulli(c_t) per unit, or one shared pattern) and student patterns
        ``m``, ``Q^s = f_s diag(m)``, ``R^s = 0``, ``T^s = f_s \sigma_t^2 diag(b)``
        (``\sigma_t^2 = 1``, or ``1/c_t`` with ``normalise``), ``v ~ N(0, 1)`` from ``seed``.
        An integer: the exact per-class state of the weights of :func:`sparse_teacher_weights`
        (the initial order parameters of a real network of that size: the symmetric limit
        state above never leaves the unspecialised manifold when M >= 2).
    shared_support : bool
        One support for all teacher units.
    teacher_mask : array (M, N), optional
        An explicit support (finite N; instead of ``teacher_density``).
    normalise : bool
        Teacher coordinates of variance ``1/c_t`` on the support (``T_nn = 1``).

    Returns
    -------
    SparseOrderParams
        Use :func:`support_of_classes` for each class's teacher pattern.

    Raises
    ------
    ValueError
        ``teacher_density`` outside (0, 1]; ``teacher_mask`` of the wrong shape or not 0/1; an
        unknown student mask rule.
    """
    K, M = check_size("K", K), check_size("M", M)
    if N is not None:
        N = check_size("N", N)
        rng = as_generator(seed)
        w, ws, v, vs, support = sparse_teacher_weights(
            N, K, M, teacher_density, v_star, rng, shared_support=shared_support,
            teacher_mask=teacher_mask, normalise=normalise)
        mask = student_mask(student_mask_rule, support, K, rng)
        return from_weights_split(w, ws, v, vs, mask, support, activation=activation)
    if teacher_mask is not None:
        raise ValueError("teacher_mask is a finite-N support: give N as well (or "
                         "teacher_density for the limit)")
    c_t = check_teacher_density(teacher_density)
    rule = student_mask_rule
    if rule is not None and not isinstance(rule, str):
        if np.ndim(rule) != 0:
            raise ValueError("an explicit student mask (K, N) needs N (finite N)")
        rule = check_real("student mask density", rule)
        if rule > 1:
            raise ValueError(f"student mask density {rule!r} must be in (0, 1]")
    elif isinstance(rule, str) and rule not in ORACLE_RULES:
        raise ValueError(f"student mask rule {rule!r}: expected None, a density or one of "
                         f"{ORACLE_RULES}")
    v_star = broadcast_v_star(v_star, M)
    v = as_generator(seed).standard_normal(K)
    spat, tpat, f = _limit_classes(K, M, c_t, rule, shared_support)
    var_t = 1.0 / c_t if normalise else 1.0
    S = f.size
    Q = np.zeros((S, K, K))
    T = np.zeros((S, M, M))
    for s in range(S):
        Q[s] = f[s] * np.diag(spat[s].astype(float))
        T[s] = f[s] * var_t * np.diag(tpat[s].astype(float))
    return SparseOrderParams(patterns=spat, f=f / f.sum(), Q=Q, R=np.zeros((S, K, M)), T=T,
                             v=v, v_star=v_star, activation=activation)


def oracle_ticket_state(K: int, M: int, teacher_density: float | None = None, *,
                        union: bool = False, **kw) -> SparseOrderParams:
    """:func:`sparse_teacher_state` with the oracle ticket as the student mask (per unit, or the
    union of the supports)."""
    return sparse_teacher_state(K, M, teacher_density, "oracle_union" if union else "oracle",
                                **kw)


def support_of_classes(state: SparseOrderParams) -> np.ndarray:
    """Each class's teacher support pattern (n_classes, M): ``T^s_nn > 0``."""
    return np.diagonal(np.asarray(state.T), axis1=1, axis2=2) > 0


def dense_equivalent(state: SparseOrderParams) -> tuple[OrderParams, float]:
    """``(dense, c)`` for a masked state whose only live class carries every overlap and the
    whole teacher (a shared mask equal to a shared support, density ``c``): the masked curve at
    ``alpha`` equals ``integrate(dense, c * eta, ..., eta_v=c * eta_v)`` at ``alpha / c``
    (``docs/sparse_teacher.md``). Raises ``ValueError`` for any other state."""
    live = [s for s in range(state.n_classes)
            if state.f[s] > 0 and (state.patterns[s].any() or np.abs(state.T[s]).max() > 0)]
    if len(live) != 1 or not state.patterns[live[0]].all():
        raise ValueError("the identity needs exactly one live class in which every student unit "
                         "is kept and that carries the whole teacher (a shared mask equal to a "
                         "shared support)")
    s = live[0]
    return (OrderParams(state.Q[s], state.R[s], state.T[s], state.v, state.v_star,
                        activation=state.activation), float(state.f[s]))


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


def _top_rows(w: np.ndarray, c: float) -> np.ndarray:
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
    keep = _top_rows(w, c)
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
        m0, mT = _top_rows(w0, c), _top_rows(wT, c)
        out["overlap"] = float(((m0 & mT).sum(1) / mT.sum(1)).mean())
    return out


# ---------------------------------------------------------------------------- tickets, limit
def magnitude_ticket_limit(state: SparseOrderParams, c: float, *, alpha_T: float,
                           alpha_max: float, eta: float = 0.5, save_at=None, S: int = 20_000,
                           replicas: int = 8, seed: Any = 0, scope: str = "row",
                           **ode) -> dict:
    """The magnitude ticket in the limit, exactly (``docs/theory.md`` §9, §11): train the dense
    student ``state`` to ``alpha_T`` with the two-time overlaps, draw the joint law of
    ``(w(0), w(alpha_T), w*)`` per class (:meth:`CoordinateLaw.from_joint`), keep the fraction
    ``c`` of largest trained ``|w|`` (per row, or ``scope="global"``), rewind the kept weights and
    ``v`` to 0 and train the ticket for ``alpha_max`` (:func:`odeprune.coords.integrate_law`).

    Returns
    -------
    dict
        ``curve`` (the ticket's :class:`~odeprune.coords.CoordinateCurve`, time since
        rewinding, with ``eg_se``), ``dense`` (the dense curve to ``alpha_T``), ``law_T``,
        ``law_0``, ``decided`` (the law at ``alpha_T`` with the ticket's mask), ``recovery``
        (:func:`support_recovery_law` of the decision).
    """
    ss = np.random.SeedSequence(seed if isinstance(seed, int) else 0)
    s_law, s_dec, s_train = (np.random.default_rng(x) for x in ss.spawn(3))
    dense = integrate(state, eta, alpha_T, track_initial=True, progress=False, **ode)
    law_T, law_0 = CoordinateLaw.from_joint(dense, -1, S=S, replicas=replicas, seed=s_law)
    rule = "magnitude_edge" if scope == "row" else "magnitude_edge_global"
    decided = decide(law_T, rule, c, seed=s_dec)
    ticket = law_0.replace(mask=decided.mask)
    curve = integrate_law(ticket, eta, alpha_max, save_at=save_at, seed=s_train,
                          progress=False, **ode)
    return dict(curve=curve, dense=dense, law_T=law_T, law_0=law_0, decided=decided,
                recovery=support_recovery_law(decided, R=dense.R[-1]))


def _crossings(alpha, E, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the rows of ``E`` of the first-crossing times (NaN where a
    row never crosses: then the mean is NaN too)."""
    A = time_to_reach(alpha, np.atleast_2d(E), thresholds)
    if A.shape[0] == 1:
        return A[0], np.zeros(A.shape[1])
    return A.mean(0), sem(A)


def convergence_limit(K: int, M: int, teacher_density: float, *, N_init: int = 500,
                      seed: int = 0, eta: float = 0.5, v_star: Any = 1.0,
                      alpha_max: float = 1000.0, alpha_T: float = 200.0, thresholds=(1e-2,
                                                                                      1e-3),
                      imp_rounds: int = 3, S: int = 20_000, replicas: int = 8,
                      shared_support: bool = False, normalise: bool = False, save_at=None,
                      **ode) -> dict:
    """How fast do tickets converge, in the limit (from the order parameters of one real draw
    of size ``N_init``, seed ``seed``)? Arms, all trained for ``alpha_max`` from the same
    initial weights, kept fraction ``c = teacher_density``:

    - ``dense``: the dense student;
    - ``oracle``: the oracle ticket (student unit ``i`` masked with the support of teacher
      ``i mod M``);
    - ``magnitude``: one-shot magnitude pruning of the dense student trained to ``alpha_T``,
      rewound to 0 (:func:`magnitude_ticket_limit`);
    - ``imp``: IMP with rewinding to 0, ``imp_rounds`` rounds of ``alpha_T`` down to ``c``
      (:func:`odeprune.schedules.imp_limit`); its last round is the ticket;
    - ``random``: an independent Bernoulli(c) mask.

    Returns a dict with per arm ``alpha``, ``eg``, ``eg_se`` (the Monte-Carlo error of the
    coordinate-law arms; 0 for the exact ODE arms), ``alpha_theta`` and ``alpha_theta_se`` (the
    time to reach each threshold, mean and error over replicas), ``c`` (kept fraction),
    and ``recovery`` (support recovery of the one-shot decision, particles and exact).
    """
    c = check_teacher_density(teacher_density)
    th = np.atleast_1d(np.asarray(thresholds, float))
    grid = (np.unique(np.concatenate([[0.0], np.geomspace(0.1, alpha_max, 120)]))
            if save_at is None else np.asarray(save_at, float))
    common = dict(v_star=v_star, seed=seed, N=N_init, shared_support=shared_support,
                  normalise=normalise)
    dense_state = sparse_teacher_state(K, M, c, None, **common)
    out = dict(K=K, M=M, c=c, thresholds=th.tolist(), arms={})

    def ode_arm(state):
        cv = integrate(state, eta, alpha_max, save_at=grid, progress=False, **ode)
        a, se = _crossings(cv.alpha, cv.eg, th)
        return dict(alpha=cv.alpha, eg=cv.eg, eg_se=np.zeros_like(cv.eg), alpha_theta=a,
                    alpha_theta_se=se, c=state.density()[1])

    def law_arm(curve, density):
        a, se = _crossings(curve.alpha, curve.eg_replicas, th)
        return dict(alpha=curve.alpha, eg=curve.eg, eg_se=curve.eg_se, alpha_theta=a,
                    alpha_theta_se=se, c=density)

    out["arms"]["dense"] = ode_arm(dense_state)
    if c < 1:
        out["arms"]["oracle"] = ode_arm(sparse_teacher_state(K, M, c, "oracle", **common))
        out["arms"]["random"] = ode_arm(sparse_teacher_state(K, M, c, c, **common))
        mt = magnitude_ticket_limit(dense_state, c, alpha_T=alpha_T, alpha_max=alpha_max,
                                    eta=eta, save_at=grid, S=S, replicas=replicas, seed=seed,
                                    **ode)
        out["arms"]["magnitude"] = law_arm(mt["curve"], mt["decided"].density())
        rec = mt["recovery"]
        exact = support_recovery_limit(mt["dense"].final, c)
        out["recovery"] = dict(p_on=rec["p_on_mean"], p_on_se=rec["p_on_se"],
                               p_off=rec["p_off_mean"], p_off_se=rec["p_off_se"],
                               p_on_exact=exact["p_on"], p_off_exact=exact["p_off"])
        if imp_rounds > 0:
            pf = 1.0 - c ** (1.0 / imp_rounds)
            law0 = CoordinateLaw.from_state(dense_state, S=S, replicas=replicas,
                                            seed=np.random.SeedSequence([seed, 7]))
            imp = schedules.imp_limit(law0, rounds=imp_rounds, prune_fraction=pf,
                                      alpha_per_round=alpha_T, eta=eta, seed=seed, **ode)
            last = imp["laws"][-1]
            # the last round's ticket, trained for alpha_max (the rounds run alpha_T each)
            cv = integrate_law(law0.replace(mask=last.mask), eta, alpha_max, save_at=grid,
                               seed=np.random.SeedSequence([seed, 8]), progress=False, **ode)
            out["arms"]["imp"] = law_arm(cv, law0.replace(mask=last.mask).density())
    return out


# ---------------------------------------------------------------------------- finite N

def _map_seeds(fn, seeds, workers: int | None):
    """``[fn(s) for s in seeds]`` on a thread pool (the compiled SGD loop releases the GIL)."""
    workers = max(1, min(len(seeds), workers or os.cpu_count() or 1))
    if workers == 1:
        return [fn(s) for s in seeds]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, seeds))


def convergence_finite(K: int, M: int, teacher_density: float, *, N: int = 500,
                       seeds=(0, 1, 2, 3), eta: float = 0.5, v_star: Any = 1.0,
                       alpha_max: float = 1000.0, alpha_T: float = 200.0,
                       thresholds=(1e-2, 1e-3), shared_support: bool = False,
                       normalise: bool = False, save_at=None, workers: int | None = None
                       ) -> dict:
    """The arms of :func:`convergence_limit` on real weights (online SGD, the weights of
    :func:`sparse_teacher_weights` for each seed): ``dense``, ``oracle``, ``random`` and the
    one-shot ``magnitude`` ticket (dense SGD to ``alpha_T``, the ``round(c N)`` largest trained
    ``|w|`` per row, rewound to the initial weights and ``v``). Per arm ``alpha``, ``eg`` (seeds,
    n) (from the weights' order parameters, noiseless), ``alpha_theta`` (seeds, thresholds),
    means and standard errors over seeds (NaN where some seed never reaches a threshold),
    ``reached`` (fraction of seeds)."""
    c = check_teacher_density(teacher_density)
    th = np.atleast_1d(np.asarray(thresholds, float))
    grid = (np.unique(np.concatenate([[0.0], np.geomspace(0.1, alpha_max, 60)]))
            if save_at is None else np.asarray(save_at, float))
    seeds = [int(s) for s in seeds]

    def one(seed):
        w, ws, v, vs, sup = sparse_teacher_weights(N, K, M, c, v_star, seed,
                                                   shared_support=shared_support,
                                                   normalise=normalise)
        run = dict(save_at=grid, v_star=vs, n_test=0, progress=False)
        masks = dict(dense=None)
        if c < 1:
            masks["oracle"] = oracle_ticket_mask(sup, K)
            masks["random"] = student_mask(c, sup, K, np.random.SeedSequence([seed, 5]))
            pre = simulate(N, K, M, eta, alpha_T, init=(w, ws, v),
                           seed=schedules.segment_seed(seed, 0), v_star=vs, n_test=0,
                           progress=False, save_at=[0.0])
            masks["magnitude"] = _top_rows(pre.w, c)
        out = {}
        for arm, m in masks.items():
            res = simulate(N, K, M, eta, alpha_max, init=(w, ws, v), mask=m,
                           seed=schedules.segment_seed(seed, 1), **run)
            out[arm] = (np.asarray(res.alpha), np.asarray(res.eg),
                        1.0 if m is None else float(np.mean(m)))
        return out

    per_seed = _map_seeds(one, seeds, workers)
    arms = {}
    for arm in per_seed[0]:
        alpha = per_seed[0][arm][0]
        E = np.array([r[arm][1] for r in per_seed])
        A = time_to_reach(alpha, E, th)
        arms[arm] = dict(alpha=alpha, eg=E, eg_mean=E.mean(0), eg_se=sem(E), alpha_theta_seeds=A,
                         alpha_theta=A.mean(0), alpha_theta_se=sem(A),
                         reached=np.mean(np.isfinite(A), 0),
                         c=float(np.mean([r[arm][2] for r in per_seed])))
    return dict(K=K, M=M, N=N, c=c, seeds=seeds, thresholds=th.tolist(), arms=arms)


def support_recovery_experiment(K: int, M: int, teacher_density: float, *, alpha_T,
                                kept=None, N: int = 500, seeds=(0, 1, 2, 3, 4, 5, 6, 7),
                                eta: float = 0.5, v_star: Any = 1.0, S: int = 0,
                                replicas: int = 8, shared_support: bool = False,
                                normalise: bool = False, workers: int | None = None,
                                **ode) -> list[dict]:
    """Does magnitude pruning of the trained dense student find the teacher's support, and does
    a good coordinate at initialisation stay good? In the limit and at finite N, from the same
    initial weights (seed by seed): the dense student trained to each ``alpha_T`` by the ODE
    (from the exact per-class state of the seed's weights) and by online SGD (N).

    Rows (one per seed, ``alpha_T``, kept fraction ``c`` in ``kept`` (default ``[c_t]``) and
    layer ``"limit"`` / ``"finite"``): ``p_on``, ``p_off`` (:func:`support_recovery_limit` exact;
    :func:`support_recovery_finite` on the real weights), ``rho`` (Spearman of ``|w|`` at 0 and at
    ``alpha_T``) and ``overlap`` (of the magnitude masks at 0 and ``alpha_T``). With ``S > 0`` the
    limit rows have ``rho`` and ``overlap`` from ``S`` joint-law particles in ``replicas``
    replicas (with ``rho_se``, ``overlap_se``, their Monte-Carlo errors)."""
    c_t = check_teacher_density(teacher_density)
    times = np.unique(np.asarray(alpha_T, float))
    kept = [c_t] if kept is None else [float(x) for x in kept]
    seeds = [int(s) for s in seeds]

    def one(seed):
        w, ws, v, vs, sup = sparse_teacher_weights(N, K, M, c_t, v_star, seed,
                                                   shared_support=shared_support,
                                                   normalise=normalise)
        state = from_weights_split(w, ws, v, vs, np.ones((K, N), bool), sup)
        # saved index 0 must be alpha = 0: the joint law takes its initial overlaps there
        cv = integrate(state, eta, float(times[-1]), save_at=np.concatenate([[0.0], times]),
                       track_initial=S > 0, progress=False, **ode)
        rows = []
        for k, a in enumerate(times):
            idx = int(np.argmin(np.abs(cv.alpha - a)))
            st = cv.sparse_state(idx)
            joint = None
            if S > 0:
                joint = CoordinateLaw.from_joint(cv, idx, S=S, replicas=replicas,
                                                 seed=np.random.SeedSequence([seed, k]))
            for c in kept:
                rec = support_recovery_limit(st, c)
                row = dict(layer="limit", N=N, seed=seed, alpha_T=float(a), c=c, c_t=c_t,
                           p_on=rec["p_on"], p_off=rec["p_off"])
                if joint is not None:
                    rc = rank_correlation_limit(*joint, c=c)
                    row.update(rho=rc["rho_mean"], rho_se=rc["rho_se"],
                               overlap=rc["overlap_mean"], overlap_se=rc["overlap_se"])
                rows.append(row)
        # finite N: the same weights, SGD in segments up to each alpha_T
        wt, vt, t = w, v, 0.0
        for k, a in enumerate(times):
            res = simulate(N, K, M, eta, float(a - t), init=(wt, ws, vt),
                           seed=schedules.segment_seed(seed, k), v_star=vs, n_test=0,
                           progress=False, save_at=[0.0])
            wt, vt, t = np.asarray(res.w), np.asarray(res.v[-1]), float(a)
            for c in kept:
                rec = support_recovery_finite(wt, ws, c)
                rc = rank_correlation_finite(w, wt, c)
                rows.append(dict(layer="finite", N=N, seed=seed, alpha_T=float(a), c=c,
                                 c_t=c_t, p_on=rec["p_on"], p_off=rec["p_off"], rho=rc["rho"],
                                 overlap=rc["overlap"]))
        return rows

    return [r for rows in _map_seeds(one, seeds, workers) for r in rows]
