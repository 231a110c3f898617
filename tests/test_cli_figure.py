"""``odeprune figure`` / ``reproduce`` help (``odeprune/cli/_figure.py``)."""

import pytest
from conftest import cli


def test_reproduce_and_figure_help_list_every_figure(capsys):
    from odeprune.figures import FIGURES

    for command in ("reproduce", "figure"):
        with pytest.raises(SystemExit):
            cli(command, "--help")
        out = capsys.readouterr().out
        for name in FIGURES:
            assert f"  {name} " in out, (command, name)

