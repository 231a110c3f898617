"""Each option of a run defined once: its default, its check and its help.

Frozen records group the options of a run (``docs/api.md``, "Options"):

- :class:`Dynamics`, the learning rule: ``eta, eta_v, sigma, train_second_layer, gradient_flow,
  weight_decay, l1``;
- :class:`Solver`, how the ODE is integrated: ``method, rtol, atol, dt, max_steps, backend,
  threads``;
- :class:`Control`, how a run is watched: ``progress, checkpoint, resume, chunk_steps,
  divergence_path``;
- :class:`Output`, what a run records: ``save_at, alpha0, track_initial``;
- :class:`Network`, a network drawn at random: ``v_star, activation, seed`` (``N, K, M`` are
  the entry points' positional arguments);
- :class:`Data`, the samples of a finite-N run: ``n_test, n_train``;
- :class:`Ensemble`, many seeds at once: ``seeds, n_runs, executor, max_workers``.

The table also holds ``N, K, M`` and ``alpha_max``, which several entry points and commands
share outside the records.

The entry points take their records whole (``solver=Solver(method="bdf")``) or as flat keywords
(``method="bdf"``), so that the common call stays one line
(``integrate(state, eta=0.5, alpha_max=1000)``): :func:`gather` sorts the keywords into the
records, whose construction checks every value (one vocabulary: booleans are refused where a
number is expected and numbers where a boolean is), and refuses a keyword no record owns. The
command line builds its flags from the same table (:func:`add_cli_options`), and a flag left out
means the default written here (:func:`value`): no default or help text is written twice.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# (nothing heavy at import: the command line builds its parsers from this module)

__all__ = ["Option", "OPTIONS", "Record", "Dynamics", "Solver", "Control", "Output", "Network", "Data",
           "Ensemble", "split", "gather", "add_cli_options", "given", "value", "DEFAULT_RTOL", "DEFAULT_ATOL", "METHODS", "FIXED_STEP",
           "PARTICLE_DT"]

DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10
#: the integrators: compiled explicit steppers, then the stiff path (docs/speed.md)
METHODS = ("dopri5", "rk4", "euler", "auto", "bdf", "radau")
#: the fixed-step methods (they use ``dt``)
FIXED_STEP = ("rk4", "euler")
#: the step of the particle SDE of a coordinate law (coarser than the ODE's fixed step ``dt``:
#: the particles' error is Monte Carlo, not the step; docs/theory.md §11)
PARTICLE_DT = 0.05


@dataclass(frozen=True)
class Option:
    """One option: its keyword ``name``, ``default``, ``help`` and ``kind``, the rule its values
    obey: ``"positive"`` (finite real > 0), ``"nonneg"`` (>= 0), ``"bool"``, ``"auto_bool"``
    (None, True or False), ``"choice"`` (one of ``choices``), ``"size"`` (integer >= 1),
    ``"seed"`` and ``"count"`` (integer >= 0), ``"reals"`` (a finite real or a non-empty sequence of them),
    ``"path"`` (None or a path), ``"activation"`` (a name of the activation registry),
    ``"seeds"`` (None or a non-empty list of distinct seeds), ``"object"`` (anything: checked
    where it is used, e.g. an executor or a save grid). ``optional``: None is also allowed (and means "see help").
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
    #: False: a library keyword only (an executor, a save grid: no command-line flag)
    cli: bool = True

    def check(self, value: Any) -> Any:
        """The clean value, or a one-line ``ValueError`` naming the option."""
        import numpy as np

        from ._validate import check_activation, check_real, check_size
        if value is None and (self.optional or self.kind in ("auto_bool", "path", "object",
                                                             "seeds")):
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
        if kind in ("seed", "count"):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                    or value < 0:
                raise ValueError(f"{name}={value!r} must be an integer >= 0")
            return int(value)
        if kind == "reals":
            return _reals(name, value)
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{name}={value!r} is unknown; expected one of "
                                 f"{list(self.choices)}")
            return value
        if kind == "path":
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"{name}={value!r} must be a path (str or os.PathLike)")
            return value
        if kind == "activation":
            if not isinstance(value, str):
                raise ValueError(f"{name}={value!r} must be the name of an activation")
            return check_activation(value, None)
        if kind == "seeds":
            return _seeds(name, value)
        if kind == "object":
            return value
        raise AssertionError(f"unknown option kind {kind!r}")  # pragma: no cover

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def _reals(name: str, value: Any):
    """A finite real (a float) or a non-empty 1-d sequence of finite reals (a list of floats);
    booleans refused."""
    import numpy as np

    what = f"{name}={value!r} must be a finite real number or a non-empty list of them"
    items = [value] if np.ndim(value) == 0 else (list(value) if np.ndim(value) == 1 else None)
    if not items or any(isinstance(v, (bool, np.bool_, str, bytes)) for v in items):
        raise ValueError(what)
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(what) from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(what)
    return out[0] if np.ndim(value) == 0 else out


def _seeds(name: str, value: Any) -> list[int]:
    """A non-empty list of distinct integer seeds >= 0 (booleans refused)."""
    import numpy as np

    what = f"{name}={value!r} must be a non-empty list of distinct integers >= 0"
    if isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) == 0:
        raise ValueError(what)
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(what)
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError(what)
    return out


def _options(*opts: Option) -> dict[str, Option]:
    return {o.name: o for o in opts}


#: every option of the three records, and those of the network and the run that several entry
#: points share, by keyword
OPTIONS: dict[str, Option] = _options(
    # the network (a random draw: all weights N(0, 1), the paper's initialisation) and the run
    Option("N", None, "input dimension", "size", cli_default=500),
    Option("K", None, "student hidden units", "size", cli_default=6),
    Option("M", None, "teacher hidden units", "size", cli_default=2),
    Option("v_star", 4.0, "teacher second layer: one number for all M units, or M numbers "
           "(comma-separated)", "reals", metavar="V[,V..]"),
    Option("seed", 0, "random seed", "seed"),
    Option("alpha_max", None, "length of the run in alpha = (SGD steps) / N", "positive"),
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
    Option("method", "auto", "integrator: 'auto' (compiled Dormand-Prince 5(4) until the step is "
           "stability-limited, then compiled BDF; short runs are exactly dopri5), 'dopri5', "
           "fixed-step 'rk4'/'euler' (step dt), or implicit from the start 'bdf', 'radau' "
           "(docs/speed.md)", "choice", choices=METHODS),
    Option("rtol", DEFAULT_RTOL, "relative tolerance of the adaptive methods, per component "
           f"(at least {100 * sys.float_info.epsilon:.1e}, what float64 can honour)", "positive"),
    Option("atol", DEFAULT_ATOL, "absolute tolerance of the adaptive methods, per component",
           "positive"),
    Option("dt", 0.01, "step of the fixed-step methods (and of the particle SDE of a "
           "coordinate law)", "positive"),
    Option("max_steps", 10_000_000, "give up (MaxStepsReached) after this many accepted steps",
           "size"),
    Option("backend", "numba", "'numba' (compiled here; every method, progress, checkpoints) or "
           "'jax' (diffrax, optional extra: dense states, adaptive methods, one compiled call)",
           "choice", choices=("numba", "jax")),
    Option("threads", None, "spread each evaluation's I4 sum over numba's threads (default: for "
           "K >= 15, on the cores measured idle; the numbers do not depend on it)", "auto_bool"),
    # what a run records
    Option("save_at", None, "times (from the start of the run) at which to record the state; "
           "the end is always added (default: 0 and log-spaced times)", "object", cli=False),
    Option("alpha0", 0.0, "time of the initial state on an earlier run: the saved times are "
           "alpha0 + t (to continue a curve)", "nonneg"),
    Option("track_initial", False, "also integrate the two-time overlaps P = w(alpha).w(0)/N "
           "(docs/theory.md §9)", "bool"),
    # a network drawn at random, and the samples of a finite-N run
    Option("activation", None, "activation of the network: 'erf', 'linear' or 'relu' (default: "
           "the state's own; erf for a network drawn here)", "activation", optional=True),
    Option("n_test", 10_000, "fresh test inputs on which a finite-N run measures eps_g (0: none)",
           "count"),
    Option("n_train", None, "a training set of this many samples, visited in a shuffled order "
           "(default: online, a fresh sample per step)", "size", optional=True),
    # many seeds at once
    Option("seeds", None, "run one network per seed (default: the one seed)", "seeds",
           cli=False),
    Option("n_runs", None, "run this many seeds: seed, seed + 1, ... (instead of seeds)", "size",
           optional=True),
    Option("executor", None, "a concurrent.futures executor for the seeds (default: a thread "
           "pool on the available cores; the compiled loop releases the GIL)", "object", cli=False),
    Option("max_workers", None, "threads of the default pool (default: every available core, at "
           "most one per seed)", "size", optional=True),
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


class Record:
    """Shared behaviour of the option records: every field is checked on construction by the
    :class:`Option` of the same name in the class's ``TABLE`` (:data:`OPTIONS`; a record of a
    module's own options, e.g. ``odeprune.teachers.Teacher``, names its own table of
    :class:`Option`), and :func:`gather` builds any of them from flat keywords."""

    TABLE = OPTIONS

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, self.TABLE[f.name].check(getattr(self, f.name)))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _default(name: str):
    return OPTIONS[name].default


@dataclass(frozen=True)
class Dynamics(Record):
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
class Solver(Record):
    """How the ODE is integrated (docs/speed.md)."""

    method: str = _default("method")
    rtol: float = _default("rtol")
    atol: float = _default("atol")
    dt: float = _default("dt")
    max_steps: int = _default("max_steps")
    backend: str = _default("backend")
    threads: bool | None = _default("threads")

    def __post_init__(self):
        from ._validate import check_tolerances

        super().__post_init__()
        rtol, atol = check_tolerances(self.rtol, self.atol)
        object.__setattr__(self, "rtol", rtol)
        object.__setattr__(self, "atol", atol)


@dataclass(frozen=True)
class Control(Record):
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


@dataclass(frozen=True)
class Output(Record):
    """What a run records: the save grid (checked against the run's length where it is used),
    the time of the initial state, the two-time overlaps."""

    save_at: Any = _default("save_at")
    alpha0: float = _default("alpha0")
    track_initial: bool = _default("track_initial")


@dataclass(frozen=True)
class Network(Record):
    """A network drawn at random (all weights N(0, 1)): the teacher's second layer, the
    activation (None: erf) and the seed of the draw."""

    v_star: Any = _default("v_star")
    activation: str | None = _default("activation")
    seed: int = _default("seed")

    def __post_init__(self):
        super().__post_init__()
        if self.activation is None:
            object.__setattr__(self, "activation", "erf")


@dataclass(frozen=True)
class Data(Record):
    """The samples of a finite-N run: the test set, and a finite training set (None: online)."""

    n_test: int = _default("n_test")
    n_train: int | None = _default("n_train")


@dataclass(frozen=True)
class Ensemble(Record):
    """Many seeds at once: ``seeds`` or ``n_runs`` (not both), and where they run."""

    seeds: Any = _default("seeds")
    n_runs: int | None = _default("n_runs")
    executor: Any = _default("executor")
    max_workers: int | None = _default("max_workers")

    def __post_init__(self):
        super().__post_init__()
        if self.seeds is not None and self.n_runs is not None:
            raise ValueError("give seeds or n_runs, not both")


RECORDS = (Dynamics, Solver, Control)


def _key(rec: type) -> str:
    """The keyword under which a record is passed whole: ``dynamics``, ``solver``, ..."""
    return rec.__name__.lower()


def split(keywords: dict, records=RECORDS) -> tuple[list, dict]:
    """Sort flat keywords into the ``records`` and return ``([record, ...], rest)``: the keywords
    no record owns. A record is built from the keywords it owns (defaults elsewhere), or passed
    whole under its name (``solver=Solver(...)``); a keyword beside the whole record it belongs
    to is refused (which of the two would count?)."""
    rest = dict(keywords)
    out = []
    for rec in records:
        names = [f.name for f in fields(rec)]
        mine = {n: rest.pop(n) for n in names if n in rest}
        whole = rest.pop(_key(rec), None)
        if whole is None:
            out.append(rec(**mine))
            continue
        if not isinstance(whole, rec):
            raise ValueError(f"{_key(rec)}={whole!r} must be an odeprune.options.{rec.__name__}")
        if mine:
            raise ValueError(f"{sorted(mine)} given beside {_key(rec)}=: set them in the "
                             f"record (dataclasses.replace({_key(rec)}, ...))")
        out.append(whole)
    return out, rest


def gather(where: str, keywords: dict, records=RECORDS) -> list:
    """The ``records`` of the entry point ``where`` from its keywords (:func:`split`); a keyword
    no record owns is a ``TypeError``, as Python's own for an unknown keyword."""
    out, rest = split(keywords, records)
    if rest:
        known = sorted(n for rec in records for n in [_key(rec)] + [f.name for f in fields(rec)])
        raise TypeError(f"{where}() got unexpected keyword argument(s) {sorted(rest)}; its "
                        f"options are {known}")
    return out


def value(args: argparse.Namespace, name: str):
    """The value of option ``name`` on the command line: the one given, else the option's
    ``cli_default``, else its default (a flag left out is None in ``args``)."""
    v = getattr(args, name, None)
    if v is not None:
        return v
    opt = OPTIONS[name]
    return opt.default if opt.cli_default is None else opt.cli_default


def given(args: argparse.Namespace, names) -> dict:
    """The options among ``names`` to pass to the library: those given on the command line, and
    the ``cli_default`` of those left out that have one (the library has no default for them);
    an option left out otherwise is not passed, so that the library's default applies."""
    out = {}
    for n in names:
        v = getattr(args, n, None)
        if v is None:
            v = OPTIONS[n].cli_default
        if v is not None:
            out[n] = v
    return out


def _cli_type(opt: Option):
    def parse(text: str):
        try:
            if opt.kind in ("choice", "activation"):
                value = text
            elif opt.kind in ("positive", "nonneg"):
                value = float(text)
            elif opt.kind == "reals":
                value = [float(x) for x in text.split(",") if x.strip()]
                value = value[0] if len(value) == 1 else value
            else:
                value = int(text)
        except ValueError:
            what = "comma-separated numbers" if opt.kind == "reals" else \
                "an integer" if opt.kind in ("size", "seed", "count") else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        try:
            return opt.check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).replace(f"{opt.name}=", "", 1)) from None
    return parse


#: the kinds whose flag is a switch (it takes no value: ``--gradient-flow``, ``--freeze-v``)
SWITCHES = ("bool", "auto_bool")


def _show(default) -> str:
    """A default as help shows it: ``4``, ``0.5``, ``1e-07``, ``10000000``."""
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def add_cli_options(group, names, help_default: dict | None = None,
                    defaults: dict | None = None, help: dict | None = None) -> None:
    """Add the flags of the options ``names`` to an argparse ``group``, with the table's check,
    help and the default they stand for.

    A flag left out is None (or absent for a switch), so that a command can tell which flags were
    given; :func:`value` then gives the option's ``cli_default`` or default, :func:`given` what to
    pass to the library. Where a command has a default of its own, say so here, never hidden:
    ``defaults`` (name -> value) makes it the flag's value when left out (and shows it);
    ``help_default`` (name -> text) only changes the default the help shows (the command resolves
    it itself, e.g. a step that depends on the engine); ``help`` (name -> text) replaces the
    table's help sentence by the command's meaning of the option (the default still comes from
    the table, ``defaults`` or ``help_default``)."""
    help_default, defaults, help = help_default or {}, defaults or {}, help or {}
    for name in names:
        opt = OPTIONS[name]
        if not opt.cli:
            raise ValueError(f"option {name!r} has no command-line flag")
        if name in defaults:
            default = opt.check(defaults[name])
        else:
            default = opt.default if opt.cli_default is None else opt.cli_default
        shown = help_default.get(name, default)
        dflt = "" if shown is None or opt.kind in SWITCHES else f" (default {_show(shown)})"
        text = help.get(name, opt.cli_help or opt.help)
        kw: dict = {"dest": name, "help": text + dflt}
        if opt.kind in SWITCHES:
            action = group.add_argument(opt.cli_flag, action="store_const", const=not opt.negate,
                                        default=defaults.get(name), **kw)
            action.table_option = name
            continue
        if opt.kind == "path":
            kw["type"] = Path
        else:  # (choices too: a bad choice gets the table's one line, not argparse's)
            kw["type"] = _cli_type(opt)
        if opt.kind == "choice":
            kw["metavar"] = "{" + ",".join(opt.choices) + "}"
        if opt.metavar or opt.kind == "reals":
            kw["metavar"] = opt.metavar or "X[,X..]"
        action = group.add_argument(opt.cli_flag, default=defaults.get(name), **kw)
        action.table_option = name  # (how a test tells the table's flags from a command's own)
