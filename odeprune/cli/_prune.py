"""``odeprune prune``: prune a saved state in the thermodynamic limit, print a table of eg."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..options import add_cli_options, value
from . import CliError
from ._common import fraction, positive_int, progress_of
from ._inputs import add_choice_options, explicit, info

DESCRIPTION = """\
Prune a two-layer student given by its order parameters (N -> infinity) and print the
generalisation error of the pruned network: mean and spread over the method's randomness
(Acharyya et al. 2021). INPUT is any file holding a state: an OrderParams, a LearningCurve or
SimulationResult (the last saved time), a SimulationEnsemble (--run I), a PruneResult (--pick I),
or a plain .npz with arrays Q, R, T, v, v_star; --weights takes weights instead. The activation
is the one recorded in the file.

Node methods keep k of the K units:
{node}
edge methods keep a fraction c of the first-layer weights:
{edge}
With --k and --method all, edge pruning uses the same parameter count, c = k/K (Eq. 1); with
--c, node methods use k = cK when that is an integer. Reweightings that do not apply to a method
are skipped under --method all / --reweight all (node: {node_rw};
edge: {edge_rw}); each skipped group is named on stderr and recorded in the metadata of the
results written.
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


#: one line for ``odeprune --help``
HELP = "prune a saved state (N -> infinity); table of eg"


def register(sub) -> None:
    from ..pruning import registry
    from ..pruning._api import PruneOptions  # (the defaults of the method's options)

    description = DESCRIPTION.format(
        node=registry.help_text("node"), edge=registry.help_text("edge"),
        node_rw=", ".join(registry.NODE_REWEIGHTS), edge_rw=", ".join(registry.EDGE_REWEIGHTS))
    p = sub.add_parser("prune", help=HELP,
                       description=description, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, metavar="INPUT", nargs="?",
                   help="a file holding the state: OrderParams, LearningCurve or simulation "
                        "(final state), SimulationEnsemble (--run), PruneResult (--pick), or a "
                        "plain .npz of Q, R, T, v, v_star")
    p.add_argument("--weights", type=Path, metavar="W.npz",
                   help="instead of INPUT: weights (a plain .npz of w, w_star, v, v_star, or a "
                        "simulate result); pruned through their order parameters")
    add_choice_options(p)
    p.add_argument("--method", choices=registry.METHODS + ("all",), default="all",
                   help="pruning method, or all (default)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--k", type=_k_arg, default=None, metavar="K|all",
                      help="kept units (1..K), or all of 1..K")
    size.add_argument("--c", type=fraction, default=None, help="kept fraction of edges, in [0, 1]")
    p.add_argument("--reweight", choices=registry.REWEIGHTS + ("all",),
                   default=PruneOptions.reweight,
                   help=f"second-layer reweighting (default {PruneOptions.reweight}), or all "
                        "applicable")
    p.add_argument("--kernel", choices=["Q", "activation"], default=None,
                   help=f"DPP kernel of {' / '.join(registry.methods(uses_kernel=True))}: Q "
                        "(pre-activation Gram limit) or activation (I2); default "
                        f"{PruneOptions.kernel}")
    add_cli_options(p, ["activation"], help={
        "activation": "erf, linear or relu: only for files that do not record it (plain arrays, "
                      "old files); left out: the file's, else erf"})
    add_cli_options(p, ["seed"], help={
        "seed": f"seed of the random methods ({', '.join(registry.methods(seeded=True))})"})
    p.add_argument("--n-samples", type=positive_int, default=None,
                   help="Monte Carlo draws of random_node / dpp_node when C(K,k) is too large "
                        f"to enumerate (default {PruneOptions.n_samples}); snip_edge's coordinate "
                        "samples (at least 200000)")
    p.add_argument("--monte-carlo", action="store_true",
                   help="sample subsets of random_node / dpp_node even when enumeration is "
                        "feasible")
    p.add_argument("--output", "-o", type=Path, metavar="OUT.npz",
                   help="save the PruneResult (several: OUT.<method>.<reweight>.<k|c>.npz, and "
                        "the table as OUT.csv)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prune)


def _check_options(args) -> None:
    """Refuse, before any work, options that the chosen method(s) cannot honour."""
    from odeprune.pruning.registry import methods

    sampled = methods(sampled=True)          # --monte-carlo
    seeded = methods(seeded=True)            # --seed / --n-samples
    kernel_methods = methods(uses_kernel=True)
    if (args.input is None) == (args.weights is None):
        raise CliError("give INPUT (a file holding a state) or --weights W.npz, exactly one")
    if args.weights is not None and args.pick is not None:
        raise CliError("--pick applies to an INPUT PruneResult file, not to --weights")
    if args.k is None and args.c is None:
        raise CliError("give --k K (node pruning; 'all' for 1..K) or --c C (edge pruning)")
    if args.method == "all":
        return
    if args.method not in kernel_methods and args.kernel is not None:
        raise CliError(f"--kernel applies to {' and '.join(kernel_methods)}, not {args.method}")
    if args.method not in seeded and args.seed is not None:
        raise CliError(f"--seed has no effect on {args.method} (deterministic); it applies to "
                       f"{', '.join(seeded)}")
    if args.method not in seeded and args.n_samples is not None:
        raise CliError(f"--n-samples has no effect on {args.method} (no Monte Carlo); it "
                       f"applies to {', '.join(seeded)}")
    if args.method not in sampled and args.monte_carlo:
        raise CliError(f"--monte-carlo applies to {' and '.join(sampled)} (sampled subsets), "
                       f"not {args.method}")


def _check_sampling(args, K: int) -> None:
    """``--seed`` / ``--n-samples`` of random_node / dpp_node act only when subsets are sampled;
    refuse them when every subset is enumerated exactly."""
    import math

    from odeprune.pruning import registry
    from odeprune.pruning.node import MAX_ENUMERATE

    if args.method not in registry.methods(sampled=True) or args.monte_carlo or args.k in (None, "all"):
        return
    if not 1 <= args.k <= K or math.comb(K, args.k) > MAX_ENUMERATE:
        return
    given = explicit(args, "seed", "n_samples")
    if given:
        raise CliError(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect: "
                       f"{args.method} enumerates all C({K},{args.k}) = "
                       f"{math.comb(K, args.k)} subsets exactly; add --monte-carlo to sample")


def _jobs(args, K: int):
    """``(jobs, skipped)``: the (method, k, c, reweight) to run, and one line per group of
    combinations that ``--method all`` / ``--reweight all`` leave out, saying why."""
    from odeprune.pruning import registry

    methods = registry.METHODS if args.method == "all" else (args.method,)
    ks = list(range(1, K + 1)) if args.k == "all" else [args.k] if args.k is not None else []
    if args.k not in (None, "all") and not 1 <= args.k <= K:
        raise CliError(f"--k {args.k} is out of range; allowed 1..K={K}")
    jobs = []
    skipped: dict[str, list[str]] = {}
    for m in methods:
        kind = registry.get(m).kind
        allowed = registry.reweights_for(kind)
        if args.reweight == "all":
            rws = allowed
        elif args.reweight in allowed:
            rws = (args.reweight,)
        elif args.method != "all":
            raise CliError(f"--reweight {args.reweight} does not apply to {m}; allowed "
                           f"{', '.join(allowed)}")
        else:
            skipped.setdefault(f"--reweight {args.reweight} does not apply to {kind} methods "
                               f"(they take {', '.join(allowed)})", []).append(m)
            continue
        if kind == "edge":
            cs = [k / K for k in ks] if args.c is None else [args.c]
            jobs += [(m, None, c, rw) for c in cs for rw in rws]
        else:
            if args.c is not None:
                k = args.c * K
                if abs(k - round(k)) > 1e-9 or round(k) < 1:
                    if args.method != "all":
                        raise CliError(f"--c {args.c} gives k = cK = {k:g}, not an integer in "
                                       f"1..K={K}; node methods need --k")
                    skipped.setdefault(f"--c {args.c:g} gives k = cK = {k:g}, not an integer in "
                                       f"1..K={K} (node methods keep whole units; give --k, or "
                                       f"a c that is a multiple of 1/K)", []).append(m)
                    continue
                node_ks = [int(round(k))]
            else:
                node_ks = ks
            jobs += [(m, k, None, rw) for k in node_ks for rw in rws]
    lines = [f"skipped {', '.join(ms)}: {why}" for why, ms in skipped.items()]
    if not jobs:
        raise CliError("no (method, reweight) combination applies: " + "; ".join(lines))
    return jobs, lines


def _load(args):
    import odeprune

    from ._inputs import load_input_state, load_weights

    if args.weights is not None:
        w, w_star, v, v_star, act = load_weights(args.weights, run=args.run,
                                                 activation=args.activation)
        return odeprune.OrderParams.from_weights(w, w_star, v, v_star, activation=act)
    return load_input_state(args.input, pick=args.pick, run=args.run,
                            activation=args.activation, command="prune")[0]


def run_prune(args) -> int:
    import odeprune
    from odeprune._io import atomic_write_text
    from odeprune.pruning._api import PruneOptions

    from ._inputs import check_output

    _check_options(args)
    check_output(args.output)
    state = _load(args)
    _check_sampling(args, state.K)
    jobs, skipped_lines = _jobs(args, state.K)
    for line in skipped_lines:
        print(f"# {line}", file=sys.stderr)
    results, skipped = [], {}
    # the method's options given on the command line (left out: the library's defaults)
    given = {n: getattr(args, n) for n in ("kernel", "n_samples") if getattr(args, n) is not None}
    for method, k, c, rw in jobs:
        try:
            r = odeprune.prune(state, method, k=k, c=c, reweight=rw, seed=value(args, "seed"),
                               exact=not args.monte_carlo, progress=progress_of(args),
                               **given)
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
        line = f"skipped {method} at {', '.join(what)}: {reason}"
        skipped_lines.append(line)
        print(f"# {line}", file=sys.stderr)
    if skipped_lines:  # recorded in every result written (what they computed is kept)
        results = [r.with_metadata(skipped=skipped_lines) for r in results]
    header = (f"{'method':<22}{'k':>4}{'c':>9}  {'reweight':<11}{'eg_mean':>12}{'eg_std':>11}"
              f"{'mc_se':>10}")
    print(f"# K={state.K} M={state.M} activation={state.activation} "
          f"eg_unpruned={state.eg():.6g} kernel={args.kernel or PruneOptions.kernel}")
    print(header)
    rows = ["method,k,c,reweight,eg_mean,eg_std,eg_se,exact"]
    for r in results:
        m = r.metadata
        k = r.subsets.shape[1] if m["k"] is not None else None
        c = m["c"] if m["c"] is not None else k / state.K
        print(f"{r.method:<22}{(k if k is not None else '-'):>4}{c:>9.4f}  {m['reweight']:<11}"
              f"{r.eg_mean:>12.6g}{r.eg_std:>11.4g}{r.eg_se:>10.2g}")
        rows.append(f"{r.method},{'' if k is None else k},{c!r},{m['reweight']},{r.eg_mean!r},"
                    f"{r.eg_std!r},{r.eg_se!r},{r.exact}")
    if args.output is not None:
        if len(results) == 1:
            path = results[0].save(args.output)
            info(f"saved {path}")
        else:
            stem = args.output.with_suffix("") if args.output.suffix == ".npz" else args.output
            for r in results:
                m = r.metadata
                tag = f"k{m['k']}" if m["k"] is not None else f"c{m['c']:g}"
                r.save(Path(f"{stem}.{r.method}.{m['reweight']}.{tag}.npz"))
            csv = atomic_write_text(Path(f"{stem}.csv"), "\n".join(rows) + "\n")
            info(f"saved {len(results)} results as {stem}.*.npz and {csv}")
    return 0


def interrupt_note(args) -> str:
    """What an interrupted run leaves (see ``odeprune.cli._interrupted``)."""
    return ("nothing saved (the results are written when every method is done): run the same "
            "command again")
