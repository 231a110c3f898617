r"""The Jacobian of the order-parameter ODEs: the erf ``I4`` bracket exactly, the rest by finite
differences that recompute only what changes.

The implicit phase of ``method="auto"`` (:mod:`odeprune.ode.stiff`) needs ``d f / d y``. A plain
forward-difference Jacobian costs ``n`` full evaluations (``n = 330`` at K=20, M=5), and the
global ``I4`` sum dominates each of them: ``K(K+1)/2 * L(L+1)/2`` terms, ``L = K + M``. But one
state entry enters few of those terms (``docs/theory.md`` §4):

- an overlap entry ``C_ab`` (``Q_ab`` or ``R_an``; per class, the class's entry moves the
  global sum by the same increment) enters ``I4(i, k, c, d)`` only when ``{a, b}`` is a subset
  of ``{i, k, c, d}``: all terms of the pair ``(a, b)``, ``L`` terms of a pair that holds one of
  them, one term of every other pair;
- a second-layer weight ``v_e`` enters only the weights ``a_c a_d`` of the terms with ``e`` in
  ``{c, d}``: ``L`` terms per pair;
- a two-time overlap ``P`` entry enters no ``I4`` term at all.

So column ``j`` is ``(f(y + h e_j) - f(y)) / h`` exactly as in
:func:`odeprune.ode.stiff.fd_jacobian` (same increment), with the ``I4`` sum of ``y + h e_j`` formed
as the sum at ``y`` plus the change of the affected terms (both sides of the change evaluated by
the same closed form, so nothing but the affected terms differs); the cheap parts (the ``I3``
coefficients, the per-class ``S3`` sums, ``I2``, ``J2``) are recomputed in full. At K=20, M=5
this is about a sixth of the plain Jacobian's work (``benchmarks/bench_speed.py``); the tests
compare it with :func:`~odeprune.ode.stiff.fd_jacobian` and with central differences.

For erf (the default) the ``I4`` bracket is not differenced at all: :func:`erf_s4_gradient`
gives its exact gradient in every covariance entry and weight (one arcsine and one square root
per term, about 8 evaluations' worth at K=20, M=5), and each column adds ``h`` times its entry's
derivative; what is left per column is the cheap part. At K=20, M=5 the Jacobian costs 5.9 ms
against 12.5 ms for the difference of the moved terms (measured on a loaded 2-core machine).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .. import activations as _act
from ..activations import CODES, ERF, I4, J2
from ..activations._core import _2_PI, _4_PI2  # (the constants, defined once)
from .rhs import (
    assemble,
    erf_pair_setup,
    i3_coefficients,
    rhs_into,
    s4_sums,
    state_layout,
    unpack_cov,
)
from .stiff import fd_increment

__all__ = ["column_entries", "jacobian_into", "jacobian_exact", "fd_jacobian_into",
           "FD_JACOBIAN_MAX_N"]


class ErfBase(NamedTuple):
    """erf: what the unperturbed state's rows need, computed once per Jacobian: per pair
    ``(i, k)``, ``r0[i, k]`` and ``lam4[i, k]`` (:func:`odeprune.ode.rhs.erf_pair_setup`), the
    rows ``row0[i, k, e] = sum_x w_ex a_e a_x I4(i, k, e, x)`` (``w = 2`` off the diagonal)
    and the pair sums ``pair0[i, k]``."""

    r0: np.ndarray
    lam4: np.ndarray
    row0: np.ndarray
    pair0: np.ndarray


@njit(cache=True, error_model="numpy")
def _erf_base(C, a, K, L):
    r0, lam4 = np.zeros((K, K, L)), np.zeros((K, K))
    row0, pair0 = np.zeros((K, K, L)), np.zeros((K, K))
    for i in range(K):
        for k in range(i, K):
            lam4[i, k] = erf_pair_setup(C, i, k, L, r0[i, k])
            s = 0.0
            for e in range(L):
                row0[i, k, e] = _erf_row(C, a, i, k, e, r0[i, k], lam4[i, k], 2.0)
                s += _erf_row(C, a, i, k, e, r0[i, k], lam4[i, k], 1.0)
            pair0[i, k] = s
    return ErfBase(r0, lam4, row0, pair0)


#: :func:`odeprune.ode.stiff.fd_increment` compiled (inlined: no function of its own to compile)
_fd_increment = njit(cache=True, error_model="numpy", inline="always")(fd_increment)
_P_ENTRY = -1  # a column that moves no overlap of the fields (a two-time overlap P)
_V_ENTRY = -2  # a column that moves a second-layer weight


def column_entries(patterns, K: int, M: int, track_P: bool) -> np.ndarray:
    """``(n, 2)`` int64: for state entry ``j`` the global covariance entry ``(a, b)``, ``a <= b``
    (``b >= K``: a teacher field) it moves; ``(-1, -1)`` for a ``P`` entry; ``(-2, e)`` for
    ``v_e``."""
    qi, ri, pi, nv = state_layout(patterns, M, track_P)
    out = np.full((nv + K, 2), _P_ENTRY, dtype=np.int64)
    out[qi[3], 0] = np.minimum(qi[1], qi[2])
    out[qi[3], 1] = np.maximum(qi[1], qi[2])
    out[ri[3], 0] = ri[1]
    out[ri[3], 1] = K + ri[2]
    out[nv:, 0] = _V_ENTRY
    out[nv:, 1] = np.arange(K)
    return out


@njit(cache=True, error_model="numpy")
def _i4(act, C, i, k, c, d):
    return I4(act, C[i, i], C[i, k], C[i, c], C[i, d], C[k, k], C[k, c], C[k, d], C[c, c],
              C[c, d], C[d, d])


@njit(cache=True, error_model="numpy")
def _term_change(act, C0, C1, a0, a1, ikcd, moves_cov):
    """Change of ``w_cd a_c a_d I4(i, k, c, d)`` (``w_cd = 2`` off the diagonal) from (C0, a0)
    to (C1, a1); ``ikcd = (i, k, c, d)``, ``c <= d``."""
    i, k, c, d = ikcd
    wt = 1.0 if c == d else 2.0
    if moves_cov:
        return wt * a0[c] * a0[d] * (_i4(act, C1, i, k, c, d) - _i4(act, C0, i, k, c, d))
    return wt * (a1[c] * a1[d] - a0[c] * a0[d]) * _i4(act, C0, i, k, c, d)


@njit(cache=True, error_model="numpy")
def _erf_row(C, a, i, k, e, r, lam4, w_off):
    """``sum_x w_ex a_e a_x I4(i, k, e, x)`` for erf, ``w_ee = 1``, ``w_ex = w_off`` otherwise
    (``r``, ``lam4`` from :func:`odeprune.ode.rhs.erf_pair_setup`)."""
    ci = C[i]
    ck = C[k]
    cik = ci[k]
    re = r[e]
    u1 = lam4 * re
    u2 = (ck[e] * (1.0 + ci[i]) - cik * ci[e]) * re
    u3 = (ci[e] * (1.0 + ck[k]) - cik * ck[e]) * re
    s = 0.0
    for x in range(C.shape[0]):
        t = a[x] * math.asin((u1 * C[e, x] - u2 * ck[x] - u3 * ci[x]) * r[x])
        s += t if x == e else w_off * t
    return _4_PI2 / math.sqrt(lam4) * a[e] * s


@njit(cache=True, error_model="numpy")
def _row_erf(C, a, i, k, e, L, r):
    """``sum_x w_ex a_e a_x I4(i, k, e, x)`` for erf (``w = 2`` off the diagonal)."""
    lam4 = erf_pair_setup(C, i, k, L, r)
    return _erf_row(C, a, i, k, e, r, lam4, 2.0)


@njit(cache=True, error_model="numpy")
def _pair_erf(C, a, i, k, L, r):
    """The pair's whole sum ``sum_{c,d} a_c a_d I4(i, k, c, d)`` for erf with ``math.asin``."""
    lam4 = erf_pair_setup(C, i, k, L, r)
    s = 0.0
    for e in range(L):
        s += _erf_row(C, a, i, k, e, r, lam4, 1.0)
    return s


@njit(cache=True, error_model="numpy")
def _s4_change(p, C0, C1, a0, a1, entry, S4, base):
    """Add to ``S4`` (upper triangle, the sum at (C0, a0)) the change of the terms that move when
    the covariance entry ``entry = (ea, eb)`` (``ea >= 0``) or the weight ``a_eb``
    (``ea == -2``) does; ``base``: the unperturbed rows (:class:`ErfBase`, erf only)."""
    ea, eb = entry
    K, L, act = p.K, p.K + p.M, p.act
    erf = act == ERF
    r = np.empty(L)
    moves_cov = ea >= 0
    for i in range(K):
        for k in range(i, K):
            if moves_cov:
                # the indices of {ea, eb} not already among {i, k}
                n_need = 0
                e1 = -1
                e2 = -1
                if ea != i and ea != k:
                    n_need += 1
                    e1 = ea
                if eb != ea and eb != i and eb != k:
                    n_need += 1
                    if e1 < 0:
                        e1 = eb
                    else:
                        e2 = eb
            else:
                n_need = 1
                e1 = eb
                e2 = -1
            d4 = 0.0
            if n_need == 0:  # every term of the pair moves
                if erf:
                    d4 = _pair_erf(C1, a0, i, k, L, r) - base.pair0[i, k]
                else:
                    for c in range(L):
                        for d in range(c, L):
                            d4 += _term_change(act, C0, C1, a0, a1, (i, k, c, d), moves_cov)
            elif n_need == 1:  # the terms with e1 among (c, d)
                if erf:
                    if moves_cov:
                        d4 = _row_erf(C1, a0, i, k, e1, L, r) - base.row0[i, k, e1]
                    else:  # the same fields: the unperturbed r and Lambda_4
                        d4 = (_erf_row(C0, a1, i, k, e1, base.r0[i, k], base.lam4[i, k], 2.0)
                              - base.row0[i, k, e1])
                else:
                    for x in range(L):
                        c, d = min(e1, x), max(e1, x)
                        d4 += _term_change(act, C0, C1, a0, a1, (i, k, c, d), moves_cov)
            else:  # the one term (e1, e2)
                d4 += _term_change(act, C0, C1, a0, a1, (i, k, min(e1, e2), max(e1, e2)),
                                   moves_cov)
            if moves_cov and p.sigma != 0.0:
                d4 += p.sigma * p.sigma * (J2(act, C1[i, i], C1[i, k], C1[k, k])
                                           - J2(act, C0[i, i], C0[i, k], C0[k, k]))
            S4[i, k] += d4


@njit(cache=True, error_model="numpy")
def erf_s4_gradient(C, a, K, L, sigma):
    r"""The exact gradient of the erf ``I4`` bracket ``S4[i, k] = sum_{c,d} a_c a_d I4(i,k,c,d) +
    sigma^2 J2(i,k)`` (:func:`odeprune.ode.rhs.s4_sums`), for every pair ``i <= k`` (row-major
    pair index ``q``): ``G[q, x, y]`` (``x <= y``) its derivative in the covariance entry
    ``C_xy = C_yx`` (both move), ``Ga[q, e]`` its derivative in the weight ``a_e``.

    With :math:`I_4 = \kappa \Lambda_4^{-1/2} \arcsin z`, :math:`z = \Lambda_0
    (\Lambda_1(c)\Lambda_1(d))^{-1/2}` (``docs/theory.md`` §3): :math:`\partial I_4 = \kappa
    [-\tfrac12 \Lambda_4^{-3/2} \arcsin z\, \partial\Lambda_4 + \Lambda_4^{-1/2}
    (1 - z^2)^{-1/2} \partial z]`, :math:`\partial z = r_c r_d \partial\Lambda_0 -
    \tfrac z2 (\partial\Lambda_1(c)/\Lambda_1(c) + \partial\Lambda_1(d)/\Lambda_1(d))`, the
    partials of the polynomials ``Lambda`` in each of the ten entries a term reads, summed over
    the entries that coincide (``c = i`` etc.). One arcsine and one square root per term: about
    three evaluations of the sum (``tests/test_jacobian.py`` checks it against central
    differences)."""
    n_pairs = K * (K + 1) // 2
    G = np.zeros((n_pairs, L, L))
    Ga = np.zeros((n_pairs, L))
    l1 = np.empty(L)
    r = np.empty(L)
    l1_ii, l1_kk, l1_ik = np.empty(L), np.empty(L), np.empty(L)
    l1_kc, l1_ic = np.empty(L), np.empty(L)
    g = np.zeros((L, L))
    q = 0
    for i in range(K):
        for k in range(i, K):
            ci, ck = C[i], C[k]
            cii1, ckk1, cik = 1.0 + ci[i], 1.0 + ck[k], ci[k]
            lam4 = cii1 * ckk1 - cik * cik
            inv_s4 = 1.0 / math.sqrt(lam4)
            for c in range(L):
                cc1 = 1.0 + C[c, c]
                l1[c] = lam4 * cc1 - ck[c] * ck[c] * cii1 - ci[c] * ci[c] * ckk1 \
                    + 2.0 * cik * ci[c] * ck[c]
                r[c] = 1.0 / math.sqrt(l1[c])
                l1_ii[c] = ckk1 * cc1 - ck[c] * ck[c]
                l1_kk[c] = cii1 * cc1 - ci[c] * ci[c]
                l1_ik[c] = -2.0 * cik * cc1 + 2.0 * ci[c] * ck[c]
                l1_kc[c] = -2.0 * ck[c] * cii1 + 2.0 * cik * ci[c]
                l1_ic[c] = -2.0 * ci[c] * ckk1 + 2.0 * cik * ck[c]
            g[:, :] = 0.0
            s_ii = s_kk = s_ik = 0.0
            for c in range(L):
                cic, ckc, rc = ci[c], ck[c], r[c]
                for d in range(c, L):
                    cid, ckd, ccd, rd = ci[d], ck[d], C[c, d], r[d]
                    rr = rc * rd
                    lam0 = (lam4 * ccd - ckc * ckd * cii1 - cic * cid * ckk1
                            + cik * (cic * ckd + ckc * cid))
                    z = lam0 * rr
                    if z > 1.0:
                        z = 1.0
                    elif z < -1.0:
                        z = -1.0
                    asz = math.asin(z)
                    val = _4_PI2 * inv_s4 * asz  # I4(i, k, c, d)
                    if c == d:
                        Ga[q, c] += 2.0 * a[c] * val
                        wt = a[c] * a[c] * _4_PI2
                    else:
                        Ga[q, c] += 2.0 * a[d] * val
                        Ga[q, d] += 2.0 * a[c] * val
                        wt = 2.0 * a[c] * a[d] * _4_PI2
                    if wt == 0.0:
                        continue
                    P = -0.5 * inv_s4 / lam4 * asz * wt
                    B = inv_s4 / math.sqrt(max(1.0 - z * z, 1e-300)) * wt
                    zc = 0.5 * z / l1[c]
                    zd = 0.5 * z / l1[d]
                    s_ii += P * ckk1 + B * (rr * (ckk1 * ccd - ckc * ckd)
                                            - zc * l1_ii[c] - zd * l1_ii[d])
                    s_kk += P * cii1 + B * (rr * (cii1 * ccd - cic * cid)
                                            - zc * l1_kk[c] - zd * l1_kk[d])
                    s_ik += -2.0 * cik * P + B * (rr * (-2.0 * cik * ccd + cic * ckd + ckc * cid)
                                                  - zc * l1_ik[c] - zd * l1_ik[d])
                    g[c, d] += B * rr * lam4
                    g[c, c] -= B * zc * lam4
                    g[d, d] -= B * zd * lam4
                    g[k, c] += B * (rr * (cik * cid - ckd * cii1) - zc * l1_kc[c])
                    g[k, d] += B * (rr * (cik * cic - ckc * cii1) - zd * l1_kc[d])
                    g[i, c] += B * (rr * (cik * ckd - cid * ckk1) - zc * l1_ic[c])
                    g[i, d] += B * (rr * (cik * ckc - cic * ckk1) - zd * l1_ic[d])
            if sigma != 0.0:  # sigma^2 J2, J2 = (2/pi) D^(-1/2)
                D = cii1 * ckk1 - cik * cik
                dj = -0.5 * sigma * sigma * _2_PI / (D * math.sqrt(D))
                s_ii += dj * ckk1
                s_kk += dj * cii1
                s_ik += dj * (-2.0 * cik)
            g[i, i] += s_ii
            g[k, k] += s_kk
            g[i, k] += s_ik
            for x in range(L):
                G[q, x, x] = g[x, x]
                for y in range(x + 1, L):
                    G[q, x, y] = g[x, y] + g[y, x]
            q += 1
    return G, Ga


@njit(cache=True, error_model="numpy")
def _s4_step(ea, eb, h, G, Ga, K, S4):
    """``S4 += h dS4/dy_j`` for the column moving covariance entry ``(ea, eb)`` or (``ea = -2``)
    the weight ``a_eb``; nothing for a ``P`` entry."""
    if ea == _P_ENTRY:
        return
    q = 0
    for i in range(K):
        for k in range(i, K):
            S4[i, k] += h * (Ga[q, eb] if ea == _V_ENTRY else G[q, ea, eb])
            q += 1


def _i4_parts(code, exact):
    # The I4 bracket's part of the Jacobian for one activation: ``setup(p, C, a, K, L) -> (G,
    # Ga, base)`` once per Jacobian and ``column(p, w, w1, entry, h, G, Ga, base)`` per column
    # (adds the column's change to ``w1.S4``; only called when ``p.sgd``). erf with ``exact``:
    # the exact gradient (:func:`erf_s4_gradient`) times ``h``; otherwise the difference of the
    # moved terms (:func:`_s4_change`, with erf's unperturbed rows). A compile-time choice (the
    # code and ``exact`` are constants here, picked by the activation's type): a default erf
    # Jacobian compiles no difference code (a run-time test compiled both)
    if exact and code == ERF:
        def setup(p, C, a, K, L):
            if p.sgd:
                G, Ga = erf_s4_gradient(C, a, K, L, p.sigma)
            else:
                G, Ga = np.zeros((0, 0, 0)), np.zeros((0, 0))
            return G, Ga, _erf_base(C, a, 0, 0)

        def column(p, w, w1, entry, h, G, Ga, base):
            _s4_step(entry[0], entry[1], h, G, Ga, p.K, w1.S4)
    else:
        def setup(p, C, a, K, L):
            # the erf rows of the unperturbed state; other activations use none (empty)
            base = _erf_base(C, a, K, L) if code == ERF else _erf_base(C, a, 0, 0)
            return np.zeros((0, 0, 0)), np.zeros((0, 0)), base

        def column(p, w, w1, entry, h, G, Ga, base):
            if entry[0] != _P_ENTRY:
                _s4_change(p, w.C, w1.C, w.a, w1.a, entry, w1.S4, base)
    jit = njit(cache=True, error_model="numpy", inline="always")
    return jit(setup), jit(column)


#: ``exact`` -> the I4 parts' dispatchers ``(setup(act, ...), column(act, ...))``, the kernel
#: picked by the activation (activations' one dispatch)
_I4_PARTS = {}
for _exact in (True, False):
    _parts = {code: _i4_parts(code, _exact) for code in CODES}
    _I4_PARTS[_exact] = (_act._dispatcher({c: f[0] for c, f in _parts.items()}, 5),
                         _act._dispatcher({c: f[1] for c, f in _parts.items()}, 8))


def _jacobian_kernel(exact):
    setup, column = _I4_PARTS[exact]

    def jacobian(y, p, w, w1, cols, J):
        n = y.shape[0]
        K = p.K
        unpack_cov(y, p, w.C, w.a)
        i3_coefficients(p.act, w.C, w.a, K, w.U, w.b)
        if p.sgd:
            s4_sums(p, w)
        L = K + p.M
        G, Ga, base = setup(p.act, p, w.C, w.a, K, L)
        f0 = np.empty(n)
        assemble(y, f0, p, w)
        yp = y.copy()
        dyp = np.empty(n)
        for j in range(n):
            yj = y[j]
            yp[j], h = _fd_increment(yj)
            unpack_cov(yp, p, w1.C, w1.a)
            i3_coefficients(p.act, w1.C, w1.a, K, w1.U, w1.b)
            if p.sgd:
                for i in range(K):
                    for k in range(i, K):
                        w1.S4[i, k] = w.S4[i, k]
                column(p.act, p, w, w1, (cols[j, 0], cols[j, 1]), h, G, Ga, base)
            assemble(yp, dyp, p, w1)
            for i in range(n):
                J[i, j] = (dyp[i] - f0[i]) / h
            yp[j] = yj
        return f0
    return njit(cache=True, error_model="numpy")(jacobian)


#: the compiled Jacobians: the exact erf I4 gradient (the default), differences of moved terms
_JACOBIANS = {True: _jacobian_kernel(True), False: _jacobian_kernel(False)}


def jacobian_into(y, p, w, w1, cols, J, exact_i4=True):
    """Fill ``J`` (n, n) with the Jacobian of :func:`odeprune.ode.rhs.rhs_into` at ``y``;
    ``w``, ``w1``: two workspaces (:func:`~odeprune.ode.rhs.make_work`); ``cols``: from
    :func:`column_entries`. Returns ``f(y)`` as this function evaluated it.

    Each column is a forward difference of the cheap parts (the ``I3`` coefficients, ``S3``,
    ``I2``) with the increment of :func:`odeprune.ode.stiff.fd_jacobian`. The ``I4`` bracket
    enters it with its exact derivative for erf (``exact_i4``: :func:`erf_s4_gradient`, computed
    once per Jacobian), otherwise as the forward difference of the terms the column moves.
    Compiled code calls :data:`jacobian_exact` (``exact_i4=True``)."""
    return _JACOBIANS[bool(exact_i4)](y, p, w, w1, cols, J)


#: :func:`jacobian_into` with ``exact_i4=True``, compiled (for the compiled BDF stepper)
jacobian_exact = _JACOBIANS[True]


#: the compiled BDF of ``"auto"``/``"bdf"`` (:mod:`odeprune.ode.bdf`) differences the whole
#: right-hand side (:func:`fd_jacobian_into`) for a state of at most this many entries, and uses
#: :func:`jacobian_exact` above it. A Jacobian is rare in BDF (11 in the default M=2/K=6 curve to
#: alpha=1000): at n=39 the plain differences cost that curve 1.4 ms more (12.9 against 11.5
#: ms, 12 %; 24-27 % at n=60), while compiling the structured Jacobian costs a first run about
#: 7 s of CPU (docs/speed.md)
FD_JACOBIAN_MAX_N = 48


@njit(cache=True, error_model="numpy", inline="always")
def fd_jacobian_into(y, p, w, J):
    """Fill ``J`` (n, n) with the plain forward-difference Jacobian of
    :func:`odeprune.ode.rhs.rhs_into` at ``y`` (``w``: a workspace), as
    :func:`odeprune.ode.stiff.fd_jacobian` forms it (the same increment and arithmetic):
    ``n + 1`` evaluations. Returns ``f(y)``. Inlined into its caller (the BDF stepper): a
    compiled function of its own re-optimised its copy of the right-hand side (1.5 s of a first
    run's compile)."""
    n = y.shape[0]
    f0 = np.empty(n)
    rhs_into(y, f0, p, w)
    yp = y.copy()
    fp = np.empty(n)
    for j in range(n):
        h = moved_rhs(y, yp, j, fp, p, w)
        for i in range(n):
            J[i, j] = (fp[i] - f0[i]) / h
    return f0


@njit(cache=True, error_model="numpy", inline="always")
def moved_rhs(y, yp, j, fp, p, w):
    """The right-hand side at ``y`` with entry ``j`` moved by its forward-difference step
    (:func:`odeprune.ode.stiff.fd_increment`) into ``fp``; returns the step. ``yp``: a copy of
    ``y``, as it was again on return."""
    yj = y[j]
    yp[j], h = _fd_increment(yj)
    rhs_into(yp, fp, p, w)
    yp[j] = yj
    return h
