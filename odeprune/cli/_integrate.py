"""``odeprune integrate``: a learning curve in the thermodynamic limit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CliError
from ._common import add_dynamics_arguments, float_list, positive_float, positive_int, v_star_arg

DESCRIPTION = """\
Integrate the order-parameter ODEs of online SGD (Saad & Solla 1995; Goldt et al. 2019) for a
two-layer student (K hidden units) learning a two-layer teacher (M units), in the limit of large
input dimension N. Time is alpha = (SGD steps) / N.

The initial state is either drawn like a real network of input dimension N (all first-layer
weights and the student's second layer i.i.d. N(0,1), the paper's initialisation) or read from a
saved state with --init. Without arguments: the paper's setting M=2, K=6, N=500, v*=4,
eta=0.5, alpha up to 1000.
"""

EPILOG = """\
examples:
  odeprune integrate                                  # paper's M=2, K=6 curve, printed
  odeprune integrate --M 5 --K 20 --alpha-max 2000 --output curve.npz --plot curve.png
  odeprune integrate --init state.npz --eta 0.1 --sigma 0.25 --save-at 1,10,100,1000
"""


def register(sub) -> None:
    p = sub.add_parser("integrate", help="learning curve from the ODEs (N -> infinity)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    init = p.add_argument_group("initial state (random draw, or --init)")
    init.add_argument("--M", type=positive_int, default=2, help="teacher hidden units (default 2)")
    init.add_argument("--K", type=positive_int, default=6, help="student hidden units (default 6)")
    init.add_argument("--N", type=positive_int, default=500,
                      help="input dimension of the random initial draw (default 500)")
    init.add_argument("--seed", type=int, default=0, help="seed of the initial draw (default 0)")
    init.add_argument("--v-star", type=v_star_arg, default=4.0,
                      help="teacher second layer: a number, or M comma-separated (default 4)")
    init.add_argument("--init", type=Path, metavar="STATE.npz",
                      help="start from a saved OrderParams / LearningCurve / simulation file")
    dyn = add_dynamics_arguments(p)
    dyn.add_argument("--gradient-flow", action="store_true",
                     help="drop the eta^2 terms (gradient flow instead of online SGD)")
    run = p.add_argument_group("integration")
    run.add_argument("--alpha-max", type=positive_float, default=1000.0,
                     help="final time alpha (default 1000)")
    run.add_argument("--save-at", type=float_list, default=None, metavar="A1,A2,...",
                     help="times to record (default: 200 log-spaced points)")
    run.add_argument("--method", choices=["dopri5", "rk4", "euler"], default="dopri5",
                     help="adaptive Dormand-Prince (default) or fixed step --dt")
    run.add_argument("--dt", type=positive_float, default=0.01, help="fixed step (default 0.01)")
    run.add_argument("--rtol", type=positive_float, default=None, help="relative tolerance")
    run.add_argument("--atol", type=positive_float, default=None, help="absolute tolerance")
    run.add_argument("--backend", choices=["numba", "jax"], default="numba",
                     help="numba (default) or jax (needs the [jax] extra)")
    out = p.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, metavar="OUT.npz",
                     help="save the LearningCurve (.npz); also writes OUT.csv (alpha, eg)")
    out.add_argument("--plot", type=Path, metavar="FIG.png", help="plot eg(alpha) to this file")
    out.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="checkpoint file (default: OUT.ckpt.npz beside --output)")
    out.add_argument("--resume", action="store_true", help="resume from the checkpoint")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=run_integrate)


def _table(curve, n_rows: int = 12) -> str:
    import numpy as np

    idx = np.unique(np.linspace(0, len(curve) - 1, n_rows).round().astype(int))
    lines = [f"{'alpha':>12}  {'eg':>14}"]
    lines += [f"{curve.alpha[j]:12.5g}  {curve.eg[j]:14.8g}" for j in idx]
    return "\n".join(lines)


def run_integrate(args) -> int:
    import odeprune
    from odeprune.dynamics import DEFAULT_ATOL, DEFAULT_RTOL

    if args.init is not None:
        state = odeprune.OrderParams.load(args.init)
    else:
        state = odeprune.OrderParams.random(args.N, args.K, args.M, v_star=args.v_star,
                                            seed=args.seed)
    checkpoint = args.checkpoint
    if checkpoint is None and args.output is not None:
        checkpoint = args.output.with_name(args.output.stem + ".ckpt.npz")
    if args.resume and (checkpoint is None or not Path(checkpoint).exists()):
        raise CliError(f"--resume: no checkpoint found at {checkpoint}")
    if args.output is not None and not args.output.parent.exists():
        raise CliError(f"--output {args.output}: directory {args.output.parent} does not exist")
    curve = odeprune.integrate(
        state, eta=args.eta, alpha_max=args.alpha_max, save_at=args.save_at, eta_v=args.eta_v,
        sigma=args.sigma, rtol=args.rtol or DEFAULT_RTOL, atol=args.atol or DEFAULT_ATOL,
        method=args.method, activation=args.activation, train_second_layer=not args.freeze_v,
        gradient_flow=args.gradient_flow, dt=args.dt, progress=not args.quiet,
        checkpoint=checkpoint, resume=args.resume, backend=args.backend,
        divergence_path=(args.output.with_name(args.output.stem + ".last_good.npz")
                         if args.output else None),
    )
    if not args.quiet:
        print(f"# K={curve.K} M={curve.M} eta={args.eta} sigma={args.sigma} "
              f"({curve.metadata.get('nfev', '?')} rhs evaluations)")
        print(_table(curve))
    if args.output is not None:
        from odeprune._io import atomic_write_text

        path = curve.save(args.output)
        atomic_write_text(path.with_suffix(".csv"), curve.to_csv())
        print(f"saved {path} and {path.with_suffix('.csv')}", file=sys.stderr)
    if args.plot is not None:
        from odeprune.plotting import plot_learning_curves

        plot_learning_curves([curve], labels=[f"ODE K={curve.K}, M={curve.M}"], path=args.plot)
        print(f"plotted {args.plot}", file=sys.stderr)
    return 0
