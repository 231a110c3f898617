"""``odeprune figure NAME``: one figure of Acharyya et al. (2021) (or the learning curves)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Reproduce one figure: compute what it needs (simulations, ODE curves, pruning; cached item by
item, so an interrupted run continues where it stopped and a re-plot is instant), write the data
behind it (NAME.json with all parameters, seeds and the odeprune version; NAME.csv in long
format) and plot it (NAME.png and NAME.pdf).

{figures}
"""

#: one line per figure for the help (every name of ``odeprune.figures.FIGURES`` is listed, with
#: its line when it has one here)
SUMMARIES = {
    "fig2a": "node pruning methods compared (DPP, importance, random; with/without reweighting)",
    "fig2b": "DPP node vs random edge pruning at equal parameter count (M=5, K=20 and M=2, K=6)",
    "fig3": "heatmaps: DPP kernel, Q and R before and after DPP / random node pruning (k=2)",
    "fig4": "closed-form difference DPP node - random edge over Z and c (panels A and B)",
    "curves": "learning curves, ODE against finite-N SGD for several N",
    "edges": "edge rules (random, magnitude, DPP-edge, SNIP) vs node pruning at equal parameter "
             "count",
    "retrain": "every pruning method before and after retraining (limit and finite N)",
    "init-pruning": "pruning the random initial network (random, magnitude, SNIP), then training",
    "tickets": "lottery tickets with rewinding vs dense, random mask, fine-tuning; IMP",
    "limit": "Zhang et al.'s pruning limit vs global magnitude pruning; Hessian spectrum",
    "relu": "ReLU learning curves (ODE vs SGD) and node vs edge pruning of a ReLU student",
    "deep-init": "pruning deep tanh networks at initialisation (Hayou et al. 2021): SBP, edge "
                 "of chaos, SBP-SR",
}


def figure_list() -> str:
    """The figures of the registry (``odeprune.figures.FIGURES``), one line each."""
    from ..figures import FIGURES

    width = max(len(n) for n in FIGURES) + 2
    return "\n".join(f"  {n:<{width}}{SUMMARIES.get(n, '(see odeprune.figures.' + n + ')')}"
                     for n in FIGURES)

EPILOG = """\
examples:
  odeprune figure fig4                          # seconds: closed forms only
  odeprune figure fig2a --quick --output /tmp/figs
  odeprune figure fig2b --output figures        # full size, cache in figures/.cache
"""


def add_common(p) -> None:
    p.add_argument("--output", "-o", type=Path, default=None, metavar="DIR",
                   help="output directory (default: ./figures, or ./figures-quick with --quick "
                        "so that a quick run never overwrites the full-size figures)")
    p.add_argument("--quick", action="store_true",
                   help="reduced size (small N, few seeds, short alpha): seconds, not minutes")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="cache directory (default: DIR/.cache, or DIR/.cache-quick with --quick)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def check_common(args) -> None:
    """Refuse, before any work, options that contradict each other."""
    from . import CliError
    from ._inputs import check_outputs

    if args.no_cache and args.cache is not None:
        raise CliError("--cache and --no-cache contradict each other; give one")
    check_outputs(("--output", output_dir(args), "dir"), ("--cache", cache_dir(args), "dir"))


def output_dir(args) -> Path:
    if args.output is None:
        args.output = Path("figures-quick" if args.quick else "figures")
    return args.output


def cache_dir(args) -> Path | None:
    if args.no_cache:
        return None
    if args.cache is not None:
        return args.cache
    return args.output / (".cache-quick" if args.quick else ".cache")


#: one line for ``odeprune --help``
HELP = "reproduce one figure (PNG, PDF and its data)"


def register(sub) -> None:
    from ..figures import FIGURES

    p = sub.add_parser("figure", help=HELP,
                       description=DESCRIPTION.format(figures=figure_list()), epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(FIGURES), metavar="NAME",
                   help=f"one of {', '.join(FIGURES)}")
    add_common(p)
    p.set_defaults(func=run_figure)


def make_one(name: str, args) -> dict:
    from ..figures import make
    from ._common import progress_of

    output_dir(args).mkdir(parents=True, exist_ok=True)
    return make(name, args.output, quick=args.quick, cache_dir=cache_dir(args),
                progress=progress_of(args))


def run_figure(args) -> int:
    from ._inputs import info

    check_common(args)
    res = make_one(args.name, args)
    files = ", ".join(str(p) for p in res["paths"])
    info(f"{args.name}: {res['seconds']:.1f} s -> {files}")
    return 0


def interrupt_note(args) -> str:
    """What an interrupted figure leaves: its cached items (see ``odeprune.cli._interrupted``)."""
    if args.no_cache:
        return "nothing cached (--no-cache): run the same command again"
    if args.output is None:  # stopped before the options were read
        return None
    return (f"finished items are cached in {cache_dir(args)}: the same command continues from "
            "there")
