r"""The Gaussian-average sums of the right-hand side (:mod:`odeprune.ode.rhs`), compiled.

``I3`` is linear in ``(C_ab, C_bc)`` (``docs/theory.md`` §3), so
``E[g'(z_i) y g(z_c)] = A_ic Cov(z_c, y) + B_ic Cov(z_i, y)``: :func:`i3_coefficients` gives
``U_ic = a_c A_ic`` and ``b_i = sum_c a_c B_ic`` once per evaluation, :func:`s3_from` the sums

.. math:: S_3[i, y] = \sum_c U_{ic}\,\mathrm{Cov}(z_c, y) + b_i\,\mathrm{Cov}(z_i, y).

:func:`s4_sums` gives ``S4[i, k] = sum_{c,d} a_c a_d I4(i,k,c,d) + sigma^2 J2(i,k)`` (``i <= k``;
erf and ReLU by their own kernels, any activation by the closed forms), :func:`s4_into` the same
serial or spread over numba's threads (bit for bit equal). The activation is a compile-time
type when the record holds an :class:`~odeprune.activations.ActivationCode` (a kernel compiled
for erf holds erf code only), a run-time value for a plain integer. Sources: Saad & Solla
(1995); Goldt et al. (2019), supplementary S3-S4.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload
from numba.np.ufunc import parallel as _numba_parallel

from .. import activations as _act
from ..activations import CODES, ERF, I3, I4, J2, RELU, fast_asin
from ..activations._core import _2_PI, _4_PI2  # (the constants, defined once)

__all__ = ["i3_coefficients", "s3_from", "s3_sums", "erf_pair_setup", "s4_sums",
           "s4_sums_threaded", "s4_into", "fast_asin"]

# The threaded I4 sum is a parallel kernel called from the compiled right-hand side when
# ``Params.threads`` is a bool: a cached caller links its code, which needs numba's threading
# layer in the process. A process that loaded such a caller from the cache before any parallel
# kernel had started the layer crashed ("Symbol not found: allocate_sched" or a segfault), e.g.
# after another process had compiled the threaded path first. Start the layer at import (0.02 s
# of CPU, measured; no thread runs until used): a record may get a bool ``threads`` by
# ``_replace`` at any time, so no later point is safe.
_numba_parallel._launch_threads()



# ------------------------------------------------------------------------------ I3 coefficients
def _i3_erf(act, C, a, K, U, b):
    L = C.shape[0]
    for i in range(K):
        cii1 = 1.0 + C[i, i]
        bi = 0.0
        for c in range(L):
            uc = a[c] * _2_PI / math.sqrt(cii1 * (1.0 + C[c, c]) - C[i, c] * C[i, c])
            U[i, c] = uc
            bi -= uc * C[i, c]
        b[i] = bi / cii1


def _i3_generic(act, C, a, K, U, b):
    L = C.shape[0]
    for i in range(K):
        cii = C[i, i]
        bi = 0.0
        for c in range(L):
            U[i, c] = a[c] * I3(act, cii, 0.0, C[i, c], 1.0, C[c, c])
            bi += a[c] * I3(act, cii, 1.0, C[i, c], 0.0, C[c, c])
        b[i] = bi


def _i3_rows(act, C, a, K, U, b):  # pragma: no cover - only its overload runs
    raise NotImplementedError


@overload(_i3_rows, jit_options={"error_model": "numpy"})
def _ov_i3_rows(act, C, a, K, U, b):
    code = _act.static_code(act)
    if code == ERF:
        return _i3_erf
    if code is not None:
        return _i3_generic
    if isinstance(act, types.Integer):
        erf = njit(error_model="numpy")(_i3_erf)
        generic = njit(error_model="numpy")(_i3_generic)

        def runtime(act, C, a, K, U, b):
            if act == ERF:
                erf(act, C, a, K, U, b)
            else:
                generic(act, C, a, K, U, b)
        return runtime
    return None


@njit(cache=True, error_model="numpy", inline="always")
def i3_coefficients(act, C, a, K, U, b):
    """``U_ic = a_c A_ic`` and ``b_i = sum_c a_c B_ic`` with ``I3(i,y,c) = A_ic C_yc + B_ic C_iy``.

    For erf, ``A = (2/pi) / sqrt(Lambda_3)`` and ``B = -A C_ic / (1 + C_ii)``; for any other
    activation the closed form is evaluated at the unit covariances ``(C_iy, C_yc) = (0, 1)`` and
    ``(1, 0)`` (exact, since I3 is linear in them). The branch is chosen when compiling for an
    ActivationCode (an erf kernel holds no call of the generic I3), at run time for an integer.
    """
    _i3_rows(act, C, a, K, U, b)


@njit(cache=True, error_model="numpy", inline="always")
def s3_from(U, b, Cs, K, L, S3):
    """``S3[i, y] = sum_c U_ic Cs[c, y] + b_i Cs[i, y]`` for every field ``y`` (columns of Cs;
    ``Cs`` symmetric, read along its rows so that the dot products are contiguous)."""
    for i in range(K):
        Ui = U[i]
        for y in range(L):
            Cy = Cs[y]
            t = 0.0
            for c in range(L):
                t += Ui[c] * Cy[c]
            S3[i, y] = t + b[i] * Cy[i]


def s3_sums(act, C, a, K):
    """``S3[i, b] = sum_c a_c I3(i, b, c)``, shape (K, L), at covariance ``C`` (L, L)."""
    C = np.ascontiguousarray(C, dtype=float)
    a = np.ascontiguousarray(a, dtype=float)
    L = C.shape[0]
    U, b, S3 = np.empty((K, L)), np.empty(K), np.empty((K, L))
    i3_coefficients(int(act), C, a, int(K), U, b)
    s3_from(U, b, C, int(K), L, S3)
    return S3


# ------------------------------------------------------------------------------ the I4 sums
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


@njit(cache=True, error_model="numpy", inline="always")
def erf_pair_setup(C, i, k, L, r):
    """For erf and the pair ``(i, k)``: ``r[c] = Lambda_1(c)^(-1/2)`` for every field ``c`` and
    the return value ``Lambda_4 = (1 + C_ii)(1 + C_kk) - C_ik^2`` (the closed form of I4, as in
    :func:`_s4_erf`; also used by :mod:`odeprune.ode.jacobian`)."""
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
    return lam4


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _s4_erf(C, a, i, k, L, r):
    # sum_{c,d} a_c a_d I4(i, k, c, d) for erf. With ci = C[i], ck = C[k]:
    #   Lambda_0(c, d) = u1_c C_cd - u2_c ck_d - u3_c ci_d (times r_c), the row constants u*_c
    #   folded out of the d-loop; the d-loop runs over contiguous row slices starting at 0 so that
    #   LLVM vectorises it (with fast_asin). Summation order differs from the generic path only
    #   by reassociation (agreement ~1e-15 relative, checked in the tests). fast_asin is
    #   fdlibm's branch-free rational asin (odeprune.activations), which LLVM vectorises.
    ci = C[i]
    ck = C[k]
    cii1 = 1.0 + ci[i]
    ckk1 = 1.0 + ck[k]
    cik = ci[k]
    lam4 = erf_pair_setup(C, i, k, L, r)
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
def _s4_relu(C, a, i, k, L, r):
    # sum_{c,d} a_c a_d I4(i, k, c, d) for ReLU: relu_I4's arithmetic, term by term (bit for bit
    # the generic sum), with the correlations of i and k with every field computed once per pair
    # (relu_I4 recomputes six per call) and the merges' scratch arrays allocated once per pair
    cii = C[i, i]
    ckk = C[k, k]
    if cii <= 0.0 or ckk <= 0.0:  # every term is 0 (theta(0) = 0)
        return 0.0
    ri = r
    rk = np.empty(L)
    for c in range(L):
        ccc = C[c, c]
        if ccc > 0.0:
            ri[c] = _act._corr(C[i, c], cii, ccc)
            rk[c] = _act._corr(C[k, c], ckk, ccc)
    p01 = _act._corr(C[i, k], cii, ckk)
    sr = np.empty((4, 4))
    grp = np.empty(4, dtype=np.int64)
    pos = np.empty(4, dtype=np.int64)
    R3 = np.empty((3, 3))
    s = 0.0
    for c in range(L):
        ccc = C[c, c]
        if ccc <= 0.0:
            continue
        p02 = ri[c]
        p12 = rk[c]
        m0 = max(abs(p01), abs(p02), abs(p12))
        for d in range(c, L):
            cdd = C[d, d]
            if cdd <= 0.0:
                continue
            scale = math.sqrt(ccc * cdd)
            p03 = ri[d]
            p13 = rk[d]
            p23 = _act._corr(C[c, d], ccc, cdd)
            if max(m0, abs(p03), abs(p13), abs(p23)) < 1.0:
                val = scale * _act._relu_m4(p01, p02, p03, p12, p13, p23)
            else:
                val = _act.relu_I4_merged(scale, p01, p02, p03, p12, p13, p23, sr, grp, pos, R3)
            if c == d:
                s += a[c] * a[c] * val
            else:
                s += 2.0 * a[c] * a[d] * val
    return s


def _pair_kernel(code):
    # sum_{c,d} a_c a_d I4(i, k, c, d) for one activation: its own kernel (erf, ReLU) when
    # ``fast``, else the closed form term by term; the code a constant of the closure. ``fast``
    # None (what make_params stores for fast=True): the own kernel only, chosen when compiling
    # (a run-time test compiled the generic sum into every erf run: 0.4 s of its first
    # compile); a bool: chosen at run time
    act = _act.activation_code(code)
    own = _OWN_S4.get(code)

    def pair(fast, C, a, i, k, L, r):  # pragma: no cover - only its overload runs
        raise NotImplementedError

    @overload(pair, inline="always")
    def _ov_pair(fast, C, a, i, k, L, r):
        if own is None:
            return lambda fast, C, a, i, k, L, r: _s4_generic(act, C, a, i, k, L)
        if isinstance(fast, types.NoneType):
            return lambda fast, C, a, i, k, L, r: own(C, a, i, k, L, r)

        def runtime(fast, C, a, i, k, L, r):
            if fast:
                return own(C, a, i, k, L, r)
            return _s4_generic(act, C, a, i, k, L)
        return runtime
    return pair


_OWN_S4 = {ERF: _s4_erf, RELU: _s4_relu}
#: ``_s4_pair(act, fast, C, a, i, k, L, r)``: the pair sum of the activation ``act`` (picked when
#: compiling for an ActivationCode, at run time for an integer code: activations' one dispatch)
_s4_pair = _act._dispatcher({code: _pair_kernel(code) for code in CODES}, 7)


def _all_pairs_kernel(code):
    # the whole bracket at once, where the activation has such a kernel (ReLU, ``fast``; None
    # as in _pair_kernel): True when done. A compile-time choice for an ActivationCode, so that
    # an erf kernel holds no ReLU code (a ``p.act == RELU`` test folds to a constant but its
    # branch was still typed and compiled: 6 s of an erf run's first compile, measured)
    def whole(fast, C, a, K, S4):  # pragma: no cover - only its overload runs
        raise NotImplementedError

    @overload(whole, inline="always")
    def _ov_whole(fast, C, a, K, S4):
        if code != RELU:
            return lambda fast, C, a, K, S4: False
        if isinstance(fast, types.NoneType):
            def always(fast, C, a, K, S4):
                _act.relu_s4_sums(C, a, K, S4)
                return True
            return always

        def runtime(fast, C, a, K, S4):
            if fast:
                _act.relu_s4_sums(C, a, K, S4)
                return True
            return False
        return runtime
    return whole


#: ``_all_pairs(act, fast, C, a, K, S4)``: the activation's whole-bracket kernel, if any (True
#: when it ran)
_all_pairs = _act._dispatcher({code: _all_pairs_kernel(code) for code in CODES}, 5)


def _s4_sums(p, w):
    """``S4[i, k] = sum_{c,d} a_c a_d I4(i,k,c,d) + sigma^2 J2(i,k)`` for ``i <= k``: pair by
    pair, or (ReLU, ``fast``) all pairs at once, one path integral per set of four fields
    (:func:`odeprune.activations.relu_s4_sums`; equal to the pair sums to round-off)."""
    C, a, S4 = w.C, w.a, w.S4
    K, L = p.K, p.K + p.M
    if _all_pairs(p.act, p.fast, C, a, K, S4):
        if p.sigma != 0.0:
            for i in range(K):
                for k in range(i, K):
                    S4[i, k] += p.sigma * p.sigma * J2(p.act, C[i, i], C[i, k], C[k, k])
        return
    r = np.empty(L)  # local scratch: LLVM then knows it aliases nothing (measured 6 % faster)
    for i in range(K):
        for k in range(i, K):
            s4 = _s4_pair(p.act, p.fast, C, a, i, k, L, r)
            if p.sigma != 0.0:
                s4 += p.sigma * p.sigma * J2(p.act, C[i, i], C[i, k], C[k, k])
            S4[i, k] = s4


# Two compiled forms of one function: ``s4_sums`` is called (by the Jacobian, the particle
# engine), ``_s4_sums_inline`` is inlined into the right-hand side (a call passes the two
# records' arrays, each counted in and out: measured 5 % of a K=6 evaluation). Inlining it into
# every caller made each of them type and compile its own copy (the Jacobian's took 14 s).
s4_sums = njit(cache=True, error_model="numpy")(_s4_sums)
_s4_sums_inline = njit(cache=True, error_model="numpy", inline="always")(_s4_sums)


@njit(cache=True)
def _pair(q, K):
    """Pair index ``q`` -> ``(i, k)``, ``i <= k``, row-major over the upper triangle."""
    i = 0
    while q >= K - i:
        q -= K - i
        i += 1
    return i, i + q


def _threaded_sums(code):
    # one parallel kernel per activation, the code a compile-time constant of its closure (a
    # record or code variable inside a parallel loop is not supported by numba's parfors)
    act = _act.activation_code(code)

    @njit(cache=True, error_model="numpy", parallel=True)
    def threaded(C, a, S4, K, L, sigma, fast):
        n_pairs = K * (K + 1) // 2
        for q in prange(n_pairs):
            i, k = _pair(np.int64(q), np.int64(K))  # prange indices are unsigned
            s4 = _s4_pair(act, fast, C, a, i, k, L, np.empty(L))
            if sigma != 0.0:
                s4 += sigma * sigma * J2(act, C[i, i], C[i, k], C[k, k])
            S4[i, k] = s4
    return threaded


#: ``_threaded(act, C, a, S4, K, L, sigma, fast)``: the threaded sums of the activation ``act``
_threaded = _act._dispatcher({code: _threaded_sums(code) for code in CODES}, 7)


def _fast_flag(fast):  # pragma: no cover - only its overload runs
    raise NotImplementedError


@overload(_fast_flag)
def _ov_fast_flag(fast):
    # ``Params.fast`` as a bool (None: True), for the parallel kernel (no None inside parfors)
    if isinstance(fast, types.NoneType):
        return lambda fast: True
    return lambda fast: fast


@njit(cache=True, error_model="numpy")
def s4_sums_threaded(p, w):
    """:func:`s4_sums` with the (i <= k) pairs spread over numba's threads; each pair is
    computed by the same code as in the serial form, so the numbers are bit for bit the same."""
    _threaded(p.act, w.C, w.a, w.S4, p.K, p.K + p.M, p.sigma, _fast_flag(p.fast))


def s4_into(threads, p, w):  # pragma: no cover - only its overload runs
    raise NotImplementedError


@overload(s4_into, inline="always")
def _ov_s4_into(threads, p, w):
    # threads=None (the default record): serial, no parallel code compiled or linked; a bool:
    # chosen at run time (both compiled)
    if isinstance(threads, types.NoneType):
        return lambda threads, p, w: _s4_sums_inline(p, w)

    def runtime(threads, p, w):
        if threads:
            s4_sums_threaded(p, w)
        else:
            _s4_sums_inline(p, w)
    return runtime
