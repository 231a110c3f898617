"""The sparse teacher at finite N: its support, real weights of a student and a sparse teacher,
student masks (dense, Bernoulli, the oracle ticket) and the exact per-class order parameters of
real weights, classes split by (student mask pattern, teacher support pattern)
(``docs/theory.md`` §8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import as_generator, check_mask, check_real, check_size
from ..options import OPTIONS, Option, Record
from ..sparse import SparseOrderParams
from ..state import OrderParams

__all__ = ["ORACLE_RULES", "Teacher", "check_teacher_density", "check_teacher_mask",
           "teacher_support", "sparse_teacher_weights", "student_mask", "oracle_ticket_mask",
           "from_weights_split"]

#: student-mask rules that derive the mask from the teacher's support
ORACLE_RULES = ("oracle", "oracle_union")

#: the options of a sparse teacher beside the table's ``v_star`` (one vocabulary:
#: :class:`odeprune.options.Option` checks them)
TEACHER_OPTIONS = {o.name: o for o in (
    OPTIONS["v_star"],
    Option("shared_support", False, "one support for all teacher units (else one per unit)",
           "bool"),
    Option("normalise", False, "teacher coordinates of variance 1/c_t on the support, so that "
           "T_nn = 1 (else variance 1)", "bool"),
)}


@dataclass(frozen=True)
class Teacher(Record):
    """A sparse teacher: its second layer ``v_star`` (default the table's 4; the experiments of
    :mod:`odeprune.teachers.experiments` default to 1), one support for all units
    (``shared_support``) and the variance of its coordinates on the support (``normalise``:
    ``1/c_t``, so that ``T_nn = 1``). Passed as flat keywords or whole (``teacher=``)."""

    TABLE = TEACHER_OPTIONS

    v_star: Any = TEACHER_OPTIONS["v_star"].default
    shared_support: bool = TEACHER_OPTIONS["shared_support"].default
    normalise: bool = TEACHER_OPTIONS["normalise"].default


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
