"""The quick-look plots of the commands (integrate, simulate): readable ticks on a narrow
log axis, and a band that says what it is."""

from __future__ import annotations

import numpy as np

#: a log axis spanning less than this ratio gets its own ticks (matplotlib's decade ticks
#: would leave it with minor labels that all print the same, e.g. five times 2x10^-2)
NARROW_RATIO = 10.0


def tick_labels(ticks) -> list[str]:
    """The shortest ``%g`` labels (2 to 12 significant digits) that tell ``ticks`` apart."""
    for digits in range(2, 13):
        labels = [f"{t:.{digits}g}" for t in ticks]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(float(t)) for t in ticks]


def distinct_log_ticks(ax, n: int = 5) -> None:
    """On a log axis spanning less than a decade (a flat curve, a continued run), ``n`` ticks
    (``n - 1`` on x) spread over the data, with labels that differ (:func:`tick_labels`)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    for axis, (lo, hi), scale, count in ((ax.yaxis, ax.get_ylim(), ax.get_yscale(), n),
                                         (ax.xaxis, ax.get_xlim(), ax.get_xscale(), n - 1)):
        if scale != "log" or not (lo > 0 and hi > 0) or hi / lo >= NARROW_RATIO:
            continue
        ticks = np.geomspace(lo, hi, count + 2)[1:-1]
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FixedFormatter(tick_labels(ticks)))
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())


def plot_curve(curve, path) -> None:
    """``integrate --plot``: eps_g(alpha) of one curve."""
    from odeprune.plotting import plot_learning_curves, save_figure, subplots

    fig, ax = subplots(figsize=(5, 3.6))
    plot_learning_curves([curve], labels=[f"ODE K={curve.K}, M={curve.M}"], ax=ax)
    distinct_log_ticks(ax)
    save_figure(fig, path)


def plot_simulation(alpha, eg, spread, first, n_runs: int, path) -> None:
    """``simulate --plot``: eps_g(alpha), the mean over ``n_runs`` runs with a band of one
    standard deviation over them (no band for one run)."""
    from odeprune.plotting import save_figure, subplots

    fig, ax = subplots(figsize=(5, 3.6))
    mask = alpha > 0
    what = f"mean of {n_runs} runs" if n_runs > 1 else "one run"
    ax.plot(alpha[mask], eg[mask], label=f"simulation N={first.N}, K={first.K}, M={first.M} "
                                         f"({what})")
    if n_runs > 1:
        ax.fill_between(alpha[mask], (eg - spread)[mask], (eg + spread)[mask], alpha=0.3,
                        label=f"$\\pm$1 std over {n_runs} runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\alpha$ (steps / N)")
    ax.set_ylabel(r"$\epsilon_g$")
    ax.legend(fontsize=8)
    distinct_log_ticks(ax)
    save_figure(fig, path)
