"""Input files of the sub-commands: one way to read a state or weights, one set of checks.

Every result a command writes holds states (an OrderParams, the curve of ``integrate``, the runs
of ``simulate``, the pruned outcomes of ``prune``), and so does a plain ``np.savez`` of arrays;
``--pick`` and ``--run`` choose among several. Options that a combination cannot honour are
refused here, before any work, with one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import CliError

OPTION_NAMES = {"pick": "--pick", "run": "--run"}


def pick_arg(text: str):
    """``--pick``: an outcome index, or ``likeliest``."""
    if text == "likeliest":
        return text
    try:
        return int(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"expected an outcome index or 'likeliest', got {text!r}") from None


def add_choice_options(group) -> None:
    """``--pick`` and ``--run``: which state of a file with several."""
    group.add_argument("--pick", type=pick_arg, default=None, metavar="I|likeliest",
                       help="outcome of a PruneResult file with several (random or DPP "
                            "pruning): its index, or 'likeliest' (default: the only one)")
    group.add_argument("--run", type=int, default=None, metavar="I",
                       help="run of a SimulationEnsemble file (simulate --runs/--seeds)")


#: set by ``odeprune.cli.main`` from ``--quiet``: notes and info lines are left out
QUIET = False


def note(text: str) -> None:
    """An informational ``note: ...`` line on stderr (not with ``--quiet``)."""
    if not QUIET:
        print(f"note: {text}", file=sys.stderr)


def info(text: str) -> None:
    """What was written where (``saved ...``, ``plotted ...``), on stderr; not with
    ``--quiet``, which leaves the results (tables on stdout), warnings and errors."""
    if not QUIET:
        print(text, file=sys.stderr, flush=True)


def explicit(args, *names: str) -> list[str]:
    """The options among ``names`` (dest names) that the user gave (their default is None)."""
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) is not None]


def refuse_with(args, source: str, *names: str) -> None:
    """Refuse options that a state read from ``source`` makes meaningless."""
    given = explicit(args, *names)
    if given:
        raise CliError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the "
                       f"random initial draw; the initial state comes from {source}")


def explicit_values(**options) -> str:
    """``"--pick, --run"`` for the options given (not None)."""
    return ", ".join(OPTION_NAMES.get(k, f"--{k}") for k, v in options.items() if v is not None)


def _settle_activation(state, info, path, activation):
    """The state with the activation settled: the file's, or ``--activation`` when the file does
    not record one; a conflicting ``--activation`` is refused."""
    if activation is None:
        return state
    if info["activation_source"] == "file":
        if activation != state.activation:
            raise CliError(f"--activation {activation} conflicts with the activation "
                           f"{state.activation!r} recorded in {path}; omit --activation")
        return state
    return state.replace(activation=activation)


def _say_plain(info, path, state, activation) -> None:
    if info["kind"] == "plain":
        how = ("from its 'activation' array" if info["activation_source"] == "file" else
               "from --activation" if activation is not None else
               "assumed (give --activation to change it)")
        note(f"{path} has no odeprune metadata: read as {info['description']}; activation "
             f"{state.activation!r} {how}")
    elif info["activation_source"] == "assumed" and activation is None:
        note(f"{path} does not record its activation (written by an older odeprune): "
             "erf assumed (give --activation to change it)")


SPARSE_KINDS = ("SparseOrderParams", "SparseLearningCurve")


def load_input_state(path: Path, pick=None, run=None, activation: str | None = None,
                     allow_sparse: bool = False, command: str | None = None):
    """``(state, info)`` from any file holding states (see :func:`odeprune.state.load_state`).

    A file holding a masked network (a ``SparseOrderParams``, a ``SparseLearningCurve``, or an
    edge rule's ``PruneResult``; :func:`odeprune.pruning._api.load_masked`) gives its
    ``SparseOrderParams`` with ``allow_sparse`` (the commands that train it as the masked network
    it is) and is refused otherwise with one line naming ``command`` and what trains it: its
    summed state is not a dense network with the same dynamics.
    """
    from .. import _io
    from ..pruning._api import load_masked
    from ..state import load_state

    arrays, meta = _io.read_npz(path, allow_plain=True)
    what = masked_description(meta)
    if what is not None and not allow_sparse:
        raise CliError(f"{path} holds {what}; {command or 'this command'} starts from a dense "
                       f"network: train the masked one with 'odeprune integrate --init {path}'")
    if what is not None:
        state = load_masked(path)
        given = explicit_values(pick=pick if pick not in (0, "likeliest") or
                                meta["kind"] != "PruneResult" else None, run=run)
        if given:
            raise CliError(f"{given} does not apply to {path} (a {meta['kind']})")
        if activation is not None and activation != state.activation:
            raise CliError(f"--activation {activation} conflicts with the activation "
                           f"{state.activation!r} recorded in {path}; omit --activation")
        alpha = (float(arrays["alpha"][-1]) if meta["kind"] == "SparseLearningCurve"
                 else None)
        return state, dict(kind=meta["kind"], alpha=alpha, activation_source="file",
                           masked=what, description=what)
    state, info = load_state(path, pick=pick, run=run, names=OPTION_NAMES)
    state = _settle_activation(state, info, path, activation)
    _say_plain(info, path, state, activation)
    return state, info


def masked_description(meta) -> str | None:
    """What masked network a file's metadata describes ("a masked network (...)"), or None for
    a dense one."""
    from ..pruning.registry import methods

    kind = meta["kind"]
    if kind in SPARSE_KINDS:
        return f"a masked network (a {kind})"
    if kind == "PruneResult" and meta.get("method") in methods(sparse=True):
        return f"a masked network (pruned by {meta.get('method')} at c={meta.get('c'):g})"
    return None


def load_weights(path: Path, run=None, activation: str | None = None):
    """``(w, w_star, v, v_star, activation)`` from a plain ``.npz`` with arrays ``w, w_star, v,
    v_star`` (optionally ``activation``), or the final weights of a SimulationResult /
    SimulationEnsemble (``--run``) file."""
    import numpy as np

    from .. import _io
    from ..activations import get_activation
    from ..state import PLAIN_WEIGHT_ARRAYS, _choose

    arrays, meta = _io.read_npz(path, allow_plain=True)
    kind = meta["kind"]
    if run is not None and kind != "SimulationEnsemble":
        raise CliError(f"--run applies to a SimulationEnsemble file; {path} holds "
                       f"{'plain arrays' if kind == 'plain' else 'a ' + kind}")
    if kind == "plain":
        missing = sorted(set(PLAIN_WEIGHT_ARRAYS) - set(arrays))
        if missing:
            raise CliError(f"--weights {path}: expected arrays w (K,N), w_star (M,N), v (K,), "
                           f"v_star (M,); missing {missing} (it has {sorted(arrays)})")
        w, w_star, v, v_star = (np.asarray(arrays[k], dtype=float) for k in PLAIN_WEIGHT_ARRAYS)
        recorded = str(arrays["activation"]) if "activation" in arrays else None
    elif kind in ("SimulationResult", "SimulationEnsemble"):
        j = (_choose(path, arrays["w"].shape[0], run, "--run", "runs")
             if kind == "SimulationEnsemble" else None)

        def pick(name):
            return arrays[name] if j is None else arrays[name][j]

        w, w_star, v = pick("w"), pick("w_star"), pick("v")[-1]
        v_star = pick("v_star") if "v_star" in arrays else np.asarray(meta["v_star"])
        runs_meta = meta.get("run_metadata")
        recorded = (runs_meta[j] if runs_meta else meta).get("activation")
    else:
        raise CliError(f"--weights {path} holds a {kind}, which has no weights; weights come "
                       "from a plain .npz (w, w_star, v, v_star) or a simulate result")
    if w.ndim != 2 or w_star.ndim != 2 or v.ndim != 1 or np.ndim(v_star) != 1:
        raise CliError(f"--weights {path}: expected w (K,N), w_star (M,N), v (K,), v_star (M,); "
                       f"got shapes {w.shape}, {w_star.shape}, {v.shape}, {np.shape(v_star)}")
    if recorded is not None:
        recorded = get_activation(recorded).name
        if activation is not None and activation != recorded:
            raise CliError(f"--activation {activation} conflicts with the activation "
                           f"{recorded!r} recorded in {path}; omit --activation")
    act = recorded or activation or "erf"
    if kind == "plain":
        how = ("from its 'activation' array" if recorded else "from --activation" if activation
               else "assumed (give --activation to change it)")
        note(f"{path} has no odeprune metadata: read as plain weights w, w_star, v, v_star; "
             f"activation {act!r} {how}")
    return w, w_star, v, np.asarray(v_star, dtype=float), act


def check_run_outputs(args) -> None:
    """The outputs of a long run (``--output``, ``--plot``, ``--checkpoint``), and a
    ``--resume`` that can find its checkpoint, before any work."""
    if args.resume and args.checkpoint is None and args.output is None:
        raise CliError("--resume needs the checkpoint: give --output (its checkpoint is "
                       "OUT.ckpt.npz) or --checkpoint")
    check_outputs(("--output", args.output), ("--plot", args.plot),
                  ("--checkpoint", args.checkpoint))


def check_output(path: Path | None, option: str = "--output") -> None:
    """:func:`check_outputs` of one file output."""
    check_outputs((option, path))


def check_outputs(*outputs) -> None:
    """Refuse, before any work, every output that could not be written, with one line.

    Each entry is ``(option, path)`` (a file, or the prefix ``OUT`` of files ``OUT.*``: either
    way written into ``path``'s directory) or ``(option, path, "dir")`` (a directory, created
    with its parents when missing); ``path=None`` is skipped. A file's directory must exist and
    be a directory, a directory's nearest existing ancestor must be one, and either must take a
    new file: a temporary file is created there and removed, so that read-only file systems and
    permissions are seen as the write itself would see them. Every command calls this once,
    for all of its outputs, so that nothing computed is thrown away at the end.
    """
    for entry in outputs:
        option, path = entry[0], entry[1]
        if path is None:
            continue
        path = Path(path)
        if len(entry) > 2 and entry[2] == "dir":
            if path.exists() and not path.is_dir():
                raise CliError(f"{option} {path} is a file; expected a directory")
            where = path
            while not where.exists():
                where = where.parent if str(where.parent) else Path(".")
            if not where.is_dir():
                raise CliError(f"{option} {path}: {where} is a file, not a directory")
        else:
            if path.is_dir():
                raise CliError(f"{option} {path} is a directory; expected a file name")
            where = path.parent if str(path.parent) else Path(".")
            if not where.exists():
                blocker = where
                while not blocker.exists():
                    blocker = blocker.parent if str(blocker.parent) else Path(".")
                if not blocker.is_dir():
                    raise CliError(f"{option} {path}: {blocker} is a file, not a directory")
                raise CliError(f"{option} {path}: directory {where} does not exist")
            if not where.is_dir():
                raise CliError(f"{option} {path}: {where} is a file, not a directory")
        _probe_write(option, path, where)


def _probe_write(option: str, path: Path, directory: Path) -> None:
    import os
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=".odeprune-write-test.", dir=directory)
    except OSError as exc:
        raise CliError(f"{option} {path}: cannot write in directory {directory} "
                       f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)
