"""Progress bars (``odeprune/ode/progress.py``): by default on a terminal only, silenced by
``progress=False`` and ``-q``, a note instead of an absurd first estimate."""

import io
import subprocess
import sys
import time

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams


class _Tty:
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)
        return len(s)

    def flush(self):
        pass

    tty = True

    def isatty(self):
        return self.tty


def test_long_calls_show_progress_on_a_terminal(monkeypatch):
    from odeprune.ode import progress as _progress
    from odeprune.pruning import prune_weights

    monkeypatch.setattr(_progress, "DELAY_S", 0.0)
    s = OrderParams.random(100, 6, 2, v_star=2.0, seed=0)
    calls = {
        "prune": lambda p: odeprune.prune(s, "dpp_node", k=2, exact=False, n_samples=1000,
                                          seed=0, progress=p),
        "snip": lambda p: odeprune.prune(s, "snip_edge", c=0.5, seed=7, progress=p),
        "prune_weights": lambda p: prune_weights(*OrderParams.draw_weights(50, 4, 2, seed=0)[:1],
                                                 v=np.ones(4), w_star=np.ones((2, 50)),
                                                 v_star=np.ones(2), method="random_node", k=2,
                                                 n_masks=3, n_samples=50, n_test=20, seed=0,
                                                 progress=p),
        "simulate": lambda p: odeprune.simulate(50, 3, 2, 0.5, 2.0, n_test=0, progress=p),
    }
    for name, call in calls.items():
        tty = _Tty()
        monkeypatch.setattr(sys, "stderr", tty)
        call(None)
        assert "".join(tty.parts), f"{name}: no progress on a terminal"
        tty.parts.clear()
        call(False)
        assert not "".join(tty.parts), f"{name}: progress=False still drew a bar"
    pipe = _Tty()
    pipe.tty = False
    monkeypatch.setattr(sys, "stderr", pipe)
    assert not _progress.want_progress(None)
    with pytest.raises(ValueError, match="progress="):
        _progress.want_progress("yes")



def test_no_bars_in_redirected_stderr_and_quiet_keeps_the_result(tmp_path):
    """The CLI drew tqdm bars into a redirected stderr, and -q removed the result table."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "odeprune", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    r = run("integrate", "--K", "12", "--alpha-max", "300", "-o", "c.npz")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "it/s" not in r.stderr and "%|" not in r.stderr, r.stderr
    q = run("integrate", "--K", "12", "--alpha-max", "300", "-q")
    assert q.returncode == 0 and "alpha" in q.stdout and "eg" in q.stdout  # the table
    assert q.stdout == r.stdout
    assert q.stderr == ""  # -q: no notes, no "saved" lines
    s = run("simulate", "-q", "--N", "50", "--alpha-max", "1", "--n-test", "10")
    assert s.returncode == 0 and "eg_test" in s.stdout and s.stderr == ""


def test_first_chunk_shows_a_note_not_an_absurd_estimate(monkeypatch):
    """A first chunk that compiles for ~30 s gave an ETA of 27 146 hours: the estimate now
    starts after it, and the bar says what is happening meanwhile."""
    from odeprune.ode import progress as _progress
    monkeypatch.setattr(_progress, "FIRST_NOTE_S", 0.2)
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    bar = _progress.make_bar(True, 1000.0, "integrate", "a")
    bar.update(0)
    time.sleep(1.0)  # the "compilation"
    assert _progress.FIRST_NOTE in buf.getvalue()
    bar.update(0.01)  # the first chunk, 1 s for 1e-5 of the run
    for _ in range(4):
        time.sleep(0.1)
        bar.update(10.0)
    d = bar.format_dict
    bar.close()
    rate = d["rate"] or (d["n"] - d["initial"]) / d["elapsed"]  # as tqdm's format_meter
    remaining = (d["total"] - d["n"]) / rate
    assert remaining < 60, remaining  # ~2.5 s, not 1e5 s


def test_progress_default_follows_the_terminal(monkeypatch):
    from odeprune.ode.progress import make_bar

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert type(make_bar(None, 10, "x")).__name__ == "_NoBar"

