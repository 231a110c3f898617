"""One way to stop every command (``odeprune/cli/__init__.py``): SIGINT to the group or SIGTERM,
one line, exit 130/143, no process left behind."""

import os
import signal
import subprocess
import sys
import time

import pytest


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
    # (explicit steps: under the stiff-aware default the four points end within the 8 s wait
    # on a warm cache, and the test saw a finished sweep)
    spec.write_text('task = "integrate"\ncache = "c"\n[fixed]\nalpha_max = 100000.0\nK = 12\n'
                    'method = "dopri5"\n[grid]\neta = [0.1, 0.2, 0.3, 0.4]\n')
    rc, err, seconds, left = _stop(["sweep", spec, "--workers", "2", "--no-plot"], sig,
                                   _after(8.0), tmp_path)
    _check_stopped(rc, err, seconds, left, sig, "sweep", "cached in", "same command")


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("command", ["retrain", "ticket", "figure"])
def test_every_command_stops_with_one_line(cli_trained_file, tmp_path, sig, command):
    """retrain and figure died silently on SIGTERM, ticket called SIGTERM "Ctrl-C" and advised
    a --checkpoint option it does not have, figure took 6.5-16 s to stop after Ctrl-C; the
    finite-N retrain / ticket reported SIGTERM as Ctrl-C (exit 130): the simulation inside
    caught its own stop exception and relabelled it."""
    # long work under the stiff-aware default: the limit of retrain/ticket now ends in seconds
    # even at alpha = 1e6, so both run their finite-N (SGD) layer, which takes minutes
    if command == "retrain":
        sim = tmp_path / "sim.npz"
        subprocess.run([sys.executable, "-m", "odeprune", "simulate", "--N", "500",
                        "--alpha-max", "1", "-q", "-o", str(sim)], check=True, cwd=tmp_path,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    args = {"retrain": ["retrain", tmp_path / "sim.npz", "--finite", "--method",
                        "random_node", "--k", "3", "--delta-alpha", "1e5"],
            "ticket": ["ticket", "--c", "0.3", "--alpha-max", "1e6", "--alpha-train", "1e5",
                       "--layer", "finite", "--seeds", "0"],
            "figure": ["figure", "tickets", "-o", tmp_path / "figs"]}[command]
    # warm-up: retrain and ticket, the same command short (the same kernels; it ends once they
    # are compiled); the figure, the command itself for up to 60 s (its quick form compiles
    # fewer kernels: on a cold cache the full one then compiled while stopping, 7-13 s)
    short = {"retrain": ["--delta-alpha", "1"], "ticket": ["--alpha-max", "2", "--alpha-train",
                                                           "1"], "figure": []}[command]
    _warm(command, args + short, tmp_path)
    rc, err, seconds, left = _stop(args, sig, _after(6.0), tmp_path)
    _check_stopped(rc, err, seconds, left, sig, command,
                   "cached" if command == "figure" else "nothing saved")


_WARMED: set = set()


def _warm(command, args, cwd, seconds=60.0):
    """Run the command once (at most ``seconds``) so that numba's kernels are compiled and
    cached: a signal is deferred while numba compiles (a cache entry cut short would crash
    later runs), and the test is about stopping work, not a cold compile."""
    if command in _WARMED:
        return
    _WARMED.add(command)
    proc = subprocess.Popen([sys.executable, "-m", "odeprune", *map(str, args)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()



def _caught_and_relabelled(first, then=None):
    """The stop exception of a run stopped for ``first`` (None: a bare KeyboardInterrupt); with
    ``then``, the one a layer raises ``from None`` after catching it (what the simulation inside
    a finite-N workflow did; what integrate does after its own bare KeyboardInterrupt)."""
    from odeprune.errors import OdepruneInterrupted

    try:
        try:
            if first is None:
                raise KeyboardInterrupt
            raise OdepruneInterrupted(f"simulation interrupted ({first}) at alpha=1", None)
        except KeyboardInterrupt:
            if then is None:
                raise
            raise OdepruneInterrupted(f"simulation interrupted ({then}) at alpha=1",
                                      None) from None
    except KeyboardInterrupt as exc:
        return exc


@pytest.mark.parametrize("reasons,code", [
    (("SIGTERM",), 143), (("Ctrl-C",), 130),
    (("SIGTERM", "Ctrl-C"), 143),  # relabelled by a layer that caught it: the first one counts
    (("Ctrl-C", "SIGTERM"), 130),
    ((None, "SIGTERM"), 143), ((None, "Ctrl-C"), 130),  # a bare one names no signal
])
def test_the_first_interruption_of_the_chain_names_the_signal(reasons, code, capsys):
    import argparse

    import odeprune.cli._retrain  # noqa: F401 (its interrupt_note makes the line)
    from odeprune.cli import _interrupted

    exc = _caught_and_relabelled(*reasons)
    assert str(exc).count(f"({reasons[-1]})") == 1
    assert _interrupted(argparse.Namespace(command="retrain"), exc) == code
    line = capsys.readouterr().err.strip()
    assert line.startswith("odeprune retrain: interrupted (")
    assert ("SIGTERM" if code == 143 else "Ctrl-C") in line


def test_a_command_interrupted_by_the_cli_handler_keeps_its_signal(capsys):
    import argparse

    import odeprune.cli._ticket  # noqa: F401 (its interrupt_note makes the line)
    from odeprune.cli import CommandInterrupted, _interrupted

    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        assert _interrupted(argparse.Namespace(command="ticket"),
                            CommandInterrupted(signum)) == code
    assert capsys.readouterr().err.count("odeprune ticket: interrupted") == 2
