"""Activation codes, shared constants and two scalar helpers of the Gaussian averages
(:mod:`odeprune.activations`)."""

from __future__ import annotations

import math

from numba import njit

ERF = 0
LINEAR = 1
RELU = 2
#: every registered activation code (kept in step with :data:`ACTIVATIONS` by a test)
CODES = (ERF, LINEAR, RELU)

_2_PI = 2.0 / math.pi
_4_PI2 = 4.0 / (math.pi * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_1_2PI = 1.0 / (2.0 * math.pi)
_1_4PI2 = 1.0 / (4.0 * math.pi * math.pi)
_HALF_PI = 0.5 * math.pi


@njit(cache=True, inline="always", error_model="numpy")
def _clip1(x):
    # arcsin argument: exact maths keeps |x| <= 1; round-off may not.
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return x



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
def _asin_pq(x):
    # the rational approximation of fast_asin, split: ``(p, q, base)`` with asin(|x|) =
    # base + base p/q (|x| < 0.5) or pi/2 - 2 (base + base p/q); relu_m4's _asin_fin shares one
    # division among the six p/q of a node
    z = abs(x)
    if z > 1.0:
        z = 1.0
    small = z < 0.5
    t = z * z if small else (1.0 - z) * 0.5
    p = t * (_PS0 + t * (_PS1 + t * (_PS2 + t * (_PS3 + t * (_PS4 + t * _PS5)))))
    q = 1.0 + t * (_QS1 + t * (_QS2 + t * (_QS3 + t * _QS4)))
    return p, q, (z if small else math.sqrt(t))


@njit(cache=True, error_model="numpy", inline="always")
def fast_asin(x):
    """``asin(clip(x, -1, 1))``, vectorisable (fdlibm's rational approximation, a few ulp)."""
    p, q, base = _asin_pq(x)
    b = base + base * (p / q)
    res = b if abs(x) < 0.5 else _HALF_PI - 2.0 * b
    return res if x >= 0.0 else -res

