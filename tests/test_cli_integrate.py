import subprocess
import sys

import numpy as np
import pytest
from conftest import kill_when

import odeprune
from odeprune.cli import main


def test_integrate_default_prints_table(capsys):
    assert main(["integrate", "--quiet", "--alpha-max", "20"]) == 0
    assert main(["integrate", "--alpha-max", "20", "--save-at", "1,10"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "eg" in out and "K=6 M=2" in out


def test_integrate_output_files_and_init(tmp_path, capsys):
    out = tmp_path / "curve.npz"
    assert main(["integrate", "-q", "--M", "1", "--K", "2", "--alpha-max", "5", "--sigma", "0.1",
                 "--output", str(out), "--plot", str(tmp_path / "c.png")]) == 0
    curve = odeprune.LearningCurve.load(out)
    assert curve.K == 2 and curve.metadata["sigma"] == 0.1
    assert (tmp_path / "curve.csv").read_text().startswith("alpha,eg\n")
    assert (tmp_path / "c.png").stat().st_size > 0
    # continue from the saved final state
    assert main(["integrate", "-q", "--init", str(out), "--alpha-max", "5",
                 "--output", str(tmp_path / "more.npz")]) == 0
    more = odeprune.LearningCurve.load(tmp_path / "more.npz")
    np.testing.assert_array_equal(more.Q[0], curve.Q[-1])


def test_bad_arguments_one_line_exit_2(tmp_path):
    cases = [
        ["integrate", "--K", "0"],
        ["integrate", "--eta", "-1"],
        ["integrate", "--init", str(tmp_path / "missing.npz")],
        ["integrate", "--output", str(tmp_path / "no" / "dir" / "x.npz")],
        ["integrate", "--save-at", "1,x"],
        ["integrate", "--v-star", "1,2,3"],
    ]
    for argv in cases:
        proc = subprocess.run([sys.executable, "-m", "odeprune", *argv], capture_output=True,
                              text=True)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and "error" in lines[0], (argv, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_help_mentions_the_essentials():
    proc = subprocess.run([sys.executable, "-m", "odeprune", "integrate", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    for word in ("--eta", "--sigma", "--init", "--alpha-max", "--save-at", "examples"):
        assert word in proc.stdout


# moved from test_hostile*.py


def test_cli_bad_file_one_line(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"PK\x03\x04garbage")
    proc = subprocess.run([sys.executable, "-m", "odeprune", "integrate", "--init", str(p)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a readable odeprune result" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "odeprune", "--debug", "integrate", "--init",
                           str(p)], capture_output=True, text=True)
    assert "Traceback" in proc.stderr


@pytest.mark.slow
def test_kill_and_resume_integrate_is_exact(tmp_path):
    args = ["integrate", "-q", "--K", "8", "--M", "3", "--alpha-max", "20000", "--sigma", "0.3",
            "--rtol", "1e-10", "--atol", "1e-12"]
    full = tmp_path / "full.npz"
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(full)], check=True)
    out = tmp_path / "killed.npz"
    ckpt = tmp_path / "killed.ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-m", "odeprune", *args, "--output", str(out)],
                            stderr=subprocess.PIPE, text=True)
    kill_when(ckpt, proc)
    assert not out.exists()
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(out), "--resume"],
                   check=True)
    a, b = odeprune.LearningCurve.load(full), odeprune.LearningCurve.load(out)
    for name in ("alpha", "eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not ckpt.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_jax_backend_with_output(tmp_path):
    pytest.importorskip("diffrax")
    from odeprune.cli import main

    out = tmp_path / "jax.npz"
    assert main(["integrate", "-q", "--backend", "jax", "--alpha-max", "5", "--K", "3",
                 "--output", str(out)]) == 0
    ref = tmp_path / "numba.npz"
    assert main(["integrate", "-q", "--alpha-max", "5", "--K", "3", "--output", str(ref)]) == 0
    a, b = odeprune.load(out), odeprune.load(ref)
    assert a.metadata["backend"] == "jax"
    np.testing.assert_allclose(a.eg, b.eg, rtol=1e-5, atol=1e-9)  # both at rtol 1e-7
    assert not list(tmp_path.glob("*.ckpt.npz"))

