"""Progress bars for long calls: one rule for every entry point.

``progress=None`` (the default of the Python API) means "show a bar when stderr is a terminal";
``True`` / ``False`` force it on or off. Bars are tqdm's, drawn on stderr, left off the screen
when done, and only appear after ``DELAY_S`` seconds, so quick calls print nothing.

The first piece of work of a run can take far longer than the rest: numba compiles its kernels
on a first run (tens of seconds), or one step of a large network is slow. A rate measured over
it would promise an absurd time left (27 146 hours was seen), so the estimate starts only when
the first piece has finished; until then a bar that has waited ``FIRST_NOTE_S`` says
``first step (compiling kernels on a first run)...`` instead of an estimate.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

# tqdm is imported when a bar is drawn: ``tqdm.auto`` imports asyncio and ssl, 0.03 s of CPU
# for a short ``odeprune integrate`` that draws no bar

__all__ = ["want_progress", "progress_bar", "make_bar", "DELAY_S", "FIRST_NOTE_S",
           "FIRST_NOTE"]

#: a bar appears only when the call has lasted this long (tqdm's ``delay``)
DELAY_S = 0.5
#: the note shown while the first piece of work runs, once it has lasted ``FIRST_NOTE_S``
FIRST_NOTE = "first step (compiling kernels on a first run)..."
FIRST_NOTE_S = 1.0


def want_progress(progress: bool | None) -> bool:
    """``progress`` as a bool: ``None`` is True exactly when stderr is attached to a terminal."""
    if progress is None:
        stream = sys.stderr
        try:
            return bool(stream is not None and stream.isatty())
        except (AttributeError, ValueError):  # replaced or closed stream
            return False
    if not isinstance(progress, (bool, int)) or progress not in (0, 1):
        raise ValueError(f"progress={progress!r} must be True, False or None (None: show a bar "
                         "when stderr is a terminal)")
    return bool(progress)


class _NoBar:
    n = 0.0

    def update(self, n=1) -> None:
        self.n += n

    def close(self) -> None:
        pass


class _Bar:
    """A tqdm bar whose time estimate starts with the first piece of work that has finished.

    Updates within ``DELAY_S`` of the start are the starting point (a resumed run), not
    progress. Until the first real update the bar shows no estimate and, after
    ``FIRST_NOTE_S``, :data:`FIRST_NOTE`; then its clock restarts there, so the rate (and the
    time left) is that of the work that follows. Everything else is tqdm's (``n``, ``close``).
    """

    def __init__(self, total: float, desc: str, unit: str, bar_format: str | None):
        from tqdm.auto import tqdm

        self._desc = desc
        self._format = bar_format
        self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, delay=DELAY_S,
                         file=sys.stderr, bar_format=self._without_estimate(bar_format))
        self._t0 = time.monotonic()
        self._waiting = True
        self._lock = threading.Lock()
        self._timer = threading.Timer(FIRST_NOTE_S, self._note)
        self._timer.daemon = True
        self._timer.start()

    @staticmethod
    def _without_estimate(fmt: str | None) -> str:
        fmt = fmt or "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
        return (fmt.replace("<{remaining}", "").replace(", {rate_fmt}", "")
                .replace("{remaining}", "").replace("{rate_fmt}", ""))

    def _note(self) -> None:
        with self._lock:
            if self._waiting and not self._bar.disable:
                self._bar.set_description_str(f"{self._desc}: {FIRST_NOTE}")

    def __getattr__(self, name):
        return getattr(self._bar, name)

    def update(self, n=1) -> None:
        with self._lock:
            if not self._waiting or n <= 0:
                pass
            elif time.monotonic() - self._t0 < DELAY_S:  # the starting point (resume)
                self._bar.n += n
                self._bar.initial = self._bar.last_print_n = self._bar.n
                return
            else:  # the first piece of work is done: the estimate starts here
                self._waiting = False
                self._timer.cancel()
                position = self._bar.n + n
                bar = self._bar
                bar.bar_format = self._format
                bar.desc = self._desc
                bar.reset()
                bar.n = bar.initial = bar.last_print_n = position
                bar.refresh()
                return
        self._bar.update(n)

    def close(self) -> None:
        self._timer.cancel()
        self._bar.close()


def make_bar(progress: bool | None, total: float, desc: str, unit: str = "it",
             bar_format: str | None = None):
    """A progress bar (or a do-nothing stand-in) with ``n``, ``update(n)`` and ``close()``: the
    one progress object of every long call and command (see the module's docstring)."""
    if not want_progress(progress):
        return _NoBar()
    return _Bar(total, desc, unit, bar_format)


@contextmanager
def progress_bar(progress: bool | None, total: float, desc: str, unit: str = "it",
                 bar_format: str | None = None):
    """:func:`make_bar` as a context manager: closed on exit."""
    bar = make_bar(progress, total, desc, unit, bar_format)
    try:
        yield bar
    finally:
        bar.close()
