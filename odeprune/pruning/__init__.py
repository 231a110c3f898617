"""Pruning in the thermodynamic limit (maps on order parameters) and on finite-N weights.

- :func:`prune` -- node pruning (random, importance, k-DPP, k-DPP MAP) and random edge pruning
  as exact maps on :class:`~odeprune.OrderParams`, with second-layer reweighting; returns a
  :class:`PruneResult` (the distribution of the generalisation error over the method's
  randomness). Sources: Acharyya et al. (2021), Lemmas 1-6; docs/theory.md §6.
- :mod:`odeprune.pruning.theory` -- the paper's closed forms (Lemma 2-4, Theorems 2-3).
- :func:`prune_weights` -- the same methods on real weights at finite N, with test errors on
  fresh samples (:mod:`odeprune.pruning.finite`).
- :mod:`odeprune.pruning.dpp` -- k-DPP probabilities, marginals, exact sampler, greedy MAP.
- :mod:`odeprune.pruning.registry` -- the one table of methods (names, kinds, reweightings,
  limit and finite-N forms); every list of method names is derived from it.
- :func:`sparse_state`, :func:`sparse_state_from_joint` -- the per-class state
  (:class:`~odeprune.sparse.SparseOrderParams`) of a network pruned by an edge rule, the input
  of the masked-network ODE (retraining, lottery tickets; docs/theory.md §8-§9).
"""

from __future__ import annotations

from ._api import METHODS, REWEIGHTS, PruneResult, prune
from .finite import FinitePruneResult, prune_weights
from .sparse_maps import sparse_state, sparse_state_from_joint

__all__ = ["prune", "PruneResult", "prune_weights", "FinitePruneResult", "METHODS", "REWEIGHTS",
           "sparse_state", "sparse_state_from_joint"]
