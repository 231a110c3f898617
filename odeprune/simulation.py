"""Finite-N online SGD (this module path is kept for one release; the code is in
:mod:`odeprune.sim`: ``kernel`` (the SGD step), ``results``, ``run`` (run control and
:func:`simulate`))."""

from __future__ import annotations

from .sim import SimulationEnsemble, SimulationResult, default_save_at, sgd_streams, simulate

__all__ = ["simulate", "SimulationResult", "SimulationEnsemble", "default_save_at", "sgd_streams"]
