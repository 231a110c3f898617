"""The coordinate law (``docs/theory.md`` §11): weighted particles of the input coordinates,
their exact training between decisions (per-class ODE plus linear response), decisions on them
(magnitude, SNIP, random, DPP; repeated), and the particle SDE for per-coordinate nonlinearities
(L1) and masks on any number of units."""

from .decide import RULES, decide
from .law import CoordinateLaw
from .linear import linear_response, train_fixed_masks
from .run import CoordinateCurve, integrate_law, load_law

__all__ = ["CoordinateLaw", "CoordinateCurve", "integrate_law", "load_law", "decide", "RULES",
           "linear_response", "train_fixed_masks"]
