r"""The Gaussian averages of ReLU, ``g(x) = max(0, x)``, ``g'(x) = theta(x)`` (``theta(0) = 0``):
closed forms for ``I2, I3, J2`` (docs/theory.md §3b) and the four-point average ``I4`` by the
reduction of :func:`relu_I4` (``docs/relu.md``; the path integral of four distinct fields is in
``relu_m4``), and the whole ``I4`` bracket :func:`relu_s4_sums`. Part of
:mod:`odeprune.activations`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._core import _1_2PI, _HALF_PI, _clip1
from .relu_m4 import _relu_m4, _relu_m4_all

# ---------------------------------------------------------------------------------------------
# ReLU g(x) = max(0, x), g'(x) = theta(x) (theta(0) = 0: a field that is identically zero is dead)
# ---------------------------------------------------------------------------------------------



@njit(cache=True, error_model="numpy")
def _corr(cab, caa, cbb):
    # correlation, clipped to [-1, 1] (caa, cbb > 0); exactly 1 for a field with itself, since
    # sqrt(x*x) == |x| in IEEE arithmetic (sqrt(x)*sqrt(x) is not always x)
    return _clip1(cab / math.sqrt(caa * cbb))


@njit(cache=True, error_model="numpy")
def _orthant2(r):
    r""":math:`P(X_1>0, X_2>0) = \frac14 + \frac{\arcsin\rho}{2\pi}` (Sheppard)."""
    return 0.25 + _1_2PI * math.asin(_clip1(r))


@njit(cache=True, error_model="numpy")
def relu_I2(caa, cab, cbb):
    r""":math:`I_2 = \frac{1}{2\pi}\big[\sqrt{C_{aa}C_{bb}-C_{ab}^2}
    + C_{ab}(\frac{\pi}{2} + \arcsin\rho_{ab})\big]` (docs/theory.md §3b; Cho & Saul 2009)."""
    if caa <= 0.0 or cbb <= 0.0:
        return 0.0
    rho = _corr(cab, caa, cbb)
    root = math.sqrt(caa * cbb)  # == caa on the diagonal (sqrt(x*x) == |x| in IEEE arithmetic)
    det = max((root - cab) * (root + cab), 0.0)
    return _1_2PI * (math.sqrt(det) + cab * (_HALF_PI + math.asin(rho)))


@njit(cache=True, error_model="numpy")
def relu_I3(caa, cab, cac, cbc, ccc):
    r""":math:`I_3 = \frac{C_{ab}\sqrt{C_{aa}C_{cc}-C_{ac}^2}}{2\pi C_{aa}}
    + C_{bc}\big(\frac14 + \frac{\arcsin\rho_{ac}}{2\pi}\big)` (docs/theory.md §3b; by Stein's lemma).

    Linear in ``(cab, cbc)`` for fixed ``(caa, cac, ccc)``, as for every activation.
    """
    if caa <= 0.0 or ccc <= 0.0:
        return 0.0
    rho = _corr(cac, caa, ccc)
    root = math.sqrt(caa * ccc)
    return (cab * math.sqrt(max((root - cac) * (root + cac), 0.0)) / caa * _1_2PI
            + cbc * (0.25 + _1_2PI * math.asin(rho)))


@njit(cache=True, error_model="numpy")
def relu_J2(caa, cab, cbb):
    r""":math:`J_2 = P(a>0, b>0) = \frac14 + \frac{\arcsin\rho_{ab}}{2\pi}` (docs/theory.md §3b)."""
    if caa <= 0.0 or cbb <= 0.0:
        return 0.0
    return _orthant2(_corr(cab, caa, cbb))


@njit(cache=True, error_model="numpy")
def _relu_m3(R, p, q):
    r""":math:`E[Y_p Y_q 1\{Y>0\}]` for ``Y ~ N(0, R)``, ``R`` (3, 3) a correlation matrix.

    Stein's lemma twice (Tallis 1961):
    :math:`R_{pq} P_3 + \sum_k R_{pk}\sum_{l\ne k}\frac{R_{ql}-R_{kl}R_{qk}}{2\pi\sqrt{1-R_{kl}^2}}
    \cdot\frac12`, with the trivariate orthant probability
    :math:`P_3 = \frac18 + \frac{1}{4\pi}(\arcsin R_{01} + \arcsin R_{02} + \arcsin R_{12})`.
    Requires ``|R_kl| < 1`` off the diagonal (aligned fields are merged by the caller).
    """
    P3 = 0.125 + 0.5 * _1_2PI * (math.asin(R[0, 1]) + math.asin(R[0, 2]) + math.asin(R[1, 2]))
    s = R[p, q] * P3
    for k in range(3):
        if R[p, k] == 0.0:
            continue
        inner = 0.0
        for l in range(3):
            if l != k:
                inner += (R[q, l] - R[k, l] * R[q, k]) / math.sqrt(max(1.0 - R[k, l] * R[k, l],
                                                                      1e-300))
        s += R[p, k] * inner * 0.5 * _1_2PI
    return s


@njit(cache=True, error_model="numpy")
def relu_I4(caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd):
    r""":math:`I_4 = E[\theta(a)\theta(b)\,\mathrm{relu}(c)\,\mathrm{relu}(d)]
    = \sqrt{C_{cc}C_{dd}}\;E[Y_c Y_d\,1\{Y > 0\}]` over the unit-variance fields ``Y``.

    Reduction (``docs/relu.md``): a field with zero variance gives 0 (``theta(0) = relu(0) = 0``);
    two anti-aligned fields (correlation -1) give 0 (the orthant is a null set); exactly aligned
    fields (correlation +1) are merged, since their indicators coincide. What is left is a truncated
    second moment over an orthant in ``n <= 4`` dimensions: closed forms for ``n <= 3`` (Stein's
    lemma with the bivariate/trivariate orthant probabilities, :func:`_relu_m3`), and for ``n = 4``
    one 1-D integral (:func:`_relu_m4`).

    Why this route: the conditioning route (``E[relu(c) relu(d) | a, b]`` in closed form with a
    bivariate normal CDF, then a 2-D quadrature over ``a, b > 0``) costs a 2-D rule of bivariate
    CDFs per call; Tallis' truncated-moment formula (``C_cd P_4`` + boundary terms) needs ``P_4``
    by a 1-D integral anyway and its boundary terms divide by conditional variances, which loses
    all accuracy when two fields are nearly aligned (as trained students are). The path integral
    of :func:`_relu_m4` evaluates every conditional quantity at the positive-definite ``R(t)``,
    ``t < 1``: one 1-D integral, accurate to ~3e-12 (checked against adaptive cubature and
    a high-order rule).
    """
    if caa <= 0.0 or cbb <= 0.0 or ccc <= 0.0 or cdd <= 0.0:
        return 0.0
    scale = math.sqrt(ccc * cdd)
    p01 = _corr(cab, caa, cbb)
    p02 = _corr(cac, caa, ccc)
    p03 = _corr(cad, caa, cdd)
    p12 = _corr(cbc, cbb, ccc)
    p13 = _corr(cbd, cbb, cdd)
    p23 = _corr(ccd, ccc, cdd)
    if max(abs(p01), abs(p02), abs(p03), abs(p12), abs(p13), abs(p23)) < 1.0:
        # four distinct fields (the common case): no merging, no work arrays
        return scale * _relu_m4(p01, p02, p03, p12, p13, p23)
    return relu_I4_merged(scale, p01, p02, p03, p12, p13, p23, np.empty((4, 4)),
                          np.empty(4, dtype=np.int64), np.empty(4, dtype=np.int64),
                          np.empty((3, 3)))


@njit(cache=True, error_model="numpy")
def relu_I4_merged(scale, p01, p02, p03, p12, p13, p23, r, grp, pos, R):
    r"""``I4 = scale * E[Y_2 Y_3 1\{Y > 0\}]`` of :func:`relu_I4` (``scale = sqrt(C_cc C_dd)``,
    unit-variance fields of correlations ``p_ij``) when some ``|p_ij| >= 1``: 0 for an
    anti-aligned pair, otherwise the aligned fields merged and the closed forms of ``n <= 3``
    fields (or the path integral if nothing merges). ``r`` (4, 4), ``grp``, ``pos`` (4,) int64
    and ``R`` (3, 3) are scratch, allocated once by a caller that loops
    (:func:`odeprune.ode.rhs._s4_relu`)."""
    r[0, 1] = p01
    r[0, 2] = p02
    r[0, 3] = p03
    r[1, 2] = p12
    r[1, 3] = p13
    r[2, 3] = p23
    for j in range(4):
        grp[j] = j
        r[j, j] = 1.0
        for i in range(j):
            r[j, i] = r[i, j]
            if r[i, j] <= -1.0:
                return 0.0
    for j in range(1, 4):
        for i in range(j):
            if r[i, j] >= 1.0:
                grp[j] = grp[i]
                break
    n = 0
    for i in range(4):
        if grp[i] == i:
            pos[i] = n
            n += 1
    if n == 4:
        return scale * _relu_m4(r[0, 1], r[0, 2], r[0, 3], r[1, 2], r[1, 3], r[2, 3])
    p = pos[grp[2]]
    q = pos[grp[3]]
    if n == 1:
        return 0.5 * scale
    for i in range(4):
        if grp[i] == i:
            for j in range(4):
                if grp[j] == j:
                    R[pos[i], pos[j]] = r[i, j]
    if n == 3:
        return scale * _relu_m3(R, p, q)
    rho = R[0, 1]
    s1 = math.sqrt(max(1.0 - rho * rho, 0.0))
    if p == q:  # E[Y_p^2 1{Y_p > 0, Y_o > 0}]
        return scale * (_orthant2(rho) + _1_2PI * rho * s1)
    return scale * _1_2PI * (s1 + rho * (_HALF_PI + math.asin(rho)))


@njit(cache=True, error_model="numpy")
def relu_g(x):
    return x if x > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def relu_g_prime(x):
    return 1.0 if x > 0.0 else 0.0



@njit(cache=True, error_model="numpy", inline="always")
def _fill3(R, x01, x02, x12):
    R[0, 0] = 1.0
    R[1, 1] = 1.0
    R[2, 2] = 1.0
    R[0, 1] = x01
    R[1, 0] = x01
    R[0, 2] = x02
    R[2, 0] = x02
    R[1, 2] = x12
    R[2, 1] = x12


@njit(cache=True, error_model="numpy")
def _m3_one_merge(p01, p02, p03, p12, p13, p23, R):
    """:func:`relu_I4_merged`'s value over ``scale`` when exactly one ``p_ij`` is ``>= 1`` (two
    slots are one field, or exactly aligned) and none is ``<= -1``: the same 3x3 matrix and
    :func:`_relu_m3` call, without the general grouping (bit for bit its result, a third of
    its cost; ``R`` (3, 3) scratch)."""
    if p01 >= 1.0:    # slot 1 -> 0: fields (0, 2, 3)
        _fill3(R, p02, p03, p23)
        return _relu_m3(R, 1, 2)
    if p02 >= 1.0:    # slot 2 -> 0: fields (0, 1, 3)
        _fill3(R, p01, p03, p13)
        return _relu_m3(R, 0, 2)
    if p03 >= 1.0:    # slot 3 -> 0: fields (0, 1, 2)
        _fill3(R, p01, p02, p12)
        return _relu_m3(R, 2, 0)
    if p12 >= 1.0:    # slot 2 -> 1: fields (0, 1, 3)
        _fill3(R, p01, p03, p13)
        return _relu_m3(R, 1, 2)
    _fill3(R, p01, p02, p12)  # fields (0, 1, 2)
    if p13 >= 1.0:    # slot 3 -> 1
        return _relu_m3(R, 2, 1)
    return _relu_m3(R, 2, 2)  # slot 3 -> 2


@njit(cache=True, error_model="numpy", inline="always")
def _pick(u, v, x01, x02, x12, diag):
    # entry (u, v) of a symmetric 3x3 matrix given by its diagonal and off-diagonal entries
    if u == v:
        return diag
    if u + v == 1:
        return x01
    if u + v == 2:
        return x02
    return x12


@njit(cache=True, error_model="numpy", inline="always")
def _m3_looked_up(r01, r02, r12, a01, a02, a12, s01, s02, s12, p, q):
    # _relu_m3(R, p, q) of the correlations r, given their arcsines a and roots s =
    # sqrt(max(1 - r^2, 1e-300)): the same arithmetic in the same order, bit for bit its value
    # (inlined with constant p, q: the loops unroll and the picks fold)
    P3 = 0.125 + 0.5 * _1_2PI * (a01 + a02 + a12)
    s = _pick(p, q, r01, r02, r12, 1.0) * P3
    for k in range(3):
        rpk = _pick(p, k, r01, r02, r12, 1.0)
        if rpk == 0.0:
            continue
        inner = 0.0
        for l in range(3):
            if l != k:
                inner += ((_pick(q, l, r01, r02, r12, 1.0)
                           - _pick(k, l, r01, r02, r12, 1.0) * _pick(q, k, r01, r02, r12, 1.0))
                          / _pick(k, l, s01, s02, s12, 1.0))
        s += rpk * inner * 0.5 * _1_2PI
    return s


@njit(cache=True, error_model="numpy", inline="always")
def _m3_fields(Rm, As, Sq, x, y, z, p, q):
    # _m3_looked_up of the fields (x, y, z) (distinct, no correlation of magnitude 1)
    return _m3_looked_up(Rm[x, y], Rm[x, z], Rm[y, z], As[x, y], As[x, z], As[y, z],
                         Sq[x, y], Sq[x, z], Sq[y, z], p, q)


@njit(cache=True, error_model="numpy", inline="always")
def _distinct(Rm, x, y):
    return abs(Rm[x, y]) < 1.0


def _repeated_term_py(Rm, As, Sq, i, k, c, d, scale):
    """``scale * E[Y_c Y_d 1{Y > 0}]`` of the term ``I4(i, k, c, d)`` (``i <= k``, ``c <= d``)
    whose fields repeat by index, the distinct ones pairwise not exactly (anti-)aligned: the
    closed form that :func:`relu_I4_merged` or :func:`_m3_one_merge` picks for it, with the
    arcsines and roots looked up in ``As``, ``Sq`` (bit for bit their value, without their
    grouping and six correlations per call); NaN for any other term (the caller merges)."""
    nan = math.nan
    if i == k:
        if c == d:
            if c == i:
                return 0.5 * scale
            if not _distinct(Rm, i, c):
                return nan
            rho = Rm[i, c]   # (i, i, c, c): E[Y_c^2 1{Y_i, Y_c > 0}]
            return scale * (0.25 + _1_2PI * As[i, c] + _1_2PI * rho * Sq[i, c])
        if c == i or d == i:
            o = d if c == i else c
            if not _distinct(Rm, i, o):
                return nan
            rho = Rm[i, o]   # (i, i, i, d) or (i, i, c, i): E[Y_i Y_o 1{Y_i, Y_o > 0}]
            return scale * _1_2PI * (Sq[i, o] + rho * (_HALF_PI + As[i, o]))
        if not (_distinct(Rm, i, c) and _distinct(Rm, i, d) and _distinct(Rm, c, d)):
            return nan
        return scale * _m3_fields(Rm, As, Sq, i, c, d, 1, 2)
    if not _distinct(Rm, i, k):
        return nan
    if c == d:
        if c == i or c == k:   # (i, k, i, i) or (i, k, k, k)
            rho = Rm[i, k]
            return scale * (0.25 + _1_2PI * As[i, k] + _1_2PI * rho * Sq[i, k])
        if not (_distinct(Rm, i, c) and _distinct(Rm, k, c)):
            return nan
        return scale * _m3_fields(Rm, As, Sq, i, k, c, 2, 2)
    if c == i and d == k:
        rho = Rm[i, k]
        return scale * _1_2PI * (Sq[i, k] + rho * (_HALF_PI + As[i, k]))
    if c == i or c == k:   # fields (i, k, d)
        if not (_distinct(Rm, i, d) and _distinct(Rm, k, d)):
            return nan
        if c == i:
            return scale * _m3_fields(Rm, As, Sq, i, k, d, 0, 2)
        return scale * _m3_fields(Rm, As, Sq, i, k, d, 1, 2)
    if d == i or d == k:   # fields (i, k, c)
        if not (_distinct(Rm, i, c) and _distinct(Rm, k, c)):
            return nan
        if d == i:
            return scale * _m3_fields(Rm, As, Sq, i, k, c, 2, 0)
        return scale * _m3_fields(Rm, As, Sq, i, k, c, 2, 1)
    return nan


# Two compiled forms of one function (as ode.sums does for its sums): inlined into the hot loop
# of relu_s4_sums, called from the rare loop of exactly aligned fields. Measured (a first
# `odeprune integrate --activation relu`, CPU; the K=6 curve to alpha=1000): inlined at both
# 43 s, 1.00 s; called at both 27 s, 1.07 s; this split 36 s, 1.00 s.
_repeated_term = njit(cache=True, error_model="numpy", inline="always")(_repeated_term_py)
_repeated_term_called = njit(cache=True, error_model="numpy")(_repeated_term_py)


# slots (c, d) of each moment of _relu_m4_all, and the complementary slots (a, b)
_MOMENT_SLOTS = np.array([[0, 1, 2, 3], [0, 2, 1, 3], [0, 3, 1, 2], [1, 2, 0, 3], [1, 3, 0, 2],
                          [2, 3, 0, 1]], dtype=np.int64)


@njit(cache=True, error_model="numpy")
def relu_s4_sums(C, a, K, S4):
    r"""``S4[i, k] = sum_{c,d} a_c a_d I4(i, k, c, d)`` for every pair ``i <= k < K`` (upper
    triangle written, nothing else) of the ReLU fields of covariance ``C`` (L, L), weights ``a``.

    The terms of four distinct fields (``i < k``, ``c < d``, no correlation of magnitude 1) are
    the costly ones (a path integral each, :func:`_relu_m4`). One unordered set of four fields
    serves up to six terms, one per split into a ``theta theta`` pair of students and a
    ``relu relu`` pair: :func:`_relu_m4_all` gives its six second moments for about 1.3 times
    the cost of one. So the sets are visited once (``w < x < y < z``, at least two students)
    and each moment is added to the pair it belongs to; every other term goes through
    :func:`relu_I4_merged` or its closed forms as in :func:`relu_I4` (the terms with a repeated
    index, when no two distinct fields are exactly aligned, by :func:`_repeated_term`: the
    same closed forms with the arcsines and roots of the correlations computed once, bit for
    bit their values, and only those terms visited). Equal to summing
    :func:`relu_I4` to round-off (the moments of one set are evaluated in its field order), and
    about 3 times fewer path integrals (K=6, M=2: 70 for 225 terms; K=20, M=5: 12 445 for
    48 070)."""
    L = C.shape[0]
    sd = np.empty(L)
    Rm = np.zeros((L, L))
    for x in range(L):
        sd[x] = math.sqrt(C[x, x]) if C[x, x] > 0.0 else 0.0
    for x in range(L):
        for y in range(L):
            if C[x, x] > 0.0 and C[y, y] > 0.0:
                Rm[x, y] = _corr(C[x, y], C[x, x], C[y, y])
    # the arcsine and sqrt(1 - r^2) of every correlation of magnitude < 1, once: the closed
    # forms of the terms with a repeated field look theirs up (_repeated_term)
    As = np.zeros((L, L))
    Sq = np.ones((L, L))
    for x in range(L):
        for y in range(L):
            r = Rm[x, y]
            if abs(r) < 1.0:
                As[x, y] = math.asin(r)
                Sq[x, y] = math.sqrt(max(1.0 - r * r, 1e-300))
    sr = np.empty((4, 4))
    grp = np.empty(4, dtype=np.int64)
    pos = np.empty(4, dtype=np.int64)
    R3 = np.empty((3, 3))
    aligned = False  # an exact (anti-)alignment of two distinct fields
    for x in range(L):
        for y in range(x + 1, L):
            if C[x, x] > 0.0 and C[y, y] > 0.0 and abs(Rm[x, y]) >= 1.0:
                aligned = True
    # the terms with a repeated or exactly (anti-)aligned field: merged closed forms
    for i in range(K):
        for k in range(i, K):
            s = 0.0
            if C[i, i] > 0.0 and C[k, k] > 0.0 and not aligned:
                # only the terms with a repeated index, in the order of the loop below
                for c in range(L):
                    if C[c, c] <= 0.0:
                        continue
                    d = c
                    while d < L:
                        if C[d, d] > 0.0:
                            val = _repeated_term(Rm, As, Sq, i, k, c, d,
                                                 math.sqrt(C[c, c] * C[d, d]))
                            s += (1.0 if c == d else 2.0) * a[c] * a[d] * val
                        if i == k or c == i or c == k:
                            d += 1   # (c, d) has a repeated index for every d
                        elif d < i:
                            d = i    # then (c, i), (c, k)
                        elif d < k:
                            d = k
                        else:
                            break
            elif C[i, i] > 0.0 and C[k, k] > 0.0:
                p01 = Rm[i, k]
                for c in range(L):
                    if C[c, c] <= 0.0:
                        continue
                    p02 = Rm[i, c]
                    p12 = Rm[k, c]
                    m0 = max(abs(p01), abs(p02), abs(p12))
                    for d in range(c, L):
                        if C[d, d] <= 0.0:
                            continue
                        p03 = Rm[i, d]
                        p13 = Rm[k, d]
                        p23 = Rm[c, d]
                        if max(m0, abs(p03), abs(p13), abs(p23)) < 1.0:
                            continue  # four distinct fields: the pass below
                        scale = math.sqrt(C[c, c] * C[d, d])
                        val = _repeated_term_called(Rm, As, Sq, i, k, c, d, scale)
                        if val != val:  # an exact (anti-)alignment of distinct fields
                            n_one = ((p01 >= 1.0) + (p02 >= 1.0) + (p03 >= 1.0) + (p12 >= 1.0)
                                     + (p13 >= 1.0) + (p23 >= 1.0))
                            if n_one == 1 and min(p01, p02, p03, p12, p13, p23) > -1.0:
                                val = scale * _m3_one_merge(p01, p02, p03, p12, p13, p23, R3)
                            else:
                                val = relu_I4_merged(scale, p01, p02, p03, p12, p13, p23, sr,
                                                     grp, pos, R3)
                        s += (1.0 if c == d else 2.0) * a[c] * a[d] * val
            S4[i, k] = s
    # the sets of four distinct fields, each once: its six moments to the pairs they belong to
    mom = np.empty(6)
    f = np.empty(4, dtype=np.int64)
    for w in range(K):
        if C[w, w] <= 0.0:
            continue
        for x in range(w + 1, K):
            if C[x, x] <= 0.0 or abs(Rm[w, x]) >= 1.0:
                continue
            for y in range(x + 1, L):
                if C[y, y] <= 0.0 or abs(Rm[w, y]) >= 1.0 or abs(Rm[x, y]) >= 1.0:
                    continue
                for z in range(y + 1, L):
                    if (C[z, z] <= 0.0 or abs(Rm[w, z]) >= 1.0 or abs(Rm[x, z]) >= 1.0
                            or abs(Rm[y, z]) >= 1.0):
                        continue
                    _relu_m4_all(Rm[w, x], Rm[w, y], Rm[w, z], Rm[x, y], Rm[x, z], Rm[y, z],
                                 mom)
                    f[0] = w
                    f[1] = x
                    f[2] = y
                    f[3] = z
                    for m in range(6):
                        fi = f[_MOMENT_SLOTS[m, 2]]
                        fk = f[_MOMENT_SLOTS[m, 3]]
                        if fk < K:  # fi < fk: both students
                            fc = f[_MOMENT_SLOTS[m, 0]]
                            fd = f[_MOMENT_SLOTS[m, 1]]
                            S4[fi, fk] += 2.0 * a[fc] * a[fd] * (sd[fc] * sd[fd]) * mom[m]
