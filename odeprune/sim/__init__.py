"""Finite-N online SGD, the ground truth of the ODEs.

- :mod:`~odeprune.sim.kernel`: the compiled SGD step (arrays + one :class:`SGDParams` record);
- :mod:`~odeprune.sim.results`: :class:`SimulationResult`, :class:`SimulationEnsemble`;
- :mod:`~odeprune.sim.run`: one seed's run, the drivers (one or several seeds on any
  ``concurrent.futures.Executor``) under the shared run control, and :func:`simulate`.
"""

from __future__ import annotations

from .kernel import SGDParams, sgd_steps
from .results import SimulationEnsemble, SimulationResult
from .run import default_save_at, sgd_streams, simulate

__all__ = ["simulate", "SimulationResult", "SimulationEnsemble", "default_save_at", "sgd_streams",
           "SGDParams", "sgd_steps"]
