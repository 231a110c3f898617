r"""The loss landscape of the population error through order parameters (docs/theory.md §10,
docs/landscape.md): gradient and exact Hessian spectrum, sharpness, Zhang et al.'s (2024)
pruning limit in the limit N → ∞ and what one-shot pruning actually reaches — at unregularised
minima, at L1-trained minima (:mod:`.l1`) and in Zhang et al.'s own protocol (:mod:`.protocol`:
L1 training, one-shot global magnitude pruning without refit, their ε as the spread of the
B-sample batch loss, the spectrum as |λ| with their flat-fraction correction).

One job per module:

- :mod:`.derivatives` -- the derivatives of I2 through the order parameters and the gradient;
- :mod:`.spectrum` -- the exact Hessian spectrum (bulk and outliers) and the sharpness;
- :mod:`.limits` -- Zhang et al.'s limit (:func:`pruning_limit`) and the kept fraction one-shot
  pruning actually needs (:func:`actual_limit`, through :func:`odeprune.prune`);
- :mod:`.finite_hessian` -- Hessians of finite-N weights (population by JAX, empirical);
- :mod:`.l1` -- L1-trained minima and their stationarity;
- :mod:`.protocol` -- the batch-loss spread and their protocol on coordinate laws and weights.
"""

from .derivatives import RANK_RTOL, SUPPORTED, Gradient, gradient
from .finite_hessian import empirical_hessian, population_hessian_weights
from .l1 import (
    HISTOGRAM_THRESHOLDS,
    L1Minimum,
    l1_minimum,
    l1_minimum_finite,
    l1_residual,
    realise_weights,
)
from .limits import (
    CURVATURE_RTOL,
    GRAD_TOL,
    ActualLimit,
    PruningLimit,
    _terms,
    _upper_bound,
    actual_limit,
    global_threshold,
    pruning_limit,
    removed_mass,
)
from .protocol import (
    BatchSpread,
    Protocol,
    ProtocolLimit,
    batch_loss_sd,
    flat_fraction,
    protocol_limit,
)
from .spectrum import HessianSpectrum, Sharpness, hessian_spectrum, sharpness

__all__ = [
    "ActualLimit", "BatchSpread", "Gradient", "HessianSpectrum", "L1Minimum", "Protocol",
    "ProtocolLimit",
    "PruningLimit", "Sharpness", "actual_limit", "batch_loss_sd", "empirical_hessian",
    "flat_fraction", "global_threshold", "gradient", "hessian_spectrum", "l1_minimum",
    "l1_minimum_finite", "l1_residual", "population_hessian_weights", "protocol_limit",
    "pruning_limit", "realise_weights", "removed_mass", "sharpness",
    "CURVATURE_RTOL", "GRAD_TOL", "HISTOGRAM_THRESHOLDS", "RANK_RTOL", "SUPPORTED",
    "_terms", "_upper_bound",
]
