"""Progress bars for long calls: one rule for every entry point.

``progress=None`` (the default of the Python API) means "show a bar when stderr is a terminal";
``True`` / ``False`` force it on or off. Bars are tqdm's, drawn on stderr, left off the screen
when done, and only appear after ``DELAY_S`` seconds, so quick calls print nothing.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

from tqdm.auto import tqdm

__all__ = ["want_progress", "progress_bar", "make_bar", "DELAY_S"]

#: a bar appears only when the call has lasted this long (tqdm's ``delay``)
DELAY_S = 0.5


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


def make_bar(progress: bool | None, total: float, desc: str, unit: str = "it",
             bar_format: str | None = None):
    """A tqdm bar (or a do-nothing stand-in) with ``update(n)`` and ``close()``."""
    if not want_progress(progress):
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, leave=False, delay=DELAY_S, file=sys.stderr,
                bar_format=bar_format)


@contextmanager
def progress_bar(progress: bool | None, total: float, desc: str, unit: str = "it",
                 bar_format: str | None = None):
    """:func:`make_bar` as a context manager: closed on exit."""
    bar = make_bar(progress, total, desc, unit, bar_format)
    try:
        yield bar
    finally:
        bar.close()
