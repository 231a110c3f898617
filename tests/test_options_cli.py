"""The command line takes every shared option from the table of ``odeprune.options``: the flag's
check is the option's (a bad value refused with its one line), and every command's ``--help``
shows the default the table (or the command, said where it is set) gives."""

from __future__ import annotations

import argparse
import math

import pytest

from odeprune import options
from odeprune.cli import build_parser
from odeprune.options import OPTIONS, add_cli_options, value

#: a bad command-line value of each kind of option that takes an argument, and what it parses to
BAD = {"positive": ("0", 0.0), "nonneg": ("-1", -1.0), "size": ("0", 0), "seed": ("-1", -1),
       "count": ("-1", -1),
       "reals": ("1,inf", [1.0, math.inf]), "choice": ("nope", "nope"),
       "activation": ("nope", "nope")}
SWITCHES = options.SWITCHES


def _parser(names):
    p = argparse.ArgumentParser(exit_on_error=False)
    add_cli_options(p, names)
    return p


@pytest.mark.parametrize("name", sorted(n for n, o in OPTIONS.items() if o.cli))
def test_every_option_has_a_flag_with_the_tables_check(name):
    opt = OPTIONS[name]
    p = _parser([name])
    assert p.parse_args([]).__dict__[name] is None  # left out: the command can tell
    assert value(p.parse_args([]), name) == (opt.default if opt.cli_default is None
                                             else opt.cli_default)
    if opt.kind in SWITCHES:
        args = p.parse_args([opt.cli_flag])
        assert getattr(args, name) is (not opt.negate) and opt.check(getattr(args, name)) \
            is (not opt.negate)
        return
    if opt.kind == "path":
        assert str(p.parse_args([opt.cli_flag, "a/b.npz"]).__dict__[name]) == "a/b.npz"
        return
    text, bad = BAD[opt.kind]
    with pytest.raises(ValueError) as table:
        opt.check(bad)
    with pytest.raises(argparse.ArgumentError) as cli:
        p.parse_args([opt.cli_flag, text])
    message = str(cli.value)
    assert message.startswith(f"argument {opt.cli_flag}: ") and "\n" not in message
    # the table's one line, without the "name=" the flag already says
    assert message.endswith(str(table.value).split("=", 1)[1]), (message, str(table.value))
    if opt.kind not in ("choice", "activation"):
        with pytest.raises(argparse.ArgumentError, match="expected"):
            p.parse_args([opt.cli_flag, "x"])


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


#: where a command shows its own default (help_default), and the text it shows
OWN_HELP_DEFAULT = {
    ("integrate", "dt"): "0.01; 0.05 for the particle SDE with --l1",
    ("integrate", "checkpoint"): "with the numba backend: OUT.ckpt.npz beside --output",
    ("simulate", "checkpoint"): "OUT.ckpt.npz beside --output",
    ("retrain", "eta_v"): "--eta",
}
#: a command's flag that shares its name with an option of the table but is another option
OTHER_OPTIONS = {("prune", "method"): "the pruning method", ("retrain", "method"): "the pruning "
                 "method(s)"}
#: the shared flags each command must take from the table (at least)
SHARED = {
    "integrate": {"N", "K", "M", "seed", "v_star", "eta", "eta_v", "sigma", "train_second_layer",
                  "weight_decay", "l1", "gradient_flow", "alpha_max", "method", "rtol", "atol",
                  "dt", "checkpoint", "resume"},
    "simulate": {"N", "K", "M", "seed", "v_star", "eta", "eta_v", "sigma", "train_second_layer",
                 "weight_decay", "l1", "alpha_max", "checkpoint", "resume"},
    "ticket": {"N", "K", "M", "seed", "v_star", "eta", "alpha_max"},
    "retrain": {"eta", "eta_v", "sigma", "seed"},
    "prune": {"seed"},
}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_commands_help_shows_the_tables_default_for_each_shared_flag():
    commands = _commands()
    seen = {}
    for cmd, p in commands.items():
        text = _flat(p.format_help())
        for a in p._actions:
            if a.dest not in OPTIONS or not a.option_strings or not OPTIONS[a.dest].cli:
                continue  # (a library-only option: a command's flag of that name is its own)
            if (cmd, a.dest) in OTHER_OPTIONS:
                assert not hasattr(a, "table_option")
                continue
            assert getattr(a, "table_option", None) == a.dest, (cmd, a.dest)  # from the table
            opt = OPTIONS[a.dest]
            seen.setdefault(cmd, set()).add(a.dest)
            assert a.option_strings == [opt.cli_flag], (cmd, a.option_strings)
            if (cmd, a.dest) in OWN_HELP_DEFAULT:
                shown = OWN_HELP_DEFAULT[cmd, a.dest]
                if opt.default is not None and opt.kind != "path":
                    assert options._show(opt.default) in shown  # the table's, beside its own
            else:
                # the command's own default (set as the flag's value) or the table's
                shown = a.default if a.default is not None else \
                    opt.default if opt.cli_default is None else opt.cli_default
                if shown is None or opt.kind in SWITCHES:
                    assert "(default" not in _flat(a.help) or a.dest == "eta_v", (cmd, a.dest)
                    continue
                shown = options._show(shown)
            assert _flat(a.help).endswith(f"(default {shown})"), (cmd, a.dest, a.help)
            assert _flat(a.help) in text
    for cmd, names in SHARED.items():
        assert names <= seen.get(cmd, set()), (cmd, names - seen.get(cmd, set()))


@pytest.mark.parametrize("cmd", sorted(SHARED))
def test_every_commands_shared_flags_refuse_bad_values_with_the_tables_line(cmd, capsys):
    from odeprune.cli import main

    for name in sorted(SHARED[cmd]):
        opt = OPTIONS[name]
        if opt.kind not in BAD:
            continue
        text, bad = BAD[opt.kind]
        with pytest.raises(ValueError) as table:
            opt.check(bad)
        with pytest.raises(SystemExit) as e:
            main([cmd, opt.cli_flag, text])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1, (cmd, name, err)
        assert str(table.value).split("=", 1)[1] in err, (cmd, name, err)


def test_commands_own_defaults_are_said_where_they_are_set():
    """``alpha_max`` has no library default; each command's is its flag's value."""
    commands = _commands()
    own = {cmd: next(a.default for a in commands[cmd]._actions if a.dest == "alpha_max")
           for cmd in ("integrate", "simulate", "ticket")}
    assert own == {"integrate": 1000.0, "simulate": 100.0, "ticket": 1000.0}
