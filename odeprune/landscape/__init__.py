r"""The loss landscape of the population error through order parameters (docs/theory.md §10,
docs/landscape.md): gradient and exact Hessian spectrum, sharpness, Zhang et al.'s (2024)
pruning limit in the limit N → ∞ and what one-shot pruning actually reaches — at unregularised
minima (:mod:`.hessian`), at L1-trained minima (:mod:`.l1`) and in Zhang et al.'s own protocol
(:mod:`.protocol`: L1 training, one-shot global magnitude pruning without refit, their ε as the
spread of the B-sample batch loss, the spectrum as |λ| with their flat-fraction correction).

Modules: :mod:`.hessian` (derivatives of I2, spectrum, the formula's limit, the actual limit of
an ``OrderParams``, finite-N Hessians), :mod:`.l1` (L1-trained minima and their stationarity),
:mod:`.protocol` (the batch-loss spread and their protocol on coordinate laws and real weights).
"""

from .hessian import (
    CURVATURE_RTOL,
    GRAD_TOL,
    RANK_RTOL,
    SUPPORTED,
    ActualLimit,
    Gradient,
    HessianSpectrum,
    PruningLimit,
    Sharpness,
    _pair_moment,
    _terms,
    _upper_bound,
    actual_limit,
    empirical_hessian,
    global_threshold,
    gradient,
    hessian_spectrum,
    magnitude_global_map,
    population_hessian_weights,
    pruning_limit,
    removed_mass,
    sharpness,
)
from .l1 import (
    HISTOGRAM_THRESHOLDS,
    L1Minimum,
    l1_minimum,
    l1_minimum_finite,
    l1_residual,
    realise_weights,
)
from .protocol import (
    BatchSpread,
    ProtocolLimit,
    batch_loss_sd,
    flat_fraction,
    protocol_limit,
)

__all__ = [
    "ActualLimit", "BatchSpread", "Gradient", "HessianSpectrum", "L1Minimum", "ProtocolLimit",
    "PruningLimit", "Sharpness", "actual_limit", "batch_loss_sd", "empirical_hessian",
    "flat_fraction", "global_threshold", "gradient", "hessian_spectrum", "l1_minimum",
    "l1_minimum_finite", "l1_residual", "magnitude_global_map", "population_hessian_weights",
    "protocol_limit", "pruning_limit", "realise_weights", "removed_mass", "sharpness",
    "CURVATURE_RTOL", "GRAD_TOL", "HISTOGRAM_THRESHOLDS", "RANK_RTOL", "SUPPORTED",
    "_pair_moment", "_terms", "_upper_bound",
]
