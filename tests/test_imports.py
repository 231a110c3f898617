"""``import odeprune`` stays light (issue 16, item 2): public names are imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("numba", "matplotlib", "scipy.integrate", "scipy.special", "jax", "numpy")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_odeprune_imports_no_heavy_module():
    loaded = _modules_after("import odeprune")
    assert not [m for m in HEAVY if m in loaded], sorted(m for m in HEAVY if m in loaded)


def test_dir_and_all_do_not_import():
    loaded = _modules_after("import odeprune; dir(odeprune); odeprune.__all__")
    assert "numpy" not in loaded and "numba" not in loaded


def test_public_names_resolve_and_are_listed():
    import odeprune

    assert set(odeprune.__all__) <= set(dir(odeprune))
    assert set(odeprune.__all__) - {"__version__"} <= set(odeprune._LAZY)
    from odeprune.results import LearningCurve
    from odeprune.state import OrderParams

    assert odeprune.OrderParams is OrderParams
    assert odeprune.LearningCurve is LearningCurve
    assert isinstance(odeprune.__version__, str)


def test_unknown_name_is_attribute_error():
    import odeprune

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        odeprune.no_such_name  # noqa: B018
    assert not hasattr(odeprune, "no_such_name")


def test_listed_but_missing_module_fails_only_when_accessed(monkeypatch):
    import odeprune

    monkeypatch.setitem(odeprune._LAZY, "ghost", ("odeprune._no_such_module", "ghost"))
    with pytest.raises(ImportError, match="odeprune.ghost is part of the public API"):
        odeprune.ghost  # noqa: B018
    assert "odeprune._no_such_module" not in sys.modules


def test_cli_integrate_loads_only_its_command():
    loaded = _modules_after(
        "from odeprune.cli import build_parser\nbuild_parser(only='integrate')")
    assert "odeprune.cli._integrate" in loaded
    assert not {"odeprune.cli._simulate", "odeprune.cli._prune", "odeprune.cli._figure"} & loaded
    assert "matplotlib" not in loaded and "jax" not in loaded


def test_cli_overview_lists_every_command_without_the_numerics():
    """``odeprune --help`` lists the commands by their one-line HELP; it imports no numerics
    (the prune/retrain/ticket parsers read the pruning registry only when they are built)."""
    from odeprune.cli import COMMANDS

    loaded = _modules_after(
        "from odeprune.cli import build_parser\n"
        "p = build_parser(overview=True)\n"
        "import sys\n"
        "assert all(c in p.format_help() for c in " + repr(COMMANDS) + ")")
    assert not {"numpy", "numba", "matplotlib", "odeprune.pruning", "odeprune.workflows"} & loaded


# moved from test_hostile*.py


def test_theory_module_as_the_readme_names_it():
    import importlib

    import odeprune

    module = importlib.import_module("odeprune.pruning.theory")
    assert odeprune.theory is module
    readme = (ROOT / "README.md").read_text()
    assert "`odeprune.pruning.theory`" in readme

