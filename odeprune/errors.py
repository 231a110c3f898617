"""Exceptions raised by odeprune."""

from __future__ import annotations

__all__ = ["DivergenceError", "MaxStepsReached", "OdepruneInterrupted", "OdepruneAccuracyWarning"]


class DivergenceError(RuntimeError):
    """A run whose state stopped being finite or positive semi-definite.

    Attributes
    ----------
    alpha : float
        Time of the last good state.
    last_state : OrderParams or None
        The last good state (finite and PSD), when one could be built.
    saved_to : str or None
        Where the last good state was written, when a path was given.
    """

    def __init__(self, message: str, alpha: float, last_state=None, saved_to=None):
        super().__init__(message)
        self.alpha = alpha
        self.last_state = last_state
        self.saved_to = saved_to


class MaxStepsReached(RuntimeError):
    """A run that used up its step budget (``max_steps``) before the end: not a divergence (the
    state is finite and valid), a budget; ``str()`` says how many steps and how to raise it.

    Attributes
    ----------
    alpha : float
        Time the run had reached.
    max_steps : int
        The budget that was used up.
    last_state : OrderParams, SparseOrderParams or None
        The state at ``alpha``.
    """

    def __init__(self, message: str, alpha: float, max_steps: int, last_state=None):
        super().__init__(message)
        self.alpha = alpha
        self.max_steps = max_steps
        self.last_state = last_state


class OdepruneInterrupted(KeyboardInterrupt):
    """Ctrl-C during a long run, after its checkpoint was written; ``str()`` says how to resume."""

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


class OdepruneAccuracyWarning(RuntimeWarning):
    """A result whose last digits the requested tolerances may not resolve (e.g. a tiny final
    eps_g of an explicit run); the message says what to change."""
