"""odeprune.sweeps (``odeprune.sweep`` is its function): points equal the direct calls; the local pool, a dask LocalCluster, a thread
pool and a killed-and-resumed sweep give the same Dataset bit for bit; failures are recorded;
bad grids and specs fail before any work; the CLI round-trips."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

import odeprune  # noqa: E402
from odeprune.cli import main  # noqa: E402
from odeprune.sweeps import cache as sweep_cache  # noqa: E402
from odeprune.sweeps import check, load, run_points, save, sweep  # noqa: E402
from tests.conftest import ctrl_c_after, long_simulation, stopped_by_ctrl_c  # noqa: E402

GRID = {"eta": [0.5, 1.0, 2.0], "K": [2, 3]}
FIXED = {"M": 2, "alpha_max": 8.0, "N": 100, "save_at": [0.0, 1.0, 2.0, 4.0, 8.0]}


def failing_task(x: float, y: float = 1.0):
    """A user task that raises for x < 0."""
    if x < 0:
        raise ValueError(f"x={x} must be >= 0")
    return {"square": x * x, "pair": np.array([x, y]), "label": f"x={x:g}"}


@pytest.fixture(scope="module")
def reference():
    """The grid on the default executor (a local process pool of 2, spawn), 3 batches."""
    return sweep("integrate", GRID, fixed=FIXED, max_workers=2, batch_size=2, progress=False)


def test_points_equal_direct_integrate(reference):
    ds = reference
    assert ds["eg"].dims == ("eta", "K", "alpha")
    np.testing.assert_array_equal(ds["alpha"].values, FIXED["save_at"])
    for eta in GRID["eta"]:
        for K in GRID["K"]:
            state = odeprune.OrderParams.random(100, K, 2, v_star=4.0, seed=0)
            curve = odeprune.integrate(state, eta=eta, alpha_max=8.0, save_at=FIXED["save_at"])
            np.testing.assert_array_equal(ds["eg"].sel(eta=eta, K=K).values, curve.eg)
    assert (ds["error"].values == "").all() and ds.attrs["n_failed"] == 0
    assert ds.attrs["task"] == "integrate" and ds.attrs["odeprune_version"] == odeprune.__version__
    assert ds.attrs["M"] == 2 and ds.attrs["N"] == 100 and ds.attrs["sigma"] == 0.0  # defaults too


def test_serial_and_thread_pool_equal_local_pool(reference):
    xr.testing.assert_identical(
        sweep("integrate", GRID, fixed=FIXED, executor="serial", progress=False), reference)
    with ThreadPoolExecutor(2) as ex:
        xr.testing.assert_identical(
            sweep("integrate", GRID, fixed=FIXED, executor=ex, batch_size=1, progress=False),
            reference)


def test_dask_local_cluster_equals_local_pool(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        by_client = sweep("integrate", GRID, fixed=FIXED, executor=client, progress=False)
        by_executor = sweep("integrate", GRID, fixed=FIXED, executor=client.get_executor(),
                            batch_size=1, progress=False)
    xr.testing.assert_identical(by_client, reference)
    xr.testing.assert_identical(by_executor, reference)


def test_zipped_axis_prune_and_node_c():
    grid = {"method": ["random_node", "importance_node", "random_edge"],
            "c": [1 / 3, 2 / 3]}
    ds = sweep("prune", grid, fixed={"K": 3, "M": 1, "N": 50, "seed": 2}, executor="serial",
               progress=False)
    state = odeprune.OrderParams.random(50, 3, 1, v_star=4.0, seed=2)
    for m in grid["method"]:
        for c in grid["c"]:
            kw = dict(c=c) if m.endswith("_edge") else dict(k=round(3 * c))
            res = odeprune.prune(state, m, seed=0, **kw)
            np.testing.assert_array_equal(ds["eg_mean"].sel({"method": m, "c": c}).values, res.eg_mean)
    z = sweep("integrate", {"size": {"K": [2, 4], "M": [1, 2]}, "eta": [0.5]},
              fixed={"alpha_max": 2.0, "N": 60},
              executor="serial", progress=False)
    assert z["eg"].dims == ("size", "eta", "alpha")
    np.testing.assert_array_equal(z["K"].values, [2, 4])
    np.testing.assert_array_equal(z["M"].values, [1, 2])
    curve = odeprune.integrate(odeprune.OrderParams.random(60, 4, 2, v_star=4.0, seed=0),
                               eta=0.5, alpha_max=2.0)
    np.testing.assert_array_equal(z["eg"].isel(size=1, eta=0).values, curve.eg)


def test_simulate_points_with_different_saved_times():
    ds = sweep("simulate", {"N": [20, 30]}, fixed=dict(K=2, M=1, alpha_max=1.0, n_test=0),
               executor="serial", progress=False)
    for N in (20, 30):
        run = odeprune.simulate(N=N, K=2, M=1, eta=0.5, alpha_max=1.0, n_test=0, seed=0)
        n = run.alpha.size
        np.testing.assert_array_equal(ds["eg"].sel(N=N).values[:n], run.eg)
        np.testing.assert_array_equal(ds["alpha_values"].sel(N=N).values[:n], run.alpha)


ENDED: list = []


def long_simulation_task(seed: int):
    """A user task that would run for minutes (how it ended goes to ``ENDED``)."""
    return {"eg": float(long_simulation(seed, ENDED).eg[-1])}


def test_ctrl_c_stops_the_points_running_on_a_thread_pool(ctrl_c_raises):
    """A sweep on the caller's thread pool: on Ctrl-C the queued points were cancelled but the
    running ones ran to their end (the pool's shutdown then waited minutes for them)."""
    ENDED.clear()
    with ThreadPoolExecutor(2) as ex, ctrl_c_after(1.0), pytest.raises(KeyboardInterrupt):
        sweep(long_simulation_task, {"seed": [0, 1, 2, 3]}, executor=ex, batch_size=1,
              progress=False)
    # the two running points; the two queued ones never started
    assert len(ENDED) == 2 and stopped_by_ctrl_c(ENDED)


def test_failing_points_are_recorded(tmp_path):
    ds = sweep(failing_task, {"x": [1.0, -2.0, 3.0]}, executor="serial", progress=False,
               cache=tmp_path)
    np.testing.assert_array_equal(ds["square"].values, [1.0, np.nan, 9.0])
    np.testing.assert_array_equal(ds["pair"].values[[0, 2]], [[1.0, 1.0], [3.0, 1.0]])
    assert list(ds["label"].values) == ["x=1", "", "x=3"]
    assert list(ds["error"].values) == ["", "ValueError: x=-2.0 must be >= 0", ""]
    assert ds.attrs["n_failed"] == 1
    assert len(list(tmp_path.glob("*.npz"))) == 2  # failures are not cached: retried
    # a built-in task: a learning rate that diverges fails alone (an invalid one, eta=-1, is
    # refused before any point runs, see test_invalid_values_fail_before_any_work)
    ds = sweep("integrate", {"eta": [0.5, 1e6]}, fixed={"alpha_max": 1.0, "K": 3},
               executor="serial", progress=False)
    assert ds["error"].values[0] == "" and ds["error"].values[1].startswith("DivergenceError: ")
    assert np.isfinite(ds["eg"].values[0]).all() and np.isnan(ds["eg"].values[1]).all()
    with pytest.raises(ValueError, match="must be >= 0"):
        sweep(failing_task, {"x": [1.0, -2.0]}, executor="serial", errors="raise",
              progress=False)


def test_saved_file_is_plain_xarray(tmp_path, reference):
    path = save(reference, tmp_path / "out.nc")
    with xr.open_dataset(path) as plain:
        xr.testing.assert_identical(plain.load(), reference)
    xr.testing.assert_identical(load(path), reference)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("task, grid, fixed, match", [
    ("integrate", {}, None, "non-empty dict"),
    ("integrate", {"eta": []}, None, "is empty"),
    ("integrate", {"eta": 0.5}, None, "must be a list"),
    ("integrate", {"eta": [0.5, 0.5]}, None, "repeated values"),
    ("integrate", {"eta": [0.5, "a"]}, None, "mixes strings and numbers"),
    ("integrate", {"eta": [0.5, [1]]}, None, "numbers or strings"),
    ("integrate", {"eta": [0.5, float("nan")]}, None, "finite"),
    ("integrate", {"etta": [0.5]}, None, r"no parameter\(s\) \['etta'\]"),
    ("integrate", {"eta": [0.5]}, {"eta": 1.0}, "both on the grid and fixed"),
    ("integrate", {"s": {"K": [2, 3], "M": [1]}}, None, "equal length"),
    ("integrate", {"error": [1]}, None, "reserved"),
    ("integrate", {"eta": [0.5]}, {"init": "/no/such/state.npz"}, "no such file"),
    ("integrate", {"K": [2]}, {"init": "/no/such/state.npz"}, "init fixes"),
    ("integrate", {"eta": [0.5]}, {"save_at": object()}, "JSON-serialisable"),
    ("integrat", {"eta": [0.5]}, None, "unknown"),
    ("nosuchmodule:fn", {"eta": [0.5]}, None, "cannot import"),
    (failing_task, {"y": [1.0]}, None, r"needs parameter\(s\) \['x'\]"),
    (lambda x: x, {"x": [1.0]}, None, "cannot be sent to a process pool"),
])
def test_bad_sweeps_fail_before_any_work(task, grid, fixed, match):
    with pytest.raises(ValueError, match=match):
        check(task, grid, fixed)


def test_package_attribute_is_the_sweep_function():
    assert callable(odeprune.sweep)
    ds = odeprune.sweep("integrate", {"eta": [0.5]}, fixed={"alpha_max": 1.0, "N": 50},
                executor="serial", progress=False)
    xr.testing.assert_identical(ds, sweep("integrate", {"eta": [0.5]},
                                          fixed={"alpha_max": 1.0, "N": 50},
                                          executor="serial", progress=False))


def test_bad_run_arguments():
    with pytest.raises(ValueError, match="executor="):
        sweep("integrate", {"eta": [0.5]}, executor="slurm")
    with pytest.raises(ValueError, match="batch_size"):
        sweep("integrate", {"eta": [0.5]}, batch_size=0)
    with pytest.raises(ValueError, match="errors="):
        run_points("integrate", {"eta": [0.5]}, errors="ignore")
    # a count is an integer, not a boolean (True was taken as one worker, one point per batch)
    with pytest.raises(ValueError, match="max_workers=True must be a positive integer"):
        sweep("integrate", {"eta": [0.5]}, max_workers=True)
    with pytest.raises(ValueError, match="batch_size=True must be a positive integer"):
        run_points("integrate", {"eta": [0.5]}, batch_size=True)


def test_without_xarray_says_which_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r'pip install "odeprune\[sweep\]"'):
        sweep("integrate", {"eta": [0.5]})
    # the engine itself (what the figures use) needs no xarray
    (pt,) = run_points(failing_task, {"x": [2.0]}, executor="serial", progress=False)
    assert pt["error"] is None and pt["params"] == {"x": 2.0}
    np.testing.assert_array_equal(pt["outputs"]["square"], 4.0)
    spec = tmp_path / "s.toml"
    spec.write_text('task = "integrate"\n[grid]\neta = [0.5]\n')
    assert main(["sweep", str(spec)]) == 2
    assert 'odeprune[sweep]' in capsys.readouterr().err


def test_corrupt_cache_file_is_recomputed(tmp_path):
    kw = dict(fixed={"alpha_max": 1.0, "N": 50}, executor="serial", progress=False,
              cache=tmp_path)
    first = sweep("integrate", {"eta": [0.5, 1.0]}, **kw)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 2
    files[0].write_bytes(b"not a zip file")  # e.g. a disk error
    (tmp_path / f".{files[1].name}.x.tmp").write_bytes(b"")  # a kill's leftover temporary
    xr.testing.assert_identical(sweep("integrate", {"eta": [0.5, 1.0]}, **kw), first)
    assert files[0].stat().st_size > 100


def test_cache_key_covers_parameters_and_version(monkeypatch):
    p = dict(check("integrate", {"eta": [0.5]}).points[0])
    k = sweep_cache.point_key("integrate", p)
    assert k == sweep_cache.point_key("integrate", dict(p))
    assert k != sweep_cache.point_key("integrate", dict(p, sigma=0.1))
    monkeypatch.setattr(sweep_cache._io, "package_version", lambda: "9.9.9")
    assert k != sweep_cache.point_key("integrate", p)


SLOW_TASK = '''
import time
import odeprune

def curve(eta, seed):
    time.sleep(0.25)
    state = odeprune.OrderParams.random(60, 3, 2, v_star=4.0, seed=seed)
    return {"eg": odeprune.integrate(state, eta=eta, alpha_max=2.0).eg}
'''


def test_killed_sweep_resumes_bit_for_bit(tmp_path, monkeypatch):
    (tmp_path / "slowtask.py").write_text(SLOW_TASK)
    cache = tmp_path / "cache"
    grid = {"eta": [0.25, 0.5, 1.0, 2.0], "seed": [0, 1, 2, 3]}
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from odeprune.sweeps import sweep
        sweep("slowtask:curve", {grid!r}, executor="serial", batch_size=1,
              cache={str(cache)!r}, progress=False)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(cache.glob("*.npz"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - cleanup after a failed assertion
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert 3 <= len(before) < 16
    monkeypatch.syspath_prepend(str(tmp_path))
    resumed = sweep("slowtask:curve", grid, executor="serial", cache=cache, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert len(after) == 16 and all(after[n] == t for n, t in before.items())  # reused
    fresh = sweep("slowtask:curve", grid, executor="serial", progress=False)
    xr.testing.assert_identical(resumed, fresh)
    assert resumed["eg"].dims == ("eta", "seed", "eg_dim_0")


SPEC = """\
# a small phase diagram
task = "integrate"
output = "out/phase.nc"
batch_size = 2

[fixed]
N = 100
alpha_max = 8.0
save_at = [0.0, 1.0, 2.0, 4.0, 8.0]

[grid]
eta = [0.5, 1.0, 2.0]

[grid.size]
K = [2, 3]
M = [2, 2]
"""


def test_cli_round_trip(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    spec = tmp_path / "phase.toml"
    spec.write_text(SPEC)
    assert main(["sweep", str(spec), "--executor", "serial", "-q"]) == 0
    assert (tmp_path / "phase.png").stat().st_size > 0
    assert any((tmp_path / "phase.cache").glob("*.npz"))
    with xr.open_dataset(tmp_path / "out" / "phase.nc") as got:
        expected = sweep("integrate", {"eta": [0.5, 1.0, 2.0],
                                       "size": {"K": [2, 3], "M": [2, 2]}},
                         fixed={"N": 100, "alpha_max": 8.0,
                                "save_at": [0.0, 1.0, 2.0, 4.0, 8.0]},
                         executor="serial", progress=False)
        xr.testing.assert_identical(got.load(), expected)
    # one-dimensional sweep: learning curves as lines, custom output names
    spec.write_text('task = "integrate"\n[fixed]\nalpha_max = 2.0\n[grid]\neta = [0.5, 1.0]\n')
    assert main(["sweep", str(spec), "--executor", "serial", "-q", "--no-cache",
                 "-o", str(tmp_path / "b.nc"), "--plot", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").exists() and load(tmp_path / "b.nc")["eg"].dims == ("eta",
                                                                                   "alpha")
    capsys.readouterr()


@pytest.mark.parametrize("text, match", [
    ('task = "integrate"\n[grid]\neta = [0.5]\n[fixd]\nK = 2\n', "unknown key"),
    ('[grid]\neta = [0.5]\n', "missing 'task'"),
    ('task = "integrate"\n', "empty \\[grid\\]"),
    ('task = "integrate"\n[grid]\netta = [0.5]\n', "no parameter"),
    ('task = "integrate"\nbatch_size = 0\n[grid]\neta = [0.5]\n', "batch_size"),
    ('task = "integrate"\n[grid\n', "invalid TOML"),
])
def test_cli_bad_spec_one_line_error(tmp_path, capsys, text, match):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main(["sweep", str(spec), "--executor", "dask"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("odeprune sweep: error:")
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "bad.nc").exists() and not (tmp_path / "bad.cache").exists()


@pytest.mark.parametrize("grid, fixed, match", [
    ({"eta": [0.5, -1.0]}, {"alpha_max": 1.0}, r"grid axis 'eta': eta=-1.0 must be > 0"),
    ({"eta": ["a", "b"]}, None, r"grid axis 'eta': eta='a' must be a real number"),
    ({"eta": [0.5]}, {"alpha_max": -5}, r"fixed parameter 'alpha_max': alpha_max=-5"),
    ({"s": {"K": [2, 0], "M": [1, 1]}}, None, r"zipped axis 's', 'K': K=0"),
    ({"train_second_layer": [1, 0]}, None, "must be True or False"),
])
def test_invalid_values_fail_before_any_work(grid, fixed, match):
    """A sweep whose every point would fail on an invalid value is refused before any point
    runs: the built-in tasks' values are checked first, naming the axis and the value."""
    with pytest.raises(ValueError, match=match):
        check("integrate", grid, fixed)
