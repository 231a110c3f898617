"""``odeprune reproduce``: every figure, one after the other, with the time each took."""

from __future__ import annotations

import argparse
import time

from ._figure import add_common, figure_list, make_one

DESCRIPTION = """\
Reproduce all figures into one directory, one after the other: PNG, PDF and the data behind
each (JSON with all parameters, CSV). Expensive items are cached (default DIR/.cache), so an
interrupted run continues where it stopped; fig2b and fig3 reuse the M=2, K=6 simulations of
fig2a. Prints how long each figure took and writes DIR/timings.json. The figures (--only
takes a comma-separated subset):

{figures}
"""


#: one line for ``odeprune --help``
HELP = "reproduce all figures"


def register(sub) -> None:
    p = sub.add_parser("reproduce", help=HELP,
                       description=DESCRIPTION.format(figures=figure_list()),
                       epilog="example:\n  odeprune reproduce --output figures\n"
                              "  odeprune reproduce --quick --output /tmp/figs",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.add_argument("--only", default=None, metavar="A,B",
                   help="comma-separated subset of the figures")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args) -> int:
    import json

    from .._io import atomic_write_text
    from ..figures import FIGURES
    from . import CliError
    from ._figure import check_common, output_dir
    from ._inputs import info

    check_common(args)
    output_dir(args)

    names = list(FIGURES)
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        if not names:
            raise CliError(f"--only {args.only!r}: give at least one figure of {list(FIGURES)}")
        unknown = sorted(set(names) - set(FIGURES))
        if unknown:
            raise CliError(f"--only: unknown figure(s) {unknown}; expected {list(FIGURES)}")
    timings = {}
    t0 = time.perf_counter()
    for name in names:
        res = make_one(name, args)
        timings[name] = round(res["seconds"], 2)
        info(f"{name}: {res['seconds']:.1f} s")
    total = time.perf_counter() - t0
    info(f"all: {total:.1f} s")
    timings["total"] = round(total, 2)
    atomic_write_text(args.output / ("timings-quick.json" if args.quick else "timings.json"),
                      json.dumps(timings, indent=1) + "\n")
    return 0


def interrupt_note(args) -> str:
    """As for ``odeprune figure``: the finished figures and items are cached."""
    from ._figure import interrupt_note as figure_note

    return figure_note(args)
