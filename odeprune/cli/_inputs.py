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


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


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
                     allow_sparse: bool = False):
    """``(state, info)`` from any file holding states (see :func:`odeprune.state.load_state`);
    with ``allow_sparse``, a masked network's file gives a ``SparseOrderParams``."""
    from .. import _io
    from ..state import load_state

    if allow_sparse:
        arrays, meta = _io.read_npz(path, allow_plain=True)
        if meta["kind"] in SPARSE_KINDS:
            from ..sparse import SparseOrderParams

            given = explicit_values(pick=pick, run=run)
            if given:
                raise CliError(f"{given} does not apply to {path} (a {meta['kind']})")
            state = SparseOrderParams.load(path)
            if activation is not None and activation != state.activation:
                raise CliError(f"--activation {activation} conflicts with the activation "
                               f"{state.activation!r} recorded in {path}; omit --activation")
            alpha = (float(arrays["alpha"][-1]) if meta["kind"] == "SparseLearningCurve"
                     else None)
            return state, dict(kind=meta["kind"], alpha=alpha, activation_source="file",
                               description=f"a masked network ({meta['kind']})")
    state, info = load_state(path, pick=pick, run=run, names=OPTION_NAMES)
    state = _settle_activation(state, info, path, activation)
    _say_plain(info, path, state, activation)
    return state, info


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
    check_output(args.output)
    check_output(args.plot, "--plot")
    if args.checkpoint is not None:
        check_output(args.checkpoint, "--checkpoint")


def check_output(path: Path | None, option: str = "--output") -> None:
    """Refuse, before any work, an output whose directory is missing (or a directory)."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise CliError(f"{option} {path}: directory {parent} does not exist")
    if path.is_dir():
        raise CliError(f"{option} {path} is a directory; expected a file name")
