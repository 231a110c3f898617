"""Re-export of :mod:`odeprune.workflows.schedules` (IMP and gradual pruning live in the
workflows package), kept until the public table of ``odeprune/__init__.py`` and the remaining
callers import from there."""

from .workflows.schedules import *  # noqa: F403
from .workflows.schedules import __all__  # noqa: F401
