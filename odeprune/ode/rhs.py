r"""The right-hand side of the order-parameter ODEs, for dense and masked networks, compiled.

One right-hand side serves every network (``docs/theory.md`` §4, §8, §9): the input coordinates
are split into **classes** by the mask pattern of the first layer (a dense network is one class
with every unit kept and fraction ``f = 1``). Per class ``s`` the state holds the partial overlaps
``Q^s`` (upper triangle, row-major, ``i <= k``), ``R^s`` (K*M, row-major) and, when the two-time
overlaps are tracked, ``P^s`` (K*K, row-major, ``P^s_ik = w_i(alpha) . w_k(0) / N`` over the
class's coordinates); the second layer ``v`` (K) comes last. The network's ``Q, R`` are the class
sums. Symmetry of each ``Q^s`` holds by construction.

.. math::

    \dot Q^s_{ik} &= m^s_i m^s_k\Big[-\eta v_i S^s_3[i, \lambda^s_k] - \eta v_k S^s_3[k, \lambda^s_i]
                   + \eta^2 f_s v_i v_k \Big(\sum_{c,d} a_c a_d I_4(i,k,c,d)
                   + \sigma^2 J_2(i,k)\Big)\Big] \\
    \dot R^s_{in} &= -m^s_i\, \eta v_i S^s_3[i, \nu^s_n], \qquad
    \dot P^s_{ik} = -m^s_i\, \eta v_i S^s_3[i, \lambda^{0,s}_k] \\
    \dot v_i &= -\eta_v \sum_c a_c I_2(i,c)

(weight decay ``gamma`` adds ``-2 eta gamma Q^s``, ``-eta gamma R^s``, ``-eta gamma P^s``:
``docs/theory.md`` §11)

with ``a = (v, -v_star)``, ``I2, I4, J2`` on the global covariance, and
``S_3[i, y] = sum_c a_c E[g'(z_i) y g(z_c)]``. ``I3(a, b, c)`` is linear in ``(C_ab, C_bc)``
(``docs/theory.md`` §3), so ``E[g'(z_i) y g(z_c)] = A_ic Cov(z_c, y) + B_ic Cov(z_i, y)`` for any
``y`` jointly Gaussian with the fields; with ``U_ic = a_c A_ic`` and ``b_i = sum_c a_c B_ic``:

.. math:: S_3[i, y] = \sum_c U_{ic}\,\mathrm{Cov}(z_c, y) + b_i\,\mathrm{Cov}(z_i, y).

``U`` and ``b`` are computed once per evaluation (2 K L closed-form coefficients); each class
then costs ``O(K L^2)``; the global ``I4`` sum (``i <= k``, ``c <= d``) is done once. Sources:
Saad & Solla (1995); Goldt et al. (2019), supplementary S3–S4; the masked and two-time equations
are this package's (``docs/theory.md`` §8–§9).

Kernels take arrays plus one :class:`Params` record and one :class:`Work` record (numba accepts
NamedTuples with ``cache=True``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange, types
from numba.extending import overload
from numba.np.ufunc import parallel as _numba_parallel

from .. import activations as _act
from ..activations import CODES, ERF, I2, I3, I4, J2, LINEAR, RELU, fast_asin

# The threaded I4 sum is a parallel kernel called from the compiled right-hand side: a cached
# caller links its code, which needs numba's threading layer in the process. A process that
# loads such a caller from the cache before any parallel kernel has started the layer crashed
# ("Symbol not found: allocate_sched" or a segfault), e.g. after another process had compiled
# the threaded path first. Start the layer at import (cheap; no thread runs until used).
_numba_parallel._launch_threads()

__all__ = ["Params", "Work", "make_params", "make_work", "n_state", "pack", "unpack",
           "pack_classes", "unpack_classes", "rhs", "rhs_into", "rhs_eval", "unpack_cov",
           "fast_asin", "s3_sums"]

_2_PI = 2.0 / math.pi
_4_PI2 = 4.0 / (math.pi * math.pi)


class Params(NamedTuple):
    """Everything the right-hand side needs besides the state (one record, fixed per run).

    ``units`` (S, K): the kept units of each class (the first ``nk[s]``, ascending); ``off``
    (S+1,): where each class's block starts in the state vector (``off[S]``: ``v``); ``f`` (S,),
    ``T_cls`` (S, M, M), ``R0_cls`` (S, K, M) (the initial per-class ``R``, used by the
    two-time overlaps ``P``), ``T`` (M, M), ``v_star`` (M,).
    """

    K: int
    M: int
    n_cls: int
    eta: float
    eta_v: float
    sigma: float
    act: int
    train_v: bool
    sgd: bool
    fast: bool
    track_P: bool
    threads: bool
    T: np.ndarray
    v_star: np.ndarray
    T_cls: np.ndarray
    units: np.ndarray
    nk: np.ndarray
    off: np.ndarray
    f: np.ndarray
    R0_cls: np.ndarray
    decay: float


class Work(NamedTuple):
    """Scratch arrays of one evaluation (allocate once per run with :func:`make_work`)."""

    C: np.ndarray      # (L, L) global covariance
    Cs: np.ndarray     # (L, L) one class's covariance
    a: np.ndarray      # (L,) signed second-layer weights
    U: np.ndarray      # (K, L)
    b: np.ndarray      # (K,)
    S3: np.ndarray     # (K, L)
    S4: np.ndarray     # (K, K) eta^2 bracket, upper triangle used
    r: np.ndarray      # (L,) scratch of the I4 sum
    Cw: np.ndarray     # (L, L) scratch of the PSD check


def make_params(K, M, T, v_star, eta, eta_v, sigma=0.0, act=ERF, train_v=True, sgd=True,
                fast=True, patterns=None, f=None, T_cls=None, track_P=False,
                R0_cls=None, threads=False, weight_decay=0.0) -> Params:
    """Build a :class:`Params` record; without ``patterns`` the network is dense (one class).
    ``weight_decay`` ``gamma``: the first-layer decay ``-eta gamma w`` (``docs/theory.md`` §11),
    stored as ``decay = eta gamma``. ``act`` (an integer code) is stored as an
    :class:`~odeprune.activations.ActivationCode`, so that the kernels compiled for this record
    hold the code of that activation only (``ValueError`` for an unregistered code)."""
    K, M = int(K), int(M)
    T = np.ascontiguousarray(T, dtype=float)
    if patterns is None:
        patterns = np.ones((1, K), dtype=bool)
        f = np.ones(1)
        T_cls = T[None].copy()
    patterns = np.asarray(patterns, dtype=bool)
    n_cls = patterns.shape[0]
    units = np.zeros((n_cls, K), dtype=np.int64)
    nk = patterns.sum(1).astype(np.int64)
    for s in range(n_cls):
        units[s, :nk[s]] = np.flatnonzero(patterns[s])
    sizes = nk * (nk + 1) // 2 + nk * M + (nk * nk if track_P else 0)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if R0_cls is None:
        R0_cls = np.zeros((n_cls, K, M))
    return Params(K, M, n_cls, float(eta), float(eta_v), float(sigma), _act.activation_code(act),
                  bool(train_v),
                  bool(sgd), bool(fast), bool(track_P), bool(threads), T,
                  np.ascontiguousarray(v_star, float),
                  np.ascontiguousarray(T_cls, float), units, nk, off,
                  np.ascontiguousarray(f, float), np.ascontiguousarray(R0_cls, float),
                  float(eta) * float(weight_decay))


@njit(cache=True)
def make_work(K, M):
    L = K + M
    return Work(np.zeros((L, L)), np.zeros((L, L)), np.zeros(L), np.zeros((K, L)), np.zeros(K),
                np.zeros((K, L)), np.zeros((K, K)), np.zeros(L), np.zeros((L, L)))


def n_state(K, M, n_cls=1, track_P=False):
    """Length of the state vector of ``n_cls`` classes with every unit kept (a dense network:
    one class)."""
    return n_cls * (K * (K + 1) // 2 + K * M + (K * K if track_P else 0)) + K


def state_layout(patterns, M, track_P):
    """Where each stored entry sits in the state vector: rows ``(class, i, k or n, position)``
    for the upper triangle of ``Q^s`` over kept units, the rows of ``R^s`` of kept units and
    ``P^s`` over kept x kept; and the position of ``v``."""
    patterns = np.asarray(patterns, dtype=bool)
    S, K = patterns.shape
    Q_idx, R_idx, P_idx = [], [], []
    pos = 0
    for s in range(S):
        u = np.flatnonzero(patterns[s])
        k = len(u)
        a, b = np.triu_indices(k)
        Q_idx.append(np.stack([np.full(len(a), s), u[a], u[b], pos + np.arange(len(a))]))
        pos += len(a)
        ra, rn = np.divmod(np.arange(k * M), M)
        R_idx.append(np.stack([np.full(k * M, s), u[ra], rn, pos + np.arange(k * M)]))
        pos += k * M
        if track_P:
            pa, pb = np.divmod(np.arange(k * k), max(k, 1))
            P_idx.append(np.stack([np.full(k * k, s), u[pa], u[pb], pos + np.arange(k * k)]))
            pos += k * k

    def cat(parts):
        return np.concatenate(parts, axis=1).astype(np.int64)

    return cat(Q_idx), cat(R_idx), (cat(P_idx) if track_P else None), pos


# ------------------------------------------------------------------------------ packing
def pack(Q, R, v):
    """Pack a dense (one-class) state; the inverse of :func:`unpack`."""
    K = np.asarray(Q).shape[0]
    iu = np.triu_indices(K)
    return np.concatenate([np.asarray(Q)[iu], np.asarray(R).ravel(), np.asarray(v)])


def unpack(y, K, M):
    """Unpack dense state vector(s) ``y`` (..., n_state) into ``Q (..., K, K)``, ``R``, ``v``."""
    Q, R, _, v = unpack_classes(y, M, np.ones((1, K), dtype=bool), False)
    return Q[..., 0, :, :], R[..., 0, :, :], v


def pack_classes(patterns, Q_cls, R_cls, v, P_cls=None):
    """Pack per-class ``Q (S, K, K)``, ``R (S, K, M)``, optional ``P (S, K, K)`` and ``v``
    (only the entries of kept units are stored)."""
    Q_cls, R_cls = np.asarray(Q_cls, float), np.asarray(R_cls, float)
    qi, ri, pi, nv = state_layout(patterns, R_cls.shape[2], P_cls is not None)
    y = np.empty(nv + len(v))
    y[qi[3]] = Q_cls[qi[0], qi[1], qi[2]]
    y[ri[3]] = R_cls[ri[0], ri[1], ri[2]]
    if P_cls is not None:
        y[pi[3]] = np.asarray(P_cls, float)[pi[0], pi[1], pi[2]]
    y[nv:] = v
    return y


def unpack_classes(y, M, patterns, track_P):
    """Inverse of :func:`pack_classes` for state vector(s) ``y (..., n)``.

    Returns ``Q (..., S, K, K)``, ``R (..., S, K, M)``, ``P (..., S, K, K)`` or None, ``v (..., K)``.
    """
    y = np.asarray(y, dtype=float)
    S, K = np.shape(patterns)
    lead = y.shape[:-1]
    qi, ri, pi, nv = state_layout(patterns, M, track_P)
    Q = np.zeros(lead + (S, K, K))
    Q[..., qi[0], qi[1], qi[2]] = y[..., qi[3]]
    Q[..., qi[0], qi[2], qi[1]] = y[..., qi[3]]
    R = np.zeros(lead + (S, K, M))
    R[..., ri[0], ri[1], ri[2]] = y[..., ri[3]]
    P = None
    if track_P:
        P = np.zeros(lead + (S, K, K))
        P[..., pi[0], pi[1], pi[2]] = y[..., pi[3]]
    return Q, R, P, y[..., nv:].copy()


@njit(cache=True, error_model="numpy", inline="always")
def unpack_cov(y, p, C, a):
    """Fill the global covariance ``C`` (L, L) (class sums) and ``a`` (L,) from the state."""
    K, M = p.K, p.M
    if p.n_cls == 1 and p.nk[0] == K:  # a dense network: the state is Q's triangle, then R
        q = 0
        for i in range(K):
            for k in range(i, K):
                C[i, k] = y[q]
                q += 1
        for i in range(K):
            for n in range(M):
                C[i, K + n] = y[q]
                q += 1
    else:
        _sum_classes(y, p, C)
    for i in range(K):
        for k in range(i + 1, K):
            C[k, i] = C[i, k]
        for n in range(M):
            C[K + n, i] = C[i, K + n]
    q = p.off[p.n_cls]
    for i in range(K):
        a[i] = y[q + i]
    for n in range(M):
        for m in range(M):
            C[K + n, K + m] = p.T[n, m]
        a[K + n] = -p.v_star[n]


@njit(cache=True, error_model="numpy")
def _sum_classes(y, p, C):
    """Upper triangle of ``Q`` and ``R`` in ``C`` as the class sums."""
    K, M = p.K, p.M
    for i in range(K):
        for k in range(K):
            C[i, k] = 0.0
        for n in range(M):
            C[i, K + n] = 0.0
    for s in range(p.n_cls):
        q = p.off[s]
        u = p.units[s]
        nk = p.nk[s]
        for x in range(nk):
            for z in range(x, nk):
                C[u[x], u[z]] += y[q]
                q += 1
        for x in range(nk):
            for n in range(M):
                C[u[x], K + n] += y[q]
                q += 1


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


def _s4_pair(act, fast, C, a, i, k, L, r):  # pragma: no cover - only its overload runs
    """``sum_{c,d} a_c a_d I4(i, k, c, d)`` for the activation ``act`` (compiled code only)."""
    raise NotImplementedError


@overload(_s4_pair, inline="always")
def _ov_s4_pair(act, fast, C, a, i, k, L, r):
    # an ActivationCode picks the kernel when compiling (erf code only for erf, ...); an integer
    # code (a Params record built by hand) picks it at run time
    code = _act.static_code(act)
    if code == ERF:
        def erf(act, fast, C, a, i, k, L, r):
            if fast:
                return _s4_erf(C, a, i, k, L, r)
            return _s4_generic(act, C, a, i, k, L)
        return erf
    if code == RELU:
        def relu(act, fast, C, a, i, k, L, r):
            if fast:
                return _s4_relu(C, a, i, k, L, r)
            return _s4_generic(act, C, a, i, k, L)
        return relu
    if code is not None:
        return lambda act, fast, C, a, i, k, L, r: _s4_generic(act, C, a, i, k, L)
    if isinstance(act, types.Integer):
        def runtime(act, fast, C, a, i, k, L, r):
            if fast and act == ERF:
                return _s4_erf(C, a, i, k, L, r)
            if fast and act == RELU:
                return _s4_relu(C, a, i, k, L, r)
            return _s4_generic(act, C, a, i, k, L)
        return runtime
    return None


def _s4_sums(p, w):
    """``S4[i, k] = sum_{c,d} a_c a_d I4(i,k,c,d) + sigma^2 J2(i,k)`` for ``i <= k``."""
    C, a, S4 = w.C, w.a, w.S4
    K, L = p.K, p.K + p.M
    r = np.empty(L)  # local scratch: LLVM then knows it aliases nothing (measured 6 % faster)
    for i in range(K):
        for k in range(i, K):
            s4 = _s4_pair(p.act, p.fast, C, a, i, k, L, r)
            if p.sigma != 0.0:
                s4 += p.sigma * p.sigma * J2(p.act, C[i, i], C[i, k], C[k, k])
            S4[i, k] = s4


# Two compiled forms of one function: ``s4_sums`` is called (by the Jacobian, the particle
# engine), ``_s4_sums_inline`` is inlined into rhs_into as before. Inlining it into every caller
# made each of them type and compile its own copy (the Jacobian's first compile took 14 s).
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


_THREADED = {code: _threaded_sums(code) for code in CODES}
_threaded_erf, _threaded_linear, _threaded_relu = (_THREADED[ERF], _THREADED[LINEAR],
                                                   _THREADED[RELU])


def _threaded(act, C, a, S4, K, L, sigma, fast):  # pragma: no cover - only its overload runs
    raise NotImplementedError


@overload(_threaded, inline="always")
def _ov_threaded(act, C, a, S4, K, L, sigma, fast):
    code = _act.static_code(act)
    if code is not None:
        kern = _THREADED[code]
        return lambda act, C, a, S4, K, L, sigma, fast: kern(C, a, S4, K, L, sigma, fast)
    if isinstance(act, types.Integer):
        def runtime(act, C, a, S4, K, L, sigma, fast):
            if act == ERF:
                _threaded_erf(C, a, S4, K, L, sigma, fast)
            elif act == LINEAR:
                _threaded_linear(C, a, S4, K, L, sigma, fast)
            elif act == RELU:
                _threaded_relu(C, a, S4, K, L, sigma, fast)
            else:
                raise ValueError("unknown activation code (expected ERF=0, LINEAR=1 or RELU=2)")
        return runtime
    return None


@njit(cache=True, error_model="numpy")
def s4_sums_threaded(p, w):
    """:func:`s4_sums` with the (i <= k) pairs spread over numba's threads; each pair is
    computed by the same code as in the serial form, so the numbers are bit for bit the same."""
    _threaded(p.act, w.C, w.a, w.S4, p.K, p.K + p.M, p.sigma, p.fast)


# ------------------------------------------------------------------------------ right-hand side
@njit(cache=True, error_model="numpy")
def rhs_into(y, dy, p, w):
    """Write ``d y / d alpha`` into ``dy`` (state layout: see the module docstring)."""
    unpack_cov(y, p, w.C, w.a)
    i3_coefficients(p.act, w.C, w.a, p.K, w.U, w.b)
    if p.sgd:
        if p.threads:
            s4_sums_threaded(p, w)
        else:
            _s4_sums_inline(p, w)
    _assemble_inline(y, dy, p, w)


def _assemble(y, dy, p, w):
    """The rest of :func:`rhs_into` once ``w.C``, ``w.a``, ``w.U``, ``w.b`` and (SGD) ``w.S4``
    hold this state's values: the per-class ``S3`` sums and the derivatives."""
    if p.n_cls == 1 and p.nk[0] == p.K and not p.track_P:
        _assemble_dense(dy, p, w)
        return
    K, M = p.K, p.M
    L = K + M
    C, Cs, a, U, bv, S3 = w.C, w.Cs, w.a, w.U, w.b, w.S3
    eta = p.eta
    for s in range(p.n_cls):
        u = p.units[s]
        nk = p.nk[s]
        Ls = nk + M
        q0 = p.off[s]
        # this class's covariance over its own fields (kept units, then teachers): Cs (Ls, Ls);
        # the fields of pruned units have zero covariance with this class's partial fields.
        # One class with every unit kept (a dense network) is the global covariance itself.
        dense = p.n_cls == 1 and nk == K
        if not dense:
            q = q0
            for x in range(nk):
                for z in range(x, nk):
                    Cs[x, z] = y[q]
                    Cs[z, x] = y[q]
                    q += 1
            for x in range(nk):
                for n in range(M):
                    Cs[x, nk + n] = y[q]
                    Cs[nk + n, x] = y[q]
                    q += 1
            for n in range(M):
                for m in range(M):
                    Cs[nk + n, nk + m] = p.T_cls[s, n, m]
        # S3[x, col] = sum_c U[u_x, c] Cov(z_c, partial field col) + b[u_x] Cov(z_{u_x}, col)
        if dense:  # no index indirection: vectorisable
            s3_from(U, bv, C, K, L, S3)
        elif nk == K:
            s3_from(U, bv, Cs, K, L, S3)
        else:
            for x in range(nk):
                i = u[x]
                for col in range(Ls):
                    t = 0.0
                    for z in range(nk):
                        t += U[i, u[z]] * Cs[z, col]
                    for n in range(M):
                        t += U[i, K + n] * Cs[nk + n, col]
                    S3[x, col] = t + bv[i] * Cs[x, col]
        fs = p.f[s]
        q = q0
        for x in range(nk):
            i = u[x]
            for z in range(x, nk):
                k = u[z]
                d = -eta * a[i] * S3[x, z] - eta * a[k] * S3[z, x] - 2.0 * p.decay * y[q]
                if p.sgd:
                    d += eta * eta * fs * a[i] * a[k] * w.S4[i, k]
                dy[q] = d
                q += 1
        for x in range(nk):
            for n in range(M):
                dy[q] = -eta * a[u[x]] * S3[x, nk + n] - p.decay * y[q]
                q += 1
        if p.track_P:
            # Cov(z_c, lambda0^s_k) = P^s_ck (c a student), R0^s_kn (c = teacher n)
            for x in range(nk):
                i = u[x]
                for z in range(nk):
                    k = u[z]
                    t = 0.0
                    for c in range(nk):
                        t += U[i, u[c]] * y[q + c * nk + z]
                    for n in range(M):
                        t += U[i, K + n] * p.R0_cls[s, k, n]
                    t += bv[i] * y[q + x * nk + z]
                    dy[q + x * nk + z] = -eta * a[i] * t - p.decay * y[q + x * nk + z]
    dv_into(dy, p.off[p.n_cls], p, C, a)


#: called (the Jacobian) and inlined (rhs_into) forms, as for s4_sums
assemble = njit(cache=True, error_model="numpy")(_assemble)
_assemble_inline = njit(cache=True, error_model="numpy", inline="always")(_assemble)


@njit(cache=True, error_model="numpy", inline="always")
def dv_into(dy, q, p, C, a):
    """``dv_i = -eta_v sum_c a_c I2(i, c)`` into ``dy[q:q + K]`` (zero with a frozen ``v``)."""
    L = p.K + p.M
    for i in range(p.K):
        if p.train_v:
            acc = 0.0
            for c in range(L):
                acc += a[c] * I2(p.act, C[i, i], C[i, c], C[c, c])
            dy[q + i] = -p.eta_v * acc
        else:
            dy[q + i] = 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _assemble_dense(dy, p, w):
    """:func:`assemble` for one class with every unit kept (a dense network) and no ``P``: the
    same sums without the class bookkeeping (measured 10 % of a K=6 evaluation; the tests
    check it against the split-class form)."""
    K, M = p.K, p.M
    L = K + M
    C, a, S3, S4 = w.C, w.a, w.S3, w.S4
    s3_from(w.U, w.b, C, K, L, S3)
    eta, eta2 = p.eta, p.eta * p.eta
    q = 0
    for i in range(K):
        for k in range(i, K):
            d = -eta * a[i] * S3[i, k] - eta * a[k] * S3[k, i] - 2.0 * p.decay * C[i, k]
            if p.sgd:
                d += eta2 * a[i] * a[k] * S4[i, k]
            dy[q] = d
            q += 1
    for i in range(K):
        for n in range(M):
            dy[q] = -eta * a[i] * S3[i, K + n] - p.decay * C[i, K + n]
            q += 1
    dv_into(dy, q, p, C, a)


def rhs_eval(y, p):
    """Allocating form of :func:`rhs_into`, called from Python (tests, benchmarks, a first
    derivative): not compiled itself, so that it does not compile (and optimise) a second copy
    of :func:`rhs_into` on a first run."""
    y = np.ascontiguousarray(y, dtype=float)
    dy = np.empty_like(y)
    rhs_into(y, dy, p, make_work(p.K, p.M))
    return dy


def rhs(y, K, M, T, v_star, eta, eta_v, sigma=0.0, *, act=ERF, train_v=True, sgd=True,
        fast=True):
    """Dense right-hand side with plain arguments (a convenience for tests and benchmarks; the
    switches are keyword-only, so that they cannot be swapped silently)."""
    p = make_params(K, M, T, v_star, eta, eta_v, sigma, act, train_v, sgd, fast)
    return rhs_eval(np.ascontiguousarray(y, dtype=float), p)
