"""``odeprune integrate``: a learning curve in the thermodynamic limit."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import FIXED_STEP, OPTIONS, PARTICLE_DT, add_cli_options, given, value
from . import CliError
from ._common import (
    DYNAMICS_FLAGS,
    add_dynamics_arguments,
    add_network_arguments,
    add_teacher_density,
    float_list,
    positive_int,
    progress_of,
)
from ._inputs import (
    add_choice_options,
    check_run_outputs,
    explicit,
    info,
    load_input_state,
    load_weights,
    note,
    refuse_with,
)

#: the options of the order-parameter ODE this command passes on when given (odeprune.options)
SOLVER_FLAGS = ("method", "rtol", "atol", "dt")
ODE_FLAGS = (*DYNAMICS_FLAGS, "gradient_flow", *SOLVER_FLAGS)

DESCRIPTION = """\
Integrate the order-parameter ODEs of online SGD (Saad & Solla 1995; Goldt et al. 2019) for a
two-layer student (K hidden units) learning a two-layer teacher (M units), in the limit of large
input dimension N. Time is alpha = (SGD steps) / N.

The initial state is either drawn like a real network of input dimension N (all first-layer
weights and the student's second layer i.i.d. N(0,1), the paper's initialisation) or read from a
saved state with --init. Without arguments: the paper's setting M={M}, K={K}, N={N}, v*={v_star},
eta={eta}, alpha up to {alpha_max}.
"""
#: the length of a run when --alpha-max is left out
ALPHA_MAX = 1000.0


def _description() -> str:
    """:data:`DESCRIPTION` with the defaults of the option table (written once, there)."""
    left_out = argparse.Namespace()
    return DESCRIPTION.format(alpha_max=f"{ALPHA_MAX:g}", **{
        n: f"{value(left_out, n):g}" for n in ("M", "K", "N", "v_star", "eta")})

EPILOG = """\
examples:
  odeprune integrate                                  # paper's M=2, K=6 curve, printed
  odeprune integrate --M 5 --K 20 --alpha-max 2000 --output curve.npz --plot curve.png
  odeprune integrate --init state.npz --eta 0.1 --sigma 0.25 --save-at 1,10,100,1000
  odeprune integrate --weight-decay 0.1 --alpha-max 500         # L2, exact in the ODE
  odeprune integrate --l1 0.02 --alpha-max 100 -o l1.npz        # L1: coordinate-law particles
"""


#: one line for ``odeprune --help``
HELP = "learning curve from the ODEs (N -> infinity)"


def register(sub) -> None:
    p = sub.add_parser("integrate", help=HELP,
                       description=_description(), epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    init = p.add_argument_group("initial state (random draw, or --init / --weights)")
    add_network_arguments(init, help={
        "N": "input dimension of the random initial draw", "seed": "seed of the initial draw"})
    init.add_argument("--init", type=Path, metavar="STATE.npz",
                      help="start from the state in a file: an OrderParams, the final state of "
                           "a LearningCurve or simulation (alpha then continues from its final "
                           "alpha), an outcome of a PruneResult (--pick), a run of a "
                           "SimulationEnsemble (--run), or a plain .npz of Q, R, T, v, v_star")
    init.add_argument("--weights", type=Path, metavar="W.npz",
                      help="start from the order parameters of weights: a plain .npz with "
                           "arrays w (K,N), w_star (M,N), v (K,), v_star (M,), or a simulate "
                           "result")
    add_teacher_density(init)
    add_choice_options(init)
    dyn = add_dynamics_arguments(p)
    add_cli_options(dyn, ["gradient_flow"])
    run = p.add_argument_group("integration")
    add_cli_options(run, ["alpha_max"], defaults={"alpha_max": ALPHA_MAX}, help={
        "alpha_max": "length of the run in alpha; from a curve, alpha continues at its final "
                     "alpha"})
    run.add_argument("--save-at", type=float_list, default=None, metavar="A1,A2,...",
                     help="times to record, from the start of this run (default: 200 "
                          "log-spaced points)")
    add_cli_options(run, SOLVER_FLAGS, help_default={
        "dt": f"{OPTIONS['dt'].default:g}; {PARTICLE_DT:g} for the particle SDE with --l1"})
    run.add_argument("--particles", type=positive_int, default=None, metavar="S",
                     help="with --l1: particles per replica of the coordinate law (default "
                          "20000)")
    run.add_argument("--replicas", type=positive_int, default=None,
                     help="with --l1: independent replicas, whose spread is the Monte-Carlo "
                          "error eg_se (default 8)")
    add_cli_options(run, ["backend"], help={
        "backend": "numba or jax (needs the [jax] extra; dopri5 only, no checkpoint)"})
    out = p.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, metavar="OUT.npz",
                     help="save the LearningCurve (.npz); also writes OUT.csv (alpha, eg)")
    out.add_argument("--plot", type=Path, metavar="FIG.png", help="plot eg(alpha) to this file")
    add_cli_options(out, ["checkpoint", "resume"],
                    help={"checkpoint": "checkpoint file", "resume": "resume from the checkpoint"},
                    help_default={"checkpoint": "with the numba backend: OUT.ckpt.npz beside --output"})
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no notes (the table of results is still printed)")
    p.set_defaults(func=run_integrate)


def _table(curve, n_rows: int = 12) -> str:
    import numpy as np

    idx = np.unique(np.linspace(0, len(curve) - 1, n_rows).round().astype(int))
    lines = [f"{'alpha':>12}  {'eg':>14}"]
    lines += [f"{curve.alpha[j]:12.5g}  {curve.eg[j]:14.8g}" for j in idx]
    return "\n".join(lines)


def _check_options(args) -> None:
    """Refuse, before any work, every option this combination cannot honour."""
    if args.init is not None and args.weights is not None:
        raise CliError("give --init or --weights, not both")
    if args.teacher_density is not None and (args.init is not None or args.weights is not None):
        raise CliError("--teacher-density draws a sparse teacher with the random initial "
                       "network; --init/--weights give the network: drop one of them")
    if args.init is not None:
        refuse_with(args, f"--init {args.init}", "M", "K", "N", "seed", "v_star")
    elif args.weights is not None:
        refuse_with(args, f"--weights {args.weights}", "M", "K", "N", "seed", "v_star")
        if args.pick is not None:
            raise CliError("--pick applies to --init PRUNED.npz (a PruneResult)")
    else:
        given = explicit(args, "pick", "run")
        if given:
            raise CliError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
                           "a file given with --init (--run also with --weights)")
    args.law_input = _law_file(args.init)  # read once; the rest of the command uses the flag
    if args.l1 or args.law_input:
        if args.method is not None or value(args, "backend") != "numba":
            raise CliError("--l1 runs the particle SDE of the coordinate law (its step: --dt); "
                           "--method/--backend apply to the order-parameter ODE")
        given = explicit(args, "rtol", "atol")
        if given:
            raise CliError(f"{', '.join(given)} apply to the ODE; with --l1 set the particle "
                           "step --dt")
        if args.law_input and (args.particles or args.replicas):
            raise CliError(f"--particles/--replicas: {args.init} holds the particles already")
        args.particles = args.particles or 20_000
        args.replicas = args.replicas or 8
        if args.replicas < 2:
            raise CliError("--replicas must be at least 2 (their spread is the error bar)")
        check_run_outputs(args)
        return
    given = explicit(args, "particles", "replicas")
    if given:
        raise CliError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --l1 "
                       "(the coordinate law) only")
    adaptive = args.method not in FIXED_STEP
    if adaptive and args.dt is not None:
        raise CliError("--dt applies to the fixed-step methods (--method rk4 or euler); "
                       f"{args.method or 'the default method'} chooses its own steps (set "
                       "--rtol/--atol instead)")
    if not adaptive:
        given = explicit(args, "rtol", "atol")
        if given:
            raise CliError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
                           f"--method dopri5/auto/bdf/radau (the adaptive methods); --method "
                           f"{args.method} takes a fixed step --dt")
    if args.gradient_flow and args.sigma not in (None, 0.0):
        raise CliError("--sigma has no effect with --gradient-flow (gradient flow has no label "
                       "noise term); drop one of them")
    if args.train_second_layer is False and args.eta_v is not None:
        raise CliError("--eta-v has no effect with --freeze-v (the second layer is frozen); "
                       "drop one of them")
    if value(args, "backend") == "jax":
        if args.method not in (None, "dopri5"):
            raise CliError(f"--method {args.method} is not available with --backend jax "
                           "(diffrax's adaptive Dopri5 only); use --backend numba")
        if args.checkpoint is not None or args.resume:
            raise CliError("--checkpoint/--resume are not available with --backend jax (one "
                           "compiled call); use --backend numba")
    check_run_outputs(args)


def _law_file(path) -> bool:
    """Whether ``path`` holds a coordinate law (a ``CoordinateLaw`` or ``CoordinateCurve``)."""
    if path is None:
        return False
    from odeprune._io import read_npz

    try:
        kind = read_npz(path, allow_plain=True)[1]["kind"]
    except ValueError:
        return False  # the ordinary loader says what is wrong with the file
    return kind in ("CoordinateLaw", "CoordinateCurve")


def _initial_state(args):
    """``(state, alpha0)``: the initial state and the alpha it is at (a curve's final alpha)."""
    import odeprune

    if args.law_input:  # particles to train on (continuing a curve's alpha)
        import numpy as np

        from odeprune.coords import CoordinateCurve

        obj = odeprune.load(args.init)
        if isinstance(obj, CoordinateCurve):
            return obj.final, float(np.asarray(obj.alpha)[-1])
        return obj, 0.0
    if args.init is not None:
        state, info = load_input_state(args.init, pick=args.pick, run=args.run,
                                       activation=args.activation, allow_sparse=True)
        return state, (info["alpha"] or 0.0)
    if args.weights is not None:
        w, w_star, v, v_star, act = load_weights(args.weights, run=args.run,
                                                 activation=args.activation)
        return odeprune.OrderParams.from_weights(w, w_star, v, v_star, activation=act), 0.0
    N, K, M, seed, v_star = (value(args, n) for n in ("N", "K", "M", "seed", "v_star"))
    if args.teacher_density is not None:  # the network simulate --teacher-density draws
        import numpy as np

        from odeprune.teachers import sparse_teacher_state, teacher_support

        support = teacher_support(N, M, args.teacher_density,
                                  seed=np.random.SeedSequence([seed, 99]))
        return sparse_teacher_state(K, M, None, None, v_star=v_star, seed=seed, N=N,
                                    teacher_mask=support,
                                    activation=args.activation or "erf"), 0.0
    state = odeprune.OrderParams.random(N, K, M, v_star=v_star, seed=seed,
                                        activation=args.activation or "erf")
    return state, 0.0


def _integrate(state, alpha0: float, **kw):
    """``odeprune.integrate`` with the saved alphas shifted by ``alpha0`` (a continued curve):
    through its ``alpha0=`` option with the numba backend, else (the JAX path has none) shifted
    here."""
    import dataclasses

    import odeprune

    if kw.get("backend") != "jax":
        return odeprune.integrate(state, alpha0=alpha0, **kw)
    curve = odeprune.integrate(state, **kw)
    if not alpha0:
        return curve
    meta = dict(curve.metadata, alpha0=alpha0)
    return dataclasses.replace(curve, alpha=curve.alpha + alpha0, metadata=meta)


def run_integrate(args) -> int:
    _check_options(args)
    state, alpha0 = _initial_state(args)
    if alpha0:
        note(f"continuing {args.init} from alpha={alpha0:g}: the saved alphas start there")
    checkpoint = args.checkpoint
    if checkpoint is None and args.output is not None and value(args, "backend") == "numba":
        checkpoint = args.output.with_name(args.output.stem + ".ckpt.npz")
    if args.resume and (checkpoint is None or not Path(checkpoint).exists()):
        raise CliError(f"--resume: no checkpoint found at {checkpoint}")
    sigma = value(args, "sigma")
    if args.l1 or args.law_input:  # (without importing the coordinate law otherwise)
        return _run_l1(args, state, alpha0, checkpoint, sigma)
    curve = _integrate(
        state, alpha0, alpha_max=args.alpha_max, save_at=args.save_at,
        activation=state.activation, progress=progress_of(args), checkpoint=checkpoint,
        resume=value(args, "resume"), backend=value(args, "backend"),
        divergence_path=(args.output.with_name(args.output.stem + ".last_good.npz")
                         if args.output else None),
        **given(args, ODE_FLAGS),
    )
    # the result, printed with --quiet too (which silences only progress and notes)
    print(f"# K={curve.K} M={curve.M} activation={state.activation} eta={value(args, 'eta')} "
          f"sigma={sigma} ({curve.metadata.get('nfev', '?')} rhs evaluations)")
    print(_table(curve))
    if args.output is not None:
        from odeprune._io import atomic_write_text

        path = curve.save(args.output)
        atomic_write_text(path.with_suffix(".csv"), curve.to_csv())
        info(f"saved {path} and {path.with_suffix('.csv')}")
    if args.plot is not None:
        from ._plots import plot_curve

        plot_curve(curve, args.plot)
        info(f"plotted {args.plot}")
    return 0


def _run_l1(args, state, alpha0: float, checkpoint, sigma: float) -> int:
    """``--l1`` or a coordinate-law file: train the law's particles (sampled from the initial
    state, or the file's), by the particle SDE with L1, exactly without."""
    import dataclasses

    import numpy as np

    import odeprune

    if isinstance(state, odeprune.CoordinateLaw):
        law = state
    else:
        law = odeprune.CoordinateLaw.from_state(state, S=args.particles,
                                                replicas=args.replicas,
                                                seed=value(args, "seed"))
    curve = odeprune.integrate(
        law, alpha_max=args.alpha_max, save_at=args.save_at,
        method="particles" if args.l1 else "auto", dt=args.dt or PARTICLE_DT,
        progress=progress_of(args), **given(args, (*DYNAMICS_FLAGS, "gradient_flow")),
        # the default checkpoint beside --output is for the particle engine (--l1); the exact
        # engine runs the per-class ODE in one go
        checkpoint=checkpoint if args.l1 or args.checkpoint is not None else None,
        resume=value(args, "resume"), seed=value(args, "seed"))
    if alpha0:
        curve = dataclasses.replace(curve, alpha=curve.alpha + alpha0,
                                    metadata=dict(curve.metadata, alpha0=alpha0))
    print(f"# K={law.K} M={law.M} activation={law.activation} eta={value(args, 'eta')} "
          f"sigma={sigma} l1={value(args, 'l1')} ({law.replicas} x {law.S} particles; +- is the "
          "Monte-Carlo standard error)")
    idx = np.unique(np.linspace(0, len(curve.alpha) - 1, 12).round().astype(int))
    print(f"{'alpha':>12}  {'eg':>14}  {'eg_se':>10}")
    for j in idx:
        print(f"{curve.alpha[j]:12.5g}  {curve.eg[j]:14.8g}  {curve.eg_se[j]:10.2g}")
    if args.output is not None:
        from odeprune._io import atomic_write_text, rows_to_csv

        path = curve.save(args.output)
        atomic_write_text(path.with_suffix(".csv"), rows_to_csv(
            [dict(alpha=a, eg=e, eg_se=s) for a, e, s in
             zip(curve.alpha.tolist(), curve.eg.tolist(), curve.eg_se.tolist())]))
        info(f"saved {path} and {path.with_suffix('.csv')}")
    if args.plot is not None:
        from ._plots import plot_curve

        plot_curve(curve, args.plot)
        info(f"plotted {args.plot}")
    return 0
