"""``odeprune ticket``: lottery tickets, iterative magnitude pruning and pruning at
initialisation, in the limit and at finite N."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..options import add_cli_options, value
from . import CliError
from ._common import (
    NETWORK_FLAGS,
    add_network_arguments,
    float_list,
    fraction,
    positive_float,
    positive_int,
    progress_of,
)

DESCRIPTION = """\
Sparse networks found near initialisation, trained and compared with the dense network.

  --mode ticket (default): train the dense network to --alpha-train, take the magnitude mask of
      its first layer (a fraction --c of each row, or of the whole layer with --scope global),
      rewind the kept weights and v to their values at --alpha-rewind and train again for
      --alpha-max (Frankle & Carbin's lottery ticket). Beside it (--arms): the dense network from
      the same point, a random mask, the magnitude mask of the rewound weights themselves
      (magnitude_init) and fine-tuning of the pruned trained network (finetune).
  --mode imp: iterative magnitude pruning: --rounds rounds of train (--alpha-train each) ->
      remove --prune-fraction of the kept weights by trained magnitude -> rewind to the dense
      network at --alpha-rewind (default 0). Exact in the limit in every round (the coordinate
      law: the decisions act on particles; --n-samples of them, in 8 replicas whose spread is
      eg_se).
  --mode gradual: gradual magnitude pruning during training (Zhu & Gupta): --n-prunes decisions
      evenly spaced over --prune-window A0,A1 (default 0.1 and 0.6 of --alpha-max) down to the
      final kept fraction --c with a cubic schedule, no rewinding, training on to --alpha-max.
  --mode init: prune the initial network with --rule at --c (--rescale: restore each row's
      norm, Hayou et al. 2021) and train it for --alpha-max beside the dense network.

The network starts from the paper's random draw (--N, --K, --M, --v-star, --seed: all weights
N(0,1)), or from --init FILE (a state, limit only). --layer limit (default) integrates the
order-parameter ODEs from that draw's order parameters (masks as per-class states, K <= 12);
--layer finite runs SGD on real weights with real masks for every --seeds (one table row per arm
and time: mean, standard error over seeds, the ODE from the same real starts and the paired
gap); --layer both does both.

Files written with -o OUT: OUT.<layer>.npz (a WorkflowResult with every arm's curves), OUT.csv
(all tables), OUT.json (parameters and tables); in the limit also OUT.<arm>.npz per arm (a
LearningCurve or SparseLearningCurve: continue it with 'odeprune integrate --init
OUT.<arm>.npz').
"""

EPILOG = """\
examples:
  odeprune ticket --c 0.2 --alpha-train 500 --alpha-max 1000
  odeprune ticket --c 0.2 --alpha-rewind 1 --layer both --seeds 0,1,2,3,4,5,6,7 -o ticket
  odeprune ticket --mode imp --rounds 4 --prune-fraction 0.3 --alpha-train 200
  odeprune ticket --mode imp --alpha-rewind 1 --layer both --seeds 0-3
  odeprune ticket --mode gradual --c 0.2 --alpha-max 400 --n-prunes 8
  odeprune ticket --mode init --rule snip_edge --c 0.1 --rescale --alpha-max 1000
"""


def _int_list(text: str) -> list[int]:
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(x) for x in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 0,1,2 or a range 0-7, got {text!r}") from None


def _arms() -> tuple[str, ...]:
    """The arms of ``workflows.lottery_ticket`` (imported when a ticket command is built, not
    for ``odeprune --help``)."""
    from ..workflows import TICKET_ARMS

    return TICKET_ARMS


def _arms_arg(text: str) -> list[str]:
    out = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in out if a not in _arms()]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"unknown arm(s) {bad}; choose from "
                                         f"{', '.join(_arms())}")
    return out


#: one line for ``odeprune --help``
HELP = "lottery tickets, IMP, pruning at init (limit, finite N)"


def register(sub) -> None:
    from ..pruning import registry

    arms = _arms()
    p = sub.add_parser("ticket", help=HELP,
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("ticket", "imp", "gradual", "init"), default="ticket",
                   help="lottery ticket (default), iterative magnitude pruning, or pruning at "
                        "initialisation")
    net = p.add_argument_group("the initial network")
    add_network_arguments(net, help={"K": "student units", "M": "teacher units",
                                     "seed": "seed of the initial draw of the limit"})
    net.add_argument("--init", type=Path, default=None, metavar="FILE",
                     help="start the limit from this state instead of the random draw")
    prot = p.add_argument_group("protocol")
    prot.add_argument("--c", type=fraction, default=None,
                      help="kept fraction of first-layer weights (ticket, init)")
    prot.add_argument("--alpha-train", type=positive_float, default=None,
                      help="dense training before taking the mask (ticket; default 500), or "
                           "training per round (imp; default 200)")
    prot.add_argument("--alpha-rewind", type=float, default=0.0,
                      help="ticket: rewind the kept weights to their values at this time "
                           "(default 0)")
    add_cli_options(prot, ["alpha_max"], defaults={"alpha_max": 1000.0}, help={
        "alpha_max": "training of every arm after pruning (ticket, init)"})
    prot.add_argument("--scope", choices=("row", "global"), default="row",
                      help="magnitude mask per row (default) or over the whole layer")
    prot.add_argument("--arms", type=_arms_arg, default=list(arms), metavar="A[,A..]",
                      help=f"ticket: arms to train (default all: {', '.join(arms)})")
    prot.add_argument("--rounds", type=positive_int, default=3, help="imp: rounds (default 3)")
    prot.add_argument("--n-prunes", type=positive_int, default=8,
                      help="gradual: number of pruning decisions (default 8)")
    prot.add_argument("--prune-window", type=float_list, default=None, metavar="A0,A1",
                      help="gradual: first and last decision times (default 0.1 and 0.6 of "
                           "--alpha-max)")
    prot.add_argument("--prune-fraction", type=float, default=0.2,
                      help="imp: fraction of kept weights removed per round (default 0.2)")
    prot.add_argument("--rule", choices=registry.methods("edge"), default="magnitude_edge",
                      help="init: edge rule applied to the initial weights (default "
                           "magnitude_edge)")
    prot.add_argument("--rescale", action="store_true",
                      help="init: restore each pruned row's norm (variance-restoring rescale)")
    prot.add_argument("--report", type=float_list, default=[1.0, 10.0, 100.0, 1000.0],
                      metavar="A[,A..]", help="times reported in the table (default "
                                              "1,10,100,1000; alpha-max is added)")
    dyn = p.add_argument_group("learning rule and layers")
    add_cli_options(dyn, ["eta"], help={"eta": "learning rate"})
    dyn.add_argument("--layer", choices=("limit", "finite", "both"), default="limit",
                     help="N -> infinity (default), finite-N SGD over --seeds, or both")
    dyn.add_argument("--seeds", type=_int_list, default=list(range(8)), metavar="S",
                     help="finite N: seeds, e.g. 0,1,2 or 0-7 (default 0-7)")
    dyn.add_argument("--n-samples", type=positive_int, default=200_000,
                     help="limit: coordinate Monte Carlo samples of the mask maps (default "
                          "200000)")
    p.add_argument("--output", "-o", type=Path, metavar="OUT",
                   help="write OUT.<layer>.npz, OUT.csv, OUT.json, OUT.<arm>.npz (see above)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run_ticket)


def _check(args) -> None:
    for name in (*NETWORK_FLAGS, "eta"):  # a flag left out: the default of odeprune.options
        setattr(args, name, value(args, name))
    if args.mode in ("ticket", "init", "gradual") and args.c is None:
        raise CliError(f"--mode {args.mode} needs --c, the kept fraction of first-layer weights")
    if args.mode == "imp" and args.c is not None:
        raise CliError("--c does not apply to --mode imp (the kept fraction is "
                       "(1 - --prune-fraction)^round)")
    if args.mode != "imp" and (args.rounds != 3 or args.prune_fraction != 0.2):
        raise CliError("--rounds / --prune-fraction apply to --mode imp only")
    if args.mode != "init" and (args.rescale or args.rule != "magnitude_edge"):
        raise CliError("--rule / --rescale apply to --mode init only")
    if args.mode != "ticket" and args.arms != list(_arms()):
        raise CliError("--arms apply to --mode ticket only")
    if args.mode not in ("ticket", "imp") and args.alpha_rewind != 0:
        raise CliError("--alpha-rewind applies to --mode ticket and imp")
    if args.mode != "gradual" and (args.n_prunes != 8 or args.prune_window is not None):
        raise CliError("--n-prunes / --prune-window apply to --mode gradual only")
    if args.mode == "gradual":
        if args.alpha_train is not None:
            raise CliError("--alpha-train does not apply to --mode gradual (decisions at "
                           "--prune-window, training to --alpha-max)")
        w = args.prune_window or [0.1 * args.alpha_max, 0.6 * args.alpha_max]
        if len(w) != 2 or not 0 <= w[0] <= w[1] <= args.alpha_max:
            raise CliError(f"--prune-window {w} must be A0,A1 with 0 <= A0 <= A1 <= "
                           f"--alpha-max = {args.alpha_max}")
        args.prune_window = w
    if args.mode == "init" and args.alpha_train is not None:
        raise CliError("--alpha-train does not apply to --mode init (training starts at the "
                       "pruned initial network; use --alpha-max)")
    if not 0 < args.prune_fraction < 1:
        raise CliError(f"--prune-fraction {args.prune_fraction} must be in (0, 1)")
    if args.init is not None and args.layer != "limit":
        raise CliError("--init starts the limit from a state; finite N needs weights and draws "
                       "them from --seeds (use --layer limit)")
    if args.alpha_train is None:
        args.alpha_train = 200.0 if args.mode == "imp" else 500.0
    if args.mode in ("ticket", "imp") and not 0 <= args.alpha_rewind < args.alpha_train:
        raise CliError(f"--alpha-rewind {args.alpha_rewind} must be in [0, --alpha-train = "
                       f"{args.alpha_train})")


def _schedule(args):
    from odeprune.workflows.schedules import zhu_gupta_schedule

    a0, a1 = args.prune_window
    return zhu_gupta_schedule(args.c, a0, a1, args.n_prunes)


def run_ticket(args) -> int:
    import odeprune
    from odeprune import workflows
    from odeprune._io import atomic_write_text

    from ._inputs import check_output, info, load_input_state

    _check(args)
    check_output(args.output)
    progress = progress_of(args)
    results = []
    if args.layer in ("limit", "both"):
        if args.init is not None:
            state, _ = load_input_state(args.init, command="ticket --init")
        else:
            state = odeprune.OrderParams.random(args.N, args.K, args.M, v_star=args.v_star,
                                                seed=args.seed)
        if args.mode == "ticket":
            r = workflows.lottery_ticket(state, args.c, alpha_T=args.alpha_train,
                                         alpha_rewind=args.alpha_rewind,
                                         alpha_max=args.alpha_max, eta=args.eta,
                                         scope=args.scope, arms=args.arms, report=args.report,
                                         seed=args.seed, n_samples=args.n_samples,
                                         progress=progress)
        elif args.mode == "imp":
            r = workflows.iterative_magnitude_pruning(state, rounds=args.rounds,
                                                      prune_fraction=args.prune_fraction,
                                                      alpha_per_round=args.alpha_train,
                                                      rewind_to=args.alpha_rewind,
                                                      eta=args.eta, scope=args.scope,
                                                      seed=args.seed, n_samples=args.n_samples,
                                                      progress=progress)
        elif args.mode == "gradual":
            r = workflows.gradual_magnitude_pruning(state, _schedule(args), args.alpha_max,
                                                    eta=args.eta, scope=args.scope,
                                                    seed=args.seed, n_samples=args.n_samples,
                                                    progress=progress)
        else:
            r = workflows.prune_at_init(state, args.rule, args.c, rescale=args.rescale,
                                        eta=args.eta, alpha_max=args.alpha_max,
                                        report=args.report, seed=args.seed,
                                        n_samples=args.n_samples, progress=progress)
        results.append(r)
    if args.layer in ("finite", "both"):
        net = dict(seeds=args.seeds, eta=args.eta, v_star=args.v_star)
        if args.mode == "ticket":
            r = workflows.lottery_ticket_finite(args.N, args.K, args.M, args.c,
                                                alpha_T=args.alpha_train,
                                                alpha_rewind=args.alpha_rewind,
                                                alpha_max=args.alpha_max, scope=args.scope,
                                                arms=args.arms, report=args.report,
                                                progress=progress, **net)
        elif args.mode == "imp":
            r = workflows.iterative_magnitude_pruning_finite(
                args.N, args.K, args.M, rounds=args.rounds, prune_fraction=args.prune_fraction,
                alpha_per_round=args.alpha_train, scope=args.scope,
                rewind_to=args.alpha_rewind, progress=progress, **net)
        elif args.mode == "gradual":
            r = workflows.gradual_magnitude_pruning_finite(
                args.N, args.K, args.M, _schedule(args), args.alpha_max, scope=args.scope,
                progress=progress, **net)
        else:
            r = workflows.prune_at_init_finite(args.N, args.K, args.M, args.rule, args.c,
                                               rescale=args.rescale, alpha_max=args.alpha_max,
                                               report=args.report, progress=progress, **net)
        results.append(r)
    for r in results:
        _print_table(r)
    if args.output is not None:
        stem = args.output.with_suffix("") if args.output.suffix == ".npz" else args.output
        paths = [r.save(Path(f"{stem}.{r.layer}.npz")) for r in results]
        csv = workflows.table_to_csv([row for r in results for row in r.table])
        paths.append(atomic_write_text(Path(f"{stem}.csv"), csv))
        paths.append(atomic_write_text(Path(f"{stem}.json"), json.dumps(
            dict(command="ticket", mode=args.mode,
                 results=[dict(r.metadata, workflow=r.workflow, layer=r.layer, arms=r.arms,
                               table=r.table) for r in results]), default=str, indent=1)
            + "\n"))
        if results[0].layer == "limit":
            from odeprune.workflows import safe_label

            for arm, cv in results[0].curves.items():
                paths.append(cv.save(Path(f"{stem}.{safe_label(arm)}.npz")))
        info(f"saved {', '.join(str(p) for p in paths)}")
    return 0


def _print_table(res) -> None:
    finite = res.layer == "finite"
    cols = [("arm", "<30", "s"), ("alpha", ">8", "g"), ("c", ">8", ".4g"), ("eg", ">12", ".5g"),
            ("eg_se", ">10", ".2g")]
    if res.workflow == "imp":
        cols += [("eg_pruned", ">12", ".5g")]
    if finite and res.workflow not in ("imp", "gradual"):
        cols += [("eg_ode", ">12", ".5g"), ("gap", ">10", ".2g"), ("gap_se", ">9", ".2g")]
    where = f"finite N={res.table[0].get('N')}, {res.table[0].get('n')} seeds" if finite else \
        "N -> inf"
    print(f"# {res.workflow}, {where}; alpha = time since (re)training started")
    print("".join(f"{name:{fmt[0]}{fmt[1:]}}" for name, fmt, _ in cols))
    for r in res.table:
        cells = []
        for name, fmt, num in cols:
            v = r.get(name)
            cells.append(f"{'-' if v is None else v:{fmt}}" if v is None or num == "s"
                         else f"{v:{fmt}{num}}")
        print("".join(cells))


def interrupt_note(args) -> str:
    """What an interrupted run leaves (see ``odeprune.cli._interrupted``)."""
    return ("nothing saved (the results are written when every method is done): run the same "
            "command again")
