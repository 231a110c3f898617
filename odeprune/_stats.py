"""Small statistics shared by the workflows, the finite-N pruning results and the figures."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sem"]


def sem(x, axis: int = 0) -> np.ndarray:
    """Standard error of the mean over ``axis`` (seeds): ``std(ddof=1) / sqrt(n)``; zero for
    a single seed (no spread to estimate)."""
    x = np.asarray(x, dtype=float)
    n = x.shape[axis]
    if n < 2:
        return np.zeros(np.delete(x.shape, axis)) if x.ndim > 1 else np.float64(0.0)
    return x.std(axis, ddof=1) / math.sqrt(n)
