"""Start-up of a command (issue 27, item 3): what ``odeprune integrate`` imports, the garbage
collector paused while a command starts, and Ctrl-C deferred while numba compiles.

``benchmarks/bench_startup.py`` measures the CPU; these tests pin what it relies on."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT

from odeprune import cli

#: what ``import odeprune`` must not import (its names are imported on first use)
NOT_ON_IMPORT = ("numpy", "numba", "scipy", "scipy.linalg", "matplotlib", "xarray", "jax", "tqdm")
#: what a short ``odeprune integrate -q`` (no plot, no bar) must not import: a progress bar's
#: tqdm (which imports asyncio and ssl), the plots, the extras. (scipy.linalg is numba's: its
#: compiler imports it on the first kernel it loads.)
NOT_FOR_INTEGRATE = ("tqdm", "asyncio", "matplotlib", "xarray", "jax", "scipy.integrate",
                     "scipy.special")


def _run_python(code: str, cwd) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=cwd, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_odeprune_imports_none_of_the_heavy_modules(tmp_path):
    loaded = set(_run_python("import odeprune, sys, json\nprint(json.dumps(sorted(sys.modules)))",
                             tmp_path))
    assert not set(NOT_ON_IMPORT) & loaded, sorted(set(NOT_ON_IMPORT) & loaded)
    assert "odeprune" in loaded  # (the check above saw the right process)


def test_integrate_command_imports_no_bar_and_pauses_the_collector_until_its_first_kernel(
        tmp_path):
    """The command imports no tqdm when no bar is drawn; the collector is held off when the
    solver starts (after the imports and the parser: its threshold is raised) and back to its
    threshold once the first kernel is loaded or compiled, and after the command."""
    code = (
        "import gc, io, json, sys, contextlib\n"
        "from odeprune import cli\n"
        "import odeprune.cli._integrate as I\n"
        "seen = []\n"
        "before = gc.get_threshold()\n"
        "inner = I._integrate\n"
        "def spy(*a, **k):\n"
        "    seen.append(gc.get_threshold())\n"
        "    out = inner(*a, **k)\n"
        "    seen.append(gc.get_threshold())\n"
        "    return out\n"
        "I._integrate = spy\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = cli.main(['integrate', '--alpha-max', '10', '-q'])\n"
        "print(json.dumps(dict(code=code, seen=seen, before=before, after=gc.get_threshold(),\n"
        "                      frozen=gc.get_freeze_count(), modules=sorted(sys.modules))))\n")
    out = _run_python(code, tmp_path)
    assert out["code"] == 0
    before = out["before"]
    assert before[0] < cli._PAUSE_GEN0
    assert out["seen"] == [[cli._PAUSE_GEN0, *before[1:]], before]
    assert out["after"] == before and out["frozen"] == 0
    loaded = set(out["modules"])
    assert "numba" in loaded and "odeprune.ode.dynamics" in loaded  # (it did run the solver)
    assert not set(NOT_FOR_INTEGRATE) & loaded, sorted(set(NOT_FOR_INTEGRATE) & loaded)


def test_a_bar_still_imports_tqdm_when_drawn():
    from odeprune.ode.progress import make_bar

    bar = make_bar(True, 10.0, "test")
    try:
        assert type(bar._bar).__module__.startswith("tqdm")
        bar.update(1.0)
    finally:
        bar.close()


def test_startup_gc_pause_resume_end():
    assert gc.isenabled()
    frozen0, before = gc.get_freeze_count(), gc.get_threshold()
    pause = cli._StartupGC()
    pause.pause()
    try:
        assert pause.paused == (frozen0 == 0)
        if frozen0 == 0:
            assert gc.get_threshold() == (cli._PAUSE_GEN0, *before[1:])
            junk = [object() for _ in range(10)]
            pause.resume()
            assert gc.get_threshold() == before and gc.get_freeze_count() >= len(junk)
            pause.resume()  # a second resume changes nothing
            assert gc.get_threshold() == before
    finally:
        pause.end()
    assert gc.isenabled() and gc.get_freeze_count() == frozen0 and gc.get_threshold() == before


def test_startup_gc_leaves_a_disabled_collector_alone():
    before = gc.get_threshold()
    gc.disable()
    try:
        pause = cli._StartupGC()
        pause.pause()
        assert not pause.paused and gc.get_threshold() == before
        pause.end()
        assert not gc.isenabled()  # still the caller's choice
    finally:
        gc.enable()


def _command(monkeypatch, body, quiet=True):
    """Run ``body(args)`` as the ``integrate`` command through :func:`cli.main`."""
    import odeprune.cli._integrate as I

    monkeypatch.setattr(I, "run_integrate", body)
    return cli.main(["integrate", "-q"] if quiet else ["integrate"])


def test_main_resumes_the_collector_when_a_compilation_starts(monkeypatch):
    """A cold cache: the collector runs as usual while numba compiles (compiling makes cyclic
    garbage: with no collection at all, a cold ``odeprune integrate`` peaked at 738 MB of
    memory instead of 399 MB)."""
    import numba

    seen, before = [], gc.get_threshold()

    def body(args):
        seen.append(gc.get_threshold()[0])

        @numba.njit  # a new function: compiled now
        def f(x):
            return x + 1

        seen.append(f(1))
        seen.append(gc.get_threshold()[0])
        return 0

    assert _command(monkeypatch, body) == 0
    assert seen == [cli._PAUSE_GEN0, 2, before[0]]
    assert gc.get_threshold() == before


def test_ctrl_c_during_a_compilation_is_raised_when_numba_releases_its_lock(monkeypatch, capsys):
    """The signal guard is registered while a command runs: a SIGINT that arrives while numba
    holds its compiler lock (here: while it types a call) lets the compilation finish, then
    stops the command as usual (one line, exit 130). (It was never registered:
    ``install_listener`` is a context manager, and the handler raised inside numba.)"""
    import numba
    from numba.extending import overload

    typed = []

    def marker():
        pass

    @overload(marker)
    def _marker():
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, under the lock
        typed.append(True)  # reached only if the handler deferred the signal
        return lambda: 0

    def body(args):
        @numba.njit
        def f():
            return marker()

        f()
        typed.append("ran on")  # not reached: the deferred signal stops the command
        return 0

    assert _command(monkeypatch, body) == cli.EXIT_SIGINT
    assert typed == [True]
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert cli._COMPILING == [0] and cli._DEFERRED == []
    from numba.core import event

    assert not [x for x in event._registered["numba:compiler_lock"]
                if type(x).__module__ == cli.__name__]  # unregistered after the command


@pytest.mark.parametrize("terminal", [True, False])
def test_a_held_back_ctrl_c_says_why_at_a_terminal(monkeypatch, capsys, terminal):
    """A first ReLU run compiles one kernel for ~30 s with Ctrl-C held back: at a terminal one
    note says why the command has not stopped; a script or a scheduler gets the one line."""
    import numba
    from numba.extending import overload

    def marker():
        pass

    @overload(marker)
    def _marker():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C: no second note
        return lambda: 0

    def body(args):
        import sys

        monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)

        @numba.njit
        def f():
            return marker()

        f()
        return 0

    assert _command(monkeypatch, body, quiet=False) == cli.EXIT_SIGINT
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if ln.startswith("note: stopping once numba")]
    assert len(notes) == (1 if terminal else 0), err
    stops = [ln for ln in err.splitlines() if ln.startswith("odeprune integrate:")]
    assert len(stops) == 1 and "interrupted (Ctrl-C)" in stops[0], err
    assert cli._COMPILING == [0] and cli._DEFERRED == []  # (the second was not left behind)


def test_a_compilation_in_another_thread_does_not_hold_ctrl_c_back(monkeypatch, capsys):
    """The guard counted every thread's compilations: while a pool's items compiled on a cold
    cache, the main thread, which handles the signal and only waited for them, held it back
    until none of them compiled (a figure's seeds, one after the other: minutes)."""
    import threading
    import time

    import numba
    from numba.extending import overload

    in_lock, release, reached, workers = threading.Event(), threading.Event(), [], []

    def marker():
        pass

    @overload(marker)
    def _marker():
        in_lock.set()  # the worker now holds numba's compiler lock
        release.wait(60)
        return lambda: 0

    def body(args):
        @numba.njit
        def f():
            return marker()

        workers.append(threading.Thread(target=f))
        workers[0].start()
        assert in_lock.wait(60)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # stopped here, not after the other thread's compilation
        reached.append(True)
        return 0

    try:
        code = _command(monkeypatch, body)
    finally:
        release.set()
        if workers:
            workers[0].join(60)
    assert code == cli.EXIT_SIGINT and reached == []
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert cli._COMPILING == [0] and cli._DEFERRED == []


@pytest.mark.parametrize("argv", [["--version"], ["integrate", "--no-such-flag"]])
def test_main_restores_the_collector_when_argparse_exits(argv, capsys):
    before = gc.get_threshold()
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert gc.isenabled() and gc.get_threshold() == before
