r"""Gaussian averages of the activation functions, as numba kernels, and the activation registry.

For a zero-mean Gaussian vector of local fields with covariance ``C`` (docs/theory.md §3) we need

.. math::

    I_2(a,b) = E[g(a) g(b)],\quad I_3(a,b,c) = E[g'(a)\, b\, g(c)],\quad
    I_4(a,b,c,d) = E[g'(a) g'(b) g(c) g(d)],\quad J_2(a,b) = E[g'(a) g'(b)].

Every kernel takes the needed covariance entries as scalars (``caa, cab, ...``), so it is cheap
to call from compiled loops. The activation is selected by an integer code so that compiled code
that dispatches on it stays cacheable: ``ERF`` (``g(x) = erf(x/sqrt 2)``), ``LINEAR``
(``g(x) = x``), ``RELU`` (``g(x) = max(0, x)``, ``g'(x) = theta(x)`` with ``theta(0) = 0``).
:data:`ACTIVATIONS` is the one registry of names; every compiled dispatcher (:func:`I2`,
:func:`I3`, :func:`I4`, :func:`J2`, :func:`g`, :func:`g_prime`) raises ``ValueError`` for a code
that is not registered (never a silent fallback).

Sources: Saad & Solla (1995); Goldt et al. (2019), supplementary S3 (erf closed forms);
docs/theory.md §3b and ``docs/relu.md`` (ReLU; the four-point average ``I4`` by the reduction of
:func:`relu_I4`).
"""

from __future__ import annotations

import math
import operator
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit, types
from numba.extending import overload

__all__ = ["ERF", "LINEAR", "RELU", "CODES", "Activation", "get_activation", "ACTIVATIONS",
           "ActivationCode", "activation_code", "check_code", "g", "g_prime", "I2", "I3", "I4", "J2"]

ERF = 0
LINEAR = 1
RELU = 2
#: every registered activation code (kept in step with :data:`ACTIVATIONS` by a test)
CODES = (ERF, LINEAR, RELU)

_2_PI = 2.0 / math.pi
_4_PI2 = 4.0 / (math.pi * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# ---------------------------------------------------------------------------------------------
# erf(x / sqrt(2))
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always", error_model="numpy")
def _clip1(x):
    # arcsin argument: exact maths keeps |x| <= 1; round-off may not.
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return x


@njit(cache=True, error_model="numpy")
def erf_I2(caa, cab, cbb):
    r""":math:`I_2 = \frac{2}{\pi}\arcsin\frac{C_{ab}}{\sqrt{(1+C_{aa})(1+C_{bb})}}`."""
    return _2_PI * math.asin(_clip1(cab / math.sqrt((1.0 + caa) * (1.0 + cbb))))


@njit(cache=True, error_model="numpy")
def erf_I3(caa, cab, cac, cbc, ccc):
    r""":math:`I_3 = \frac{2}{\pi}\frac{1}{\sqrt{\Lambda_3}}\frac{C_{bc}(1+C_{aa}) - C_{ab}C_{ac}}{1+C_{aa}}`."""
    lam3 = (1.0 + caa) * (1.0 + ccc) - cac * cac
    return _2_PI / math.sqrt(lam3) * (cbc * (1.0 + caa) - cab * cac) / (1.0 + caa)


@njit(cache=True, error_model="numpy")
def erf_I4(caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd):
    r""":math:`I_4 = \frac{4}{\pi^2}\frac{1}{\sqrt{\Lambda_4}}\arcsin\frac{\Lambda_0}{\sqrt{\Lambda_1\Lambda_2}}`."""
    lam4 = (1.0 + caa) * (1.0 + cbb) - cab * cab
    lam0 = (lam4 * ccd - cbc * cbd * (1.0 + caa) - cac * cad * (1.0 + cbb)
            + cab * cac * cbd + cab * cad * cbc)
    lam1 = (lam4 * (1.0 + ccc) - cbc * cbc * (1.0 + caa) - cac * cac * (1.0 + cbb)
            + 2.0 * cab * cac * cbc)
    lam2 = (lam4 * (1.0 + cdd) - cbd * cbd * (1.0 + caa) - cad * cad * (1.0 + cbb)
            + 2.0 * cab * cad * cbd)
    return _4_PI2 / math.sqrt(lam4) * math.asin(_clip1(lam0 / math.sqrt(lam1 * lam2)))


@njit(cache=True, error_model="numpy")
def erf_J2(caa, cab, cbb):
    r""":math:`J_2 = \frac{2}{\pi}(1 + C_{aa} + C_{bb} + C_{aa}C_{bb} - C_{ab}^2)^{-1/2}`."""
    return _2_PI / math.sqrt(1.0 + caa + cbb + caa * cbb - cab * cab)


# ---------------------------------------------------------------------------------------------
# linear g(x) = x, g'(x) = 1
# ---------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def linear_I2(caa, cab, cbb):
    return cab


@njit(cache=True, error_model="numpy")
def linear_I3(caa, cab, cac, cbc, ccc):
    return cbc


@njit(cache=True, error_model="numpy")
def linear_I4(caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd):
    return ccd


@njit(cache=True, error_model="numpy")
def linear_J2(caa, cab, cbb):
    return 1.0


# ---------------------------------------------------------------------------------------------
# ReLU g(x) = max(0, x), g'(x) = theta(x) (theta(0) = 0: a field that is identically zero is dead)
# ---------------------------------------------------------------------------------------------
_1_2PI = 1.0 / (2.0 * math.pi)
_1_4PI2 = 1.0 / (4.0 * math.pi * math.pi)
_HALF_PI = 0.5 * math.pi

# The I4 path integral (see _relu_m4): Gauss-Legendre with _GL_N nodes on panels [r^(j+1), r^j]
# in u, r = 1/3, down to u ~ sqrt(lambda_min), then [0, r^J]. Chosen on 390 random correlation
# matrices with lambda_min from 1 to 0 (docs/relu.md): max error 3e-11 against a 30-node,
# 60-panel rule, 16 nodes for a well-conditioned R (8 nodes and r = 1/2: 2e-12 at 1.5x the cost).
_GL_N = 8
_gl_x, _gl_w = np.polynomial.legendre.leggauss(_GL_N)
_GL_X = 0.5 * (_gl_x + 1.0)
_GL_W = 0.5 * _gl_w
del _gl_x, _gl_w
_I4_RATIO = 1.0 / 3.0
#: most geometric panels of the I4 path integral (u down to 3**-26 ~ 4e-13: t within 2e-25 of 1)
_I4_MAX_LEVELS = 26


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


@njit(cache=True, error_model="numpy", inline="always")
def _pair_partial(rij, rik, ril, rjk, rjl, rkl):
    # Partial correlation of (k, l) given (i, j) for unit variances, as (numerator, vk, vl) with
    # vk = det of the (i, j, k) correlation block; the correlation is num / sqrt(vk vl).
    dij = 1.0 - rij * rij
    num = rkl * dij - (rik * ril + rjk * rjl) + rij * (rik * rjl + rjk * ril)
    vk = dij - rik * rik - rjk * rjk + 2.0 * rij * rik * rjk
    vl = dij - ril * ril - rjl * rjl + 2.0 * rij * ril * rjl
    return num, vk, vl


# fdlibm's rational approximation of asin (e_asin.c, Sun Microsystems 1993), a few ulp on [-1, 1],
# written branch-free so that LLVM vectorises the node loop of _relu_m4 (libm's asin is a call
# per element and would dominate it).
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


@njit(cache=True, error_model="numpy", inline="always")
def fast_asin(x):
    """``asin(clip(x, -1, 1))``, vectorisable (fdlibm's rational approximation, a few ulp)."""
    z = abs(x)
    if z > 1.0:
        z = 1.0
    small = z < 0.5
    t = z * z if small else (1.0 - z) * 0.5
    p = t * (_PS0 + t * (_PS1 + t * (_PS2 + t * (_PS3 + t * (_PS4 + t * _PS5)))))
    q = 1.0 + t * (_QS1 + t * (_QS2 + t * (_QS3 + t * _QS4)))
    r = p / q
    s = math.sqrt(t)
    res = z + z * r if small else _HALF_PI - 2.0 * (s + s * r)
    return res if x >= 0.0 else -res


@njit(cache=True, error_model="numpy", inline="always")
def _asin_ratio(num, vk, vl):
    # asin(num / sqrt(vk vl)); 0 where the conditional variances vanish (only at t = 1, never
    # evaluated, or by round-off)
    den = max(vk * vl, 1e-300)
    return fast_asin(num / math.sqrt(den))


@njit(cache=True, error_model="numpy", inline="always")
def _one_minus_sq(p, s):
    # 1 - r^2 for r = (1 - s) p, as (1 - |r|)(1 + |r|) with 1 - |r| = (1 - |p|) + s |p|: exact
    # cancellation-free even where 1 - s rounds to 1 (1 - |p| is exact for |p| >= 1/2, Sterbenz)
    ap = abs(p)
    om = (1.0 - ap) + s * ap
    return om * (2.0 - om)


@njit(cache=True, error_model="numpy", inline="always")
def _relu_m4_integrand(s, p01, p02, p03, p12, p13, p23):
    r"""``G(t)`` of :func:`_relu_m4` at ``t = 1 - s``: the derivative of ``E[X_2 X_3 1{X>0}]``
    along ``R(t) = (1-t) I + t R``, with the ``P_4`` part integrated by parts (see there)."""
    t = 1.0 - s
    r01 = t * p01
    r02 = t * p02
    r03 = t * p03
    r12 = t * p12
    r13 = t * p13
    r23 = t * p23
    # the six partial correlations of a pair given the complementary pair
    n01, v2, v3 = _pair_partial(r01, r02, r03, r12, r13, r23)     # (2,3 | 0,1)
    a01 = _asin_ratio(n01, v2, v3)
    n, vk, vl = _pair_partial(r02, r01, r03, r12, r23, r13)        # (1,3 | 0,2)
    a02 = _asin_ratio(n, vk, vl)
    n, vk, vl = _pair_partial(r03, r01, r02, r13, r23, r12)        # (1,2 | 0,3)
    a03 = _asin_ratio(n, vk, vl)
    n, vk, vl = _pair_partial(r12, r01, r13, r02, r23, r03)        # (0,3 | 1,2)
    a12 = _asin_ratio(n, vk, vl)
    n, vk, vl = _pair_partial(r13, r01, r12, r03, r23, r02)        # (0,2 | 1,3)
    a13 = _asin_ratio(n, vk, vl)
    n, vk, vl = _pair_partial(r23, r02, r12, r03, r13, r01)        # (0,1 | 2,3)
    a23 = _asin_ratio(n, vk, vl)
    # q_ij = P(X_k>0, X_l>0 | X_i = X_j = 0) / sqrt(1 - r_ij^2)
    o01 = _one_minus_sq(p01, s)
    o02 = _one_minus_sq(p02, s)
    o03 = _one_minus_sq(p03, s)
    o12 = _one_minus_sq(p12, s)
    o13 = _one_minus_sq(p13, s)
    q01 = (0.25 + _1_2PI * a01) / math.sqrt(o01)
    q02 = (0.25 + _1_2PI * a02) / math.sqrt(o02)
    q03 = (0.25 + _1_2PI * a03) / math.sqrt(o03)
    q12 = (0.25 + _1_2PI * a12) / math.sqrt(o12)
    q13 = (0.25 + _1_2PI * a13) / math.sqrt(o13)
    q23 = (0.25 + _1_2PI * a23) / math.sqrt(_one_minus_sq(p23, s))
    # Price's theorem: dF/dr_ij = E[d_i d_j (x_2 x_3 1{x>0})]
    D01 = ((math.sqrt(max(v2 * v3 - n01 * n01, 0.0)) + n01 * (_HALF_PI + a01))
           * _1_4PI2 / (o01 * math.sqrt(o01)))
    D02 = (r13 - r03 * r01) * q01 + (r23 - r03 * r02) * q02 + o03 * q03
    D03 = (r12 - r02 * r01) * q01 + o02 * q02 + (r23 - r02 * r03) * q03
    D12 = (r03 - r13 * r01) * q01 + (r23 - r13 * r12) * q12 + o13 * q13
    D13 = (r02 - r12 * r01) * q01 + o12 * q12 + (r23 - r12 * r13) * q13
    dP4 = p01 * q01 + p02 * q02 + p03 * q03 + p12 * q12 + p13 * q13 + p23 * q23
    return (p01 * D01 + _1_2PI * (p02 * D02 + p03 * D03 + p12 * D12 + p13 * D13
                                  + p23 * s * dP4))


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
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
    nearly aligned fields) by 8-node Gauss-Legendre on panels graded geometrically (ratio 1/3)
    towards ``u = 0``, down to the scale ``sqrt(lambda_min(R))`` at which the integrand's
    singularities (where ``R(t)`` turns singular, ``t = 1/(1 - lambda)``) sit; ``lambda_min`` is
    bounded below by ``e_4 / e_3`` (determinant over the sum of the 3x3 principal minors). Only positive-definite ``R(t)`` is ever
    evaluated, so a singular or nearly singular ``R`` costs panels, not accuracy.
    """
    # lambda_min(R) = e4 / (product of the other three) >= e4 / e3, with e4 = det(R) and e3 the
    # sum of the 3x3 principal minors (elementary symmetric functions of the eigenvalues)
    n01, v2, v3 = _pair_partial(p01, p02, p03, p12, p13, p23)
    d01 = 1.0 - p01 * p01
    det = (v2 * v3 - n01 * n01) / d01 if d01 > 0.0 else 0.0
    e3 = (v2 + v3 + (1.0 - p02 * p02 - p03 * p03 - p23 * p23 + 2.0 * p02 * p03 * p23)
          + (1.0 - p12 * p12 - p13 * p13 - p23 * p23 + 2.0 * p12 * p13 * p23))
    eps = det / e3 if e3 > 0.0 else 0.0
    if eps > 0.0:
        levels = int(math.ceil(0.5 * math.log(1.0 / eps) / math.log(1.0 / _I4_RATIO)))
        levels = min(max(levels, 1), _I4_MAX_LEVELS)
    else:
        levels = _I4_MAX_LEVELS
    total = 0.0
    # panels in u: [r^(j+1), r^j] for j = 0 .. levels-1, then [0, r^levels]
    hi = 1.0
    for panel in range(levels + 1):
        lo = hi * _I4_RATIO if panel < levels else 0.0
        h = hi - lo
        s = 0.0
        for j in range(_GL_N):
            u = lo + h * _GL_X[j]
            s += _GL_W[j] * u * _relu_m4_integrand(u * u, p01, p02, p03, p12, p13, p23)
        total += 2.0 * h * s
        hi = lo
    return 0.125 / math.pi + p23 / 16.0 + total


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
    ``t < 1``: one 1-D integral, accurate to ~3e-11 (checked against adaptive cubature).
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


# ---------------------------------------------------------------------------------------------
# scalar g and g' per activation
# ---------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def erf_g(x):
    return math.erf(x * _INV_SQRT2)


@njit(cache=True, error_model="numpy")
def erf_g_prime(x):
    return _SQRT_2_OVER_PI * math.exp(-0.5 * x * x)


@njit(cache=True, error_model="numpy")
def linear_g(x):
    return x


@njit(cache=True, error_model="numpy")
def linear_g_prime(x):
    return 1.0


@njit(cache=True, error_model="numpy")
def relu_g(x):
    return x if x > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def relu_g_prime(x):
    return 1.0 if x > 0.0 else 0.0


# ---------------------------------------------------------------------------------------------
# dispatch: by the numba type of an ActivationCode (compile time), or by a plain integer code
# ---------------------------------------------------------------------------------------------
class ActivationCode(tuple):
    """An activation code that compiled code sees as a type of its own.

    In Python it behaves as the plain integer code (equal to it, hashing like it, ``int()``).
    Passed to a compiled kernel (alone or as a field of a record such as
    :class:`odeprune.ode.rhs.Params`) it selects the activation when the kernel is compiled, so
    that a kernel compiled for erf contains (and its first run compiles) erf code only; a plain
    ``int`` code selects it at run time instead (every activation compiled in). It is a named
    1-tuple of one class per code, which numba types by its class (and recognises as fast as an
    ``int`` when a compiled function is called); :func:`activation_code` makes one.
    """

    __slots__ = ()
    CODE = -1

    def __int__(self) -> int:
        return self.CODE

    __index__ = __int__

    def __eq__(self, other):
        if isinstance(other, ActivationCode):
            return self.CODE == other.CODE
        if isinstance(other, (int, np.integer)) and not isinstance(other, (bool, np.bool_)):
            return self.CODE == int(other)
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.CODE)

    def __repr__(self) -> str:
        return f"ActivationCode({self.CODE})"

    def __reduce__(self):
        return activation_code, (self.CODE,)


class ActivationType(types.Type):
    """Not used. A development version of this module typed activation codes with this class;
    numba cache indexes written by it name it, and unpickling them must not fail (numba then
    discards or ignores those entries). Remove once no such cache is left."""

    def __init__(self, code):
        self.code = int(code)
        super().__init__(name=f"ActivationCode({self.code})")


def _code_class(code: int, name: str) -> type:
    fields = namedtuple(f"{name}Fields", ["code"])
    return type(name, (ActivationCode, fields), {"__slots__": (), "CODE": code,
                                                 "__module__": __name__, "__qualname__": name})


ErfCode = _code_class(ERF, "ErfCode")
LinearCode = _code_class(LINEAR, "LinearCode")
ReluCode = _code_class(RELU, "ReluCode")
_CODE_CLASSES = {ERF: ErfCode, LINEAR: LinearCode, RELU: ReluCode}


def static_code(ty):
    """The activation code that the numba type ``ty`` fixes at compile time, or None."""
    cls = getattr(ty, "instance_class", None)
    if isinstance(ty, types.BaseNamedTuple) and isinstance(cls, type) \
            and issubclass(cls, ActivationCode):
        return cls.CODE
    return None


def _compare(op):
    # ``code == ERF`` etc. between an ActivationCode and an integer, known when compiling
    @overload(op)
    def _ov(x, y):
        cx, cy = static_code(x), static_code(y)
        if cx is not None and isinstance(y, types.Integer):
            return lambda x, y: op(cx, y)
        if isinstance(x, types.Integer) and cy is not None:
            return lambda x, y: op(x, cy)
        if cx is not None and cy is not None:
            same = op(cx, cy)
            return lambda x, y: same
        return None


_compare(operator.eq)
_compare(operator.ne)

_UNKNOWN = "unknown activation code (expected ERF=0, LINEAR=1 or RELU=2)"


def activation_code(code) -> ActivationCode:
    """The :class:`ActivationCode` of a registered integer code; ``ValueError`` otherwise."""
    if isinstance(code, ActivationCode):
        return code
    if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)) \
            or int(code) not in CODES:
        raise ValueError(f"{_UNKNOWN}, got {code!r}")
    return _CODE_CLASSES[int(code)](int(code))


_DISPATCH_TEMPLATE = """
def stub(act, {args}):  # pragma: no cover - only its compiled overload runs
    raise NotImplementedError


@overload(stub, inline="always")
def _ov(act, {args}):
    code = static_code(act)
    if code is not None:
        fn = kernels[code]

        def static(act, {args}):
            return fn({args})
        return static
    if isinstance(act, types.Integer):
        def runtime(act, {args}):
            if act == ERF:
                return k_erf({args})
            if act == LINEAR:
                return k_lin({args})
            if act == RELU:
                return k_relu({args})
            raise ValueError(_UNKNOWN)
        return runtime
    return None
"""


def _dispatcher(kernels, n_args):
    """A stub ``f(act, *args)`` that calls ``kernels[act](*args)`` in compiled code: chosen when
    compiling for an :class:`ActivationCode`, at run time (``ValueError`` for an unknown code)
    for an integer. Inlined into its caller (numba IR), so that it costs no call; written out
    for ``n_args`` arguments since numba's inliner takes no ``*args``."""
    ns = {"overload": overload, "static_code": static_code, "types": types, "ERF": ERF,
          "LINEAR": LINEAR, "RELU": RELU, "_UNKNOWN": _UNKNOWN, "kernels": kernels,
          "k_erf": kernels[ERF], "k_lin": kernels[LINEAR], "k_relu": kernels[RELU]}
    exec(_DISPATCH_TEMPLATE.format(args=", ".join(f"x{j}" for j in range(n_args))), ns)
    return ns["stub"]


_g = _dispatcher({ERF: erf_g, LINEAR: linear_g, RELU: relu_g}, 1)
_g_prime = _dispatcher({ERF: erf_g_prime, LINEAR: linear_g_prime, RELU: relu_g_prime}, 1)
_I2 = _dispatcher({ERF: erf_I2, LINEAR: linear_I2, RELU: relu_I2}, 3)
_I3 = _dispatcher({ERF: erf_I3, LINEAR: linear_I3, RELU: relu_I3}, 5)
_I4 = _dispatcher({ERF: erf_I4, LINEAR: linear_I4, RELU: relu_I4}, 10)
_J2 = _dispatcher({ERF: erf_J2, LINEAR: linear_J2, RELU: relu_J2}, 3)


def _check(act):  # pragma: no cover - only its compiled overload runs
    raise NotImplementedError


@overload(_check)
def _ov_check(act):
    if static_code(act) is not None:
        return lambda act: None
    if isinstance(act, types.Integer):
        def runtime(act):
            if act != ERF and act != LINEAR and act != RELU:
                raise ValueError(_UNKNOWN)
        return runtime
    return None


@njit(cache=True, error_model="numpy")
def check_code(act):
    """Raise ``ValueError`` unless ``act`` is a registered activation code (:data:`CODES`)."""
    _check(act)


@njit(cache=True, error_model="numpy")
def g(act, x):
    """The activation ``g(x)`` of code ``act`` at a scalar ``x``."""
    return _g(act, x)


@njit(cache=True, error_model="numpy")
def g_prime(act, x):
    """The derivative ``g'(x)`` of code ``act`` at a scalar ``x`` (ReLU: ``theta(0) = 0``)."""
    return _g_prime(act, x)


@njit(cache=True, error_model="numpy")
def I2(act, caa, cab, cbb):
    return _I2(act, caa, cab, cbb)


@njit(cache=True, error_model="numpy")
def I3(act, caa, cab, cac, cbc, ccc):
    return _I3(act, caa, cab, cac, cbc, ccc)


@njit(cache=True, error_model="numpy")
def I4(act, caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd):
    return _I4(act, caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd)


@njit(cache=True, error_model="numpy")
def J2(act, caa, cab, cbb):
    return _J2(act, caa, cab, cbb)


@njit(cache=True, error_model="numpy")
def I2_at(act, C, a, b):
    """``I2`` for fields ``a, b`` of covariance matrix ``C``."""
    return I2(act, C[a, a], C[a, b], C[b, b])


@njit(cache=True, error_model="numpy")
def I3_at(act, C, a, b, c):
    return I3(act, C[a, a], C[a, b], C[a, c], C[b, c], C[c, c])


@njit(cache=True, error_model="numpy")
def I4_at(act, C, a, b, c, d):
    return I4(act, C[a, a], C[a, b], C[a, c], C[a, d], C[b, b], C[b, c], C[b, d],
              C[c, c], C[c, d], C[d, d])


@njit(cache=True, error_model="numpy")
def J2_at(act, C, a, b):
    return J2(act, C[a, a], C[a, b], C[b, b])


@njit(cache=True, error_model="numpy")
def I2_matrix(act, C):
    """All pairwise ``I2`` of the fields of ``C``; shape ``(L, L)``, symmetric."""
    check_code(act)
    L = C.shape[0]
    out = np.empty((L, L))
    for a in range(L):
        for b in range(a, L):
            val = I2(act, C[a, a], C[a, b], C[b, b])
            out[a, b] = val
            out[b, a] = val
    return out


@njit(cache=True, error_model="numpy")
def eg_from_cov(act, C, a):
    r""":math:`\epsilon_g = \frac12 \sum_{c,d} a_c a_d I_2(c,d)` (docs/theory.md §5)."""
    check_code(act)
    L = C.shape[0]
    total = 0.0
    for c in range(L):
        total += 0.5 * a[c] * a[c] * I2(act, C[c, c], C[c, c], C[c, c])
        for d in range(c + 1, L):
            total += a[c] * a[d] * I2(act, C[c, c], C[c, d], C[d, d])
    return total


# ---------------------------------------------------------------------------------------------
# Python-side registry
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _erf_flat(x, out):
    for i in range(x.size):
        out[i] = math.erf(x[i] * _INV_SQRT2)


def _erf_g(x):
    # compiled math.erf (C99 erf, as scipy.special.erf to ~1 ulp) over the flattened array: no
    # scipy.special import (0.26 s of start-up on its own)
    x = np.asarray(x, dtype=float)
    out = np.empty(x.shape)
    _erf_flat(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out if out.ndim else out[()]


def _erf_g_prime(x):
    return _SQRT_2_OVER_PI * np.exp(-0.5 * x * x)


def _linear_g(x):
    return x.copy()


def _linear_g_prime(x):
    return np.ones_like(x)


def _relu_g(x):
    return np.maximum(x, 0.0)


def _relu_g_prime(x):
    return (x > 0.0).astype(float)


@dataclass(frozen=True)
class Activation:
    """A registered nonlinearity ``g`` with its Gaussian averages.

    Attributes
    ----------
    name : str
        Key in :data:`ACTIVATIONS`.
    code : int
        Integer passed to the compiled kernels (:data:`CODES`).
    formula : str
        ``g`` in words, for help texts.
    numpy_g, numpy_g_prime : callable
        Vectorised numpy ``g`` and ``g'`` (float arrays in, float arrays out); use :meth:`g` and
        :meth:`g_prime`, which convert their argument.
    """

    name: str
    code: int
    formula: str
    numpy_g: Callable = field(repr=False, compare=False)
    numpy_g_prime: Callable = field(repr=False, compare=False)

    def g(self, x):
        """``g(x)`` elementwise; ``x`` array_like, any shape."""
        return self.numpy_g(np.asarray(x, dtype=float))

    def g_prime(self, x):
        """``g'(x)`` elementwise; ``x`` array_like, any shape."""
        return self.numpy_g_prime(np.asarray(x, dtype=float))

    def I2(self, C, a, b):
        return I2_at(self.code, np.asarray(C, dtype=float), a, b)

    def I3(self, C, a, b, c):
        return I3_at(self.code, np.asarray(C, dtype=float), a, b, c)

    def I4(self, C, a, b, c, d):
        return I4_at(self.code, np.asarray(C, dtype=float), a, b, c, d)

    def J2(self, C, a, b):
        return J2_at(self.code, np.asarray(C, dtype=float), a, b)

    def I2_matrix(self, C):
        """``I2(a, b)`` for all fields of ``C`` (L, L); shape (L, L)."""
        return I2_matrix(self.code, np.ascontiguousarray(C, dtype=float))


#: the one registry of activations: name -> :class:`Activation` (CLI choices come from its keys)
ACTIVATIONS = {
    "erf": Activation("erf", ERF, "g(x) = erf(x/sqrt 2)", _erf_g, _erf_g_prime),
    "linear": Activation("linear", LINEAR, "g(x) = x", _linear_g, _linear_g_prime),
    "relu": Activation("relu", RELU, "g(x) = max(0, x)", _relu_g, _relu_g_prime),
}


def get_activation(activation: str | Activation) -> Activation:
    """Look up an activation by name; raise ``ValueError`` listing the known ones."""
    if isinstance(activation, Activation):
        if ACTIVATIONS.get(activation.name) != activation:
            raise ValueError(f"activation {activation.name!r} (code {activation.code}) is not "
                             f"registered; expected one of {sorted(ACTIVATIONS)}")
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation={activation!r} is unknown; expected one of {sorted(ACTIVATIONS)}"
        ) from None
