"""Pruning in the thermodynamic limit (maps on order parameters) and on finite-N weights.

- :func:`prune` -- every method of the registry as an exact map on :class:`~odeprune.OrderParams`
  (node pruning: random, importance, k-DPP, k-DPP MAP; edge rules as Gaussian-coordinate maps),
  with second-layer reweighting; returns a :class:`PruneResult` (the distribution of the
  generalisation error over the method's randomness). Sources: Acharyya et al. (2021), Lemmas
  1-6; docs/theory.md §6.
- :func:`prune_weights` -- the same methods on real weights at finite N, with test errors on
  fresh samples (:mod:`odeprune.pruning.finite`).
- :func:`sparse_state`, :func:`sparse_state_from_joint` -- the per-class state
  (:class:`~odeprune.sparse.SparseOrderParams`) of a network pruned by an edge rule, the input
  of the masked-network ODE (retraining, lottery tickets; docs/theory.md §8-§9).

One job per module:

- :mod:`.registry` -- the one table of methods (names, kinds, reweightings, limit and finite-N
  forms); every list of method names is derived from it;
- :mod:`.node` -- node methods; :mod:`.dpp` -- k-DPP probabilities, marginals, samplers;
- :mod:`.edge_rules` -- edge rules (keep probabilities, calibration on :class:`UnitLaws`, finite-N
  masks); :mod:`.gaussian` -- the Gaussian-coordinate integrals; :mod:`.edge_map` -- the limit
  map of an edge rule (:func:`edge_prune_map`);
- :mod:`.sparse_maps` -- per-class states; :mod:`.sparse_mc` -- their stratified Monte Carlo;
- :mod:`.reweight` -- second-layer reweighting, in the limit and at finite N;
- :mod:`.finite`, :mod:`.finite_edges` -- real weights; :mod:`.theory` -- the paper's closed forms.
"""

from __future__ import annotations

from ._api import METHODS, REWEIGHTS, PruneOptions, PruneResult, prune
from .edge_map import EdgeMapResult, edge_prune_map
from .edge_rules import EdgeRule, UnitLaws, random_edge_map
from .finite import FinitePruneResult, prune_weights
from .sparse_maps import sparse_state, sparse_state_from_joint

__all__ = ["prune", "PruneResult", "PruneOptions", "prune_weights", "FinitePruneResult",
           "METHODS", "REWEIGHTS",
           "sparse_state", "sparse_state_from_joint", "edge_prune_map", "EdgeMapResult",
           "EdgeRule", "UnitLaws", "random_edge_map"]
