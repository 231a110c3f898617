"""Compile-time and run-time dispatch on the activation code: :class:`ActivationCode`, and the
compiled front-ends ``g, g_prime, I2, I3, I4, J2`` with their matrix helpers (part of
:mod:`odeprune.activations`)."""

from __future__ import annotations

import operator
from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._core import CODES, ERF, LINEAR, RELU
from .erf import (
    erf_g,
    erf_g_prime,
    erf_I2,
    erf_I3,
    erf_I4,
    erf_J2,
    linear_g,
    linear_g_prime,
    linear_I2,
    linear_I3,
    linear_I4,
    linear_J2,
)
from .relu import relu_g, relu_g_prime, relu_I2, relu_I3, relu_I4, relu_J2

#: the module that pickles and numba's cache index name the code classes by (the package)
_PUBLIC_MODULE = "odeprune.activations"


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
                                                 "__module__": _PUBLIC_MODULE, "__qualname__": name})


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


