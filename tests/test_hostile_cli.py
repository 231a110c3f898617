"""What a new user and an adversary found in the command line (issue 26): outputs checked
before any work, one way to stop every command, bars only on a terminal, sweeps that check their
values and fail loudly, help generated from the registries, hostile arguments."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import odeprune
from odeprune.cli import main

ROOT = Path(__file__).resolve().parents[1]
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    assert cli("integrate", "-q", "--K", "3", "--M", "2", "--N", "100", "--alpha-max", "20",
               "-o", d / "t.npz") == 0
    return d / "t.npz"


def one_error_line(capsys, *words) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ item 3: unwritable outputs
def _commands(trained, bad: Path) -> list[list]:
    return [
        ["retrain", trained, "--k", "1", "-o", bad / "re"],
        ["ticket", "--c", "0.5", "--K", "3", "-o", bad / "t"],
        ["prune", trained, "--method", "all", "--k", "1", "-o", bad / "p"],
        ["integrate", "--plot", bad / "c.png"],
        ["integrate", "-o", bad / "c.npz"],
        ["integrate", "--checkpoint", bad / "c.ckpt.npz"],
        ["simulate", "--plot", bad / "s.png"],
        ["figure", "fig4", "-o", bad / "figs"],
        ["figure", "fig4", "--cache", bad / "cache"],
    ]


@pytest.mark.parametrize("how", ["under_a_file", "missing_parent"])
def test_every_output_is_checked_before_any_work(trained, tmp_path, capsys, how):
    """`retrain -o RO/re` (and ticket, prune --method all, integrate --plot) computed
    everything, printed it, then refused to write: now one line, exit 2, before any work."""
    if how == "under_a_file":
        (tmp_path / "somefile").write_text("x")
        bad = tmp_path / "somefile"
    else:
        bad = tmp_path / "missing" / "dir"
    for args in _commands(trained, bad):
        if how == "missing_parent" and args[0] == "figure":
            continue  # output directories are created with their parents
        t0 = time.perf_counter()
        assert cli(*args) == 2, args
        assert time.perf_counter() - t0 < 5, args  # refused at once, not after the work
        captured = capsys.readouterr()
        assert captured.out == "", (args, captured.out)  # no table: nothing was computed
        lines = [ln for ln in captured.err.splitlines() if ln.strip()]
        assert len(lines) == 1 and "error:" in lines[0], (args, captured.err)
        assert ("is a file, not a directory" if how == "under_a_file" else
                "does not exist") in lines[0]


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only directories")
def test_read_only_directory_is_refused_before_any_work(trained, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for args in _commands(trained, ro):
            assert cli(*args) == 2, args
            one_error_line(capsys, "cannot write")
    finally:
        ro.chmod(0o755)


def test_sweep_outputs_are_checked_before_any_work(tmp_path, capsys):
    pytest.importorskip("xarray")
    (tmp_path / "somefile").write_text("x")
    spec = tmp_path / "s.toml"
    spec.write_text('task = "integrate"\n[fixed]\nalpha_max = 1.0\n[grid]\neta = [0.5]\n')
    for opt in (["-o", tmp_path / "somefile" / "x.nc"], ["--plot", tmp_path / "somefile" / "p.png"],
                ["--cache", tmp_path / "somefile"]):
        assert cli("sweep", spec, "--executor", "serial", *opt) == 2
        one_error_line(capsys, str(tmp_path / "somefile"))


# ------------------------------------------------------------------ item 4: signals
def _group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc (psutil when installed)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.getpgid(pid) != pgid:
                continue
            if psutil is not None:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            else:
                with open(f"/proc/{pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    alive.append(pid)
        except (OSError, IndexError):
            continue
    return alive


def _stop(args, sig, wait_for, cwd, timeout=120):
    """Start ``odeprune ARGS`` in its own process group, wait until ``wait_for(stderr so far,
    elapsed)`` says it is working, send ``sig`` (SIGINT to the whole group, as a terminal's
    Ctrl-C does; SIGTERM to the process, as a scheduler does), and return ``(rc, stderr,
    seconds to exit, processes of the group still alive)``."""
    errfile = cwd / f"err-{sig}.txt"
    with open(errfile, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "odeprune", *map(str, args)], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        t0 = time.time()
        while not wait_for(errfile.read_text(), time.time() - t0):
            if proc.poll() is not None or time.time() - t0 > timeout:
                proc.kill()
                pytest.fail(f"did not start working (rc={proc.poll()}): {errfile.read_text()}")
            time.sleep(0.1)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        t1 = time.time()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("did not stop within 60 s")
        seconds = time.time() - t1
    time.sleep(0.3)
    left = _group_alive(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return proc.returncode, errfile.read_text(), seconds, left


def _after(seconds):
    return lambda err, elapsed: elapsed > seconds


SIGNALS = [signal.SIGINT, signal.SIGTERM]


def _check_stopped(rc, err, seconds, left, sig, command, *words):
    assert rc == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"odeprune {command}:")]
    assert len(lines) == 1, err
    assert ("SIGTERM" if sig == signal.SIGTERM else "Ctrl-C") in lines[0], lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    assert "--checkpoint" not in lines[0] or command in ("integrate", "simulate"), lines[0]
    assert seconds < 3.0, f"took {seconds:.1f} s to stop"
    assert left == [], f"processes left running: {left}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_sweep_stops_its_workers_and_says_what_is_cached(tmp_path, sig):
    """sweep on SIGTERM died without a message and left its workers running (> 2 min)."""
    pytest.importorskip("xarray")
    spec = tmp_path / "s.toml"
    spec.write_text('task = "integrate"\ncache = "c"\n[fixed]\nalpha_max = 100000.0\nK = 12\n'
                    '[grid]\neta = [0.1, 0.2, 0.3, 0.4]\n')
    rc, err, seconds, left = _stop(["sweep", spec, "--workers", "2", "--no-plot"], sig,
                                   _after(8.0), tmp_path)
    _check_stopped(rc, err, seconds, left, sig, "sweep", "cached in", "same command")


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("command", ["retrain", "ticket", "figure"])
def test_every_command_stops_with_one_line(trained, tmp_path, sig, command):
    """retrain and figure died silently on SIGTERM, ticket called SIGTERM "Ctrl-C" and advised
    a --checkpoint option it does not have, figure took 6.5-16 s to stop after Ctrl-C."""
    args = {"retrain": ["retrain", trained, "--method", "all", "--k", "1", "--delta-alpha",
                        "1e6"],
            "ticket": ["ticket", "--c", "0.3", "--alpha-max", "1e6", "--alpha-train", "1e5"],
            "figure": ["figure", "tickets", "-o", tmp_path / "figs"]}[command]
    rc, err, seconds, left = _stop(args, sig, _after(6.0), tmp_path)
    _check_stopped(rc, err, seconds, left, sig, command,
                   "cached" if command == "figure" else "nothing saved")


# ------------------------------------------------------------------ item 8: progress and -q
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


# ------------------------------------------------------------------ item 7: sweeps
@pytest.fixture
def spec(tmp_path):
    pytest.importorskip("xarray")

    def write(text):
        path = tmp_path / "s.toml"
        path.write_text(text)
        return path
    return write


@pytest.mark.parametrize("body, words", [
    ('[grid]\neta = ["a", "b"]\n', ["grid axis 'eta'", "eta='a'"]),
    ('[fixed]\nalpha_max = -5\n[grid]\neta = [0.5]\n', ["fixed parameter 'alpha_max'", "-5"]),
    ('[grid]\nK = [2, 0]\n', ["grid axis 'K'", "K=0"]),
    ('[grid]\ntrain_second_layer = [1, 0]\n', ["train_second_layer=1", "true or false"]),
    ('[grid]\nactivation = ["erf", "tanh"]\n', ["tanh"]),
    ('[grid]\neta = [true, false]\n', ["eta=True"]),
])
def test_sweep_values_are_checked_before_launch(spec, capsys, body, words):
    """A sweep whose every point failed exited 0 after running them all."""
    path = spec('task = "integrate"\n' + body)
    t0 = time.perf_counter()
    assert cli("sweep", path, "--executor", "serial", "--no-cache", "--no-plot") == 2
    assert time.perf_counter() - t0 < 10
    one_error_line(capsys, *words)
    assert not path.with_suffix(".nc").exists()


def test_a_sweep_whose_every_point_failed_exits_non_zero(spec, capsys):
    path = spec('task = "integrate"\n[fixed]\nalpha_max = 5.0\nK = 3\n[grid]\n'
                'eta = [1e6, 2e6]\n')  # valid values, every run diverges
    assert cli("sweep", path, "--executor", "serial", "--no-cache", "--no-plot") == 1
    err = capsys.readouterr().err
    assert "every point failed" in err and "DivergenceError" in err


def test_boolean_axes_where_the_option_is_boolean(spec, tmp_path, capsys):
    path = spec('task = "integrate"\n[fixed]\nalpha_max = 5.0\nK = 2\n[grid]\n'
                'train_second_layer = [true, false]\n')
    assert cli("sweep", path, "--executor", "serial", "--no-plot") == 0
    ds = odeprune.sweep.load(path.with_suffix(".nc"))
    assert list(ds["train_second_layer"].values) == [True, False]
    assert ds.attrs["n_failed"] == 0
    a, b = ds["eg"].isel(alpha=-1).values
    assert a != b  # a frozen second layer learns differently


def test_cache_pointing_at_a_file_is_one_clear_line(spec, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    path = spec('task = "integrate"\ncache = "afile"\n[fixed]\nalpha_max = 1.0\n[grid]\n'
                'eta = [0.5]\n')
    assert cli("sweep", path, "--executor", "serial", "--no-plot") == 2
    line = one_error_line(capsys, "afile", "expected a directory")
    assert "Errno" not in line
    with pytest.raises(ValueError, match="is a file; the cache is a directory"):
        odeprune.sweep.sweep("integrate", {"eta": [0.5]}, fixed={"alpha_max": 1.0},
                             executor="serial", cache=tmp_path / "afile")


def test_cache_files_are_ordinary_odeprune_files(tmp_path):
    pytest.importorskip("xarray")
    ds = odeprune.sweep.sweep("integrate", {"eta": [0.25, 0.5]},
                              fixed={"alpha_max": 2.0, "K": 2}, executor="serial",
                              cache=tmp_path / "c")
    files = sorted((tmp_path / "c").glob("*.npz"))
    assert len(files) == 2
    points = [odeprune.load(f) for f in files]
    assert all(type(p).__name__ == "SweepPoint" for p in points)
    by_eta = {p.params["eta"]: p for p in points}
    for j, eta in enumerate([0.25, 0.5]):
        np.testing.assert_array_equal(by_eta[eta].outputs["eg"], ds["eg"].values[j])
        np.testing.assert_array_equal(by_eta[eta].coords["alpha"], ds["alpha"].values)


def test_sweep_init_of_a_masked_network_trains_it(tmp_path):
    """The integrate task trains an edge-pruned file as the masked network; prune refuses."""
    pytest.importorskip("xarray")
    state = odeprune.OrderParams.random(100, 3, 2, v_star=2.0, seed=0)
    pr = odeprune.prune(state, "magnitude_edge", c=0.5).save(tmp_path / "pr.npz")
    ds = odeprune.sweep.sweep("integrate", {"eta": [0.5]},
                              fixed={"alpha_max": 5.0, "init": str(pr)}, executor="serial")
    ref = odeprune.integrate(odeprune.load(pr).sparse_state, 0.5, 5.0)
    np.testing.assert_allclose(ds["eg"].values[0, -1], ref.eg[-1], rtol=1e-12)
    with pytest.raises(ValueError, match="masked network"):
        odeprune.sweep.check("prune", {"method": ["importance_node"]},
                             {"k": 1, "init": str(pr)})


# ------------------------------------------------------------------ item 10: help and docs
def test_reproduce_and_figure_help_list_every_figure(capsys):
    from odeprune.figures import FIGURES

    for command in ("reproduce", "figure"):
        with pytest.raises(SystemExit):
            cli(command, "--help")
        out = capsys.readouterr().out
        for name in FIGURES:
            assert f"  {name} " in out, (command, name)


def test_simulate_help_names_only_its_own_options(capsys):
    with pytest.raises(SystemExit):
        cli("simulate", "--help")
    assert "--init" not in capsys.readouterr().out


def test_theory_module_as_the_readme_names_it():
    import importlib

    module = importlib.import_module("odeprune.pruning.theory")
    assert odeprune.theory is module
    readme = (ROOT / "README.md").read_text()
    assert "`odeprune.pruning.theory`" in readme


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
