"""One registry of pruning methods: every list of names is derived from it,
every registered name dispatches, unknown names give one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from odeprune import OrderParams
from odeprune.pruning import (
    METHODS,
    REWEIGHTS,
    _api,
    edge_map,
    edge_rules,
    finite_edges,
    node,
    prune,
    prune_weights,
    registry,
    reweight,
    sparse_maps,
)


@pytest.fixture(scope="module")
def state():
    return OrderParams.random(500, 3, 2, v_star=2.0, seed=3)


def test_every_list_of_names_is_the_registrys():
    assert METHODS == tuple(registry.REGISTRY)
    assert node.NODE_METHODS == registry.NODE_METHODS == registry.methods("node")
    assert registry.EDGE_METHODS == registry.methods("edge")
    assert tuple(edge_rules.RULES) == registry.EDGE_METHODS
    # every edge method has its finite-N form (no separate list of "finite" rules)
    assert all(edge_rules.rule_class(m).mask is not edge_rules.EdgeRule.mask
               for m in registry.EDGE_METHODS)
    assert sparse_maps.SPARSE_METHODS == registry.methods(sparse=True) == registry.EDGE_METHODS
    # no module keeps a list of its own
    for module, name in ((edge_rules, "EDGE_RULES"), (finite_edges, "FINITE_EDGE_RULES")):
        assert not hasattr(module, name)
    assert METHODS == registry.NODE_METHODS + registry.EDGE_METHODS
    assert _api.DETERMINISTIC == registry.DETERMINISTIC
    assert REWEIGHTS == tuple(registry.REWEIGHTINGS)
    assert reweight.NODE_REWEIGHTS == registry.reweights_for("node")
    assert reweight.EDGE_REWEIGHTS == registry.reweights_for("edge")
    assert sparse_maps.SPARSE_REWEIGHTS == registry.SPARSE_REWEIGHTS
    assert set(registry.NODE_REWEIGHTS) | set(registry.EDGE_REWEIGHTS) == set(REWEIGHTS)


def test_every_entry_is_complete():
    for m in registry.REGISTRY.values():
        assert m.kind in ("node", "edge")
        assert m.description and "\n" not in m.description
        assert callable(m.limit) and callable(m.finite)
        assert set(m.reweights) <= set(REWEIGHTS)
        assert m.sparse == (m.kind == "edge")
        assert m.name in registry.help_text(m.kind)
    assert registry.DETERMINISTIC == ("importance_node", "dpp_map_node") + registry.EDGE_METHODS
    assert registry.methods(one_mask=True) == ("importance_node", "dpp_map_node",
                                               "magnitude_edge", "magnitude_edge_global")
    assert registry.methods(seeded=True) == ("random_node", "dpp_node", "snip_edge",
                                             "snip_edge_global")


@pytest.mark.parametrize("method", METHODS)
def test_every_registered_name_dispatches_in_the_limit(state, method):
    m = registry.get(method)
    size = dict(k=2) if m.kind == "node" else dict(c=0.5)
    r = prune(state, method, **size, seed=0, n_samples=2000, progress=False)
    assert r.method == method and np.all(np.isfinite(r.eg_values))
    if m.deterministic:
        assert r.exact and r.n_outcomes == 1


@pytest.mark.parametrize("method", METHODS)
def test_every_registered_name_dispatches_at_finite_n(method):
    rng = np.random.default_rng(0)
    N, K, M = 40, 3, 2
    w, w_star = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    m = registry.get(method)
    size = dict(k=2) if m.kind == "node" else dict(c=0.5)
    r = prune_weights(w, np.ones(K), w_star, np.ones(M), method=method, **size, n_masks=3,
                      n_samples=200, n_test=50, seed=1, predict=False, progress=False)
    assert r.n_masks == (1 if m.one_mask else 3)


@pytest.mark.parametrize("call", [
    lambda s: prune(s, "no_such_method", k=1),
    lambda s: registry.get("no_such_method"),
    lambda s: prune_weights(np.ones((2, 4)), np.ones(2), np.ones((1, 4)), np.ones(1),
                            method="no_such_method", k=1),
])
def test_unknown_method_is_one_line_listing_the_names(state, call):
    with pytest.raises(ValueError) as err:
        call(state)
    text = str(err.value)
    assert "\n" not in text and "no_such_method" in text
    assert all(name in text for name in METHODS)


def test_unknown_edge_rule_lists_the_rules(state):
    for call in (lambda: edge_map.edge_prune_map(state, "bogus", 0.5),
                 lambda: finite_edges.edge_mask(np.ones((2, 4)), "bogus", 0.5)):
        with pytest.raises(ValueError, match="bogus.*unknown") as err:
            call()
        assert all(name in str(err.value) for name in registry.EDGE_METHODS)


def test_edge_map_memo_is_explicit_and_bounded(state):
    f = edge_map.cached_edge_prune_map
    f.cache_clear()
    a = f(state, "magnitude_edge", 0.5, seed=0, n_samples=1000, progress=False)
    b = f(state.replace(), "magnitude_edge", 0.5, seed=0, n_samples=1000, progress=False)
    assert a is b   # equal values hit
    c = f(state, "magnitude_edge", 0.5, seed=np.random.default_rng(0), n_samples=1000,
          progress=False)
    assert c is not a  # a Generator is never memoised
    info = edge_map._edge_prune_map_by_value.cache_info()
    assert info.maxsize == edge_map.CACHE_SIZE and info.currsize == 1
    f.cache_clear()


def test_coordinate_law_rule_names_match_the_registry():
    """coords (a lower layer) names the edge rules by (family, scope); the rule classes declare
    the same, so the two tables cannot drift apart."""
    import importlib

    decide = importlib.import_module("odeprune.coords.decide")
    assert decide.PRUNE_NAMES == {name: (cls.family, cls.scope)
                                  for name, cls in edge_rules.RULES.items()}
    assert set(decide.RULES) == {cls.family for cls in edge_rules.RULES.values()}
    for family, has_global in decide.RULES.items():
        assert has_global == any(cls.scope == "global" for cls in edge_rules.RULES.values()
                                 if cls.family == family)
