"""odeprune: learning dynamics and pruning of two-layer networks in the teacher-student setup.

The thermodynamic limit (order-parameter ODEs, pruning as maps on order parameters) and finite-N
online SGD, in one notation (Goldt et al. 2019; Acharyya et al. 2021).

Every public name is imported on first use (PEP 562 ``__getattr__`` over the ``_LAZY`` table), so
``import odeprune`` imports neither numpy nor numba, scipy, JAX or matplotlib: a command line or a
script pays only for what it uses.
"""

from __future__ import annotations

import importlib
import os

# public name -> (module, attribute; None for the module itself)
_LAZY = {
    "OrderParams": ("odeprune.state", "OrderParams"),
    "LearningCurve": ("odeprune.results", "LearningCurve"),
    "Status": ("odeprune.results", "Status"),
    "integrate": ("odeprune.ode.dynamics", "integrate"),
    "load": ("odeprune.results", "load"),
    "DivergenceError": ("odeprune.errors", "DivergenceError"),
    "OdepruneInterrupted": ("odeprune.errors", "OdepruneInterrupted"),
    "OdepruneAccuracyWarning": ("odeprune.errors", "OdepruneAccuracyWarning"),
    "simulate": ("odeprune.sim", "simulate"),
    "SimulationResult": ("odeprune.sim", "SimulationResult"),
    "SimulationEnsemble": ("odeprune.sim", "SimulationEnsemble"),
    "prune": ("odeprune.pruning", "prune"),
    "PruneResult": ("odeprune.pruning", "PruneResult"),
    "theory": ("odeprune.pruning.theory", None),
    "integrate_batch": ("odeprune.ode.batch", "integrate_batch"),
    "SparseOrderParams": ("odeprune.sparse", "SparseOrderParams"),
    "SparseLearningCurve": ("odeprune.sparse", "SparseLearningCurve"),
    "TwoTimeCurve": ("odeprune.sparse", "TwoTimeCurve"),
    "landscape": ("odeprune.landscape", None),
    "sweep": ("odeprune.sweeps", "sweep"),
    "sweeps": ("odeprune.sweeps", None),
    "workflows": ("odeprune.workflows", None),
    "deep": ("odeprune.deep", None),
    "CoordinateLaw": ("odeprune.coords", "CoordinateLaw"),
    "CoordinateCurve": ("odeprune.coords", "CoordinateCurve"),
    "coords": ("odeprune.coords", None),
    "schedules": ("odeprune.workflows.schedules", None),
    "teachers": ("odeprune.teachers", None),
}

_HERE = os.path.dirname(__file__)


def _shipped(module_name: str) -> bool:
    """Whether ``module_name`` (inside this package) exists, without importing it."""
    rel = os.path.join(_HERE, *module_name.split(".")[1:])
    return os.path.isfile(rel + ".py") or os.path.isfile(os.path.join(rel, "__init__.py"))


#: the public names whose modules are shipped (``from odeprune import *`` never fails)
__all__ = ["__version__", *(name for name, (mod, _) in _LAZY.items() if _shipped(mod))]


def __getattr__(name: str):
    if name == "__version__":
        from ._io import package_version

        value = package_version()
    else:
        try:
            module_name, attr = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module 'odeprune' has no attribute {name!r}") from None
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the module exists but one of its own imports is missing
            raise ImportError(
                f"odeprune.{name} is part of the public API but its module {module_name!r} is "
                "not available in this installation (an older or partial checkout?)",
                name=module_name) from exc
        value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
