"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse


def progress_of(args) -> bool:
    """The progress setting of a command: none with ``--quiet``, else a bar exactly when stderr
    is a terminal (``odeprune.ode.progress``); resolved here, so that the library and the figures
    get a plain bool."""
    from ..ode.progress import want_progress

    return False if getattr(args, "quiet", False) else want_progress(None)


def _parsed(text: str, convert, ok, what: str):
    """``convert(text)`` if it parses and passes ``ok``, else argparse's one line."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _parsed(text, int, lambda v: v >= 1, "a positive integer")


def fraction(text: str) -> float:
    """A number in [0, 1] (a kept fraction ``c``)."""
    return _parsed(text, float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def float_list(text: str) -> list[float]:
    """``"1,10,100"`` -> ``[1.0, 10.0, 100.0]``."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers like 1,10,100, got {text!r}") from None


def teacher_density(text: str) -> float:
    """A teacher's support density in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def add_teacher_density(group) -> None:
    """``--teacher-density``: a sparse teacher (the same option for integrate and simulate)."""
    group.add_argument("--teacher-density", type=teacher_density, default=None, metavar="C_T",
                       help="a sparse teacher: each teacher unit keeps a random fraction C_T of "
                            "its first-layer weights (the support drawn from --seed; "
                            "docs/sparse_teacher.md)")


#: the learning-rule options of integrate and simulate (odeprune.options)
DYNAMICS_FLAGS = ("eta", "eta_v", "sigma", "train_second_layer", "weight_decay", "l1")
#: the random initial network of integrate, simulate and ticket (odeprune.options)
NETWORK_FLAGS = ("M", "K", "N", "seed", "v_star")


def add_network_arguments(group, help: dict | None = None) -> None:
    """``--M --K --N --seed --v-star``: the paper's random draw (all weights N(0, 1)), with the
    defaults, checks and help of :mod:`odeprune.options`; ``help`` (name -> text): a command's
    own meaning of a flag (e.g. what ``--seed`` seeds). Read them with ``options.value``."""
    from ..options import add_cli_options

    add_cli_options(group, NETWORK_FLAGS, help=help)


def add_dynamics_arguments(parser, sources: str = "--init / --weights"):
    """The learning-rule options shared by ``integrate`` and ``simulate`` (their defaults, checks
    and help are those of :mod:`odeprune.options`); returns the group. ``sources``: the
    command's options that read a file recording the activation."""
    from ..options import add_cli_options

    dyn = parser.add_argument_group("dynamics")
    add_cli_options(dyn, ["activation"], help={
        "activation": "the networks' activation: erf, linear or relu (left out: the one recorded "
                      f"in {sources}, else erf, g(x) = erf(x/sqrt 2))"})
    add_cli_options(dyn, DYNAMICS_FLAGS)
    return dyn
