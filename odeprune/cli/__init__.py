"""``odeprune`` command line: thin wrappers over the public API.

Each sub-command lives in its own module ``odeprune/cli/_<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code). Errors the user can fix (bad arguments, bad files, divergence)
are printed as one line on stderr with exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import signal
import sys
import threading
import warnings

from ..errors import DivergenceError, MaxStepsReached, OdepruneInterrupted

#: sub-commands, in help order; each is ``odeprune.cli._<name>``
COMMANDS = ("integrate", "simulate", "prune", "retrain", "ticket", "figure", "reproduce", "sweep")

EXIT_USAGE = 2
#: exit codes of a command stopped by Ctrl-C (SIGINT) and by SIGTERM (128 + the signal number)
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM
#: what a stopped command says when it has nothing more specific (its module's
#: ``interrupt_note(args)``, or the checkpoint message of integrate / simulate)
NOTHING_SAVED = "nothing saved (results are written when the command finishes): run it again"


class CommandInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM while a command runs (raised by :func:`_on_signal`)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def why(self) -> str:
        return "SIGTERM" if self.signum == signal.SIGTERM else "Ctrl-C"


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


def _one_line_warning(command: str):
    """``warnings.showwarning`` for a command: ``odeprune CMD: warning: MESSAGE`` (one line,
    no source line; the library's warnings say what to change)."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"odeprune {command}: warning: {text}", file=file or sys.stderr)
    return show


#: a signal that arrived while numba held its compiler lock, and the depth of that lock
_DEFERRED: list[int] = []
_COMPILING = [0]


def _on_signal(signum, frame):
    if _COMPILING[0]:
        # numba is compiling, loading or saving a kernel: an exception raised now can land in
        # one of llvmlite's ctypes callbacks, which swallow it and may leave a corrupt entry in
        # numba's on-disk cache (later runs then crash). Raise when the lock is released.
        if not _DEFERRED:
            _waiting_note()
        _DEFERRED.append(signum)
        return
    raise CommandInterrupted(signum)


def _waiting_note() -> None:
    """Tell the user at a terminal why the command has not stopped yet: one kernel (ReLU's, on a
    cold cache) compiles for up to half a minute. Not for a script or a scheduler (stderr not a
    terminal), which get the one line of the stop only, nor with ``--quiet``."""
    from ..ode.progress import want_progress
    from . import _inputs

    try:
        if want_progress(None):  # (the progress bars' rule: stderr is a terminal)
            _inputs.note("stopping once numba has compiled the kernel it is compiling (a first "
                         "run after an install or an upgrade; up to half a minute)")
    except (OSError, RuntimeError, ValueError):  # a closed stream, a write it interrupted
        pass


#: while a command starts, the collector runs after this many new objects (tracked allocations
#: less deallocations) instead of 700: ``odeprune integrate`` makes about 190 000 before its
#: first kernel is loaded (the same CPU as no collection at all; 100 000: 0.01 s more)
_PAUSE_GEN0 = 200_000


class _StartupGC:
    """The cyclic garbage collector, held off while a command starts.

    Start-up creates objects that live as long as the process: the modules it imports (numba's
    among them) and the set-up of numba's compiler on the first kernel it loads. The collector
    finds nothing to free among them, yet it ran about 270 times while ``odeprune integrate``
    started, for a tenth of the command's CPU. From the start of :func:`main` until the first
    of: the end of the first numba compiler-lock section (the first kernel is loaded from the
    cache), the start of a compilation (a cold cache: compiling makes cyclic garbage, collected
    as usual), the end of the command, it collects only after :data:`_PAUSE_GEN0` new objects
    (not 700), which ``odeprune integrate`` does not reach; a command that loads no kernel still
    collects, in batches that size. When it resumes, the objects that start-up made are frozen
    (``gc.freeze``: later collections skip them; otherwise the first ones would go through all
    of them), and unfrozen when the command ends, so that a process that calls :func:`main` again
    and again (the tests) keeps collecting them. A disabled collector is left alone, and so is
    one where something else froze objects."""

    def __init__(self):
        self.paused = self.frozen = False
        self.thresholds = gc.get_threshold()

    def pause(self) -> None:
        if gc.isenabled() and not gc.get_freeze_count():
            self.thresholds = gc.get_threshold()
            gc.set_threshold(max(_PAUSE_GEN0, self.thresholds[0]), *self.thresholds[1:])
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            gc.freeze()
            self.frozen = True
            gc.set_threshold(*self.thresholds)

    def end(self) -> None:
        self.resume()
        if self.frozen:
            self.frozen = False
            gc.unfreeze()


def _freeze_at_exit() -> None:
    """At the exit of the process, freeze every object (an ``atexit`` function of :func:`main`).

    The interpreter's last collections go through every object of the process only to free
    memory that the system frees anyway, and numba's objects make it slow: 0.2 s of CPU after
    ``odeprune integrate``, more than the command's own start-up. Frozen
    objects are skipped. What this drops is the finalizers of objects in reference cycles at
    exit; the commands close their files and pools themselves, and the ``atexit`` functions
    (temporary directories, process pools) still run."""
    gc.freeze()


_AT_EXIT: list = []


def _guard_compilation(startup_gc: _StartupGC) -> list:
    """Defer Ctrl-C / SIGTERM while numba holds its compiler lock in the main thread
    (``numba:compiler_lock`` events; a compilation in another thread does not hold a stop back):
    the signal is raised again once the lock is released. The
    same events end the start-up pause of the garbage collector (:class:`_StartupGC`). Returns
    the ``(kind, listener)`` pairs registered, for :func:`_unguard`."""
    from numba.core import event

    main = threading.main_thread()

    class _Guard(event.Listener):
        # only the main thread's compilations: signals are handled there, and a compilation in
        # a worker thread (a pool's items on a cold cache) is not where the exception lands
        def on_start(self, ev):
            if threading.current_thread() is main:
                _COMPILING[0] += 1

        def on_end(self, ev):
            if threading.current_thread() is not main:
                startup_gc.resume()
                return
            _COMPILING[0] -= 1
            if not _COMPILING[0]:
                startup_gc.resume()  # the first kernel is ready
                if _DEFERRED:  # the first signal held back names the stop; one is enough
                    signum = _DEFERRED[0]
                    _DEFERRED.clear()
                    signal.raise_signal(signum)

    class _Compiling(event.Listener):
        def on_start(self, ev):
            startup_gc.resume()  # a compilation (cold cache): its garbage is collected

        def on_end(self, ev):
            pass

    # registered for the command (``event.install_listener`` is a context manager: called
    # without ``with`` it registered nothing, and signals were never deferred)
    pairs = [("numba:compiler_lock", _Guard()), ("numba:compile", _Compiling())]
    for kind, listener in pairs:
        event.register(kind, listener)
    return pairs


def _unguard(pairs: list) -> None:
    """Unregister what :func:`_guard_compilation` registered."""
    if pairs:
        from numba.core import event

        for kind, listener in pairs:
            event.unregister(kind, listener)


def _named_signal(exc: BaseException) -> str | None:
    """The signal an interruption names: a :class:`CommandInterrupted`'s, or the "(SIGTERM)" /
    "(Ctrl-C)" of a run's stop message; None for a bare ``KeyboardInterrupt``."""
    if isinstance(exc, CommandInterrupted):
        return exc.why
    text = str(exc)
    return next((why for why in ("SIGTERM", "Ctrl-C") if f"({why})" in text), None)


def _stopped_by_sigterm(exc: KeyboardInterrupt) -> bool:
    """Whether SIGTERM (not Ctrl-C) stopped the command. The first interruption of ``exc``'s
    chain that names a signal tells: a layer that turns the interruption it caught into one of
    its own (a run that writes its checkpoint and says where it stopped) keeps the caught one
    as the context, and must not relabel the signal (a finite-N workflow's SIGTERM was
    reported as Ctrl-C)."""
    chain, seen = [], set()
    while isinstance(exc, KeyboardInterrupt) and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__context__
    named = [why for why in map(_named_signal, reversed(chain)) if why is not None]
    return bool(named) and named[0] == "SIGTERM"


def _interrupted(args, exc: KeyboardInterrupt) -> int:
    """One line for a stopped command: what stopped it, what was saved, how to continue; the
    exit code 130 (Ctrl-C) or 143 (SIGTERM).

    integrate and simulate pass on the message of their run (which names their checkpoint and
    ``--resume``); every other command says what its module's ``interrupt_note(args)`` says
    (what it keeps, e.g. a cache), or :data:`NOTHING_SAVED`, since the checkpoint advice of a
    run inside it names options that it does not have."""
    sigterm = _stopped_by_sigterm(exc)
    module = sys.modules.get(f"{__name__}._{args.command}")
    note = getattr(module, "interrupt_note", None)
    if isinstance(exc, OdepruneInterrupted) and note is None:
        text = str(exc)
    else:
        text = (f"interrupted ({'SIGTERM' if sigterm else 'Ctrl-C'}); "
                f"{(note(args) if note else None) or NOTHING_SAVED}")
    print(f"odeprune {args.command}: {' '.join(text.split())}", file=sys.stderr, flush=True)
    return EXIT_SIGTERM if sigterm else EXIT_SIGINT


def main(argv: list[str] | None = None) -> int:
    """Run one command. Ctrl-C and SIGTERM stop every command the same way (one line, exit 130
    or 143, no traceback): the handlers installed here turn both into an exception, so that the
    command's ``finally`` blocks run (process pools are shut down, temporary files removed);
    integrate and simulate install their own while their solver runs (a checkpoint is saved).
    The garbage collector is paused while the command starts (:class:`_StartupGC`) and skips
    the process's objects when it exits (:func:`_freeze_at_exit`)."""
    startup_gc = _StartupGC()
    in_main_thread = threading.current_thread() is threading.main_thread()  # tests use others
    if in_main_thread:
        startup_gc.pause()
        if not _AT_EXIT:
            _AT_EXIT.append(atexit.register(_freeze_at_exit))
    try:
        return _run(argv, startup_gc, in_main_thread)
    finally:
        startup_gc.end()


def _run(argv, startup_gc: _StartupGC, in_main_thread: bool) -> int:
    command = _requested_command(argv)
    parser = build_parser(only=command, overview=command is None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from . import _inputs

    _inputs.QUIET = bool(getattr(args, "quiet", False))
    old, guards = {}, []
    try:
        if in_main_thread:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, _on_signal)
            guards = _guard_compilation(startup_gc)
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        return _interrupted(args, exc)
    except MemoryError as exc:
        if args.debug:
            raise
        what = " ".join(str(exc).split()) or "an allocation failed"
        print(f"odeprune {args.command}: error: not enough memory ({what}); ask for less "
              "(fewer samples, runs or points, a smaller N or K)", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, ValueError, DivergenceError, MaxStepsReached, OSError) as exc:
        if args.debug:
            raise
        msg = str(exc).replace("\n", " ")
        print(f"odeprune {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        _unguard(guards)
        for sig, handler in old.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
