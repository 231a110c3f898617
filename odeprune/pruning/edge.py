r"""Random edge pruning in the thermodynamic limit (Acharyya et al. 2021, Lemma 6).

Keeping every first-layer weight independently with probability ``c`` maps the order
parameters of the expected pruned network to

.. math::

    Q'_{ii} = c\,Q_{ii},\quad Q'_{ik} = c^2 Q_{ik}\ (i \ne k),\quad R' = c\,R,\quad T' = T,
    \quad v' = v.

These are exact expectations at any N (independent Bernoulli masks); as N grows the pruned
overlaps self-average, so in the limit the pruned network *is* this map (the paper evaluates
Lemma 4 on it). Hence the limit has no spread over masks.
"""

from __future__ import annotations

import numpy as np

from ..state import OrderParams

__all__ = ["EDGE_METHODS", "random_edge_map", "check_c"]

#: every edge method of :func:`odeprune.prune`; all but ``random_edge`` (Lemma 6, here) are
#: Gaussian-coordinate maps in :mod:`odeprune.pruning.edge_rules`
EDGE_METHODS = ("random_edge", "magnitude_edge", "magnitude_edge_global", "dpp_edge",
                "snip_edge", "snip_edge_global")


def check_c(c) -> float:
    """Validate the kept fraction of edges, ``0 <= c <= 1``."""
    if isinstance(c, (bool, np.bool_)):
        raise ValueError(f"c={c!r} must be a number in [0, 1]")
    try:
        value = float(c)
    except (TypeError, ValueError):
        raise ValueError(f"c={c!r} must be a number in [0, 1]") from None
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"c={c!r} is out of range; allowed 0 <= c <= 1")
    return value


def random_edge_map(state: OrderParams, c: float) -> OrderParams:
    r"""Order parameters of the expected network after random edge pruning (Lemma 6).

    Parameters
    ----------
    state : OrderParams
    c : float
        Kept fraction of first-layer weights, in [0, 1].

    Returns
    -------
    OrderParams
        :math:`Q' = c^2 Q + (c - c^2)\,\mathrm{diag}(Q)`, :math:`R' = cR`, ``T``, ``v`` unchanged.
    """
    c = check_c(c)
    Q = c * c * np.array(state.Q)
    np.fill_diagonal(Q, c * np.diag(state.Q))
    return state.replace(Q=Q, R=c * np.array(state.R))  # keeps T, v, v_star, activation
