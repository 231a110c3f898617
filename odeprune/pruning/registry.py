"""The one registry of pruning methods: every name, what it accepts, and how it runs.

One :class:`Method` per method, node and edge, holding its limit form (a map on order
parameters, :func:`odeprune.prune`) and its finite-N form (real weights,
:func:`odeprune.pruning.prune_weights`) side by side. The methods themselves are the classes of
:mod:`odeprune.pruning.node` (:class:`~odeprune.pruning.node.NodeMethod`) and
:mod:`odeprune.pruning.edge_rules` (:class:`~odeprune.pruning.edge_rules.EdgeRule`), each
declaring its name once; every list of names in the package (``METHODS``, ``NODE_METHODS``,
``EDGE_METHODS``, ``DETERMINISTIC``, the reweightings, the CLI's choices) is derived here from
those classes.

The reweightings are declared with their maps in :mod:`odeprune.pruning.reweight` (with the kind
of method each applies to) and listed here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from . import edge_map, edge_rules, node
from .reweight import (
    EDGE_REWEIGHTS,
    NODE_REWEIGHTS,
    REWEIGHTINGS,
    REWEIGHTS_BY_KIND,
    SPARSE_REWEIGHTS,
)

__all__ = ["Method", "REGISTRY", "METHODS", "NODE_METHODS", "EDGE_METHODS", "DETERMINISTIC",
           "REWEIGHTINGS", "REWEIGHTS", "NODE_REWEIGHTS", "EDGE_REWEIGHTS", "SPARSE_REWEIGHTS",
           "get", "methods", "reweights_for", "help_text"]

@dataclass(frozen=True)
class Method:
    """One pruning method.

    Attributes
    ----------
    name : str
    kind : {"node", "edge"}
        Node methods keep ``k`` of the ``K`` units; edge methods a fraction ``c`` of the
        first-layer weights.
    deterministic : bool
        One outcome in the limit (edge maps always: the pruned overlaps self-average).
    one_mask : bool
        One subset / mask of real weights at finite N (no randomness in it).
    seeded : bool
        The limit form uses ``seed`` (sampled subsets, coordinate Monte Carlo).
    sampled : bool
        Node subsets are sampled (``exact``, ``n_samples``; ``--monte-carlo``).
    uses_kernel : bool
        Takes the DPP ``kernel``.
    description : str
        One line for ``--help``.
    limit : callable
        Node: ``limit(state, k, *, kernel, activation, exact, n_samples, rng, progress) ->
        (subsets, probabilities, n_draws)``; edge: ``limit(state, c, *, seed, n_samples,
        progress) -> (pruned state, EdgeMapResult or None)``.
    finite : callable
        Node: ``finite(v, k, *, H, Gs, kernel, n_masks, rng) -> subsets``; edge:
        ``finite(w, c, rng, *, v, w_star, v_star, n_samples, activation, dpp_exact_max_N) ->
        (mask, info)``.
    """

    name: str
    kind: str
    deterministic: bool
    one_mask: bool
    seeded: bool
    sampled: bool
    uses_kernel: bool
    description: str
    limit: Callable
    finite: Callable

    @property
    def reweights(self) -> tuple[str, ...]:
        """The reweightings this method accepts."""
        return REWEIGHTS_BY_KIND[self.kind]

    @property
    def sparse(self) -> bool:
        """A per-class (masked) state exists after this method
        (:func:`odeprune.pruning.sparse_state`): edge rules only."""
        return self.kind == "edge"


def _edge_limit(cls, state, c, *, seed, n_samples, progress):
    """``(pruned state, EdgeMapResult or None)``: the rule's closed form (None) or its
    Gaussian-coordinate map (:func:`~odeprune.pruning.edge_map.cached_edge_prune_map`)."""
    exact = cls().closed_form(state, c)
    if exact is not None:
        return exact, None
    mapped = edge_map.cached_edge_prune_map(state, cls.name, c, seed=seed, n_samples=n_samples,
                                            progress=progress)
    return mapped.state, mapped


def _edge_finite(cls, w, c, rng, **options):
    return cls().mask(w, c, rng, **options)


def _node_entry(cls: type[node.NodeMethod]) -> Method:
    return Method(name=cls.name, kind="node", deterministic=cls.deterministic,
                  one_mask=cls.deterministic, seeded=cls.sampled, sampled=cls.sampled,
                  uses_kernel=cls.uses_kernel, description=cls.description, limit=cls.limit,
                  finite=cls.finite)


def _edge_entry(cls: type[edge_rules.EdgeRule]) -> Method:
    return Method(name=cls.name, kind="edge", deterministic=True, one_mask=cls.deterministic,
                  seeded=cls.needs_gradient, sampled=False, uses_kernel=False,
                  description=cls.description, limit=functools.partial(_edge_limit, cls),
                  finite=functools.partial(_edge_finite, cls))


#: every method by name: node methods, then edge rules
REGISTRY: dict[str, Method] = {m.name: m for m in (
    *(_node_entry(cls) for cls in node.NODE_CLASSES),
    *(_edge_entry(cls) for cls in edge_rules.RULES.values()))}

METHODS = tuple(REGISTRY)
NODE_METHODS = tuple(m.name for m in REGISTRY.values() if m.kind == "node")
EDGE_METHODS = tuple(m.name for m in REGISTRY.values() if m.kind == "edge")
#: methods with a single outcome in the limit
DETERMINISTIC = tuple(m.name for m in REGISTRY.values() if m.deterministic)
REWEIGHTS = tuple(REWEIGHTINGS)

assert set(REGISTRY) == set(node.NODE_METHODS) | set(edge_rules.RULES)
assert all(set(r) <= set(REWEIGHTINGS) for r in REWEIGHTS_BY_KIND.values())


def get(name: str) -> Method:
    """The method called ``name``; ``ValueError`` (one line, listing the names) otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"method={name!r} is unknown; allowed {METHODS}")
    return REGISTRY[name]


def methods(kind: str | None = None, **flags: bool) -> tuple[str, ...]:
    """Names of the methods of ``kind`` (``"node"``, ``"edge"`` or all) whose attributes equal
    ``flags``, e.g. ``methods(seeded=True)``."""
    return tuple(m.name for m in REGISTRY.values()
                 if (kind is None or m.kind == kind)
                 and all(getattr(m, f) == value for f, value in flags.items()))


def reweights_for(kind: str) -> tuple[str, ...]:
    """The reweightings a kind of method (``"node"`` or ``"edge"``) accepts."""
    return REWEIGHTS_BY_KIND[kind]


def help_text(kind: str | None = None) -> str:
    """One line per method (``name: description``), for ``--help``."""
    return "\n".join(f"  {m.name:<22} {m.description}" for m in REGISTRY.values()
                     if kind is None or m.kind == kind)
