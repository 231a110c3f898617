"""scipy's BDF (variable order 1-5, quasi-constant step) ported to compiled code for the implicit
phase of ``method="auto"``/``"bdf"`` (docs/speed.md): a blocked LU, the Newton iteration and the
step/order control, with no Python per step; checked step for step against scipy in
``tests/test_stiff.py``."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .blocks import blocks_factor, blocks_jacobian, blocks_solve
from .explicit import (
    CHUNK,
    I_OUT,
    N_ACCEPT,
    N_REJECT,
    NFEV,
    NONFINITE,
    NOT_PSD,
    OK,
    STEP_TOO_SMALL,
    output_ok,
)
from .jacobian import fd_jacobian_into, jacobian_exact
from .lu import lu_factor, lu_solve
from .rhs import make_work, rhs_eval, rhs_into

__all__ = ["BdfRun", "new_bdf", "lu_factor", "lu_solve", "bdf_run", "bdf_start"]


# ------------------------------------------------------------------------------ compiled BDF
#: scipy's BDF (``scipy/integrate/_ivp/bdf.py``: variable order 1-5, NDF coefficients of
#: Shampine & Reichelt 1997), ported to compiled code: the same steps, error estimates, Newton
#: iteration and order/step selection, without ~0.1 ms of Python per step
MAX_ORDER = 5
NEWTON_MAXITER = 4
_KAPPA = np.array([0.0, -0.1850, -1.0 / 9, -0.0823, -0.0415, 0.0])
_GAMMA = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))])
_ALPHA = (1.0 - _KAPPA) * _GAMMA
_ERROR_CONST = _KAPPA * _GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)
_BDF_MIN_FACTOR, _BDF_MAX_FACTOR = 0.2, 10.0

#: further indices into BdfRun.counters (the first four are RunState's)
NJEV, NLU = 4, 5


class BdfRun(NamedTuple):
    """The complete state of a compiled BDF run (arrays, updated in place): ``y``; ``D``
    (MAX_ORDER + 3, n) the scaled backward differences; the Jacobian ``J`` and the LU factors
    ``LU``, ``piv`` of ``I - c J``; ``ts = [t, h]``; ``ks = [order, n_equal_steps, lu_valid]``;
    ``counters = [i_out, nfev, n_accept, n_reject, njev, nlu]``."""

    y: np.ndarray
    D: np.ndarray
    J: np.ndarray
    LU: np.ndarray
    piv: np.ndarray
    ts: np.ndarray
    ks: np.ndarray
    counters: np.ndarray


class _Scratch(NamedTuple):
    """The per-step vectors of :func:`bdf_run` (length n): the predicted state, ``psi``, the
    error scale, the Newton iterate ``y_new`` and its correction ``d``, ``f(y_new)``, a step."""

    y_pred: np.ndarray
    psi: np.ndarray
    scale: np.ndarray
    y_new: np.ndarray
    d: np.ndarray
    f: np.ndarray
    dy: np.ndarray


def new_bdf(y, n_counters=6, dense=True) -> BdfRun:
    """A :class:`BdfRun` at ``y``; ``dense=False``: no ``J``, ``LU`` (a network of classes,
    whose Jacobian and factors live in :class:`~odeprune.ode.blocks.Blocks`)."""
    y = np.array(y, dtype=float)
    n = y.shape[0]
    nd = n if dense else 0
    return BdfRun(y, np.zeros((MAX_ORDER + 3, n)), np.zeros((nd, nd)), np.zeros((nd, nd)),
                  np.zeros(n, dtype=np.int64), np.zeros(2), np.zeros(3, dtype=np.int64),
                  np.zeros(n_counters, dtype=np.int64))


@njit(cache=True, error_model="numpy", nogil=True)
def _compute_R(order, factor):
    R = np.zeros((order + 1, order + 1))
    for j in range(order + 1):
        R[0, j] = 1.0
    for i in range(1, order + 1):
        R[i, 0] = 0.0
        for j in range(1, order + 1):
            R[i, j] = R[i - 1, j] * (i - 1 - factor * j) / i
    return R


@njit(cache=True, error_model="numpy", nogil=True)
def change_D(D, order, factor):
    """Rescale the differences ``D[:order + 1]`` to a step ``factor`` times the current one."""
    R = _compute_R(order, factor)
    U = _compute_R(order, 1.0)
    m = order + 1
    RU = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            acc = 0.0
            for q in range(m):
                acc += R[i, q] * U[q, j]
            RU[i, j] = acc
    n = D.shape[1]
    new = np.zeros((m, n))
    for i in range(m):
        for q in range(m):
            c = RU[q, i]
            for j in range(n):
                new[i, j] += c * D[q, j]
    for i in range(m):  # element loops: a slice copy compiles numba's shape-error formatting
        for j in range(n):
            D[i, j] = new[i, j]


@njit(cache=True, error_model="numpy", nogil=True)
def _rms(x, scale):
    s = 0.0
    for j in range(x.shape[0]):
        s += (x[j] / scale[j]) ** 2
    return math.sqrt(s / x.shape[0])


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _newton(p, w, s, x, c, tol, blk, z):
    """scipy's ``solve_bdf_system``: at most NEWTON_MAXITER simplified Newton iterations on
    ``y - c f(y) - psi = 0`` from ``x.y_pred`` into ``x.y_new`` (``x``: the :class:`_Scratch`,
    ``s``: the run, its LU factors and counters; ``blk``: None, or the
    :class:`~odeprune.ode.blocks.Blocks` whose factors solve instead, ``z`` their scratch);
    returns ``(converged, iterations)``."""
    y_pred, psi, scale, y, d, f, dy = x.y_pred, x.psi, x.scale, x.y_new, x.d, x.f, x.dy
    LU, piv, cnt = s.LU, s.piv, s.counters
    n = y.shape[0]
    for j in range(n):
        y[j] = y_pred[j]
        d[j] = 0.0
    dy_norm_old = 0.0
    have_old = False
    converged = False
    k = 0
    for k in range(NEWTON_MAXITER):
        rhs_into(y, f, p, w)
        cnt[NFEV] += 1
        finite = True
        for j in range(n):
            if not math.isfinite(f[j]):
                finite = False
        if not finite:
            break
        for j in range(n):
            dy[j] = c * f[j] - psi[j] - d[j]
        if blk is None:  # (an argument's None: numba prunes the other branch, untyped)
            lu_solve(LU, piv, dy)
        else:
            blocks_solve(blk, p, dy, z)
        dy_norm = _rms(dy, scale)
        rate = 0.0
        if have_old:
            rate = dy_norm / dy_norm_old
            if rate >= 1.0 or rate ** (NEWTON_MAXITER - k) / (1.0 - rate) * dy_norm > tol:
                break
        for j in range(n):
            y[j] += dy[j]
            d[j] += dy[j]
        if (not have_old and dy_norm == 0.0) or (have_old and rate / (1.0 - rate) * dy_norm < tol):
            converged = True
            break
        dy_norm_old = dy_norm
        have_old = True
    return converged, k + 1


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _jacobian(y, p, w, w1, cols, blk, J):
    """The Jacobian at ``y`` that :func:`bdf_run` was given (its docstring): into ``blk`` (a
    network of classes), else into ``J``, by ``cols`` or by plain differences. (Arguments'
    None: numba prunes the other branches before typing them.)"""
    if blk is not None:
        blocks_jacobian(y, p, w, blk)
    elif cols is None:
        fd_jacobian_into(y, p, w, J)
    else:
        jacobian_exact(y, p, w, w1, cols, J)


@njit(cache=True, error_model="numpy", nogil=True)
def bdf_run(s, t_out, Y_out, p, ctl, cols, blk=None):
    """scipy's BDF on the compiled right-hand side. The Jacobian: with ``blk``, a network of
    classes' :class:`~odeprune.ode.blocks.Blocks` (block-diagonal plus low rank, solved by
    Woodbury: :mod:`odeprune.ode.blocks`; ``s.J``, ``s.LU`` unused); else with ``cols`` from
    :func:`~odeprune.ode.jacobian.column_entries`, :func:`~odeprune.ode.jacobian.jacobian_exact`;
    with ``cols=None``, :func:`~odeprune.ode.jacobian.fd_jacobian_into` (their evaluations
    count in ``njev`` only). The first call after :func:`bdf_start`
    (``njev == 0``) evaluates it at the start, as scipy's BDF does when it starts. The protocol
    of :mod:`odeprune.ode.explicit` (fills ``Y_out`` at ``t_out`` by scipy's dense output, checks
    each saved state; returns ``CHUNK`` after ``ctl.max_steps`` accepted steps). Start from
    :func:`bdf_start`. On failure ``s.y``, ``s.ts[0]`` hold the last good state."""
    y, D, J, LU, piv, cnt = s.y, s.D, s.J, s.LU, s.piv, s.counters
    n = y.shape[0]
    w = make_work(p.K, p.M)
    w1 = make_work(p.K, p.M)
    t, h_abs = s.ts[0], s.ts[1]
    order, n_equal = s.ks[0], s.ks[1]
    lu_valid = s.ks[2] != 0
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    rtol, atol = ctl.rtol, ctl.atol
    newton_tol = max(10.0 * 2.220446049250313e-16 / rtol, min(0.03, math.sqrt(rtol)))
    x = _Scratch(np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n),
                 np.empty(n))
    y_pred, psi, scale, y_new, d, dy = x.y_pred, x.psi, x.scale, x.y_new, x.d, x.dy
    if blk is None:
        z = np.empty(0)
    else:
        z = np.empty(blk.UT.shape[0])
    if cnt[NJEV] == 0:
        _jacobian(y, p, w, w1, cols, blk, J)
        cnt[NJEV] += 1
    while cnt[I_OUT] < n_out and t_out[cnt[I_OUT]] <= t:
        for j in range(n):
            Y_out[cnt[I_OUT], j] = y[j]
        cnt[I_OUT] += 1
    steps = 0
    status = OK
    while cnt[I_OUT] < n_out:
        if steps >= ctl.max_steps:
            status = CHUNK
            break
        min_step = 10.0 * (np.nextafter(t, np.inf) - t)
        if h_abs < min_step:
            change_D(D, order, min_step / h_abs)
            h_abs = min_step
            n_equal = 0
        accepted = False
        jac_current = False
        n_iter = 0
        t_new = t
        while not accepted:
            if h_abs < min_step:
                status = STEP_TOO_SMALL
                break
            t_new = t + h_abs
            if t_new > t_end:
                t_new = t_end
                change_D(D, order, abs(t_new - t) / h_abs)
                n_equal = 0
                lu_valid = False
            h = t_new - t
            h_abs = abs(h)
            for j in range(n):
                acc = 0.0
                for q in range(order + 1):
                    acc += D[q, j]
                y_pred[j] = acc
                scale[j] = atol + rtol * abs(acc)
                acc = 0.0
                for q in range(1, order + 1):
                    acc += D[q, j] * _GAMMA[q]
                psi[j] = acc / _ALPHA[order]
            converged = False
            c = h / _ALPHA[order]
            while not converged:
                if not lu_valid:
                    if blk is not None:
                        blocks_factor(blk, p, c)
                    else:
                        for i in range(n):
                            for j in range(n):
                                LU[i, j] = -c * J[i, j]
                            LU[i, i] += 1.0
                        lu_factor(LU, piv)
                    cnt[NLU] += 1
                    lu_valid = True
                converged, n_iter = _newton(p, w, s, x, c, newton_tol, blk, z)
                if not converged:
                    if jac_current:
                        break
                    _jacobian(y_pred, p, w, w1, cols, blk, J)
                    cnt[NJEV] += 1
                    lu_valid = False
                    jac_current = True
            if not converged:
                h_abs *= 0.5
                change_D(D, order, 0.5)
                n_equal = 0
                lu_valid = False
                continue
            safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
            for j in range(n):
                scale[j] = atol + rtol * abs(y_new[j])
                dy[j] = _ERROR_CONST[order] * d[j]
            error_norm = _rms(dy, scale)
            if error_norm > 1.0:
                factor = max(_BDF_MIN_FACTOR, safety * error_norm ** (-1.0 / (order + 1)))
                h_abs *= factor
                change_D(D, order, factor)
                n_equal = 0
                cnt[N_REJECT] += 1
            else:
                accepted = True
        if status != OK:
            break
        finite = True
        for j in range(n):
            if not math.isfinite(y_new[j]):
                finite = False
        if not finite:
            status = NONFINITE
            break
        n_equal += 1
        for j in range(n):
            D[order + 2, j] = d[j] - D[order + 1, j]
            D[order + 1, j] = d[j]
        for i in range(order, -1, -1):
            for j in range(n):
                D[i, j] += D[i + 1, j]
        if n_equal >= order + 1:
            # the order (one down, same, one up) with the largest step
            e_m = math.inf
            if order > 1:
                for j in range(n):
                    dy[j] = _ERROR_CONST[order - 1] * D[order, j]
                e_m = _rms(dy, scale)
            e_p = math.inf
            if order < MAX_ORDER:
                for j in range(n):
                    dy[j] = _ERROR_CONST[order + 1] * D[order + 2, j]
                e_p = _rms(dy, scale)
            f_m = e_m ** (-1.0 / order) if e_m > 0.0 else math.inf
            f_0 = error_norm ** (-1.0 / (order + 1)) if error_norm > 0.0 else math.inf
            f_p = e_p ** (-1.0 / (order + 2)) if e_p > 0.0 else math.inf
            best, delta = f_m, -1  # np.argmax: the first of equal maxima
            if f_0 > best:
                best, delta = f_0, 0
            if f_p > best:
                best, delta = f_p, 1
            order += delta
            factor = min(_BDF_MAX_FACTOR, safety * best)
            h_abs *= factor
            change_D(D, order, factor)
            n_equal = 0
            lu_valid = False
        # outputs in (t, t_new]: scipy's dense output (the differences as they are now)
        while cnt[I_OUT] < n_out and t_out[cnt[I_OUT]] <= t_new:
            i_out = cnt[I_OUT]
            tq = t_out[i_out]
            if tq == t_new:
                for j in range(n):
                    Y_out[i_out, j] = y_new[j]
            else:
                for j in range(n):
                    Y_out[i_out, j] = D[0, j]
                prod = 1.0
                for q in range(order):
                    prod *= (tq - (t_new - h_abs * q)) / (h_abs * (1 + q))
                    for j in range(n):
                        Y_out[i_out, j] += D[q + 1, j] * prod
            if not output_ok(Y_out[i_out], p, w, ctl.psd_tol):
                status = NOT_PSD
                break
            cnt[I_OUT] += 1
        if status != OK:
            break
        t = t_new
        for j in range(n):
            y[j] = y_new[j]
        cnt[N_ACCEPT] += 1
        steps += 1
    s.ts[0] = t
    s.ts[1] = h_abs
    s.ks[0] = order
    s.ks[1] = n_equal
    s.ks[2] = 1 if lu_valid else 0
    return status


def bdf_start(s: BdfRun, p, t: float, f0, h: float, rtol: float, atol: float,
              t_end: float) -> None:
    """Initialise ``s`` (its ``y`` set) at time ``t`` with ``f0 = f(y)`` as scipy's BDF does: the
    first step ``h`` (``0``: scipy's ``select_initial_step``, one evaluation), order 1, no
    Jacobian yet (``njev = 0``: :func:`bdf_run` evaluates it first)."""
    y = s.y
    if h <= 0.0:
        scale = atol + np.abs(y) * rtol
        d0, d1 = _rms(y, scale), _rms(f0, scale)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, t_end - t)
        f1 = rhs_eval(y + h0 * f0, p)
        s.counters[NFEV] += 1
        d2 = _rms(f1 - f0, scale) / h0
        h1 = (max(1e-6, h0 * 1e-3) if d1 <= 1e-15 and d2 <= 1e-15 else
              (0.01 / max(d1, d2)) ** 0.5)
        h = min(100 * h0, h1, t_end - t)
    else:
        h = min(h, t_end - t)
    s.counters[NJEV] = 0
    s.D[:] = 0.0
    s.D[0] = y
    s.D[1] = f0 * h
    s.ts[:] = (t, h)
    s.ks[:] = (1, 0, 0)
