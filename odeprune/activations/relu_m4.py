r"""The ReLU four-point average of four distinct fields: the 1-D path integral of
:func:`_relu_m4` (one second moment of the orthant) and :func:`_relu_m4_all` (all six of one
correlation matrix, for :func:`odeprune.activations.relu.relu_s4_sums`), on the quadrature rule
of :func:`_m4_rule`.
Part of :mod:`odeprune.activations`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._core import (
    _1_2PI,
    _1_4PI2,
    _HALF_PI,
)


@njit(cache=True, error_model="numpy", inline="always")
def _pair_partial(rij, rik, ril, rjk, rjl, rkl):
    # Partial correlation of (k, l) given (i, j) for unit variances, as (numerator, vk, vl) with
    # vk = det of the (i, j, k) correlation block; the correlation is num / sqrt(vk vl).
    dij = 1.0 - rij * rij
    num = rkl * dij - (rik * ril + rjk * rjl) + rij * (rik * rjl + rjk * ril)
    vk = dij - rik * rik - rjk * rjk + 2.0 * rij * rik * rjk
    vl = dij - ril * ril - rjl * rjl + 2.0 * rij * ril * rjl
    return num, vk, vl


@njit(cache=True, error_model="numpy", inline="always")
def _one_minus_sq(p, s):
    # 1 - r^2 for r = (1 - s) p, as (1 - |r|)(1 + |r|) with 1 - |r| = (1 - |p|) + s |p|: exact
    # cancellation-free even where 1 - s rounds to 1 (1 - |p| is exact for |p| >= 1/2, Sterbenz)
    ap = abs(p)
    om = (1.0 - ap) + s * ap
    return om * (2.0 - om)


@njit(cache=True, error_model="numpy", inline="always")
def _det3(rij, rik, rjk):
    # the determinant of a 3x3 correlation block
    return (1.0 - rij * rij) - rik * rik - rjk * rjk + 2.0 * rij * rik * rjk


@njit(cache=True, error_model="numpy", inline="always")
def _num(rij, rik, ril, rjk, rjl, rkl):
    # numerator of the partial correlation of (k, l) given (i, j) (see _pair_partial)
    return rkl * (1.0 - rij * rij) - (rik * ril + rjk * rjl) + rij * (rik * rjl + rjk * ril)


# Cephes' rational approximation of atan (atan.c, S. L. Moshier 1984-2000; ~1 ulp), written
# branch-free (selects) so that the node loop vectorises: |z| <= 0.66 after the reduction by
# tan(3 pi/8) and 0.66, atan(z) = z + z^3 P(z^2) / Q(z^2)
_AP0 = -8.750608600031904122785e-01
_AP1 = -1.615753718733365076637e01
_AP2 = -7.500855792314704667340e01
_AP3 = -1.228866684490136173410e02
_AP4 = -6.485021904942025371773e01
_AQ0 = 2.485846490142306297962e01
_AQ1 = 1.650270098316988542046e02
_AQ2 = 4.328810604912902668951e02
_AQ3 = 4.853903996359136964868e02
_AQ4 = 1.945506571482613964425e02
_T3P8 = 2.41421356237309504880
_MOREBITS = 6.123233995736765886130e-17
_QUARTER_PI = 0.25 * math.pi
#: a denominator of the atan reduction is at least max(y, |x|) >= s^2 sqrt(1 - r^2) > 0 (R(t)
#: is positive definite; > 1e-80 at the rules' lowest node); the floor keeps 0/0 out of a
#: degenerate input and a product of three above underflow
_DEN_MIN = 1e-100


@njit(cache=True, error_model="numpy", inline="always")
def _atan_red(y, x):
    # atan2(y, x) for y >= 0, reduced: (num, den, offset) with atan(y / |x|) = offset +
    # atan(num / den), |num / den| <= 0.66 (offset 0, pi/4 or pi/2, with its low-order bits)
    ax = abs(x)
    big = y > _T3P8 * ax
    mid = y > 0.66 * ax
    num = -ax if big else (y - ax if mid else y)
    den = y if big else (y + ax if mid else ax)
    off = (_HALF_PI + _MOREBITS) if big else ((_QUARTER_PI + 0.5 * _MOREBITS) if mid else 0.0)
    return num, max(den, _DEN_MIN), off


@njit(cache=True, error_model="numpy", inline="always")
def _atan_pq(z):
    # atan(z) = z + z (zz P(zz)) / Q(zz), zz = z^2, as (z zz P, Q) (Q in [194, 500]: the six Q
    # of a node share one division)
    zz = z * z
    pp = (((_AP0 * zz + _AP1) * zz + _AP2) * zz + _AP3) * zz + _AP4
    qq = ((((zz + _AQ0) * zz + _AQ1) * zz + _AQ2) * zz + _AQ3) * zz + _AQ4
    return z * zz * pp, qq


@njit(cache=True, error_model="numpy", inline="always")
def _three_quotients(m0, m1, m2, d0, d1, d2):
    # (m0 / d0, m1 / d1, m2 / d2) by one division
    da = d0 * d1
    ia = 1.0 / (da * d2)
    iab = ia * d2
    return m0 * (iab * d1), m1 * (iab * d0), m2 * (ia * da)


@njit(cache=True, error_model="numpy", inline="always")
def _angle(x, z, off, zp, iq):
    # atan2(y, x) in [0, pi] from _atan_red / _atan_pq (iq = 1/Q)
    a = off + (z + zp * iq)
    return a if x >= 0.0 else (math.pi - a) + 2.0 * _MOREBITS


@njit(cache=True, error_model="numpy", inline="always")
def _minor_sums(p01, p02, p03, p12, p13, p23):
    # the sums of the 2x2, 3x3 and 4x4 principal minors of the correlation matrix (the
    # coefficients of its characteristic polynomial), and the sum of its squared correlations
    sq = p01 * p01 + p02 * p02 + p03 * p03 + p12 * p12 + p13 * p13 + p23 * p23
    e3 = (_det3(p01, p02, p12) + _det3(p01, p03, p13) + _det3(p02, p03, p23)
          + _det3(p12, p13, p23))
    return 6.0 - sq, e3, _det4(p01, p02, p03, p12, p13, p23), sq


@njit(cache=True, error_model="numpy")
def _det_coeffs(p01, p02, p03, p12, p13, p23):
    """``(E2, E3, E4)``: the sums of the 2x2, 3x3 and 4x4 principal minors of the correlation
    matrix (``E3``, ``E4`` floored at 0: negative only by round-off), so that
    ``det R(t) = s^4 + 4 s^3 t + E2 s^2 t^2 + E3 s t^3 + E4 t^4`` along the path
    ``R(t) = s I + t R`` (``s = 1 - t``): every term >= 0, no cancellation (``E4`` by
    :func:`_det4`). :func:`_m4_rule_coeffs` returns the same with the rule."""
    e2, e3, e4, _ = _minor_sums(p01, p02, p03, p12, p13, p23)
    return e2, max(e3, 0.0), max(e4, 0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _relu_m4_moments_c(s, p01, p02, p03, p12, p13, p23, c2, c3, c4):
    r""":func:`_relu_m4_moments` given the set's :func:`_det_coeffs` ``(c2, c3, c4)``.

    Every square root and arcsine of a conditional correlation comes from ``det R(t)``: by
    Sylvester's identity the partial-correlation numerator ``n_ij`` of the pair ``(k, l)`` given
    ``(i, j)`` and the 3x3 determinants ``e_k, e_l`` have ``e_k e_l - n_ij^2 = det R(t) (1 -
    r_ij^2)``, so with ``S = sqrt(det R(t))`` (the polynomial of :func:`_det_coeffs`) the root of
    ``D_ij`` is ``S s_ij`` and ``pi/2 + arcsin(n_ij / sqrt(e_k e_l)) = atan2(S s_ij, -n_ij)``
    (accurate at both ends, where the arcsine of a ratio near -+1 was not). Per node: 7 square
    roots and 4 divisions (products share them: 6 reciprocals, 6 reduced atan arguments, 6 atan
    quotients), against 22 square roots and 2 divisions before."""
    t = 1.0 - s
    r01 = t * p01
    r02 = t * p02
    r03 = t * p03
    r12 = t * p12
    r13 = t * p13
    r23 = t * p23
    # partial correlation numerators of a pair given the complementary pair
    n01 = _num(r01, r02, r03, r12, r13, r23)      # (2,3 | 0,1)
    n02 = _num(r02, r01, r03, r12, r23, r13)      # (1,3 | 0,2)
    n03 = _num(r03, r01, r02, r13, r23, r12)      # (1,2 | 0,3)
    n12 = _num(r12, r01, r13, r02, r23, r03)      # (0,3 | 1,2)
    n13 = _num(r13, r01, r12, r03, r23, r02)      # (0,2 | 1,3)
    n23 = _num(r23, r02, r12, r03, r13, r01)      # (0,1 | 2,3)
    o01 = _one_minus_sq(p01, s)
    o02 = _one_minus_sq(p02, s)
    o03 = _one_minus_sq(p03, s)
    o12 = _one_minus_sq(p12, s)
    o13 = _one_minus_sq(p13, s)
    o23 = _one_minus_sq(p23, s)
    s01 = math.sqrt(o01)
    s02 = math.sqrt(o02)
    s03 = math.sqrt(o03)
    s12 = math.sqrt(o12)
    s13 = math.sqrt(o13)
    s23 = math.sqrt(o23)
    tt = t * t
    S = math.sqrt(c4 * (tt * tt) + s * (c3 * (tt * t) + s * (c2 * tt + s * (4.0 * t + s))))
    # the six reciprocals h_ij = 1/s_ij from one division (all in [~1e-8, 1])
    A01 = s01 * s02
    A = A01 * s03
    B01 = s12 * s13
    B = B01 * s23
    inv = 1.0 / (A * B)
    iA = inv * B
    iB = inv * A
    iA01 = iA * s03
    iB01 = iB * s23
    h01 = iA01 * s02
    h02 = iA01 * s01
    h03 = iA * A01
    h12 = iB01 * s13
    h13 = iB01 * s12
    h23 = iB * B01
    y01 = S * s01
    y02 = S * s02
    y03 = S * s03
    y12 = S * s12
    y13 = S * s13
    y23 = S * s23
    m01, d01, f01 = _atan_red(y01, -n01)
    m02, d02, f02 = _atan_red(y02, -n02)
    m03, d03, f03 = _atan_red(y03, -n03)
    m12, d12, f12 = _atan_red(y12, -n12)
    m13, d13, f13 = _atan_red(y13, -n13)
    m23, d23, f23 = _atan_red(y23, -n23)
    # the six quotients num / den by two divisions (a product of three dens is > 1e-300)
    z01, z02, z03 = _three_quotients(m01, m02, m03, d01, d02, d03)
    z12, z13, z23 = _three_quotients(m12, m13, m23, d12, d13, d23)
    P01, Q01 = _atan_pq(z01)
    P02, Q02 = _atan_pq(z02)
    P03, Q03 = _atan_pq(z03)
    P12, Q12 = _atan_pq(z12)
    P13, Q13 = _atan_pq(z13)
    P23, Q23 = _atan_pq(z23)
    qa = Q01 * Q02   # the six denominators (in [194, 500]) from one division
    qb = Q03 * Q12
    qc = Q13 * Q23
    qab = qa * qb
    iq = 1.0 / (qab * qc)
    iqc = iq * qab
    iqab = iq * qc
    iqa = iqab * qb
    iqb = iqab * qa
    # b_ij = pi/2 + arcsin of the partial correlation of (k, l) given (i, j), in [0, pi]
    b01 = _angle(-n01, z01, f01, P01, iqa * Q02)
    b02 = _angle(-n02, z02, f02, P02, iqa * Q01)
    b03 = _angle(-n03, z03, f03, P03, iqb * Q12)
    b12 = _angle(-n12, z12, f12, P12, iqb * Q03)
    b13 = _angle(-n13, z13, f13, P13, iqc * Q23)
    b23 = _angle(-n23, z23, f23, P23, iqc * Q13)
    # q_ij = P(X_k>0, X_l>0 | X_i = X_j = 0) / sqrt(1 - r_ij^2)
    q01 = (_1_2PI * b01) * h01
    q02 = (_1_2PI * b02) * h02
    q03 = (_1_2PI * b03) * h03
    q12 = (_1_2PI * b12) * h12
    q13 = (_1_2PI * b13) * h13
    q23 = (_1_2PI * b23) * h23
    # D_ab: E[x_c x_d 1{x_c, x_d > 0} | x_a = x_b = 0] phi_2(0, 0; r_ab)
    D01 = (y01 + n01 * b01) * _1_4PI2 * (h01 * h01 * h01)
    D02 = (y02 + n02 * b02) * _1_4PI2 * (h02 * h02 * h02)
    D03 = (y03 + n03 * b03) * _1_4PI2 * (h03 * h03 * h03)
    D12 = (y12 + n12 * b12) * _1_4PI2 * (h12 * h12 * h12)
    D13 = (y13 + n13 * b13) * _1_4PI2 * (h13 * h13 * h13)
    D23 = (y23 + n23 * b23) * _1_4PI2 * (h23 * h23 * h23)
    # E_ix = sum_{m != i} Cov(x_x, x_m | x_i) q_im (delta at i, the other relu field x)
    E01 = o01 * q01 + (r12 - r01 * r02) * q02 + (r13 - r01 * r03) * q03
    E02 = (r12 - r02 * r01) * q01 + o02 * q02 + (r23 - r02 * r03) * q03
    E03 = (r13 - r03 * r01) * q01 + (r23 - r03 * r02) * q02 + o03 * q03
    E10 = o01 * q01 + (r02 - r01 * r12) * q12 + (r03 - r01 * r13) * q13
    E12 = (r02 - r12 * r01) * q01 + o12 * q12 + (r23 - r12 * r13) * q13
    E13 = (r03 - r13 * r01) * q01 + (r23 - r13 * r12) * q12 + o13 * q13
    E20 = o02 * q02 + (r01 - r02 * r12) * q12 + (r03 - r02 * r23) * q23
    E21 = (r01 - r12 * r02) * q02 + o12 * q12 + (r13 - r12 * r23) * q23
    E23 = (r03 - r23 * r02) * q02 + (r13 - r23 * r12) * q12 + o23 * q23
    E30 = o03 * q03 + (r01 - r03 * r13) * q13 + (r02 - r03 * r23) * q23
    E31 = (r01 - r13 * r03) * q03 + o13 * q13 + (r12 - r13 * r23) * q23
    E32 = (r02 - r23 * r03) * q03 + (r12 - r23 * r13) * q13 + o23 * q23
    dP4 = s * (p01 * q01 + p02 * q02 + p03 * q03 + p12 * q12 + p13 * q13 + p23 * q23)
    G23 = p01 * D01 + _1_2PI * (p02 * E03 + p03 * E02 + p12 * E13 + p13 * E12 + p23 * dP4)
    G13 = p02 * D02 + _1_2PI * (p01 * E03 + p03 * E01 + p12 * E23 + p23 * E21 + p13 * dP4)
    G12 = p03 * D03 + _1_2PI * (p01 * E02 + p02 * E01 + p13 * E32 + p23 * E31 + p12 * dP4)
    G03 = p12 * D12 + _1_2PI * (p01 * E13 + p13 * E10 + p02 * E23 + p23 * E20 + p03 * dP4)
    G02 = p13 * D13 + _1_2PI * (p01 * E12 + p12 * E10 + p03 * E32 + p23 * E30 + p02 * dP4)
    G01 = p23 * D23 + _1_2PI * (p02 * E21 + p12 * E20 + p03 * E31 + p13 * E30 + p01 * dP4)
    return G01, G02, G03, G12, G13, G23


@njit(cache=True, error_model="numpy")
def _relu_m4_moments(s, p01, p02, p03, p12, p13, p23):
    r"""``G(t)`` of :func:`_relu_m4` at ``t = 1 - s`` for each of the six second moments
    ``E[X_c X_d 1{X>0}]`` of one 4x4 correlation matrix, returned in the order
    ``(c, d) = (0,1), (0,2), (0,3), (1,2), (1,3), (2,3)``: they share every square root and
    arcsine (the partial correlations of each pair given the complementary pair, the orthant
    terms ``q_ij``); only the final combination differs (the last is the integrand of
    :func:`_relu_m4`). The node loop calls :func:`_relu_m4_moments_c` with the coefficients of
    :func:`_det_coeffs` computed once per matrix.

    With ``{a, b}`` the complement of ``{c, d}``:
    :math:`G_{cd} = p_{ab} D_{ab} + \frac{1}{2\pi}(p_{ac} E_{a,d} + p_{ad} E_{a,c} + p_{bc} E_{b,d}
    + p_{bd} E_{b,c} + p_{cd}(1-t) P_4')`, ``D_ab`` the bivariate truncated moment of ``(c, d)``
    given ``X_a = X_b = 0`` and :math:`E_{i,x} = \sum_{m \ne i} \mathrm{Cov}(X_x, X_m | X_i)\,
    q_{im}` the trivariate one (Price's theorem, as in :func:`_relu_m4`)."""
    c2, c3, c4 = _det_coeffs(p01, p02, p03, p12, p13, p23)
    return _relu_m4_moments_c(s, p01, p02, p03, p12, p13, p23, c2, c3, c4)


# ---------------------------------------------------------------------------------------------
# The quadrature rule of the path integral. The integrand of _relu_m4 in u (t = 1 - u^2) is
# analytic except where R(t) or one of its principal blocks turns singular: t = 1/(1 - mu) for
# the eigenvalues mu of R and of its blocks, all within [lambda_min, lambda_max] of R
# (interlacing), i.e. on the imaginary u-axis at |u| >= sigma = sqrt(lam_lo / (1 - lam_lo)) and
# on the real u-axis at |u| >= upsilon = sqrt(lam_hi / (lam_hi - 1)) > 1. Given those two
# bounds, a rule is a list of panels: Gauss-Legendre in u on [1/3, 1] (or one or two u-panels
# when sigma is not small), Gauss-Legendre in ln u on panels of width _W_LOG below it (where the
# imaginary-axis singularities all sit at Im ln u = pi/2, so a panel of ratio e^-3 costs no more
# nodes than one of ratio 1/3 in u), down to ~_KAPPA sigma, and one u-panel [0, .] at the
# bottom; each panel gets the nodes that its nearest singularity asks for (error ~ A rho^-2n,
# rho the Bernstein ellipse through it, A ~ the panel's share of the integral), at most
# _N_MAX, filled up to a multiple of _VEC nodes (one vector of the node loop) where the
# estimated error is largest. The rules are built once, at import, for a grid of the two
# bounds (each set of four fields takes the rule of the next grid point towards the worse
# case). Accuracy (measured against a 24-node rule graded 8 levels deeper, itself within 1e-15
# of a 30-node one) on 360 random correlation matrices with lambda_min from 1 to 1e-16 and on
# every set of four fields of the K=6 (alpha = 0 ... 1000) and K=4 states of the tests: max
# error 2.5e-12 (the rule before: 8.3e-11 on the random ones, 5.2e-10 at trained states,
# whose strongly correlated fields put a singularity near u = 1), with 8 nodes for a
# well-conditioned set (16 before), 47 on average over the random ones (90 before), 36 at the
# K=6 state of alpha = 1000 (62 before). _TAU = 1e-9 lost accuracy on random matrices; a
# tenth of the amplitude of the u-panels too (1e-11 at trained states).
_W_LOG = 3.0
_U_TOP = 1.0 / 3.0
_KAPPA = 2.0
_TAU = 3e-10
_VEC = 8
_N_MAX = 24
#: sigma grid: _SIG0 e^-l, l < _N_SIG (the last one covers every smaller sigma, singular R too)
_SIG0 = 4.0
_N_SIG = 31
#: lambda_max grid (upper bounds; 4 is the largest eigenvalue of a 4x4 correlation matrix)
_LAM_HI = np.array([1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0])


def _rho(z, lo, hi):
    """Bernstein-ellipse parameter of the point ``z`` (complex) for the interval [lo, hi]."""
    zeta = (z - 0.5 * (lo + hi)) / (0.5 * (hi - lo))
    s = 0.5 * (abs(zeta - 1.0) + abs(zeta + 1.0))
    return s + math.sqrt(max(s * s - 1.0, 0.0))


def _panel_rho(kind, lo, hi, sig, ups):
    # the nearest singularity of the panel in its own variable (u, or ln u), over the imaginary
    # ray [i sig, i inf) and the real ray [ups, inf)
    if kind == 0:
        return min(_rho(1j * sig, lo, hi), _rho(complex(ups, 0.0), lo, hi))
    wl, wh = math.log(lo), math.log(hi)
    im = complex(max(0.5 * (wl + wh), math.log(sig)), 0.5 * math.pi)
    return min(_rho(im, wl, wh), _rho(complex(math.log(ups), 0.0), wl, wh))


def _rule_panels(sig, ups):
    """Panels ``[kind, lo, hi, n]`` (kind 0: Gauss-Legendre in u, 1: in ln u) for the bounds
    ``sig``, ``ups`` (see above), the node total a multiple of _VEC."""
    def panel(kind, lo, hi):
        rho = _panel_rho(kind, lo, hi, sig, ups)
        amp = (hi - lo) if kind == 0 else hi
        n = math.ceil(math.log(amp / _TAU) / (2.0 * math.log(rho)))
        return [kind, lo, hi, min(max(n, 2), _N_MAX), rho, amp]

    if _KAPPA * sig >= _U_TOP:  # no small singularity: [0, 1] or [0, 1/3] + [1/3, 1]
        one = [panel(0, 0.0, 1.0)]
        two = [panel(0, _U_TOP, 1.0), panel(0, 0.0, _U_TOP)]
        pans = one if one[0][3] <= two[0][3] + two[1][3] else two
    else:
        pans = [panel(0, _U_TOP, 1.0)]
        hi = _U_TOP
        for _ in range(max(1, math.ceil(math.log(_U_TOP / (_KAPPA * sig)) / _W_LOG))):
            pans.append(panel(1, hi * math.exp(-_W_LOG), hi))
            hi = pans[-1][1]
        pans.append(panel(0, 0.0, hi))
    total = sum(q[3] for q in pans)
    while total % _VEC:
        open_ = [q for q in pans if q[3] < _N_MAX]
        worst = max(open_, key=lambda q: q[5] * q[4] ** (-2.0 * q[3]))
        worst[3] += 1
        total += 1
    return [q[:4] for q in pans]


def _build_rules():
    """Every grid point's rule (sigma level, lambda_max level) as nodes and weights: the distinct
    rules end to end in ``nodes`` (in u) and ``weights`` (for the integral over t, i.e. with
    the 2u of dt = 2u du), rule ``RULE[level, col]`` at ``START[r]:START[r] + COUNT[r]``; and
    the levels' lambda_min thresholds (the level is how many of them lambda_min is below)."""
    gauss = {}
    for n in range(2, _N_MAX + 1):
        x, w = np.polynomial.legendre.leggauss(n)
        gauss[n] = (0.5 * (x + 1.0), 0.5 * w)
    seen = {}
    start, count, nodes, weights = [], [], [], []
    index = np.zeros((_N_SIG, _LAM_HI.shape[0]), dtype=np.int64)
    for level in range(_N_SIG):
        sig = _SIG0 * math.exp(-level)
        for col, lam in enumerate(_LAM_HI):
            pans = _rule_panels(sig, math.sqrt(lam / (lam - 1.0)))
            key = tuple(tuple(q) for q in pans)
            if key not in seen:
                seen[key] = len(start)
                start.append(sum(count))
                count.append(sum(q[3] for q in pans))
                for kind, lo, hi, n in pans:
                    x, w = gauss[n]
                    if kind == 0:
                        u = lo + (hi - lo) * x
                        nodes.append(u)
                        weights.append(2.0 * (hi - lo) * w * u)
                    else:
                        u = hi * np.exp(-_W_LOG * (1.0 - x))
                        nodes.append(u)
                        weights.append(2.0 * _W_LOG * w * u * u)
            index[level, col] = seen[key]
    sig = _SIG0 * np.exp(-np.arange(_N_SIG - 1.0))
    return (index, np.array(start, dtype=np.int64), np.array(count, dtype=np.int64),
            np.concatenate(nodes), np.concatenate(weights), sig * sig / (1.0 + sig * sig))


_RULE, _RULE_START, _RULE_COUNT, _RULE_U, _RULE_W, _LEVEL_LAM = _build_rules()


@njit(cache=True, error_model="numpy")
def _det4(p01, p02, p03, p12, p13, p23):
    # det R by the partial correlation of the pair given the least correlated pair (the
    # division by 1 - p^2 of a nearly aligned pair would amplify the round-off)
    m = min(abs(p01), abs(p02), abs(p03), abs(p12), abs(p13), abs(p23))
    if abs(p01) == m:
        n, vk, vl = _pair_partial(p01, p02, p03, p12, p13, p23)
        d = 1.0 - p01 * p01
    elif abs(p02) == m:
        n, vk, vl = _pair_partial(p02, p01, p03, p12, p23, p13)
        d = 1.0 - p02 * p02
    elif abs(p03) == m:
        n, vk, vl = _pair_partial(p03, p01, p02, p13, p23, p12)
        d = 1.0 - p03 * p03
    elif abs(p12) == m:
        n, vk, vl = _pair_partial(p12, p01, p13, p02, p23, p03)
        d = 1.0 - p12 * p12
    elif abs(p13) == m:
        n, vk, vl = _pair_partial(p13, p01, p12, p03, p23, p02)
        d = 1.0 - p13 * p13
    else:
        n, vk, vl = _pair_partial(p23, p02, p12, p03, p13, p01)
        d = 1.0 - p23 * p23
    return (vk * vl - n * n) / d


@njit(cache=True, error_model="numpy", inline="always")
def _eig_bounds_of(e2, e3, e4, sq):
    # _m4_eig_bounds from the matrix's _minor_sums
    spread = math.sqrt(1.5 * sq)
    lo = max(0.0, 1.0 - spread)
    hi = min(4.0, 1.0 + spread)
    for _ in range(3):
        d = ((4.0 * lo - 12.0) * lo + 2.0 * e2) * lo - e3
        if not d < 0.0:
            break
        lo -= ((((lo - 4.0) * lo + e2) * lo - e3) * lo + e4) / d
    for _ in range(3):
        d = ((4.0 * hi - 12.0) * hi + 2.0 * e2) * hi - e3
        if not d > 0.0:
            break
        hi -= ((((hi - 4.0) * hi + e2) * hi - e3) * hi + e4) / d
    return lo * (1.0 - 1e-6) - 1e-14, min(hi * (1.0 + 1e-9) + 1e-12, 4.0)


@njit(cache=True, error_model="numpy")
def _m4_eig_bounds(p01, p02, p03, p12, p13, p23):
    """A lower bound of lambda_min and an upper bound of lambda_max of the 4x4 correlation
    matrix: Newton on its characteristic polynomial from outside the spectrum (monotone for a
    polynomial with real roots), started at 1 -+ sqrt(3/4 sum (lambda - 1)^2), with a margin
    for the round-off of its coefficients."""
    e2, e3, e4, sq = _minor_sums(p01, p02, p03, p12, p13, p23)
    return _eig_bounds_of(e2, e3, e4, sq)


@njit(cache=True, error_model="numpy", inline="always")
def _rule_of(lam_lo, lam_hi):
    # the rule of the grid point towards the worse case: (first node, number of nodes)
    level = 0
    while level < _LEVEL_LAM.shape[0] and lam_lo < _LEVEL_LAM[level]:
        level += 1
    col = 0
    while col < _LAM_HI.shape[0] - 1 and _LAM_HI[col] < lam_hi:
        col += 1
    r = _RULE[level, col]
    return _RULE_START[r], _RULE_COUNT[r]


@njit(cache=True, error_model="numpy")
def _m4_rule(p01, p02, p03, p12, p13, p23):
    """The rule for this correlation matrix: its first node in _RULE_U, _RULE_W and its number
    of nodes (a multiple of _VEC)."""
    lam_lo, lam_hi = _m4_eig_bounds(p01, p02, p03, p12, p13, p23)
    return _rule_of(lam_lo, lam_hi)


@njit(cache=True, error_model="numpy")
def _m4_rule_coeffs(p01, p02, p03, p12, p13, p23):
    """:func:`_m4_rule` and :func:`_det_coeffs` from one evaluation of the minor sums:
    ``(first, n, E2, E3, E4)``."""
    e2, e3, e4, sq = _minor_sums(p01, p02, p03, p12, p13, p23)
    lam_lo, lam_hi = _eig_bounds_of(e2, e3, e4, sq)
    first, n = _rule_of(lam_lo, lam_hi)
    return first, n, e2, max(e3, 0.0), max(e4, 0.0)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _relu_m4_all(p01, p02, p03, p12, p13, p23, out):
    r"""All six second moments ``out[m] = E[X_c X_d 1{X>0}]`` of one 4x4 correlation matrix
    (``|p_ij| < 1``), ``(c, d)`` in the order of :func:`_relu_m4_moments`, by :func:`_relu_m4`'s
    path integral on the rule of :func:`_m4_rule`: about 1.3 times the cost of one moment."""
    first, n, c2, c3, c4 = _m4_rule_coeffs(p01, p02, p03, p12, p13, p23)
    t01 = t02 = t03 = t12 = t13 = t23 = 0.0
    for j in range(first, first + n):
        u = _RULE_U[j]
        w = _RULE_W[j]
        g01, g02, g03, g12, g13, g23 = _relu_m4_moments_c(u * u, p01, p02, p03, p12, p13, p23,
                                                          c2, c3, c4)
        t01 += w * g01
        t02 += w * g02
        t03 += w * g03
        t12 += w * g12
        t13 += w * g13
        t23 += w * g23
    c = 0.125 / math.pi
    out[0] = c + p01 / 16.0 + t01
    out[1] = c + p02 / 16.0 + t02
    out[2] = c + p03 / 16.0 + t03
    out[3] = c + p12 / 16.0 + t12
    out[4] = c + p13 / 16.0 + t13
    out[5] = c + p23 / 16.0 + t23


@njit(cache=True, error_model="numpy")
def _relu_m4(p01, p02, p03, p12, p13, p23):
    r""":math:`F(R) = E[X_2 X_3 1\{X_0>0, X_1>0, X_2>0, X_3>0\}]` for ``X ~ N(0, R)``, ``R`` a
    4x4 correlation matrix with off-diagonal entries ``p_ij`` (``|p_ij| < 1``).

    Along the path :math:`R(t) = (1-t)I + tR` (positive definite for ``t < 1``) Price's theorem
    gives :math:`dF/dt = \sum_{i<j} p_{ij} E[\partial_i\partial_j f]`; each term is closed form
    (a bivariate truncated moment or a conditional trivariate mean, i.e. bivariate orthant
    probabilities) except :math:`\partial_2\partial_3 f = 1\{X>0\}`, whose expectation is the
    orthant probability :math:`P_4(R(t)) = \frac1{16} + \int_0^t P_4'(s) ds` with Plackett's
    (1954) :math:`P_4' = \sum_{i<j} p_{ij}\,\varphi_2(0,0;r_{ij})\,P(X_k,X_l>0\mid X_i=X_j=0)`.
    Exchanging the two integrals leaves one 1-D integral,

    .. math:: F(R) = \frac{1}{8\pi} + \frac{p_{23}}{16}
              + \int_0^1 \Big[\sum_{(ij)\ne(23)} p_{ij} D_{ij}(R(t)) + p_{23}(1-t)P_4'(t)\Big] dt,

    evaluated with ``t = 1 - u**2`` (which removes the ``(1-t)**-1/2`` endpoint behaviour of
    nearly aligned fields) on the rule of :func:`_m4_rule`: Gauss-Legendre panels placed and
    sized by where the integrand's singularities can sit (``R(t)`` or a principal block singular,
    ``t = 1/(1 - lambda)``), which bounds of ``lambda_min`` and ``lambda_max`` of ``R`` locate:
    graded (in ``ln u``) down to the scale ``sqrt(lambda_min)`` of a nearly singular ``R``, with
    more nodes near ``u = 1`` for strongly correlated fields (``lambda_max`` near 4). Only
    positive-definite ``R(t)`` is ever evaluated, so a singular or nearly singular ``R`` costs
    panels, not accuracy.
    """
    # one compiled integrand for every caller: numba links a callee's code into each caller and
    # optimises it there again, so a second, one-moment copy cost ~10 s of a first ReLU run
    out = np.empty(6)
    _relu_m4_all(p01, p02, p03, p12, p13, p23, out)
    return out[5]
