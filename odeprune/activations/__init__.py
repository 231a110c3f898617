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

The package's modules, every name re-exported here (import them from ``odeprune.activations``):
``_core`` (codes, constants, ``fast_asin``), ``erf`` (erf and linear), ``relu`` (ReLU),
``dispatch`` (:class:`ActivationCode` and the compiled front-ends), ``registry``
(:data:`ACTIVATIONS`).
"""

from __future__ import annotations

from ._core import (  # noqa: F401 (re-exported)
    _1_2PI,
    _1_4PI2,
    _2_PI,
    _4_PI2,
    _HALF_PI,
    _INV_SQRT2,
    _PS0,
    _PS1,
    _PS2,
    _PS3,
    _PS4,
    _PS5,
    _QS1,
    _QS2,
    _QS3,
    _QS4,
    _SQRT_2_OVER_PI,
    CODES,
    ERF,
    LINEAR,
    RELU,
    _clip1,
    fast_asin,
)
from .dispatch import (  # noqa: F401 (re-exported)
    _CODE_CLASSES,
    _DISPATCH_TEMPLATE,
    _I2,
    _I3,
    _I4,
    _J2,
    _UNKNOWN,
    I2,
    I3,
    I4,
    J2,
    ActivationCode,
    ActivationType,
    ErfCode,
    I2_at,
    I2_matrix,
    I3_at,
    I4_at,
    J2_at,
    LinearCode,
    ReluCode,
    _check,
    _code_class,
    _compare,
    _dispatcher,
    _g,
    _g_prime,
    _ov_check,
    activation_code,
    check_code,
    eg_from_cov,
    g,
    g_prime,
    static_code,
)
from .erf import (  # noqa: F401 (re-exported)
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
from .registry import (  # noqa: F401 (re-exported)
    ACTIVATIONS,
    Activation,
    _erf_flat,
    _erf_g,
    _erf_g_prime,
    _linear_g,
    _linear_g_prime,
    _relu_g,
    _relu_g_prime,
    get_activation,
)
from .relu import (  # noqa: F401 (re-exported)
    _corr,
    _orthant2,
    _relu_m3,
    relu_g,
    relu_g_prime,
    relu_I2,
    relu_I3,
    relu_I4,
    relu_I4_merged,
    relu_J2,
    relu_s4_sums,
)
from .relu_m4 import (  # noqa: F401 (re-exported)
    _one_minus_sq,
    _pair_partial,
    _relu_m4,
    _relu_m4_all,
    _relu_m4_moments,
)

__all__ = ["ERF", "LINEAR", "RELU", "CODES", "Activation", "get_activation", "ACTIVATIONS",
           "ActivationCode", "activation_code", "check_code", "g", "g_prime", "I2", "I3", "I4", "J2"]
