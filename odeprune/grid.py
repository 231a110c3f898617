r"""The default grid of saved times, one rule for every driver.

Learning curves of two-layer networks change on a logarithmic clock (a fast start, a plateau,
an exponential approach to the fixed point: ``docs/theory.md`` §4), so every run that is not
given its own ``save_at`` saves at

.. math:: \{0\} \cup \{\text{lo}\,(\alpha_{\max}/\text{lo})^{i/(n-1)} : i = 0..n-1\}
          \cup \{\alpha_{\max}\} \cup \{r \in \text{report} : r \le \alpha_{\max}\},

sorted, duplicates removed (:func:`save_times`). The drivers differ only in the two numbers
``n`` and ``lo`` (the lower bound of the log-spaced part), written beside their entry points:
the ODE saves many points down to ``lo = min(0.01, alpha_max/100)`` (saving costs nothing), a
finite-N simulation and a workflow 40 points from ``lo = min(1, alpha_max/100)`` (each saved
point of a simulation costs a test evaluation), a coordinate-law run 20 points from
``lo = min(1, alpha_max)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._validate import check_real, check_size

__all__ = ["save_times", "default_lo"]


def default_lo(alpha_max: float) -> float:
    """The default lower bound of the log-spaced part: ``min(1, alpha_max / 100)``."""
    return min(1.0, alpha_max / 100.0)


def save_times(alpha_max: float, n: int = 40, *, lo: float | None = None,
               report: Sequence[float] = ()) -> np.ndarray:
    r"""Saved times: 0, ``n`` log-spaced times from ``lo`` to ``alpha_max``, ``alpha_max`` and
    the ``report`` times up to ``alpha_max``; sorted, unique.

    Parameters
    ----------
    alpha_max : float
        End of the run, > 0.
    n : int
        Number of log-spaced times (>= 1; ``n = 1`` gives just ``lo``).
    lo : float, optional
        Lower bound of the log-spaced part, in ``(0, alpha_max]``; default
        :func:`default_lo` (``min(1, alpha_max / 100)``).
    report : sequence of float
        Times that must be saved (e.g. the times a table reports); those above ``alpha_max``
        are dropped, the others must be finite and >= 0.

    Returns
    -------
    ndarray, shape (m,)
        Sorted unique times in ``[0, alpha_max]``, starting at 0 and ending at ``alpha_max``.
    """
    alpha_max = check_real("alpha_max", alpha_max)
    n = check_size("n", n)
    lo = default_lo(alpha_max) if lo is None else check_real("lo", lo)
    if lo > alpha_max:
        raise ValueError(f"lo={lo!r} must not exceed alpha_max={alpha_max!r}")
    try:
        rep = np.asarray(report, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"report={report!r} must be a list of times") from None
    if not np.all(np.isfinite(rep)) or np.any(rep < 0):
        raise ValueError(f"report={report!r} must hold finite times >= 0")
    return np.unique(np.concatenate([[0.0], np.geomspace(lo, alpha_max, n), [alpha_max],
                                     rep[rep <= alpha_max]]))
