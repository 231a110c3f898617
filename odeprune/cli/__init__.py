"""``odeprune`` command line: thin wrappers over the public API.

Each sub-command lives in its own module ``odeprune/cli/_<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code). Errors the user can fix (bad arguments, bad files, divergence)
are printed as one line on stderr with exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import DivergenceError, OdepruneInterrupted

#: sub-commands, in help order; each is ``odeprune.cli._<name>``
COMMANDS = ("integrate", "simulate", "prune", "retrain", "ticket", "figure", "reproduce", "sweep")

EXIT_USAGE = 2


class CliError(Exception):
    """An error to show the user as one line (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as argparse does, with a pointer to --help
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (it imports package metadata)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .._io import package_version

        print(f"odeprune {package_version()}")  # on stdout, as argparse's "version" action
        parser.exit()


def _requested_command(argv: list[str] | None) -> str | None:
    """The sub-command named in ``argv`` (the first non-option word), if it is one of ours."""
    for word in sys.argv[1:] if argv is None else argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None, overview: bool = False) -> argparse.ArgumentParser:
    """The parser with every sub-command, or only ``only`` (a name in :data:`COMMANDS`).

    :func:`main` registers only the sub-command it runs (its module, and what that imports, are
    the only ones loaded). ``overview=True`` (``odeprune --help``, no or an unknown command)
    lists every sub-command by its one-line ``HELP`` without building its options, so that the
    overview imports none of the numerics.
    """
    parser = _Parser(
        prog="odeprune",
        description=(
            "Learning curves and pruning of two-layer networks in the teacher-student setup: "
            "integrate the order-parameter ODEs (N -> infinity, dense or with a fixed pruning "
            "mask), simulate finite-N SGD, prune, retrain pruned networks (fine-tuning, lottery "
            "tickets, pruning at initialisation), sweep parameter grids, and reproduce the "
            "figures of Acharyya et al. (2021) and ours."
        ),
        epilog="Run 'odeprune COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"{__name__}._{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}._{name}":
                continue  # sub-command not shipped
            raise
        if overview:
            sub.add_parser(name, help=module.HELP)
        else:
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    command = _requested_command(argv)
    parser = build_parser(only=command, overview=command is None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except OdepruneInterrupted as exc:
        print(f"odeprune {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"odeprune {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, DivergenceError, OSError) as exc:
        if args.debug:
            raise
        msg = str(exc).replace("\n", " ")
        print(f"odeprune {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
