"""``odeprune prune``: prune a saved state in the thermodynamic limit, print a table of eg."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CliError
from ._common import positive_int

METHOD_CHOICES = ("random_node", "importance_node", "dpp_node", "dpp_map_node", "random_edge",
                  "magnitude_edge", "magnitude_edge_global", "dpp_edge", "snip_edge",
                  "snip_edge_global", "all")
REWEIGHT_CHOICES = ("none", "preact", "activation", "refit", "rescale", "rescale_rows", "all")

DESCRIPTION = """\
Prune a two-layer student given by its order parameters (N -> infinity) and print the
generalisation error of the pruned network: mean and spread over the method's randomness
(Acharyya et al. 2021). INPUT is a saved OrderParams, LearningCurve or SimulationResult file
(the last saved time is used).

Node methods keep k of the K units; edge methods (random_edge, magnitude_edge[_global], dpp_edge,
snip_edge[_global]) keep a fraction c of the first-layer weights.
With --k and --method all, edge pruning uses the same parameter count, c = k/K (Eq. 1); with
--c, node methods use k = cK when that is an integer. Reweightings that do not apply to a method
are skipped under --method all / --reweight all (node: none, preact, activation, refit; edge:
none, rescale, refit).
"""

EPILOG = """\
examples:
  odeprune prune curve.npz --method dpp_node --k 2
  odeprune prune curve.npz --method all --k all --reweight all
  odeprune prune state.npz --method random_edge --c 0.25 --reweight rescale -o pruned.npz
"""


def _k_arg(text: str):
    if text == "all":
        return "all"
    return positive_int(text)


def _c_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("prune", help="prune a saved state (N -> infinity); table of eg",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, metavar="INPUT",
                   help="OrderParams / LearningCurve / SimulationResult .npz")
    p.add_argument("--method", choices=METHOD_CHOICES, default="all",
                   help="pruning method, or all (default)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--k", type=_k_arg, default=None, metavar="K|all",
                      help="kept units (1..K), or all of 1..K")
    size.add_argument("--c", type=_c_arg, default=None, help="kept fraction of edges, in [0, 1]")
    p.add_argument("--reweight", choices=REWEIGHT_CHOICES, default="none",
                   help="second-layer reweighting (default none), or all applicable")
    p.add_argument("--kernel", choices=["Q", "activation"], default="Q",
                   help="DPP kernel: Q (pre-activation Gram limit, default) or activation (I2)")
    p.add_argument("--activation", choices=["erf", "linear"], default="erf")
    p.add_argument("--seed", type=int, default=0, help="seed for Monte Carlo sampling")
    p.add_argument("--n-samples", type=positive_int, default=10_000,
                   help="Monte Carlo draws when C(K,k) is too large to enumerate")
    p.add_argument("--monte-carlo", action="store_true",
                   help="sample subsets even when enumeration is feasible")
    p.add_argument("--output", "-o", type=Path, metavar="OUT.npz",
                   help="save the PruneResult (several: OUT.<method>.<reweight>.<k|c>.npz, and "
                        "the table as OUT.csv)")
    p.set_defaults(func=run_prune)


def _jobs(args, K: int):
    from odeprune.pruning import METHODS
    from odeprune.pruning.edge import EDGE_METHODS
    from odeprune.pruning.reweight import EDGE_REWEIGHTS, NODE_REWEIGHTS

    methods = METHODS if args.method == "all" else (args.method,)
    if args.k is None and args.c is None:
        raise CliError("give --k K (node pruning; 'all' for 1..K) or --c C (edge pruning)")
    ks = list(range(1, K + 1)) if args.k == "all" else [args.k] if args.k is not None else []
    if args.k not in (None, "all") and not 1 <= args.k <= K:
        raise CliError(f"--k {args.k} is out of range; allowed 1..K={K}")
    jobs = []
    for m in methods:
        allowed = EDGE_REWEIGHTS if m in EDGE_METHODS else NODE_REWEIGHTS
        if args.reweight == "all":
            rws = allowed
        elif args.reweight in allowed:
            rws = (args.reweight,)
        elif args.method != "all":
            raise CliError(f"--reweight {args.reweight} does not apply to {m}; allowed "
                           f"{', '.join(allowed)}")
        else:
            continue
        if m in EDGE_METHODS:
            cs = [k / K for k in ks] if args.c is None else [args.c]
            jobs += [(m, None, c, rw) for c in cs for rw in rws]
        else:
            if args.c is not None:
                k = args.c * K
                if abs(k - round(k)) > 1e-9 or round(k) < 1:
                    if args.method != "all":
                        raise CliError(f"--c {args.c} gives k = cK = {k:g}, not an integer in "
                                       f"1..K={K}; node methods need --k")
                    continue
                node_ks = [int(round(k))]
            else:
                node_ks = ks
            jobs += [(m, k, None, rw) for k in node_ks for rw in rws]
    if not jobs:
        raise CliError("no (method, reweight) combination applies; see --help")
    return jobs


def run_prune(args) -> int:
    import odeprune
    from odeprune._io import atomic_write_text

    state = odeprune.OrderParams.load(args.input)
    if args.output is not None and not args.output.parent.exists():
        raise CliError(f"--output {args.output}: directory {args.output.parent} does not exist")
    jobs = _jobs(args, state.K)
    results, skipped = [], {}
    for method, k, c, rw in jobs:
        try:
            r = odeprune.prune(state, method, k=k, c=c, reweight=rw, kernel=args.kernel,
                               seed=args.seed, exact=not args.monte_carlo,
                               n_samples=args.n_samples, activation=args.activation)
        except ValueError as exc:
            if len(jobs) == 1:
                raise
            entry = skipped.setdefault(method, [str(exc).split(":")[0], []])
            what = f"k={k}" if k is not None else f"c={c:g}"
            if what not in entry[1]:
                entry[1].append(what)
            continue
        results.append(r)
    for method, (reason, what) in skipped.items():
        print(f"# skipped {method} at {', '.join(what)}: {reason}", file=sys.stderr)
    header = (f"{'method':<16}{'k':>4}{'c':>9}  {'reweight':<11}{'eg_mean':>12}{'eg_std':>11}"
              f"{'mc_se':>10}")
    print(f"# K={state.K} M={state.M} eg_unpruned={state.eg(args.activation):.6g} "
          f"kernel={args.kernel}")
    print(header)
    rows = ["method,k,c,reweight,eg_mean,eg_std,eg_se,exact"]
    for r in results:
        m = r.metadata
        k = r.subsets.shape[1] if m["k"] is not None else None
        c = m["c"] if m["c"] is not None else k / state.K
        print(f"{r.method:<16}{(k if k is not None else '-'):>4}{c:>9.4f}  {m['reweight']:<11}"
              f"{r.eg_mean:>12.6g}{r.eg_std:>11.4g}{r.eg_se:>10.2g}")
        rows.append(f"{r.method},{'' if k is None else k},{c!r},{m['reweight']},{r.eg_mean!r},"
                    f"{r.eg_std!r},{r.eg_se!r},{r.exact}")
    if args.output is not None:
        if len(results) == 1:
            path = results[0].save(args.output)
            print(f"saved {path}", file=sys.stderr)
        else:
            stem = args.output.with_suffix("") if args.output.suffix == ".npz" else args.output
            for r in results:
                m = r.metadata
                tag = f"k{m['k']}" if m["k"] is not None else f"c{m['c']:g}"
                r.save(Path(f"{stem}.{r.method}.{m['reweight']}.{tag}.npz"))
            csv = atomic_write_text(Path(f"{stem}.csv"), "\n".join(rows) + "\n")
            print(f"saved {len(results)} results as {stem}.*.npz and {csv}", file=sys.stderr)
    return 0
