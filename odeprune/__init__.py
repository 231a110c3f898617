"""odeprune: learning dynamics and pruning of two-layer networks in the teacher-student setup.

The thermodynamic limit (order-parameter ODEs, pruning as maps on order parameters) and finite-N
online SGD, in one notation (Goldt et al. 2019; Acharyya et al. 2021).
"""

from __future__ import annotations

from ._io import package_version as _package_version
from .dynamics import integrate
from .errors import DivergenceError, OdepruneInterrupted
from .results import LearningCurve, load
from .state import OrderParams

__version__ = _package_version()

__all__ = [
    "OrderParams",
    "LearningCurve",
    "integrate",
    "load",
    "DivergenceError",
    "OdepruneInterrupted",
    "__version__",
]
