"""odeprune: learning dynamics and pruning of two-layer networks in the teacher-student setup.

The thermodynamic limit (order-parameter ODEs, pruning as maps on order parameters) and finite-N
online SGD, in one notation (Goldt et al. 2019; Acharyya et al. 2021).

Heavier parts (simulation, pruning, theory, batches) are imported on first use, so that
``import odeprune`` stays light and never imports JAX or matplotlib.
"""

from __future__ import annotations

import importlib

from ._io import package_version as _package_version
from .dynamics import integrate
from .errors import DivergenceError, OdepruneInterrupted
from .results import LearningCurve, load
from .state import OrderParams

__version__ = _package_version()

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "simulate": ("odeprune.simulation", "simulate"),
    "SimulationResult": ("odeprune.simulation", "SimulationResult"),
    "SimulationEnsemble": ("odeprune.simulation", "SimulationEnsemble"),
    "prune": ("odeprune.pruning", "prune"),
    "PruneResult": ("odeprune.pruning", "PruneResult"),
    "theory": ("odeprune.pruning.theory", None),
    "integrate_batch": ("odeprune.batch", "integrate_batch"),
}

__all__ = [
    "OrderParams",
    "LearningCurve",
    "integrate",
    "load",
    "DivergenceError",
    "OdepruneInterrupted",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'odeprune' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
