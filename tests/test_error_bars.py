"""Every Monte Carlo error bar of pruning (``odeprune/pruning``: the limit maps and the finite-N
results) against its seed-to-seed spread."""

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams


def _band(n: int, p: float = 1e-3) -> tuple[float, float]:
    """Two-sided (1 - p) band of the ratio sample std / true std over n values (chi-square with
    n - 1 degrees of freedom), widened by 10% for the noise of the mean reported se."""
    from scipy.stats import chi2

    lo = np.sqrt(chi2.ppf(p / 2, n - 1) / (n - 1))
    hi = np.sqrt(chi2.ppf(1 - p / 2, n - 1) / (n - 1))
    return lo / 1.1, hi * 1.1


@pytest.mark.parametrize("method,kw", [
    ("random_node", dict(k=3, exact=False, n_samples=300)),
    ("dpp_node", dict(k=3, exact=False, n_samples=300)),
    ("snip_edge", dict(c=0.5)),
    ("snip_edge_global", dict(c=0.5, reweight="rescale")),
])
def test_monte_carlo_error_bars_are_calibrated(method, kw, record_property):
    """Seed-to-seed spread of eg_mean over 40 seeds against the mean reported eg_se (issue 17:
    SNIP's was 2.1x too small, from propagating Q's entry errors as independent, R's ignored)."""
    s = odeprune.integrate(OrderParams.random(300, 5, 2, v_star=3.0, seed=0), eta=0.5,
                           alpha_max=30.0).final
    n = 40
    res = [odeprune.prune(s, method, seed=1000 + i, progress=False, **kw) for i in range(n)]
    eg = np.array([r.eg_mean for r in res])
    se = np.array([r.eg_se for r in res])
    ratio = eg.std(ddof=1) / se.mean()
    record_property("spread_over_se", float(ratio))
    lo, hi = _band(n)
    assert lo < ratio < hi, (ratio, lo, hi)


@pytest.mark.parametrize("which", ["prune_weights", "prune_edges_weights"])
def test_finite_n_error_bars_are_calibrated(which, record_property):
    """The finite-N pruning results' eg_se and test_error_se against their seed-to-seed spread
    (40 seeds; chi-square band as above)."""
    from odeprune.pruning import finite_edges, prune_weights

    w, w_star, v, v_star = OrderParams.draw_weights(60, 4, 2, 2.0, seed=5)
    n = 40
    if which == "prune_weights":
        res = [prune_weights(w, v, w_star, v_star, method="random_node", k=2, n_masks=8,
                             n_samples=100, n_test=300, seed=i, predict=False, progress=False)
               for i in range(n)]
    else:
        res = [finite_edges.prune_edges_weights(w, v, w_star, v_star, rule="random_edge", c=0.5,
                                                n_masks=8, n_test=300, seed=i, predict=False,
                                                progress=False)
               for i in range(n)]
    lo, hi = _band(n)
    for mean, se in (("eg_mean", "eg_se"), ("test_error_mean", "test_error_se")):
        spread = np.std([getattr(r, mean) for r in res], ddof=1)
        ratio = spread / np.mean([getattr(r, se) for r in res])
        record_property(f"{mean}_spread_over_se", float(ratio))
        assert lo < ratio < hi, (mean, ratio, lo, hi)

