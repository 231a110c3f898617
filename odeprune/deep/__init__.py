"""Deep fully-connected networks at initialisation: signal propagation, the edge of chaos, and
pruning at initialisation (random, magnitude, SBP with a global threshold, SBP-SR rescaling).

Mean field (:mod:`.meanfield`, Poole et al. 2016; Schoenholz et al. 2017; Hayou et al. 2019),
pruning maps and the SBP score law (:mod:`.pruning`, Hayou et al. 2021), real finite-width
networks in numpy (:mod:`.finite`). Equations, approximations and measured agreement:
``docs/deep.md``. Activations: ``"tanh"``, ``"erf"`` (= erf(x / sqrt 2)), ``"relu"``.

>>> from odeprune import deep
>>> round(deep.edge_of_chaos("tanh", 0.2), 6)
1.304146
"""

from __future__ import annotations

from . import finite
from .finite import Network, measured_critical_sparsity, sample_network, sbp_scores
from .gauss import gauss_1d, gauss_2d
from .meanfield import (
    backward_profile,
    chi1,
    chi_profile,
    correlation_fixed_point,
    correlation_map,
    correlation_profile,
    depth_scales,
    edge_of_chaos,
    phase,
    variance_fixed_point,
    variance_map,
    variance_profile,
)
from .pruning import (
    SBPPrediction,
    critical_sparsity,
    magnitude_kept_variance,
    pruned_sigma_w,
    random_kept_variance,
    sbp_prediction,
    score_tail,
    score_tail_variance,
)

__all__ = [
    "edge_of_chaos", "variance_fixed_point", "chi1", "variance_map", "correlation_map",
    "correlation_fixed_point", "depth_scales", "phase", "variance_profile",
    "correlation_profile", "backward_profile", "chi_profile", "gauss_1d", "gauss_2d",
    "random_kept_variance", "magnitude_kept_variance", "pruned_sigma_w", "score_tail",
    "score_tail_variance", "SBPPrediction", "sbp_prediction", "critical_sparsity",
    "finite", "Network", "sample_network", "sbp_scores", "measured_critical_sparsity",
]
