"""Shared fixtures and helpers: the hypothesis profile, random valid states, the paper's network
and its trained student, the command line."""

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

settings.register_profile(
    "odeprune", derandomize=True, deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("odeprune")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """One pytest-xdist worker per core, each test file on one worker (what a file's tests share
    stays in one process), where pytest-xdist is installed (the test extras) and no ``-n`` was
    given; ``-n 0`` runs the tests in this process, as does a pytest without pytest-xdist. Runs
    before pytest-xdist's own ``pytest_cmdline_main`` (a conftest's hook is called first)."""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return
    if config.option.numprocesses is None and config.option.dist == "no":
        config.option.numprocesses = "auto"
        config.option.dist = "loadfile"


ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def random_cov(rng: np.random.Generator, L: int, scale: float = 1.0) -> np.ndarray:
    """A random valid (positive definite) covariance with entries of order ``scale``."""
    A = rng.normal(size=(L, L + 2)) * np.sqrt(scale / (L + 2))
    return A @ A.T


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ------------------------------------------------------------------ states
@st.composite
def psd_states(draw, max_K=5, max_M=3):
    """hypothesis: a random valid ``OrderParams`` (erf) with K <= max_K, M <= max_M."""
    from odeprune import OrderParams

    K = draw(st.integers(1, max_K))
    M = draw(st.integers(1, max_M))
    L = K + M
    A = draw(arrays(np.float64, (L, L + 1), elements=st.floats(-2, 2)))
    C = A @ A.T / (L + 1)
    v = draw(arrays(np.float64, (K,), elements=st.floats(-4, 4)))
    v_star = draw(arrays(np.float64, (M,), elements=st.floats(-4, 4)))
    return OrderParams(Q=C[:K, :K], R=C[:K, K:], T=C[K:, K:], v=v, v_star=v_star)


#: The paper's network (Acharyya et al. 2021, Section 4; the CLI's default): N=500, K=6, M=2,
#: v*=4, every weight i.i.d. N(0,1), seed 0; trained with eta=0.5.
PAPER = dict(N=500, K=6, M=2, v_star=4.0, seed=0)
PAPER_ETA = 0.5
PAPER_ALPHA = 1000.0


@pytest.fixture(scope="session")
def paper_state():
    """The paper's initial order parameters (``OrderParams.random(500, 6, 2, v_star=4.0,
    seed=0)``)."""
    from odeprune import OrderParams

    return OrderParams.random(**PAPER)


@pytest.fixture(scope="session")
def paper_student(paper_state):
    """The paper's student trained in the limit to alpha=1000 (eta=0.5): converged, Q nearly
    singular, not the exact ansatz."""
    import odeprune

    return odeprune.integrate(paper_state, eta=PAPER_ETA, alpha_max=PAPER_ALPHA).final


# ------------------------------------------------------------------ the command line
def cli(*args) -> int:
    """``odeprune ARGS`` in this process; the exit status."""
    from odeprune.cli import main

    return main([str(a) for a in args])


def one_error_line(capsys, *words) -> str:
    """The one non-empty line on stderr, which contains every one of ``words``."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def cli_trained_file(tmp_path_factory):
    """A LearningCurve file written by ``odeprune integrate`` (K=3, M=2, N=100, alpha 20)."""
    d = tmp_path_factory.mktemp("trained")
    assert cli("integrate", "-q", "--K", "3", "--M", "2", "--N", "100", "--alpha-max", "20",
               "-o", d / "t.npz") == 0
    return d / "t.npz"


def kill_when(path, proc, timeout=120):
    """SIGKILL ``proc`` as soon as ``path`` (its checkpoint) exists."""
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            err = proc.stderr.read()
            proc.stderr.close()
            pytest.fail(f"run finished before a checkpoint appeared: {err}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            proc.wait()
            proc.stderr.close()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


@pytest.fixture
def ctrl_c_raises():
    """The default SIGINT handler of a script (KeyboardInterrupt), whatever the runner set."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def ctrl_c_to_the_main_thread() -> None:
    """Ctrl-C as a terminal sends it: to the main thread, which handles it, from any thread."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


@contextlib.contextmanager
def ctrl_c_after(seconds: float):
    """Ctrl-C to the main thread ``seconds`` after entering (cancelled on leaving)."""
    timer = threading.Timer(seconds, ctrl_c_to_the_main_thread)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def long_simulation(seed: int, ended: list):
    """A simulation that would run for minutes (N=200 to alpha=1e5); the exception that ended
    it, if one did, is appended to ``ended``."""
    import odeprune

    try:
        return odeprune.simulate(200, 2, 1, 0.5, alpha_max=1e5, n_test=0, progress=False,
                                 seed=seed)
    except BaseException as exc:
        ended.append(exc)
        raise


def stopped_by_ctrl_c(ended: list) -> bool:
    """Every run of ``ended`` stopped at a chunk for Ctrl-C (not failed, not finished)."""
    from odeprune.errors import OdepruneInterrupted

    return all(isinstance(e, OdepruneInterrupted) and "(Ctrl-C)" in str(e) for e in ended)


# ------------------------------------------------------------------ committed references
@pytest.fixture(scope="session")
def paper_reference():
    """The paper's network integrated to alpha=1e4 at rtol 1e-11, atol 1e-13, saved at
    ``geomspace(1, 1e4, 30)`` and 10, 100, 500 (a ``LearningCurve``; committed as
    tests/data/paper_reference.npz by tests/data/make_references.py, checked by
    tests/test_references.py). ``ref.eg[np.searchsorted(ref.alpha, t)]`` for a saved ``t``."""
    from odeprune import LearningCurve

    return LearningCurve.load(DATA / "paper_reference.npz")


# ------------------------------------------------------------------ figures
def check_figure_files(out, name: str, data: dict, params: dict) -> None:
    """What every figure writes (``odeprune.figures.make``): NAME.png/.pdf/.json/.csv, non-empty;
    the data names the figure, its parameters and the odeprune version; its values are finite;
    the CSV has a column for every key of the rows."""
    for suffix in (".png", ".pdf", ".json", ".csv"):
        path = Path(out) / f"{name}{suffix}"
        assert path.exists() and path.stat().st_size > 0, path
    assert data["figure"] == name and data["quick"] is True
    assert data["params"] == params
    assert data["odeprune_version"]
    values = [r[key] for r in data["rows"] for key in ("mean", "value", "diff_A", "diff_B")
              if key in r]
    assert values and np.all(np.isfinite(values))
    header = (Path(out) / f"{name}.csv").read_text().splitlines()[0].split(",")
    assert set(header) >= set(data["rows"][0])
