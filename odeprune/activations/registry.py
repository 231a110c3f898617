"""The Python-side activation registry: :class:`Activation`, :data:`ACTIVATIONS`,
:func:`get_activation` (part of :mod:`odeprune.activations`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ._core import _INV_SQRT2, _SQRT_2_OVER_PI, ERF, LINEAR, RELU
from .dispatch import I2_at, I2_matrix, I3_at, I4_at, J2_at


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
