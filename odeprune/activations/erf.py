"""The Gaussian averages of erf(x / sqrt 2) and of the linear activation, and their scalar
g, g' (:mod:`odeprune.activations`; Saad & Solla 1995, Goldt et al. 2019 supplementary S3)."""

from __future__ import annotations

import math

from numba import njit

from ._core import _2_PI, _4_PI2, _INV_SQRT2, _SQRT_2_OVER_PI, _clip1

# ---------------------------------------------------------------------------------------------
# erf(x / sqrt(2))
# ---------------------------------------------------------------------------------------------

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


