"""Plots (matplotlib). Imported only by the CLI and the figures, never by numerics.

Figures are made with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`, no
pyplot): nothing here selects a backend or keeps figures in pyplot's global registry, so
importing odeprune in a notebook or a GUI session leaves the user's matplotlib as it was, and
saving works on a machine without a display.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from ._io import atomic_write_path

__all__ = ["subplots", "save_figure", "plot_learning_curves"]


def subplots(nrows: int = 1, ncols: int = 1, figsize=None, **kw):
    """``(fig, axes)`` as ``pyplot.subplots`` returns them, on a :class:`Figure` outside pyplot."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig, path: str | os.PathLike, pdf: bool = False) -> Path:
    """Save ``fig`` to ``path`` atomically (and a ``.pdf`` twin when ``pdf``); close it."""
    path = Path(path)
    targets = [path] + ([path.with_suffix(".pdf")] if pdf else [])
    for target in targets:  # unique temporary names: concurrent runs never collide
        atomic_write_path(target, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"))
    return path


def plot_learning_curves(curves, labels=None, path=None, ax=None, logx=True, logy=True):
    """eg(alpha) for several curves; returns the axes (and saves when ``path`` is given)."""
    own = ax is None
    if own:
        fig, ax = subplots(figsize=(5, 3.6))
    labels = labels or [None] * len(curves)
    for curve, label in zip(curves, labels):
        mask = curve.alpha > 0 if logx else slice(None)
        ax.plot(curve.alpha[mask], curve.eg[mask], label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(r"$\alpha$ (steps / N)")
    ax.set_ylabel(r"$\epsilon_g$")
    if any(labels):
        ax.legend()
    if own and path is not None:
        save_figure(ax.figure, path)
    return ax
