"""Run control shared by every long-running driver: progress bar, chunking by time, Ctrl-C/SIGTERM.

A driver calls compiled code in chunks; between chunks it updates the progress bar, writes a
checkpoint and looks at :attr:`RunControl.interrupted`. While a run is active, SIGINT and SIGTERM
only set that flag (no exception can then land inside compiled code, which numba reports as a
``SystemError``); a second Ctrl-C interrupts at once. A signal that the run never acted on (it
came during the last chunk) is passed on when the run ends, to whoever handled signals before.
The chunk length adapts so that one chunk takes about ``target_seconds`` whatever the cost of a
step (large K: one step per chunk).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from .._pool import stop_requested
from ..errors import OdepruneInterrupted
from .progress import make_bar

__all__ = ["RunControl", "interrupted_error"]


def interrupted_error(what: str, why: str, where: str, checkpoint) -> OdepruneInterrupted:
    """The one message of a stopped run: what stopped, why (Ctrl-C / SIGTERM), where, and how
    to resume (or that nothing was saved)."""
    msg = f"{what} interrupted ({why}) at {where}"
    if checkpoint is not None:
        msg += (f"; checkpoint saved to {str(checkpoint)!r}: resume with resume=True (CLI: the "
                "same command with --resume)")
    else:
        msg += ("; nothing saved (pass checkpoint=PATH, CLI --output/--checkpoint, to be able to "
                "resume)")
    return OdepruneInterrupted(msg, None if checkpoint is None else str(checkpoint))


class RunControl:
    """Context manager for one long run.

    Parameters
    ----------
    total : float
        Where the run ends (e.g. ``alpha_max``), for the progress bar.
    desc : str
        Progress-bar label.
    progress : bool or None
        Show a tqdm bar on stderr (None: when stderr is a terminal; :mod:`odeprune.ode.progress`).
    start : float
        Where the run starts (resume).
    max_chunk : int, optional
        Upper bound on the steps of one chunk.
    target_seconds : float
        Wall time one chunk should take.
    """

    def __init__(self, total: float, desc: str, progress: bool | None = None, start: float = 0.0,
                 max_chunk: int | None = None, target_seconds: float = 0.25, unit: str = "α"):
        self.total = float(total)
        self.desc = desc
        self.progress = progress
        self.start = float(start)
        self.max_chunk = max_chunk
        self.target = float(target_seconds)
        self.unit = unit
        self._signum: int | None = None  # the signal that came during the run, if one did
        self._steps = 1
        self._old: dict = {}
        self.bar = make_bar(False, 1, desc)
        self._t_last_save = time.monotonic()
        self._first_save = True

    # ------------------------------------------------------------------ context
    def __enter__(self) -> RunControl:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - exotic platforms
                    pass
        self.bar = make_bar(self.progress, self.total, self.desc, self.unit,
                            bar_format="{l_bar}{bar}| " + self.unit
                            + "={n:.4g}/{total:g} [{elapsed}<{remaining}]")
        self.bar.update(self.start)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        self.bar.close()
        if exc_type is None and self._signum is not None:
            # the run ended (the signal came during its last chunk) without stopping for it: the
            # signal is not dropped, the handler in place before the run (the command line's, a
            # script's KeyboardInterrupt, an enclosing run) gets it now
            signal.raise_signal(self._signum)

    def _handler(self, signum, frame) -> None:
        if self._signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self._signum = signum

    @property
    def interrupted(self) -> str | None:
        """Why the run must stop (``"Ctrl-C"``, ``"SIGTERM"``), or None. A run in a worker
        thread of a pool also stops when the pool's caller asks its items to
        (:func:`odeprune._pool.stop_requested`): signals reach the main thread only."""
        if self._signum is not None:
            return "SIGTERM" if self._signum == signal.SIGTERM else "Ctrl-C"
        return stop_requested()

    # ------------------------------------------------------------------ chunks
    def chunk_steps(self) -> int:
        """Steps for the next chunk (>= 1)."""
        n = self._steps
        if self.max_chunk is not None:
            n = min(n, self.max_chunk)
        return max(1, int(n))

    def chunk_done(self, position: float, steps: int, seconds: float) -> None:
        """Record a finished chunk: update the bar and the next chunk length."""
        if steps > 0 and seconds > 0:
            per = seconds / steps
            want = self.target / per
            self._steps = int(max(1, min(want, 4 * max(self._steps, 1), 1_000_000)))
        elif steps > 0:
            self._steps = min(4 * self._steps, 1_000_000)
        self.bar.update(min(position, self.total) - self.bar.n)

    def checkpoint_due(self) -> bool:
        """True after the first chunk, then at most once every ``ODEPRUNE_CHECKPOINT_EVERY_S``
        seconds (default 2; checkpoints are written by time, as for ``simulate``)."""
        now = time.monotonic()
        if self._first_save:
            self._first_save = False
            self._t_last_save = now
            return True
        every = float(os.environ.get("ODEPRUNE_CHECKPOINT_EVERY_S", "2"))
        if now - self._t_last_save >= every:
            self._t_last_save = now
            return True
        return False
