"""Every output of every command is checked before any work (``odeprune/cli/_inputs.py``)."""

import time
from pathlib import Path

import pytest
from conftest import ROOT_USER, cli, one_error_line


def _commands(cli_trained_file, bad: Path) -> list[list]:
    return [
        ["retrain", cli_trained_file, "--k", "1", "-o", bad / "re"],
        ["ticket", "--c", "0.5", "--K", "3", "-o", bad / "t"],
        ["prune", cli_trained_file, "--method", "all", "--k", "1", "-o", bad / "p"],
        ["integrate", "--plot", bad / "c.png"],
        ["integrate", "-o", bad / "c.npz"],
        ["integrate", "--checkpoint", bad / "c.ckpt.npz"],
        ["simulate", "--plot", bad / "s.png"],
        ["figure", "fig4", "-o", bad / "figs"],
        ["figure", "fig4", "--cache", bad / "cache"],
    ]


@pytest.mark.parametrize("how", ["under_a_file", "missing_parent"])
def test_every_output_is_checked_before_any_work(cli_trained_file, tmp_path, capsys, how):
    """`retrain -o RO/re` (and ticket, prune --method all, integrate --plot) computed
    everything, printed it, then refused to write: now one line, exit 2, before any work."""
    if how == "under_a_file":
        (tmp_path / "somefile").write_text("x")
        bad = tmp_path / "somefile"
    else:
        bad = tmp_path / "missing" / "dir"
    for args in _commands(cli_trained_file, bad):
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
def test_read_only_directory_is_refused_before_any_work(cli_trained_file, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for args in _commands(cli_trained_file, ro):
            assert cli(*args) == 2, args
            one_error_line(capsys, "cannot write")
    finally:
        ro.chmod(0o755)

