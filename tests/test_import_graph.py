"""The package's module-level imports form no cycle (issue 11): a bottom-layer module never
reaches up into a higher one at import time. Imports inside functions (optional extras such as
JAX and dask, and the CLI's per-command imports that keep start-up fast) are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

import odeprune

ROOT = Path(odeprune.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = ("odeprune",) + f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _from_target(package: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement in ``package`` reads from."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _top_level_imports(name: str, path: Path, mods: dict) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = []
    for node in tree.body:  # module level, including under `if`/`try`
        nodes.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            nodes.extend(node.body)
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(package, node)
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in mods:
                    out.add(sub)
                elif target in mods:
                    out.add(target)
    out.discard(name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, color, stack = [], {}, []

    def visit(u):
        color[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if color.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in color:
                visit(v)
        stack.pop()
        color[u] = 2

    for u in sorted(graph):
        if u not in color:
            visit(u)
    return cycles


def test_no_import_cycle_at_module_level():
    mods = _modules()
    graph = {m: _top_level_imports(m, p, mods) for m, p in mods.items()}
    assert _cycles(graph) == []


def test_the_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_load_reads_every_result_kind_it_lists(tmp_path):
    from odeprune import OrderParams, integrate, load, workflows
    from odeprune.results import KINDS

    s = OrderParams.random(200, 3, 2, v_star=2.0, seed=0)
    r = workflows.retrain(integrate(s, 0.5, 20.0).final, "importance_node", k=2,
                          delta_alphas=[5.0])
    assert "WorkflowResult" in KINDS
    assert type(load(r.save(tmp_path / "r.npz"))).__name__ == "WorkflowResult"


# ------------------------------------------------------------------ imports inside functions
#: third-party packages that may be imported inside a function: the optional extras (a user
#: without them can still use everything else)
OPTIONAL_EXTRAS = {"jax", "jaxlib", "diffrax", "xarray", "dask", "distributed", "dppy"}

#: (module, imported) pairs deferred on purpose, with the reason
DEFERRED = {
    # scipy.integrate costs 0.15 s on top of numba's own start-up; only the implicit phase of
    # method="auto"/"bdf"/"radau" needs it (issue 16: start-up of short jobs)
    ("odeprune.ode.stiff", "scipy.integrate"),
    # the package's lazy public names (PEP 562): `import odeprune` imports nothing heavy
    ("odeprune", "odeprune._io"),
    # the optional JAX backend (an extra) is a module of ours
    ("odeprune.ode.dynamics", "odeprune.ode.jax_backend"),
    ("odeprune.ode.batch", "odeprune.ode.jax_backend"),
    # the option table builds the command line's parsers: its checks import numpy and the
    # validators only when a value is checked, so that `odeprune --help` stays fast
    ("odeprune.options", "numpy"),
    ("odeprune.options", "odeprune._validate"),
    # tqdm.auto imports asyncio and ssl: 0.03 s of a command that draws no bar (issue 27)
    ("odeprune.ode.progress", "tqdm.auto"),
}


def _function_imports(name: str, path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` of every import inside a function of ``path``."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                out += [(a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = _from_target(package, node)
                subs = [f"{target}.{a.name}" for a in node.names
                        if (ROOT.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(
                            ".py").is_file()]
                out += [(s, node.lineno) for s in subs] or [(target, node.lineno)]
    return out


def _allowed(module: str, target: str) -> bool:
    if target.split(".")[0] in OPTIONAL_EXTRAS:
        return True
    return (module, target) in DEFERRED


def test_no_import_inside_a_library_function():
    """Issue 11: below the command line, modules import at module level, except the optional
    extras and the deferred imports listed (with their reasons) above. The command line
    (``odeprune.cli``) imports per command, so that each command loads only what it uses."""
    bad = []
    for name, path in _modules().items():
        if name.startswith("odeprune.cli"):
            continue
        for target, line in _function_imports(name, path):
            if not _allowed(name, target):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert bad == []


def test_the_function_import_check_finds_one(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from .state import OrderParams\n    import jax\n")
    found = _function_imports("odeprune.m", f)
    assert found == [("odeprune.state", 2), ("jax", 3)]
    assert not _allowed("odeprune.m", "odeprune.state") and _allowed("odeprune.m", "jax")
