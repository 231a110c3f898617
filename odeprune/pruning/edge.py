"""Transitional: removed once ``odeprune/workflows/init.py`` and ``odeprune/workflows/tickets.py``
import ``check_c`` from :mod:`odeprune.pruning.edge_rules` (the shim of an unreleased 0.1.0)."""

from __future__ import annotations

from .edge_rules import check_c, random_edge_map
from .registry import EDGE_METHODS

__all__ = ["EDGE_METHODS", "random_edge_map", "check_c"]
