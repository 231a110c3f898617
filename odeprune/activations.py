r"""Gaussian averages of the activation functions, as numba kernels.

For a zero-mean Gaussian vector of local fields with covariance ``C`` (EQUATIONS.md §3) we need

.. math::

    I_2(a,b) = E[g(a) g(b)],\quad I_3(a,b,c) = E[g'(a)\, b\, g(c)],\quad
    I_4(a,b,c,d) = E[g'(a) g'(b) g(c) g(d)],\quad J_2(a,b) = E[g'(a) g'(b)].

Every kernel takes the needed covariance entries as scalars (``caa, cab, ...``), so it is cheap
to call from compiled loops. The activation is selected by an integer code so that compiled code
that dispatches on it stays cacheable (``ERF``, ``LINEAR``).

Sources: Saad & Solla (1995); Goldt et al. (2019), supplementary S3 (erf closed forms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["ERF", "LINEAR", "Activation", "get_activation", "ACTIVATIONS"]

ERF = 0
LINEAR = 1

_2_PI = 2.0 / math.pi
_4_PI2 = 4.0 / (math.pi * math.pi)


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
# dispatch by integer code (keeps callers cacheable), and matrix-indexed forms
# ---------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def I2(act, caa, cab, cbb):
    if act == ERF:
        return erf_I2(caa, cab, cbb)
    return linear_I2(caa, cab, cbb)


@njit(cache=True, error_model="numpy")
def I3(act, caa, cab, cac, cbc, ccc):
    if act == ERF:
        return erf_I3(caa, cab, cac, cbc, ccc)
    return linear_I3(caa, cab, cac, cbc, ccc)


@njit(cache=True, error_model="numpy")
def I4(act, caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd):
    if act == ERF:
        return erf_I4(caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd)
    return linear_I4(caa, cab, cac, cad, cbb, cbc, cbd, ccc, ccd, cdd)


@njit(cache=True, error_model="numpy")
def J2(act, caa, cab, cbb):
    if act == ERF:
        return erf_J2(caa, cab, cbb)
    return linear_J2(caa, cab, cbb)


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
    r""":math:`\epsilon_g = \frac12 \sum_{c,d} a_c a_d I_2(c,d)` (EQUATIONS.md §5)."""
    L = C.shape[0]
    total = 0.0
    for c in range(L):
        total += 0.5 * a[c] * a[c] * I2(act, C[c, c], C[c, c], C[c, c])
        for d in range(c + 1, L):
            total += a[c] * a[d] * I2(act, C[c, c], C[c, d], C[d, d])
    return total


# ---------------------------------------------------------------------------------------------
# Python-side description
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Activation:
    """A nonlinearity ``g`` with its Gaussian averages.

    Attributes
    ----------
    name : str
    code : int
        Integer passed to the compiled kernels.
    g, g_prime : callable
        Vectorised numpy functions, for simulations and Monte Carlo checks.
    """

    name: str
    code: int

    def g(self, x):
        x = np.asarray(x, dtype=float)
        if self.code == ERF:
            from scipy.special import erf

            return erf(x / math.sqrt(2.0))
        return x

    def g_prime(self, x):
        x = np.asarray(x, dtype=float)
        if self.code == ERF:
            return math.sqrt(2.0 / math.pi) * np.exp(-0.5 * x * x)
        return np.ones_like(x)

    def I2(self, C, a, b):
        return I2_at(self.code, np.asarray(C, dtype=float), a, b)

    def I3(self, C, a, b, c):
        return I3_at(self.code, np.asarray(C, dtype=float), a, b, c)

    def I4(self, C, a, b, c, d):
        return I4_at(self.code, np.asarray(C, dtype=float), a, b, c, d)

    def J2(self, C, a, b):
        return J2_at(self.code, np.asarray(C, dtype=float), a, b)

    def I2_matrix(self, C):
        return I2_matrix(self.code, np.ascontiguousarray(C, dtype=float))


ACTIVATIONS = {"erf": Activation("erf", ERF), "linear": Activation("linear", LINEAR)}


def get_activation(activation: str | Activation) -> Activation:
    """Look up an activation by name; raise ``ValueError`` listing the known ones."""
    if isinstance(activation, Activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation={activation!r} is unknown; expected one of {sorted(ACTIVATIONS)}"
        ) from None
