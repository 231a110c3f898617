"""Per-class order parameters of a student (masked or not) and a sparse teacher, in the limit
(Gaussian weights, ``docs/theory.md`` §8) or from the real weights of
:func:`~odeprune.teachers.support.sparse_teacher_weights`; the exact dense equivalent of a
shared mask equal to a shared support (``docs/sparse_teacher.md``)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .._validate import as_generator, check_real, check_size
from ..options import gather
from ..sparse import SparseOrderParams
from ..state import OrderParams, broadcast_v_star
from .support import (
    ORACLE_RULES,
    Teacher,
    check_teacher_density,
    from_weights_split,
    sparse_teacher_weights,
    student_mask,
)

__all__ = ["sparse_teacher_state", "oracle_ticket_state", "support_of_classes",
           "dense_equivalent"]


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
                         student_mask_rule: Any = None, *, seed: Any = 0, N: int | None = None,
                         teacher_mask=None, activation: str = "erf",
                         **teacher) -> SparseOrderParams:
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
    teacher : keywords
        The teacher (:class:`~odeprune.teachers.support.Teacher`: ``v_star``, default 4, float
        or array (M,); ``shared_support``; ``normalise``), flat or whole (``teacher=``).
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
    teacher_mask : array (M, N), optional
        An explicit support (finite N; instead of ``teacher_density``).

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
    (tch,) = gather("sparse_teacher_state", teacher, (Teacher,))
    v_star, shared_support, normalise = tch.v_star, tch.shared_support, tch.normalise
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
