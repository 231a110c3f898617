r"""Random edge pruning in the thermodynamic limit (Acharyya et al. 2021, Lemma 6).

Keeping every first-layer weight independently with probability ``c`` maps the order
parameters of the expected pruned network to

.. math::

    Q'_{ii} = c\,Q_{ii},\quad Q'_{ik} = c^2 Q_{ik}\ (i \ne k),\quad R' = c\,R,\quad T' = T,
    \quad v' = v.

These are exact expectations at any N (independent Bernoulli masks); as N grows the pruned
overlaps self-average, so in the limit the pruned network *is* this map (the paper evaluates
Lemma 4 on it). Hence the limit has no spread over masks.

The map itself, :func:`random_edge_map`, lives with the other edge rules in
:mod:`odeprune.pruning.edge_rules` (its limit form, next to its finite-N mask); this module keeps
the names importable from here.
"""

from __future__ import annotations

from .edge_rules import EDGE_RULES, check_c, random_edge_map

__all__ = ["EDGE_METHODS", "random_edge_map", "check_c"]

#: every edge method of :func:`odeprune.prune` (the rule names of
#: :data:`odeprune.pruning.edge_rules.RULES`); all but ``random_edge`` (Lemma 6) are
#: Gaussian-coordinate maps
EDGE_METHODS = EDGE_RULES
