"""Argument checks of :mod:`odeprune.deep`: each returns the clean value or raises a one-line
``ValueError`` naming the parameter, its value and what is allowed. Booleans are refused as
numbers (``True`` is not a width, a depth or a standard deviation)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import check_int

__all__ = ["ACTIVATIONS", "activation", "sigma_w", "sigma_b", "depth", "sparsity", "widths",
           "real"]

#: the activations of the deep networks (``"erf"`` is ``erf(x / sqrt 2)``)
ACTIVATIONS = ("tanh", "erf", "relu")


def activation(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in ACTIVATIONS:
        raise ValueError(f"activation={value!r} is not supported; expected one of "
                         f"{list(ACTIVATIONS)}")
    return value.lower()


def real(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf,
         lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number (not a bool) in the interval from ``lo`` to ``hi``."""
    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise ValueError(f"{name}={value!r} must be a real number in {interval}")
    x = float(value)
    if not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo) or \
            (hi_open and x == hi):
        raise ValueError(f"{name}={value!r} is out of range; allowed {interval}")
    return x


def sigma_w(value: Any) -> float:
    """The weight standard deviation (times sqrt(N)): a real number > 0."""
    return real("sigma_w", value, 0.0, lo_open=True)


def sigma_b(value: Any) -> float:
    """The bias standard deviation: a real number >= 0."""
    return real("sigma_b", value, 0.0)


def depth(value: Any) -> int:
    """The number of layers L: an integer >= 1."""
    return check_int("depth", value, 1)


def sparsity(value: Any, name: str = "s") -> float:
    """A sparsity (fraction of weights removed): a real number in [0, 1)."""
    return real(name, value, 0.0, 1.0, hi_open=True)


def widths(value: Any, L: int) -> np.ndarray:
    """Layer widths ``(N_0, ..., N_L)``: one integer >= 1 (every layer, the input included) or
    a sequence of ``L + 1`` integers >= 1; returned as an int array of length ``L + 1``."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value, dtype=object).ravel())
        if len(items) != L + 1:
            raise ValueError(f"width has {len(items)} entries; expected one integer or "
                             f"depth + 1 = {L + 1} integers (N_0, ..., N_L)")
        return np.array([check_int("width", v, 1) for v in items], dtype=np.int64)
    return np.full(L + 1, check_int("width", value, 1), dtype=np.int64)
