"""Argument checks shared by the public entry points: each returns the clean value or raises a
``ValueError`` that names the parameter, its value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_size", "check_real"]


def check_size(name: str, value: Any) -> int:
    """A positive integer (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} must be a positive integer")
    if value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer (>= 1)")
    return int(value)


def check_real(name: str, value: Any, allow_zero: bool = False) -> float:
    """A finite real number ``> 0`` (or ``>= 0`` with ``allow_zero``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a real number") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'} and finite")
    return x
