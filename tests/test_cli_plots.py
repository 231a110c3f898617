"""The command line's plots (``odeprune/cli/_plots.py``)."""

import odeprune


def test_narrow_log_axes_get_distinct_tick_labels():
    from odeprune.cli._plots import distinct_log_ticks
    from odeprune.plotting import subplots

    fig, ax = subplots()
    ax.plot([1000, 1100], [0.0193, 0.0188])
    ax.set_xscale("log")
    ax.set_yscale("log")
    distinct_log_ticks(ax)
    fig.canvas.draw()
    for axis in (ax.yaxis, ax.xaxis):
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_visible()]
        labels = [t for t in labels if t]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels


def test_simulation_plot_says_what_the_band_is(tmp_path):
    from odeprune.cli._plots import plot_simulation

    sims = odeprune.simulate(N=50, K=2, M=1, eta=0.5, alpha_max=1.0, seeds=[0, 1, 2],
                             n_test=0, progress=False)
    captured = {}
    import odeprune.plotting as plotting

    orig = plotting.save_figure

    def keep(fig, path, **kw):
        captured["fig"] = fig
        return orig(fig, path, **kw)

    plotting.save_figure = keep
    try:
        plot_simulation(sims.alpha, sims.eg_mean, sims.eg_std, sims[0], len(sims),
                        tmp_path / "s.png")
    finally:
        plotting.save_figure = orig
    texts = [t.get_text() for t in captured["fig"].axes[0].get_legend().get_texts()]
    assert any("std over 3 runs" in t for t in texts), texts

