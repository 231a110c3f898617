"""``odeprune retrain``: prune a trained student, then train the pruned network again."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..options import add_cli_options, value
from . import CliError
from ._common import float_list, fraction, positive_int, progress_of

#: node methods left out of ``--method node`` / ``all`` (they can still be named)
NOT_IN_ALL = ("dpp_map_node",)

DESCRIPTION = """\
Prune a trained two-layer student, then retrain the pruned network, and report the
generalisation error right after pruning and after retraining for each DELTA (--delta-alpha).

Node methods keep k of the K hidden units (the pruned network is a smaller dense network); edge
rules keep a fraction c of the first-layer weights, and the mask stays fixed while the network
retrains. With --k, edge rules use the same parameter count, c = k/K.

Two layers, one protocol:
  N -> infinity (default): INPUT is any file holding a trained state (the output of
      'odeprune integrate', an OrderParams, a SimulationResult's order parameters, ...). Pruning
      is a map on the order parameters and retraining integrates the ODEs (an edge-pruned
      network as per-class order parameters; K <= 12).
  --finite: INPUT is a 'odeprune simulate' result (one run or several seeds); every run's real
      weights are pruned (real subsets / masks, one per run, seeded by the run's seed) and
      retrained by online SGD at that N. The table also gives the ODE integrated from the exact
      order parameters of each real pruned network (eg_ode) and the paired gap.

Files written with -o OUT: OUT.npz (a WorkflowResult: every arm's curve and the table),
OUT.csv (the table), OUT.json (parameters and table), and the retrained networks: in the limit
OUT.<arm>.npz (a LearningCurve or SparseLearningCurve; continue it with 'odeprune integrate
--init OUT.<arm>.npz', prune it again with 'odeprune prune OUT.<arm>.npz' when it is dense);
with --finite OUT.<arm>.npz (a SimulationEnsemble of the retraining runs, one per seed: read by
'odeprune prune --weights OUT.<arm>.npz --run I').
"""

EPILOG = """\
examples:
  odeprune integrate --alpha-max 1600 -o trained.npz
  odeprune retrain trained.npz --method dpp_node,random_node --k 2 --reweight none,preact
  odeprune retrain trained.npz --method magnitude_edge --c 0.33 --delta-alpha 10,100,1000 -o re
  odeprune simulate --alpha-max 1600 --seeds 0,1,2,3,4,5,6,7 -o sims.npz
  odeprune retrain sims.npz --finite --method all --k 2 -o re_finite
"""


def _methods_arg(text: str) -> list[str]:
    from odeprune.pruning.registry import METHODS, methods

    if text in ("all", "node", "edge"):
        return [m for m in methods(None if text == "all" else text) if m not in NOT_IN_ALL]
    out = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in out if m not in METHODS]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {bad}; expected a comma-separated list of {', '.join(METHODS)}"
            ", or node / edge / all")
    return out


def _reweights_arg(text: str) -> list[str]:
    from odeprune.pruning.registry import REWEIGHTS as allowed

    out = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in out if m not in allowed]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"unknown reweighting(s) {bad}; expected a "
                                         f"comma-separated list of {', '.join(allowed)}")
    return out


#: one line for ``odeprune --help``
HELP = "prune a trained student, retrain it; eg before/after"


def register(sub) -> None:
    from odeprune.pruning import registry

    p = sub.add_parser("retrain", help=HELP,
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, metavar="INPUT",
                   help="the trained network: any state file (limit), or a simulate result "
                        "(--finite)")
    p.add_argument("--finite", action="store_true",
                   help="run the protocol on the real weights of a simulate result (finite N)")
    p.add_argument("--run", type=int, default=None, metavar="I",
                   help="limit only: which run of a SimulationEnsemble INPUT gives the state")
    p.add_argument("--method", type=_methods_arg, default=["dpp_node"], metavar="M[,M..]",
                   help="pruning method(s), comma-separated, or node / edge / all (default "
                        "dpp_node). Node: " + ", ".join(registry.NODE_METHODS) + "; edge: "
                        + ", ".join(registry.EDGE_METHODS))
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--k", type=positive_int, help="kept units (node methods; edge rules "
                                                     "then keep c = k/K)")
    size.add_argument("--c", type=fraction, help="kept fraction of first-layer weights (edge "
                                               "rules; node methods need k = cK integer)")
    p.add_argument("--reweight", type=_reweights_arg, default=["none"], metavar="R[,R..]",
                   help="second-layer reweighting(s) before retraining (default none). Node: "
                        + ", ".join(registry.NODE_REWEIGHTS) + "; edge: "
                        + ", ".join(registry.EDGE_REWEIGHTS)
                        + ". Combinations that do not apply are skipped, with a note")
    p.add_argument("--delta-alpha", type=float_list, default=[10.0, 100.0, 1000.0],
                   metavar="A[,A..]",
                   help="retraining durations reported (default 10,100,1000); the curves run to "
                        "the largest")
    add_cli_options(p, ["eta", "eta_v", "sigma", "seed"], help_default={"eta_v": "--eta"}, help={
        "eta": "learning rate of the retraining", "eta_v": "second-layer learning rate",
        "sigma": "label noise std",
        "seed": "limit: seed of sampled subsets and coordinate Monte Carlo"})
    p.add_argument("--n-samples", type=positive_int, default=None,
                   help="limit: coordinate Monte Carlo samples of the edge maps (default "
                        "200000); finite: inputs of empirical kernels / gradients / least "
                        "squares (default 10000)")
    p.add_argument("--output", "-o", type=Path, metavar="OUT",
                   help="write OUT.npz, OUT.csv, OUT.json and OUT.<arm>.npz (see above)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run_retrain)


def _jobs(methods, reweights, k, c, K):
    from odeprune.pruning import registry

    jobs, skipped = [], []
    for m in methods:
        kind = registry.get(m).kind
        allowed = registry.reweights_for(kind)
        if kind == "node":
            if k is None:
                kk = c * K
                if abs(kk - round(kk)) > 1e-9 or round(kk) < 1:
                    skipped.append(f"{m}: --c {c:g} gives k = cK = {kk:g}, not an integer in "
                                   f"1..K={K}")
                    continue
                size = dict(k=int(round(kk)))
            else:
                if k > K:
                    raise CliError(f"--k {k} is out of range; allowed 1..K={K}")
                size = dict(k=k)
        else:
            size = dict(c=c if c is not None else k / K)
        for rw in reweights:
            if rw not in allowed:
                skipped.append(f"{m} with --reweight {rw} (it takes {', '.join(allowed)})")
                continue
            jobs.append((m, size, rw))
    if not jobs:
        raise CliError("no (method, reweight) combination applies: " + "; ".join(skipped))
    return jobs, skipped


def _arm_file(stem: Path, arm: str) -> Path:
    from odeprune.workflows import safe_label

    return Path(f"{stem}.{safe_label(arm)}.npz")


def run_retrain(args) -> int:
    import odeprune
    from odeprune import workflows
    from odeprune._io import atomic_write_text
    from odeprune.ode.progress import make_bar
    from odeprune.sim import SimulationEnsemble, SimulationResult

    from ._inputs import check_output, info, load_input_state, note

    check_output(args.output)
    if any(a <= 0 for a in args.delta_alpha) or not args.delta_alpha:
        raise CliError(f"--delta-alpha {args.delta_alpha}: give positive durations")
    if args.finite and args.run is not None:
        raise CliError("--run picks the state of one run for the limit; --finite uses every "
                       "run of the file")
    if args.finite:
        sims = odeprune.load(args.input)
        if not isinstance(sims, (SimulationResult, SimulationEnsemble)):
            raise CliError(f"--finite needs a simulate result (real weights); {args.input} "
                           f"holds a {type(sims).__name__}")
        K = sims.K if isinstance(sims, SimulationResult) else sims[0].K
    else:
        state, _ = load_input_state(args.input, run=args.run, command="retrain")
        K = state.K
    jobs, skipped = _jobs(args.method, args.reweight, args.k, args.c, K)
    for line in skipped:
        note(f"skipped {line}")
    common = dict(eta=value(args, "eta"), eta_v=value(args, "eta_v"),
                  sigma=value(args, "sigma"), delta_alphas=args.delta_alpha)
    results = []
    bar = make_bar(progress_of(args), len(jobs), "retrain", unit="method")
    for method, size, rw in jobs:
        if args.finite:
            r = workflows.retrain_finite(sims, method, reweight=rw,
                                         n_samples=args.n_samples or 10_000,
                                         progress=progress_of(args), **size,
                                         **common)
        else:
            r = workflows.retrain(state, method, reweight=rw, seed=value(args, "seed"),
                                  n_samples=args.n_samples or 200_000,
                                  progress=progress_of(args), **size, **common)
        results.append(r)
        bar.update(1)
    bar.close()
    res = workflows.WorkflowResult.combine(results)
    res.metadata.update(input=str(args.input), skipped=skipped, command="retrain")
    _print_table(res)
    if args.output is not None:
        stem = args.output.with_suffix("") if args.output.suffix == ".npz" else args.output
        paths = [res.save(Path(f"{stem}.npz")),
                 atomic_write_text(Path(f"{stem}.csv"), res.to_csv()),
                 atomic_write_text(Path(f"{stem}.json"), json.dumps(
                     dict(res.metadata, workflow=res.workflow, layer=res.layer, arms=res.arms,
                          table=res.table), default=str, indent=1) + "\n")]
        for arm, cv in res.curves.items():
            if args.finite:
                paths.append(SimulationEnsemble(runs=tuple(cv), metadata=dict(arm=arm)).save(
                    _arm_file(stem, arm)))
            elif not isinstance(cv, list):
                paths.append(cv.save(_arm_file(stem, arm)))
            else:
                note(f"{arm}: {len(cv)} outcomes (random subsets); their curves are in "
                     f"{stem}.npz as the probability-weighted mean, not saved one by one")
        info(f"saved {', '.join(str(p) for p in paths)}")
    return 0


def _print_table(res) -> None:
    finite = res.layer == "finite"
    head = f"{'arm':<38}{'alpha':>8}{'eg':>12}{'se':>10}"
    if finite:
        head += f"{'eg_ode':>12}{'gap':>10}{'gap_se':>9}"
    print(f"# {res.workflow}, {'finite N=' + str(res.table[0].get('N')) if finite else 'N -> inf'}"
          f" (alpha = time since pruning; alpha=0: right after pruning)")
    print(head)
    for r in res.table:
        line = f"{r['arm']:<38}{r['alpha']:>8g}{r['eg']:>12.5g}{r['eg_se']:>10.2g}"
        if finite:
            line += f"{r['eg_ode']:>12.5g}{r['gap']:>10.2g}{r['gap_se']:>9.2g}"
        print(line)


def interrupt_note(args) -> str:
    """What an interrupted run leaves (see ``odeprune.cli._interrupted``)."""
    return ("nothing saved (the results are written when every method is done): run the same "
            "command again")
