"""``odeprune simulate``: finite-N online SGD, the ground truth for the ODEs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_cli_options, given, value
from . import CliError
from ._common import (
    DYNAMICS_FLAGS,
    add_dynamics_arguments,
    add_network_arguments,
    add_teacher_density,
    float_list,
    positive_int,
    progress_of,
)
from ._inputs import check_run_outputs, explicit, info, load_weights

DESCRIPTION = """\
Train a real two-layer student (K hidden units, input dimension N) on a real two-layer teacher
(M units) by online SGD, one fresh Gaussian sample per step (Goldt et al. 2019; Acharyya et al.
2021, Section 4). Time is alpha = (SGD steps) / N. The initial weights are the draw of
'odeprune integrate --N N --seed S', so both start from the same order parameters.

Prints eg(alpha) from the order parameters and the empirical test error on --n-test held-out
samples (noiseless labels; add sigma^2/2 for noisy ones). With --runs or --seeds, several seeds
run in parallel and the table shows their mean and standard deviation.
"""

EPILOG = """\
examples:
  odeprune simulate --alpha-max 100                       # paper's M=2, K=6, N=500, one seed
  odeprune simulate --M 5 --K 20 --runs 8 --alpha-max 1000 --output sim.npz --plot sim.png
  odeprune simulate --n-train 800000 --alpha-max 1600     # the paper's finite training set
"""


#: one line for ``odeprune --help``
HELP = "finite-N online SGD simulation"


def register(sub) -> None:
    p = sub.add_parser("simulate", help=HELP,
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    net = p.add_argument_group("networks")
    add_network_arguments(net, help={
        "seed": "seed of the run: initial weights (unless --weights) and the SGD samples"})
    net.add_argument("--runs", type=positive_int, default=None,
                     help="number of runs, seeds --seed, --seed+1, ... (default: one run)")
    net.add_argument("--seeds", type=str, default=None, metavar="S1,S2,...",
                     help="explicit seeds of several runs")
    net.add_argument("--weights", type=Path, metavar="W.npz",
                     help="initial weights instead of the seeded draw: a plain .npz of w (K,N), "
                          "w_star (M,N), v (K,), v_star (M,), or a simulate result (its final "
                          "weights: training continues)")
    net.add_argument("--run", type=int, default=None, metavar="I",
                     help="run of a SimulationEnsemble file given with --weights")
    add_teacher_density(net)
    dyn = add_dynamics_arguments(p, sources="--weights")
    add_cli_options(dyn, ["n_train"], help={
        "n_train": "finite training set, replayed each pass (left out: fresh samples)"})
    run = p.add_argument_group("run")
    add_cli_options(run, ["alpha_max"], defaults={"alpha_max": 100.0},
                    help={"alpha_max": "final time alpha"})
    run.add_argument("--save-at", type=float_list, default=None, metavar="A1,A2,...",
                     help="times to record (default: 40 log-spaced points)")
    add_cli_options(run, ["n_test"], help={
        "n_test": "held-out test samples for the empirical error (0: none)"})
    run.add_argument("--workers", type=positive_int, default=None,
                     help="threads for several runs (--runs/--seeds; default: number of CPUs)")
    out = p.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, metavar="OUT.npz",
                     help="save the result (.npz); also writes OUT.csv")
    out.add_argument("--plot", type=Path, metavar="FIG.png",
                     help="plot eg(alpha) (mean +- std over runs) to this file")
    add_cli_options(out, ["checkpoint", "resume"],
                    help={"checkpoint": "checkpoint file", "resume": "resume from the checkpoint"},
                    help_default={"checkpoint": "OUT.ckpt.npz beside --output"})
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no notes (the table of results is still printed)")
    p.set_defaults(func=run_simulate)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CliError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise CliError("--seeds: expected at least one seed")
    return seeds


def _table(alpha, eg, eg_test, eg_spread, n_rows: int = 12) -> str:
    import numpy as np

    idx = np.unique(np.linspace(0, len(alpha) - 1, n_rows).round().astype(int))
    lines = [f"{'alpha':>12}  {'eg':>12}  {'+-':>10}  {'eg_test':>12}"]
    lines += [f"{alpha[j]:12.5g}  {eg[j]:12.6g}  {eg_spread[j]:10.3g}  {eg_test[j]:12.6g}"
              for j in idx]
    return "\n".join(lines)


def _check_options(args) -> None:
    """Refuse, before any work, every option this combination cannot honour."""
    if args.runs is not None and args.seeds is not None:
        raise CliError("give --runs or --seeds, not both")
    if args.seeds is not None and args.seed is not None:
        raise CliError("--seed has no effect with --seeds (the seeds are given); drop one")
    if args.workers is not None and args.runs is None and args.seeds is None:
        raise CliError("--workers applies to several runs (--runs or --seeds)")
    if args.teacher_density is not None and args.weights is not None:
        raise CliError("--teacher-density draws a sparse teacher; --weights gives the teacher: "
                       "drop one of them")
    if args.train_second_layer is False and args.eta_v is not None:
        raise CliError("--eta-v has no effect with --freeze-v (the second layer is frozen); "
                       "drop one of them")
    if args.weights is not None:
        given = explicit(args, "M", "K", "N", "v_star")
        if given:
            raise CliError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} given by "
                           f"the shapes and arrays of --weights {args.weights}; drop "
                           f"{'it' if len(given) == 1 else 'them'}")
    elif args.run is not None:
        raise CliError("--run applies to a SimulationEnsemble file given with --weights")
    check_run_outputs(args)


def run_simulate(args) -> int:
    import numpy as np

    import odeprune
    from odeprune.sim import SimulationEnsemble

    _check_options(args)
    seeds = _parse_seeds(args.seeds) if args.seeds is not None else None
    checkpoint = args.checkpoint
    if checkpoint is None and args.output is not None:
        checkpoint = args.output.with_name(args.output.stem + ".ckpt.npz")
    activation = args.activation
    if args.weights is not None:
        w, w_star, v, v_star, activation = load_weights(args.weights, run=args.run,
                                                        activation=args.activation)
        N, K, M, init = w.shape[1], w.shape[0], w_star.shape[0], (w, w_star, v)
    else:
        N, K, M, v_star = (value(args, n) for n in ("N", "K", "M", "v_star"))
        init = None
    sigma = value(args, "sigma")
    seed = value(args, "seed")
    teacher_mask = None
    if args.teacher_density is not None:
        from odeprune.teachers import teacher_support

        teacher_mask = teacher_support(N, M, args.teacher_density,
                                       seed=np.random.SeedSequence([seed, 99]))
    result = odeprune.simulate(
        N, K, M, alpha_max=args.alpha_max, save_at=args.save_at, v_star=v_star,
        activation=activation, seed=seed, n_test=value(args, "n_test"), n_train=args.n_train,
        seeds=seeds, n_runs=args.runs, progress=progress_of(args), checkpoint=checkpoint,
        resume=value(args, "resume"), max_workers=args.workers, init=init, teacher_mask=teacher_mask,
        **given(args, DYNAMICS_FLAGS))
    ensemble = isinstance(result, SimulationEnsemble)
    if ensemble:
        eg, spread = result.eg_mean, result.eg_std
        eg_test = result.eg_test_mean
        first = result[0]
    else:
        eg, spread, eg_test, first = result.eg, np.zeros_like(result.eg), result.eg_test, result
    # the result, printed with --quiet too (which silences only progress and notes)
    runs = f"{len(result)} runs" if ensemble else f"seed={seed}"
    print(f"# N={first.N} K={first.K} M={first.M} eta={value(args, 'eta')} sigma={sigma} ({runs}; "
          "+- is the std over runs)")
    print(_table(result.alpha, eg, eg_test, spread))
    if args.output is not None:
        from odeprune._io import atomic_write_text

        path = result.save(args.output)
        lines = ["alpha,eg,eg_std,eg_test"] + [
            f"{a!r},{e!r},{s!r},{t!r}" for a, e, s, t in
            zip(result.alpha.tolist(), eg.tolist(), spread.tolist(), eg_test.tolist())]
        atomic_write_text(path.with_suffix(".csv"), "\n".join(lines) + "\n")
        info(f"saved {path} and {path.with_suffix('.csv')}")
    if args.plot is not None:
        from ._plots import plot_simulation

        plot_simulation(result.alpha, eg, spread, first, len(result) if ensemble else 1,
                        args.plot)
        info(f"plotted {args.plot}")
    return 0
