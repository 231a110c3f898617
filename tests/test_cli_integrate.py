import subprocess
import sys

import numpy as np

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
