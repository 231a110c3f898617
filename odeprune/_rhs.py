r"""The right-hand side of the order-parameter ODEs (EQUATIONS.md §4), compiled with numba.

The state vector packs the upper triangle of ``Q`` (row-major, ``i <= k``), then ``R`` (K*M,
row-major), then ``v`` (K): symmetry of Q holds by construction.

.. math::

    \dot R_{in} &= -\eta v_i \sum_c a_c I_3(i,n,c) \\
    \dot Q_{ik} &= -\eta v_i \sum_c a_c I_3(i,k,c) - \eta v_k \sum_c a_c I_3(k,i,c)
                   + \eta^2 v_i v_k \Big[\sum_{c,d} a_c a_d I_4(i,k,c,d) + \sigma^2 J_2(i,k)\Big] \\
    \dot v_i &= -\eta_v \sum_c a_c I_2(i,c)

with ``a = (v, -v_star)`` (Goldt et al. 2019, supplementary S3-S4; Saad & Solla 1995).

Two implementations share the loop structure: a generic one that calls the scalar kernels of
:mod:`odeprune.activations` (any activation), and a fast one for erf that hoists every quantity
depending on fewer indices out of the inner loops (``Lambda_3`` per (i, c), ``Lambda_4`` and
``Lambda_1`` per (i, k, c)). Both evaluate I3 K*L*L times, I4 once per (i<=k, c<=d) and I2 once
per unordered pair; the tests check that they agree.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .activations import ERF, I2, I3, I4, J2

_2_PI = 2.0 / math.pi
_4_PI2 = 4.0 / (math.pi * math.pi)


@njit(cache=True, error_model="numpy")
def n_state(K, M):
    return K * (K + 1) // 2 + K * M + K


@njit(cache=True, error_model="numpy")
def unpack_cov(y, K, M, T, v_star, C, a):
    """Fill the covariance ``C`` (L, L) and signed weights ``a`` (L,) from the state ``y``."""
    p = 0
    for i in range(K):
        for k in range(i, K):
            C[i, k] = y[p]
            C[k, i] = y[p]
            p += 1
    for i in range(K):
        for n in range(M):
            C[i, K + n] = y[p]
            C[K + n, i] = y[p]
            p += 1
    for i in range(K):
        a[i] = y[p]
        p += 1
    for n in range(M):
        for m in range(M):
            C[K + n, K + m] = T[n, m]
        a[K + n] = -v_star[n]


def pack(Q, R, v):
    """Pack (Q, R, v) into a state vector; the inverse of :func:`unpack`."""
    K = Q.shape[0]
    iu = np.triu_indices(K)
    return np.concatenate([np.asarray(Q)[iu], np.asarray(R).ravel(), np.asarray(v)])


def unpack(y, K, M):
    """Unpack state vector(s) ``y`` (..., n_state) into ``Q (..., K, K)``, ``R``, ``v``."""
    y = np.asarray(y)
    nq = K * (K + 1) // 2
    iu = np.triu_indices(K)
    Q = np.zeros(y.shape[:-1] + (K, K))
    Q[..., iu[0], iu[1]] = y[..., :nq]
    Q[..., iu[1], iu[0]] = y[..., :nq]
    R = y[..., nq:nq + K * M].reshape(y.shape[:-1] + (K, M))
    v = y[..., nq + K * M:].copy()
    return Q, R, v


@njit(cache=True, error_model="numpy")
def _s3_generic(act, C, a, K, L, S3):
    # S3[i, b] = sum_c a_c I3(i, b, c)
    for i in range(K):
        for b in range(L):
            s = 0.0
            for c in range(L):
                s += a[c] * I3(act, C[i, i], C[i, b], C[i, c], C[b, c], C[c, c])
            S3[i, b] = s


@njit(cache=True, error_model="numpy")
def _s3_erf(C, a, K, L, S3, u, Cu):
    for i in range(K):
        cii1 = 1.0 + C[i, i]
        for c in range(L):
            lam3 = cii1 * (1.0 + C[c, c]) - C[i, c] * C[i, c]
            u[c] = a[c] / math.sqrt(lam3)
        s_i = 0.0
        for c in range(L):
            s_i += C[i, c] * u[c]
        for b in range(L):
            t = 0.0
            for c in range(L):
                t += C[b, c] * u[c]
            Cu[b] = t
        pref = _2_PI / cii1
        for b in range(L):
            S3[i, b] = pref * (cii1 * Cu[b] - C[i, b] * s_i)


@njit(cache=True, error_model="numpy")
def _s4_generic(act, C, a, i, k, L):
    # sum_{c,d} a_c a_d I4(i, k, c, d), using the symmetry in (c, d)
    s = 0.0
    for c in range(L):
        for d in range(c, L):
            val = I4(act, C[i, i], C[i, k], C[i, c], C[i, d], C[k, k], C[k, c], C[k, d],
                     C[c, c], C[c, d], C[d, d])
            if c == d:
                s += a[c] * a[c] * val
            else:
                s += 2.0 * a[c] * a[d] * val
    return s


# fdlibm's rational approximation of asin (e_asin.c, Sun Microsystems 1993): |error| < 1 ulp
# on [0, 0.5) and a few ulp on [0.5, 1]. Written branch-free so that LLVM can vectorise the I4
# loops (libm's asin is a call per element and dominates the right-hand side otherwise).
_PS0 = 1.66666666666666657415e-01
_PS1 = -3.25565818622400915405e-01
_PS2 = 2.01212532134862925881e-01
_PS3 = -4.00555345006794114027e-02
_PS4 = 7.91534994289814532176e-04
_PS5 = 3.47933107596021167570e-05
_QS1 = -2.40339491173441421878e00
_QS2 = 2.02094576023350569471e00
_QS3 = -6.88283971605453293030e-01
_QS4 = 7.70381505559019352791e-02
_PIO2 = math.pi / 2.0


@njit(cache=True, error_model="numpy", inline="always")
def fast_asin(x):
    """asin(x) for x in [-1, 1] (clipped), vectorisable; see the comment above."""
    z = abs(x)
    if z > 1.0:
        z = 1.0
    small = z < 0.5
    t = z * z if small else (1.0 - z) * 0.5
    p = t * (_PS0 + t * (_PS1 + t * (_PS2 + t * (_PS3 + t * (_PS4 + t * _PS5)))))
    q = 1.0 + t * (_QS1 + t * (_QS2 + t * (_QS3 + t * _QS4)))
    r = p / q
    s = math.sqrt(t)
    res = z + z * r if small else _PIO2 - 2.0 * (s + s * r)
    return res if x >= 0.0 else -res


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _s4_erf(C, a, i, k, L, r):
    # sum_{c,d} a_c a_d I4(i, k, c, d) for erf. With ci = C[i], ck = C[k]:
    #   Lambda_0(c, d) = u1_c C_cd - u2_c ck_d - u3_c ci_d (times r_c), the row constants u*_c
    #   folded out of the d-loop; the d-loop runs over contiguous row slices starting at 0 so that
    #   LLVM vectorises it (with fast_asin). Summation order differs from the generic path only
    #   by reassociation (agreement ~1e-15 relative, checked in the tests).
    ci = C[i]
    ck = C[k]
    cii1 = 1.0 + ci[i]
    ckk1 = 1.0 + ck[k]
    cik = ci[k]
    lam4 = cii1 * ckk1 - cik * cik
    for c in range(L):
        lam1 = (lam4 * (1.0 + C[c, c]) - ck[c] * ck[c] * cii1 - ci[c] * ci[c] * ckk1
                + 2.0 * cik * ci[c] * ck[c])
        r[c] = 1.0 / math.sqrt(lam1)
    s = 0.0
    for c in range(L):
        cic = ci[c]
        ckc = ck[c]
        rc = r[c]
        u1 = lam4 * rc
        u2 = (ckc * cii1 - cik * cic) * rc
        u3 = (cic * ckk1 - cik * ckc) * rc
        Cr = C[c, c:]
        ckr = ck[c:]
        cir = ci[c:]
        rr = r[c:]
        ar = a[c:]
        inner = 0.0
        for j in range(1, Cr.shape[0]):
            inner += ar[j] * fast_asin((u1 * Cr[j] - u2 * ckr[j] - u3 * cir[j]) * rr[j])
        diag = fast_asin((u1 * Cr[0] - u2 * ckc - u3 * cic) * rc)
        s += a[c] * (a[c] * diag + 2.0 * inner)
    return _4_PI2 / math.sqrt(lam4) * s


@njit(cache=True, error_model="numpy")
def rhs_into(y, dy, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
             C, a, S3, u, Cu):
    """Write d y / d alpha into ``dy``. Work arrays: ``C`` (L,L), ``a`` (L,), ``S3`` (K,L),
    ``u``, ``Cu`` (L,). ``sgd`` keeps the eta^2 (online SGD) terms; ``fast`` picks the erf path."""
    L = K + M
    unpack_cov(y, K, M, T, v_star, C, a)
    use_fast = fast and act == ERF
    if use_fast:
        _s3_erf(C, a, K, L, S3, u, Cu)
    else:
        _s3_generic(act, C, a, K, L, S3)
    p = 0
    for i in range(K):
        for k in range(i, K):
            d = -eta * a[i] * S3[i, k] - eta * a[k] * S3[k, i]
            if sgd:
                if use_fast:
                    s4 = _s4_erf(C, a, i, k, L, u)
                else:
                    s4 = _s4_generic(act, C, a, i, k, L)
                if sigma != 0.0:
                    s4 += sigma * sigma * J2(act, C[i, i], C[i, k], C[k, k])
                d += eta * eta * a[i] * a[k] * s4
            dy[p] = d
            p += 1
    for i in range(K):
        for n in range(M):
            dy[p] = -eta * a[i] * S3[i, K + n]
            p += 1
    for i in range(K):
        if train_v:
            s = 0.0
            for c in range(L):
                s += a[c] * I2(act, C[i, i], C[i, c], C[c, c])
            dy[p] = -eta_v * s
        else:
            dy[p] = 0.0
        p += 1


@njit(cache=True, error_model="numpy")
def rhs(y, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast):
    """Allocating convenience form of :func:`rhs_into` (tests, benchmarks)."""
    L = K + M
    dy = np.empty_like(y)
    rhs_into(y, dy, K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast,
             np.empty((L, L)), np.empty(L), np.empty((K, L)), np.empty(L), np.empty(L))
    return dy
