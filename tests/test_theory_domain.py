"""``odeprune.pruning.theory`` checks its domain, one message each."""

import numpy as np
import pytest


@pytest.mark.parametrize("call,match", [
    (lambda t: t.random_node_expected(2, 3, 7, 4.0), r"^k=7 is out of range; allowed 0 <= k "
                                                     r"<= K=Z\*M=6$"),
    (lambda t: t.lemma2_dpp_node(2, 0, 1), r"^Z=0 is out of range; allowed >= 1"),
    (lambda t: t.lemma2_dpp_node(2, 3, 1.5), r"^k=1.5 must be an integer; allowed 0 <= k <= M=2"),
    (lambda t: t.lemma2_dpp_node(2, 3, 3), r"^k=3 is out of range; allowed 0 <= k <= M=2"),
    (lambda t: t.lemma2_dpp_node_reweighted(2, 3, [1, 3]), r"^k=3 is out of range"),
    (lambda t: t.random_node_expected_reweighted(2, 3, -1), r"^k=-1 is out of range"),
    (lambda t: t.lemma4_random_edge(2.5, 3, 0.5), r"^M=2.5 must be an integer"),
    (lambda t: t.theorem3_rescaled_edge(2, 3, -0.1), r"^c=-0.1 is out of range; allowed 0 <= c"),
    (lambda t: t.theorem2_difference(4, 0.3), r"^c=0.3 is out of range; allowed 0 <= c <= 1/Z"),
    (lambda t: t.theorem3_difference(0, 0.3), r"^Z=0 is out of range"),
    (lambda t: t.lemma3_node_subset(2, 4, [1.5, 0]), r"^counts=1.5 must be an integer"),
    (lambda t: t.lemma3_node_subset_reweighted(2, 4, [0, 5]), r"^counts=5 is out of range"),
    (lambda t: t.lemma2_dpp_node(2, 3, 1, np.nan), r"^v_star=nan is out of range"),
    (lambda t: t.lemma2_dpp_node("2", 3, 1), r"^M='2' must be an integer"),
])
def test_theory_domain(call, match):
    from odeprune.pruning import theory

    with pytest.raises(ValueError, match=match):
        call(theory)

