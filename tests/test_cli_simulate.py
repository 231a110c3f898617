"""``odeprune simulate`` (``odeprune/cli/_simulate.py``): kill and resume, help."""

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import cli, kill_when

import odeprune


@pytest.mark.slow
def test_kill_and_resume_simulate_is_exact(tmp_path):
    env = dict(os.environ, ODEPRUNE_CHECKPOINT_EVERY_S="0")
    args = ["simulate", "-q", "--N", "300", "--alpha-max", "60", "--sigma", "0.2", "--n-test",
            "100", "--seed", "3"]
    full = tmp_path / "full.npz"
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(full)], check=True,
                   env=env)
    out = tmp_path / "killed.npz"
    ckpt = tmp_path / "killed.ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-m", "odeprune", *args, "--output", str(out),
                             "--checkpoint", str(ckpt)], stderr=subprocess.PIPE, text=True,
                            env=env)
    kill_when(ckpt, proc)
    assert not out.exists()
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(out), "--checkpoint",
                    str(ckpt), "--resume"], check=True, env=env)
    a, b = odeprune.load(full), odeprune.load(out)
    for name in ("alpha", "eg", "Q", "R", "v", "eg_test", "w"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with zipfile.ZipFile(out) as z:
        assert "metadata.npy" in z.namelist()



def test_simulate_help_names_only_its_own_options(capsys):
    with pytest.raises(SystemExit):
        cli("simulate", "--help")
    assert "--init" not in capsys.readouterr().out

