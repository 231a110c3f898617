r"""The Newton matrix of a network of classes: block-diagonal plus low rank, solved by Woodbury.

For a masked network (``docs/theory.md`` §8) the right-hand side of class ``s`` is linear in the
class's own state, with coefficients set by the network's overlaps and second layer
(:mod:`odeprune.ode.rhs`): ``f_s(y) = A(g) y_s + f_s b(g)`` with ``g = S^T y`` the class sums
``Q, R`` and ``v``. So its Jacobian is

.. math:: J = D + U S^T,

``D`` block-diagonal over the classes (``d f_s / d y_s`` at fixed ``g``; a two-time overlap
``P^s`` only here), ``U`` (n, m) the derivative in the ``m`` global entries (each overlap a class
entry moves, and each ``v_e``), ``S^T`` (m, n) the class-sum map (entry ``j`` adds to the global
entry it moves: :func:`~odeprune.ode.jacobian.column_entries`). The implicit step's matrix
``I - c J = B - c U S^T`` with ``B = I - c D`` is solved by the Woodbury identity

.. math:: x = B^{-1} r + c\,W\,\mathrm{Cap}^{-1} S^T B^{-1} r, \qquad
          W = B^{-1} U, \quad \mathrm{Cap} = I_m - c\,S^T W,

in ``O(n m + sum_s n_s^2)`` memory and ``O(sum_s n_s^3 + m sum_s n_s^2 + m^3)`` per factorisation
instead of ``n^2`` and ``n^3 / 3`` (M=2/K=6 with 64 classes: n = 822, m = 39; K=8 with 256
classes: n = 4 872). The Jacobian is taken by forward differences with the increments of
:func:`odeprune.ode.stiff.fd_increment`: ``U`` from the columns of one entry per global entry
(and of a second entry of another class, for the rows of the first one's class), ``D`` from
``max_s n_s`` evaluations that move the same position of every class at once, less the global
part of the response, ``U S^T delta``: ``2 m + max_s n_s`` evaluations instead of ``n``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .jacobian import _fd_increment, column_entries, moved_rhs
from .lu import lu_factor, lu_solve
from .rhs import rhs_into

__all__ = ["Blocks", "new_blocks", "blocks_jacobian", "blocks_factor", "blocks_solve",
           "BLOCK_ARRAYS", "implicit_cost"]


class Blocks(NamedTuple):
    """The structure of a network of classes (read-only after :func:`new_blocks`): ``gidx``
    (n,) the global entry each state entry moves (-1: none, a ``P`` entry), ``first`` and
    ``second`` (m,) the entries whose columns give ``U`` (``second``: of another class, -1 if
    no other class moves it), ``cls`` (n,) each entry's class (-1: ``v``), ``boff`` (S+1,)
    where each class's block starts in ``Dk`` and ``LU``; and the Jacobian and factors (updated
    in place, :data:`BLOCK_ARRAYS`): ``UT``, ``WT`` (m, n) = ``U^T``, ``W^T``; ``Dk`` the blocks
    of ``D`` and ``LU`` those of ``B`` factorised, each row-major; ``piv`` (n,) their pivots,
    ``dinv`` (n,) the reciprocals of their pivots (U's diagonal);
    ``cap`` (m, m) and ``cpiv`` (m,) the factorised capacitance matrix; ``cfac`` (1,) its ``c``.
    """

    gidx: np.ndarray
    first: np.ndarray
    second: np.ndarray
    cls: np.ndarray
    boff: np.ndarray
    UT: np.ndarray
    WT: np.ndarray
    Dk: np.ndarray
    LU: np.ndarray
    piv: np.ndarray
    dinv: np.ndarray
    cap: np.ndarray
    cpiv: np.ndarray
    cfac: np.ndarray


#: the fields of :class:`Blocks` that a run changes (a checkpoint holds them)
BLOCK_ARRAYS = ("UT", "WT", "Dk", "LU", "piv", "dinv", "cap", "cpiv", "cfac")


def new_blocks(patterns, K: int, M: int, track_P: bool, off) -> Blocks:
    """:class:`Blocks` of the network of classes ``patterns`` (S, K) (state layout
    :func:`odeprune.ode.rhs.state_layout`; ``off`` (S+1,) the class offsets of its
    :class:`~odeprune.ode.rhs.Params`)."""
    cols = column_entries(np.asarray(patterns, dtype=bool), K, M, track_P)
    off = np.asarray(off, dtype=np.int64)
    n, S = cols.shape[0], off.shape[0] - 1
    cls = np.repeat(np.arange(S, dtype=np.int64), np.diff(off))
    cls = np.concatenate([cls, np.full(n - cls.size, -1, dtype=np.int64)])
    moves = cols[:, 0] != -1  # a P entry moves no global entry: local to its class
    gidx = np.full(n, -1, dtype=np.int64)
    keys, first, inv = np.unique(cols[moves], axis=0, return_index=True, return_inverse=True)
    gidx[moves] = inv.ravel()
    first = np.flatnonzero(moves)[first].astype(np.int64)
    m = keys.shape[0]
    second = np.full(m, -1, dtype=np.int64)
    other = np.flatnonzero(moves & (cls != cls[first[np.maximum(gidx, 0)]]))
    g2, at = np.unique(gidx[other], return_index=True)
    second[g2] = other[at]
    sizes = np.diff(off)
    boff = np.concatenate([[0], np.cumsum(sizes * sizes)]).astype(np.int64)
    return Blocks(gidx, first, second, cls, boff, np.zeros((m, n)), np.zeros((m, n)),
                  np.zeros(boff[-1]), np.zeros(boff[-1]), np.zeros(n, dtype=np.int64), np.zeros(n),
                  np.zeros((m, m)), np.zeros(m, dtype=np.int64), np.zeros(1))


@njit(cache=True, error_model="numpy", nogil=True)
def blocks_jacobian(y, p, w, b):
    """``U`` and the blocks of ``D`` at ``y`` into ``b`` by forward differences (module
    docstring): ``1 + 2 m + max_s n_s`` evaluations of the right-hand side at most."""
    n = y.shape[0]
    UT, Dk, off, gidx = b.UT, b.Dk, p.off, b.gidx
    m = UT.shape[0]
    S = off.shape[0] - 1
    f0 = np.empty(n)
    rhs_into(y, f0, p, w)
    yp = y.copy()
    fp = np.empty(n)
    for g in range(m):
        j = b.first[g]
        h = moved_rhs(y, yp, j, fp, p, w)
        for i in range(n):
            UT[g, i] = (fp[i] - f0[i]) / h
        j2 = b.second[g]
        if j2 >= 0:  # the rows of the first entry's class, from a column of another class
            t = b.cls[j]
            h = moved_rhs(y, yp, j2, fp, p, w)
            for i in range(off[t], off[t + 1]):
                UT[g, i] = (fp[i] - f0[i]) / h
    nmax = 0
    for t in range(S):
        nmax = max(nmax, off[t + 1] - off[t])
    hs = np.zeros(S)
    dg = np.empty(m)
    glob = np.empty(n)
    for q in range(nmax):  # position q of every class at once
        for g in range(m):
            dg[g] = 0.0
        for t in range(S):
            j = off[t] + q
            if j < off[t + 1]:
                yp[j], hs[t] = _fd_increment(y[j])
                if gidx[j] >= 0:
                    dg[gidx[j]] += hs[t]
        rhs_into(yp, fp, p, w)
        for i in range(n):
            glob[i] = 0.0
        for g in range(m):
            if dg[g] != 0.0:
                for i in range(off[S]):
                    glob[i] += UT[g, i] * dg[g]
        for t in range(S):
            j = off[t] + q
            if j >= off[t + 1]:
                continue
            yp[j] = y[j]
            nt = off[t + 1] - off[t]
            base = b.boff[t]
            for r in range(nt):
                i = off[t] + r
                Dk[base + r * nt + q] = (fp[i] - f0[i] - glob[i]) / hs[t]


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _dot4(LU, row, x, o, j0, j1):
    """``sum_{j0 <= j < j1} LU[row + j] x[o + j]`` in four interleaved partial sums (four
    chains of dependent additions instead of one)."""
    a0 = a1 = a2 = a3 = 0.0
    j = j0
    while j + 4 <= j1:
        a0 += LU[row + j] * x[o + j]
        a1 += LU[row + j + 1] * x[o + j + 1]
        a2 += LU[row + j + 2] * x[o + j + 2]
        a3 += LU[row + j + 3] * x[o + j + 3]
        j += 4
    while j < j1:
        a0 += LU[row + j] * x[o + j]
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _solve_block(LU, base, nt, piv, dinv, x, o):
    """:func:`~odeprune.ode.lu.lu_solve` of the block at ``LU[base:]`` (nt, nt; pivots
    ``piv[o:o + nt]``, relative; ``dinv[o:o + nt]`` the reciprocals of U's diagonal) on
    ``x[o:o + nt]``, in place, without views."""
    for k in range(nt):
        m = piv[o + k]
        if m != k:
            tmp = x[o + k]
            x[o + k] = x[o + m]
            x[o + m] = tmp
    for i in range(nt):
        x[o + i] -= _dot4(LU, base + i * nt, x, o, 0, i)
    for i in range(nt - 1, -1, -1):
        row = base + i * nt
        x[o + i] = (x[o + i] - _dot4(LU, row, x, o, i + 1, nt)) * dinv[o + i]


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _row_update(X, LU, row, i, j0, j1, m):
    """``X[i] -= sum_{j0 <= j < j1} LU[row + j] X[j]``, four rows of X per pass over ``X[i]``."""
    Xi = X[i]
    j = j0
    while j + 4 <= j1:
        l0, l1, l2, l3 = LU[row + j], LU[row + j + 1], LU[row + j + 2], LU[row + j + 3]
        X0, X1, X2, X3 = X[j], X[j + 1], X[j + 2], X[j + 3]
        for g in range(m):
            Xi[g] -= l0 * X0[g] + l1 * X1[g] + l2 * X2[g] + l3 * X3[g]
        j += 4
    while j < j1:
        lj = LU[row + j]
        Xj = X[j]
        for g in range(m):
            Xi[g] -= lj * Xj[g]
        j += 1


@njit(cache=True, error_model="numpy", nogil=True)
def blocks_factor(b, p, c):
    """Factorise ``I - c J`` (module docstring): each block of ``B = I - c D``, ``W = B^-1 U``
    (all ``m`` columns at once, a row of ``m`` per update) and the capacitance matrix
    ``I - c S^T W``."""
    off, gidx, WT, UT, cap, LU, Dk, piv = p.off, b.gidx, b.WT, b.UT, b.cap, b.LU, b.Dk, b.piv
    m, n = UT.shape
    S = off.shape[0] - 1
    nmax = 0
    for t in range(S):
        nmax = max(nmax, off[t + 1] - off[t])
    X = np.empty((nmax, m))
    for t in range(S):
        nt = off[t + 1] - off[t]
        if nt == 0:
            continue
        base, o = b.boff[t], off[t]
        for k in range(nt * nt):
            LU[base + k] = -c * Dk[base + k]
        for r in range(nt):
            LU[base + r * (nt + 1)] += 1.0
        lu_factor(LU[base:base + nt * nt].reshape((nt, nt)), piv[o:o + nt])
        for r in range(nt):
            b.dinv[o + r] = 1.0 / LU[base + r * (nt + 1)]
        for r in range(nt):  # X = P U[rows of t], then L^-1, then U^-1, a row at a time
            for g in range(m):
                X[r, g] = UT[g, o + r]
        for k in range(nt):
            q = piv[o + k]
            if q != k:
                for g in range(m):
                    tmp = X[k, g]
                    X[k, g] = X[q, g]
                    X[q, g] = tmp
        for i in range(nt):
            _row_update(X, LU, base + i * nt, i, 0, i, m)
        for i in range(nt - 1, -1, -1):
            _row_update(X, LU, base + i * nt, i, i + 1, nt, m)
            Xi = X[i]
            inv = 1.0 / LU[base + i * nt + i]
            for g in range(m):
                Xi[g] *= inv
        for r in range(nt):
            for g in range(m):
                WT[g, o + r] = X[r, g]
    for g in range(m):  # the rows of v: B = I there
        for i in range(off[S], n):
            WT[g, i] = UT[g, i]
    for g in range(m):
        for k in range(m):
            cap[g, k] = 0.0
        cap[g, g] = 1.0
    for k in range(m):
        Wk = WT[k]
        for j in range(n):
            g = gidx[j]
            if g >= 0:
                cap[g, k] -= c * Wk[j]
    lu_factor(cap, b.cpiv)
    b.cfac[0] = c


@njit(cache=True, error_model="numpy", nogil=True)
def blocks_solve(b, p, r, z):
    """Solve ``(I - c J) x = r`` in place from :func:`blocks_factor` (``z``: scratch (m,))."""
    off, gidx, WT = p.off, b.gidx, b.WT
    m, n = WT.shape
    S = off.shape[0] - 1
    for t in range(S):
        nt = off[t + 1] - off[t]
        if nt > 0:
            _solve_block(b.LU, b.boff[t], nt, b.piv, b.dinv, r, off[t])
    for g in range(m):
        z[g] = 0.0
    for j in range(n):
        if gidx[j] >= 0:
            z[gidx[j]] += r[j]
    lu_solve(b.cap, b.cpiv, z)
    c = b.cfac[0]
    for g in range(m):
        zc = c * z[g]
        Wg = WT[g]
        for j in range(n):
            r[j] += zc * Wg[j]


#: the implicit phase of ``"auto"`` on the curves it was measured on (M=2, K=6/8/10 at c=0.5,
#: the paper state, to alpha=1e3..1e4): about this many Newton iterations (470-700),
#: factorisations (35-57) and Jacobians (2-3), nearly whatever alpha_max (its steps grow like
#: log alpha)
IMPLICIT_ITERATIONS, IMPLICIT_FACTORS, IMPLICIT_JACOBIANS = 600, 40, 3


def implicit_cost(b: Blocks) -> float:
    """The implicit phase's cost on a network of classes, in evaluations of its right-hand
    side: ``IMPLICIT_ITERATIONS (1 + S/E) + IMPLICIT_FACTORS F/E + IMPLICIT_JACOBIANS (2 m +
    max n_s + 1)``, with a solve ``S/E ~ 0.04 (m + sum n_s^2 / n)`` and a factorisation
    ``F/E ~ 0.02 m sum n_s^2 / n`` evaluations (fitted to K = 6, 8, 10 at c = 0.5, where S/E =
    1.5, 2.7, 5.4 and F/E = 9.8, 23, 68 were measured: the solve and the factorisation grow
    with ``m n`` and ``m sum n_s^2``, an evaluation with ``n``). ``"auto"`` switches to BDF on
    such a network only when the explicit steps left cost more (K=10, 1024 classes, to
    alpha=1e3: ~6 300 evaluations' worth against ~3 000 explicit; BDF took 3.2 s there against
    the explicit run's 1.3 s, about 8 100 evaluations' worth)."""
    m, n = b.UT.shape
    per_entry = float(b.boff[-1]) / n  # sum_s n_s^2 / n
    nmax = int(np.bincount(b.cls[b.cls >= 0]).max(initial=0)) if n > 0 else 0
    solve = 0.04 * (m + per_entry)
    factor = 0.02 * m * per_entry
    return (IMPLICIT_ITERATIONS * (1.0 + solve) + IMPLICIT_FACTORS * factor
            + IMPLICIT_JACOBIANS * (2 * m + nmax + 1))
