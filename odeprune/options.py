"""Each option of a run defined once: its default, its check and its help.

Three frozen records group the options of an order-parameter run (``docs/api.md``, "Options"):

- :class:`Dynamics`, the learning rule: ``eta, eta_v, sigma, train_second_layer, gradient_flow,
  weight_decay, l1``;
- :class:`Solver`, how the ODE is integrated: ``method, rtol, atol, dt, max_steps``;
- :class:`Control`, how a run is watched: ``progress, checkpoint, resume, chunk_steps,
  divergence_path``.

The entry points keep flat keywords, so that the common call stays one line
(``integrate(state, eta=0.5, alpha_max=1000)``); :func:`split` sorts the keywords into the
records, whose construction checks every value (one vocabulary: booleans are refused where a
number is expected and numbers where a boolean is). The command line builds its flags from the
same table (:func:`add_cli_options`), and a flag left out means the default written here: no
default or help text is written twice.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

# (nothing heavy at import: the command line builds its parsers from this module)

__all__ = ["Option", "OPTIONS", "Dynamics", "Solver", "Control", "split", "add_cli_options",
           "given", "DEFAULT_RTOL", "DEFAULT_ATOL", "METHODS", "FIXED_STEP"]

DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10
#: the integrators: compiled explicit steppers, then the stiff path (docs/speed.md)
METHODS = ("dopri5", "rk4", "euler", "auto", "bdf", "radau")
#: the fixed-step methods (they use ``dt``)
FIXED_STEP = ("rk4", "euler")


@dataclass(frozen=True)
class Option:
    """One option: its keyword ``name``, ``default``, ``help`` and ``kind``, the rule its values
    obey: ``"positive"`` (finite real > 0), ``"nonneg"`` (>= 0), ``"bool"``, ``"auto_bool"``
    (None, True or False), ``"choice"`` (one of ``choices``), ``"size"`` (integer >= 1),
    ``"path"`` (None or a path). ``optional``: None is also allowed (and means "see help").
    ``flag``: the command-line flag (default ``--name-with-dashes``); ``negate``: a boolean
    whose flag sets it to False (``--freeze-v`` for ``train_second_layer``)."""

    name: str
    default: Any
    help: str
    kind: str
    choices: tuple = ()
    optional: bool = False
    flag: str | None = None
    negate: bool = False
    metavar: str | None = None
    #: what the command line uses when the flag is left out, where the library has no default
    cli_default: Any = None
    #: the flag's help where it differs from the keyword's (a negated switch)
    cli_help: str | None = None

    def check(self, value: Any) -> Any:
        """The clean value, or a one-line ``ValueError`` naming the option."""
        import numpy as np

        from ._validate import check_real, check_size
        if value is None and (self.optional or self.kind in ("auto_bool", "path")):
            return None
        kind, name = self.kind, self.name
        if kind in ("bool", "auto_bool"):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name}={value!r} must be True or False"
                                 + (" (or None: automatic)" if kind == "auto_bool" else ""))
            return bool(value)
        if kind == "positive":
            return check_real(name, value)
        if kind == "nonneg":
            return check_real(name, value, allow_zero=True)
        if kind == "size":
            return check_size(name, value)
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{name}={value!r} is unknown; expected one of "
                                 f"{list(self.choices)}")
            return value
        if kind == "path":
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"{name}={value!r} must be a path (str or os.PathLike)")
            return value
        raise AssertionError(f"unknown option kind {kind!r}")  # pragma: no cover

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def _options(*opts: Option) -> dict[str, Option]:
    return {o.name: o for o in opts}


#: every option of the three records, by keyword
OPTIONS: dict[str, Option] = _options(
    # the learning rule
    Option("eta", None, "first-layer learning rate; the SGD step is eta/sqrt(N)", "positive",
           cli_default=0.5),
    Option("eta_v", None, "second-layer learning rate; the SGD step is eta_v/N (default: eta)",
           "nonneg", optional=True),
    Option("sigma", 0.0, "output-noise standard deviation of the teacher's labels", "nonneg"),
    Option("train_second_layer", True, "train the second layer v (False: the soft committee "
           "machine)", "bool", flag="--freeze-v", negate=True,
           cli_help="do not train the second layer v (the soft committee machine)"),
    Option("gradient_flow", False, "drop the eta^2 terms (and with them sigma): the "
           "gradient-flow ODEs", "bool"),
    Option("weight_decay", 0.0, "L2 weight decay GAMMA of the first layer: -eta GAMMA w per unit "
           "alpha (docs/theory.md §11)", "nonneg", metavar="GAMMA"),
    Option("l1", 0.0, "L1 penalty LAMBDA of the first layer: the proximal step sign(w) "
           "max(|w| - eta LAMBDA/N, 0) per step; in the limit it needs the coordinate law "
           "(docs/theory.md §11)", "nonneg", metavar="LAMBDA"),
    # the solver
    Option("method", "dopri5", "integrator: adaptive Dormand-Prince 5(4) 'dopri5', fixed-step "
           "'rk4'/'euler' (step dt), or the stiff path 'auto' (explicit until stiff, then "
           "implicit), 'bdf', 'radau' (docs/speed.md)", "choice", choices=METHODS),
    Option("rtol", DEFAULT_RTOL, "relative tolerance of the adaptive methods, per component "
           f"(at least {100 * sys.float_info.epsilon:.1e}, what float64 can honour)", "positive"),
    Option("atol", DEFAULT_ATOL, "absolute tolerance of the adaptive methods, per component",
           "positive"),
    Option("dt", 0.01, "step of the fixed-step methods (and of the particle SDE of a "
           "coordinate law)", "positive"),
    Option("max_steps", 10_000_000, "give up (MaxStepsReached) after this many accepted steps",
           "size"),
    # run control
    Option("progress", None, "progress bar on stderr (default: when stderr is a terminal)",
           "auto_bool"),
    Option("checkpoint", None, "write the run's state there every few seconds and on Ctrl-C / "
           "SIGTERM; removed when the run ends", "path", metavar="FILE"),
    Option("resume", False, "continue from the checkpoint (same parameters required)", "bool"),
    Option("chunk_steps", None, "at most this many steps between two looks from Python "
           "(default: chunks of about 0.25 s)", "size", optional=True),
    Option("divergence_path", None, "where to save the last good state if a run diverges or "
           "uses up max_steps", "path", metavar="FILE"),
)


class _Record:
    """Shared behaviour of the option records: check every field on construction."""

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, OPTIONS[f.name].check(getattr(self, f.name)))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _default(name: str):
    return OPTIONS[name].default


@dataclass(frozen=True)
class Dynamics(_Record):
    """The learning rule (docs/theory.md §4, §11). ``eta_v=None`` means ``eta``."""

    eta: float
    eta_v: float | None = _default("eta_v")
    sigma: float = _default("sigma")
    train_second_layer: bool = _default("train_second_layer")
    gradient_flow: bool = _default("gradient_flow")
    weight_decay: float = _default("weight_decay")
    l1: float = _default("l1")

    @property
    def second_layer_rate(self) -> float:
        return self.eta if self.eta_v is None else self.eta_v


@dataclass(frozen=True)
class Solver(_Record):
    """How the ODE is integrated (docs/speed.md)."""

    method: str = _default("method")
    rtol: float = _default("rtol")
    atol: float = _default("atol")
    dt: float = _default("dt")
    max_steps: int = _default("max_steps")

    def __post_init__(self):
        from ._validate import check_tolerances

        super().__post_init__()
        rtol, atol = check_tolerances(self.rtol, self.atol)
        object.__setattr__(self, "rtol", rtol)
        object.__setattr__(self, "atol", atol)


@dataclass(frozen=True)
class Control(_Record):
    """How a run is watched: progress, checkpoints, interrupts (docs/troubleshooting.md)."""

    progress: bool | None = _default("progress")
    checkpoint: Any = _default("checkpoint")
    resume: bool = _default("resume")
    chunk_steps: int | None = _default("chunk_steps")
    divergence_path: Any = _default("divergence_path")

    def __post_init__(self):
        super().__post_init__()
        if self.resume and self.checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH")


RECORDS = (Dynamics, Solver, Control)


def split(keywords: dict, records=RECORDS) -> tuple[list, dict]:
    """Sort flat keywords into the ``records`` (built from the keywords they own; defaults
    elsewhere) and return ``([record, ...], rest)``: the keywords no record owns."""
    rest = dict(keywords)
    out = []
    for rec in records:
        names = [f.name for f in fields(rec)]
        out.append(rec(**{n: rest.pop(n) for n in names if n in rest}))
    return out, rest


def given(args: argparse.Namespace, names) -> dict:
    """The options among ``names`` that were given on the command line (an option left out is
    None there, so that the library's default applies)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _cli_type(opt: Option):
    def parse(text: str):
        try:
            value = float(text) if opt.kind in ("positive", "nonneg") else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return opt.check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).replace(f"{opt.name}=", "", 1)) from None
    return parse


def add_cli_options(group, names, help_default: dict | None = None) -> None:
    """Add the flags of the options ``names`` to an argparse ``group``, with their help and the
    default they stand for (``help_default`` overrides the text of a default, e.g. where the
    command has its own). Every flag's argparse default is None (or False for a switch): a
    flag left out leaves the option to the library (or takes the option's ``cli_default``)."""
    help_default = help_default or {}
    for name in names:
        opt = OPTIONS[name]
        default = help_default.get(name, opt.default if opt.cli_default is None
                                   else opt.cli_default)
        dflt = "" if default is None or opt.kind == "bool" else f" (default {default})"
        kw: dict = {"dest": name, "help": (opt.cli_help or opt.help) + dflt}
        if opt.kind == "bool":
            group.add_argument(opt.cli_flag, action="store_const", const=not opt.negate,
                               default=None, **kw)
            continue
        if opt.kind == "choice":
            kw["choices"] = list(opt.choices)
        elif opt.kind == "path":
            kw["type"] = str
        else:
            kw["type"] = _cli_type(opt)
        if opt.metavar:
            kw["metavar"] = opt.metavar
        group.add_argument(opt.cli_flag, default=opt.cli_default, **kw)
