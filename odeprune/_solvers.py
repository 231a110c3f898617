"""Compiled ODE steppers for the order-parameter ODEs.

``dopri5_run`` is the adaptive Dormand-Prince 5(4) method with its 4th-order dense output
(Dormand & Prince 1980; Shampine 1986), using the Butcher tableau that scipy's ``RK45`` carries
(read from scipy at import, not retyped). The step-size controller is scipy's (safety 0.9, factor
in [0.2, 10]; error norm RMS of ``err / (atol + rtol * max(|y|, |y_new|))``). ``fixed_run`` does
classical RK4 or explicit Euler with a fixed step, shortening a step only to land on an output time.

Both loop entirely in compiled code and return after ``max_steps`` accepted steps or once every
requested output is filled, carrying their full state (``t, y, h, f``) so that a run split into
chunks gives bit-for-bit the same numbers as one call: this is what makes progress bars,
checkpoints and resume exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.integrate._ivp.rk import RK45

from ._rhs import rhs_into, unpack_cov

_A = np.ascontiguousarray(RK45.A, dtype=float)
_B = np.ascontiguousarray(RK45.B, dtype=float)
_C = np.ascontiguousarray(RK45.C, dtype=float)
_E = np.ascontiguousarray(RK45.E, dtype=float)
_P = np.ascontiguousarray(RK45.P, dtype=float)

#: status codes returned by the compiled drivers
OK, CHUNK, NONFINITE, NOT_PSD, STEP_TOO_SMALL = 0, 1, 2, 3, 4

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0


@njit(cache=True, error_model="numpy", nogil=True)
def is_psd(C, tol, work):
    """True when the smallest eigenvalue of ``C`` is at least ``-tol * max(1, max|C|)``.

    A Cholesky factorisation of ``C + tol * scale * I`` succeeds exactly then. Written out here
    (``work`` is an (L, L) scratch array) rather than calling LAPACK's eigvalsh: numba's LAPACK
    wrappers serialise threads, and this check runs at every saved time of every curve of a
    threaded batch.
    """
    L = C.shape[0]
    scale = 1.0
    for i in range(L):
        for j in range(L):
            if abs(C[i, j]) > scale:
                scale = abs(C[i, j])
    shift = tol * scale
    for j in range(L):
        d = C[j, j] + shift
        for k in range(j):
            d -= work[j, k] * work[j, k]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        work[j, j] = d
        for i in range(j + 1, L):
            acc = C[i, j]
            for k in range(j):
                acc -= work[i, k] * work[j, k]
            work[i, j] = acc / d
    return True


@njit(cache=True, error_model="numpy")
def _rms(err, y, y_new, atol, rtol):
    s = 0.0
    n = y.shape[0]
    for j in range(n):
        sc = atol + rtol * max(abs(y[j]), abs(y_new[j]))
        s += (err[j] / sc) ** 2
    return math.sqrt(s / n)


@njit(cache=True, error_model="numpy")
def _fill_cov(y, K, M, T, v_star, C, a):
    unpack_cov(y, K, M, T, v_star, C, a)


@njit(cache=True, error_model="numpy", nogil=True)
def dopri5_run(t, y, h, f, t_out, i_out, Y_out, K, M, T, v_star, eta, eta_v, sigma, act,
               train_v, sgd, fast, rtol, atol, max_steps, psd_tol):
    """Advance from ``(t, y)`` with step ``h`` (``f = rhs(y)``), filling ``Y_out[i_out:]``.

    Returns ``(status, t, y, h, f, i_out, nfev, n_accept, n_reject)``. On divergence, ``t, y``
    are the last good accepted state.
    """
    n = y.shape[0]
    L = K + M
    C = np.empty((L, L))
    Cw = np.empty((L, L))
    a = np.empty(L)
    S3 = np.empty((K, L))
    u = np.empty(L)
    Cu = np.empty(L)
    Ks = np.empty((7, n))
    y_new = np.empty(n)
    f_new = np.empty(n)
    ytmp = np.empty(n)
    err = np.empty(n)
    nfev = 0
    n_accept = 0
    n_reject = 0
    n_out = t_out.shape[0]
    # outputs at the current time
    while i_out < n_out and t_out[i_out] <= t:
        Y_out[i_out, :] = y
        i_out += 1
    steps = 0
    while i_out < n_out:
        if steps >= max_steps:
            return CHUNK, t, y, h, f, i_out, nfev, n_accept, n_reject
        if h < 1e-12 * max(1.0, abs(t)):
            return STEP_TOO_SMALL, t, y, h, f, i_out, nfev, n_accept, n_reject
        # one Dormand-Prince step
        Ks[0, :] = f
        for s in range(1, 6):
            for j in range(n):
                acc = 0.0
                for r in range(s):
                    acc += _A[s, r] * Ks[r, j]
                ytmp[j] = y[j] + h * acc
            rhs_into(ytmp, Ks[s], K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
                     C, a, S3, u, Cu)
        for j in range(n):
            acc = 0.0
            for r in range(6):
                acc += _B[r] * Ks[r, j]
            y_new[j] = y[j] + h * acc
        finite = True
        for j in range(n):
            if not math.isfinite(y_new[j]):
                finite = False
                break
        if finite:
            rhs_into(y_new, f_new, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
                     C, a, S3, u, Cu)
            nfev += 6
            for j in range(n):
                if not math.isfinite(f_new[j]):
                    finite = False
                    break
        else:
            nfev += 5
        if finite:
            Ks[6, :] = f_new
            for j in range(n):
                acc = 0.0
                for r in range(7):
                    acc += _E[r] * Ks[r, j]
                err[j] = h * acc
            en = _rms(err, y, y_new, atol, rtol)
        else:
            en = math.inf
        if en <= 1.0:
            # dense output for every requested time inside (t, t + h]
            t_new = t + h
            while i_out < n_out and t_out[i_out] <= t_new:
                theta = (t_out[i_out] - t) / h
                th1 = theta
                th2 = theta * theta
                th3 = th2 * theta
                th4 = th3 * theta
                for j in range(n):
                    acc = 0.0
                    for r in range(7):
                        q = _P[r, 0] * th1 + _P[r, 1] * th2 + _P[r, 2] * th3 + _P[r, 3] * th4
                        acc += Ks[r, j] * q
                    Y_out[i_out, j] = y[j] + h * acc
                # PSD check at every output
                _fill_cov(Y_out[i_out], K, M, T, v_star, C, a)
                if not is_psd(C, psd_tol, Cw):
                    return NOT_PSD, t, y, h, f, i_out, nfev, n_accept, n_reject
                i_out += 1
            t = t_new
            y = y_new.copy()
            f = f_new.copy()
            n_accept += 1
            steps += 1
            if en == 0.0:
                factor = MAX_FACTOR
            else:
                factor = min(MAX_FACTOR, SAFETY * en ** -0.2)
            h = h * factor
        else:
            n_reject += 1
            if not math.isfinite(en):
                # a non-finite trial: shrink hard; if h is already tiny the run has diverged
                if h < 1e-8 * max(1.0, abs(t)):
                    return NONFINITE, t, y, h, f, i_out, nfev, n_accept, n_reject
                h = h * MIN_FACTOR
            else:
                h = h * max(MIN_FACTOR, SAFETY * en ** -0.2)
    return OK, t, y, h, f, i_out, nfev, n_accept, n_reject


@njit(cache=True, error_model="numpy", nogil=True)
def fixed_run(t, y, dt, t_out, i_out, Y_out, K, M, T, v_star, eta, eta_v, sigma, act, train_v,
              sgd, fast, rk4, max_steps, psd_tol):
    """Fixed-step RK4 (``rk4=True``) or explicit Euler from ``(t, y)``, filling ``Y_out``.

    Returns ``(status, t, y, i_out, nfev, n_steps)``.
    """
    n = y.shape[0]
    L = K + M
    C = np.empty((L, L))
    Cw = np.empty((L, L))
    a = np.empty(L)
    S3 = np.empty((K, L))
    u = np.empty(L)
    Cu = np.empty(L)
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    ytmp = np.empty(n)
    y = y.copy()
    nfev = 0
    n_out = t_out.shape[0]
    steps = 0
    while i_out < n_out and t_out[i_out] <= t + 1e-12 * max(1.0, t):
        Y_out[i_out, :] = y
        i_out += 1
    while i_out < n_out:
        if steps >= max_steps:
            return CHUNK, t, y, i_out, nfev, steps
        # take dt, or less to land on the next output
        h = dt
        target = t_out[i_out]
        landing = False
        if t + h >= target - 1e-12 * max(1.0, target):
            h = target - t
            landing = True
        rhs_into(y, k1, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast, C, a, S3, u, Cu)
        if rk4:
            for j in range(n):
                ytmp[j] = y[j] + 0.5 * h * k1[j]
            rhs_into(ytmp, k2, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
                     C, a, S3, u, Cu)
            for j in range(n):
                ytmp[j] = y[j] + 0.5 * h * k2[j]
            rhs_into(ytmp, k3, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
                     C, a, S3, u, Cu)
            for j in range(n):
                ytmp[j] = y[j] + h * k3[j]
            rhs_into(ytmp, k4, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
                     C, a, S3, u, Cu)
            for j in range(n):
                ytmp[j] = y[j] + h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j])
            nfev += 4
        else:
            for j in range(n):
                ytmp[j] = y[j] + h * k1[j]
            nfev += 1
        for j in range(n):
            if not math.isfinite(ytmp[j]):
                return NONFINITE, t, y, i_out, nfev, steps
        y[:] = ytmp
        t = target if landing else t + h
        steps += 1
        if landing:
            Y_out[i_out, :] = y
            _fill_cov(y, K, M, T, v_star, C, a)
            if not is_psd(C, psd_tol, Cw):
                return NOT_PSD, t, y, i_out, nfev, steps
            i_out += 1
    return OK, t, y, i_out, nfev, steps
