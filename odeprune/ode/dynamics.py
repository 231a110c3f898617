r"""Learning curves in the thermodynamic limit: ``integrate(state, eta, alpha_max, ...)``.

Integrates the order-parameter ODEs of online SGD (``docs/theory.md`` §4; Saad & Solla 1995;
Goldt et al. 2019, supplementary S3–S4) for a dense network (:class:`~odeprune.state.OrderParams`)
or a network with a fixed first-layer mask (:class:`~odeprune.sparse.SparseOrderParams`,
``docs/theory.md`` §8), optionally with the two-time overlaps ``P`` (§9). One compiled
right-hand side serves both (:mod:`odeprune.ode.rhs`); the steppers (:mod:`odeprune.ode.explicit`) loop
in compiled code, and Python sees the run between chunks of about a quarter of a second
(:mod:`odeprune.ode.runcontrol`) to update the progress bar, write a checkpoint or stop on Ctrl-C /
SIGTERM.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np

from .. import _io
from .._validate import check_save_at
from ..activations import activation_code, eg_from_cov, get_activation
from ..errors import OdepruneAccuracyWarning
from ..options import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    FIXED_STEP,
    METHODS,
    OPTIONS,
    Control,
    Dynamics,
    Output,
    Solver,
    gather,
)
from ..results import LearningCurve
from ..sparse import SparseLearningCurve, SparseOrderParams, TwoTimeCurve
from ..state import PSD_RTOL, OrderParams
from .divergence import overflow_message, raise_divergence, raise_max_steps
from .drivers import AutoDriver, ScipyDriver
from .explicit import (
    CHUNK,
    I_OUT,
    MAX_STEPS,
    OK,
    ExplicitDriver,
    Status,
)
from .explicit import METHODS as _STEPPERS  # noqa: F401  (tests patch the steppers here)
from .explicit import Control as StepControl
from .rhs import class_sums, pack_classes, params_of, rhs_eval, unpack_classes
from .runcontrol import RunControl, interrupted_error
from .stiff import eg_resolution_message, initial_step, resolved_eg_floor

__all__ = ["integrate", "default_save_at", "METHODS", "rhs_state", "DEFAULT_RTOL", "DEFAULT_ATOL"]

#: the records :func:`integrate` sorts its keywords into (``odeprune.options``)
RECORDS = (Dynamics, Solver, Control, Output)
#: from this K on, one curve's right-hand side is threaded by default, when cores are idle
THREADED_K = 15


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def idle_threads(limit: int) -> int:
    """How many threads (at most ``limit``, at least 1) one curve may use now: 1 plus the cores
    that nothing else is running on.

    Measured from the kernel's count of runnable tasks (``/proc/loadavg``, 4th field; an
    instantaneous count, not the lagging load average), less this process's own running
    threads (numba's spinning workers included). Without ``/proc`` (not Linux): 1, i.e. serial
    unless ``threads=True``. A thread waiting for a core spins (OpenMP) and a busy core
    delays every parallel region, so on a loaded machine threads cost up to 10x the CPU of
    the serial sum (K=20) for no gain in wall time.
    """
    if limit <= 1:
        return 1
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:  # the thread ended meanwhile
                continue
            own += stat[stat.rindex(")") + 2] == "R"
    except (OSError, ValueError, IndexError):
        return 1
    others = max(0, running - max(own, 1))
    return max(1, min(limit, _usable_cores() - others))


#: format of the checkpoint files (bumped when the solver state changes)
CHECKPOINT_VERSION = 4


#: state types handled by another engine: type -> its integrate (odeprune.coords registers the
#: coordinate law when it is imported; a law cannot exist before that)
OTHER_STATES: dict = {}


def register_state(cls: type, run) -> None:
    """Let :func:`integrate` hand states of type ``cls`` to ``run``."""
    OTHER_STATES[cls] = run


def default_save_at(alpha_max: float, n: int = 200) -> np.ndarray:
    """``0`` plus ``n`` log-spaced times from ``min(0.01, alpha_max/100)`` to ``alpha_max``."""
    lo = min(0.01, alpha_max / 100.0)
    return np.unique(np.concatenate([[0.0], np.geomspace(lo, alpha_max, n)]))


# ------------------------------------------------------------------------------ the problem
def _problem(state, dynamics: Dynamics, act_code: int, track_P: bool = False, fast: bool = True,
             threads: bool | None = False):
    """``(params, y0, sparse_state)`` of a dense or sparse state under the learning rule
    ``dynamics`` (an :class:`odeprune.options.Dynamics`): the dense one is one class.
    ``threads``: True, False (serial, compiled without the threaded sum) or None (decided
    per chunk, starting serial; :func:`odeprune.ode.rhs.threads_flag`)."""
    sp = state if isinstance(state, SparseOrderParams) else SparseOrderParams.from_dense(state)
    p = params_of(sp, dynamics, act_code, track_P=track_P, threads=threads, fast=fast)
    y0 = pack_classes(sp.patterns, sp.Q, sp.R, sp.v, sp.Q if track_P else None)
    return p, y0, sp


def rhs_state(state, eta: float, eta_v: float | None = None, sigma: float = 0.0,
              activation: str | None = None, train_second_layer: bool = True,
              gradient_flow: bool = False):
    """Time derivatives at ``state``: ``(dQ, dR, dv)`` for an OrderParams (shapes of Q, R, v);
    per class ``(dQ (S,K,K), dR (S,K,M), dv)`` for a SparseOrderParams."""
    act = get_activation(_activation_of(state, activation))
    dyn = Dynamics(eta=eta, eta_v=eta_v, sigma=sigma, train_second_layer=train_second_layer,
                   gradient_flow=gradient_flow)
    p, y0, sp = _problem(state, dyn, act.code)
    dQ, dR, _, dv = unpack_classes(rhs_eval(y0, p), p.M, sp.patterns, False)
    if isinstance(state, SparseOrderParams):
        return dQ, dR, dv
    return dQ[0], dR[0], dv


def _activation_of(state, activation) -> str:
    """The state's activation (an explicit, different ``activation`` is refused)."""
    dense = state.dense() if isinstance(state, SparseOrderParams) else state
    return dense.check_activation(activation)


def _params_dict(run: _Run) -> dict:
    """The parameters a run records (metadata) and a checkpoint must match."""
    dyn, sol, state = run.dynamics, run.solver, run.state
    d = dict(eta=dyn.eta, eta_v=dyn.second_layer_rate, sigma=dyn.sigma,
             activation=run.act.name, train_second_layer=dyn.train_second_layer,
             gradient_flow=dyn.gradient_flow, method=sol.method, rtol=sol.rtol, atol=sol.atol,
             dt=sol.dt, alpha_max=run.alpha_max, K=state.K, M=state.M)
    if isinstance(state, SparseOrderParams):
        d["n_classes"] = state.n_classes
    if run.output.track_initial:
        d["track_initial"] = True
    if dyn.weight_decay:
        d["weight_decay"] = dyn.weight_decay
    return d


class _Run(NamedTuple):
    """One checked call of :func:`integrate`: the state, its records, the save grid."""

    state: Any
    dynamics: Dynamics
    solver: Solver
    control: Control
    output: Output
    alpha_max: float
    t_out: np.ndarray
    act: Any


def integrate(state, eta: float | None = None, alpha_max: float | None = None, save_at=None, *,
              activation: str | None = None, seed=0, **options) -> LearningCurve:
    r"""Integrate the order-parameter ODEs of online SGD from ``state`` up to ``alpha_max``.

    ``integrate(state, eta, alpha_max, save_at=None, **options)``: the options are flat
    keywords (``method="bdf"``) or whole records of :mod:`odeprune.options`
    (``solver=Solver(method="bdf")``; then not also the record's own keywords), each checked by
    the one option table before any work. ``eta`` may come inside ``dynamics=``.

    Parameters
    ----------
    state : OrderParams or SparseOrderParams
        Initial order parameters (e.g. ``OrderParams.random(N, K, M, v_star, seed)``), or the
        per-class state of a network with a fixed first-layer mask (``SparseOrderParams``,
        e.g. ``prune(...).sparse_state``): pruned weights then stay zero while the rest trains.
    eta : float
        First-layer learning rate (the SGD step is ``eta / sqrt(N)``).
    alpha_max : float
        Duration, in units of ``alpha = steps / N``.
    save_at : array_like, optional
        Times (from the start of this run) at which to record the state; ``alpha_max`` is
        always added. Default: :func:`default_save_at` (0 and 200 log-spaced times).
    activation : str, optional
        The state's own activation is used; passing a different one is an error (it would be
        another network's dynamics).
    seed : int
        For a :class:`~odeprune.coords.CoordinateLaw` only: the seed of its fresh Gaussians
        and decisions (see ``l1`` below).

    Other Parameters
    ----------------
    eta_v, sigma, train_second_layer, gradient_flow, weight_decay, l1 :
        The learning rule, :class:`odeprune.options.Dynamics` (``dynamics=``).
        ``eta_v``: second-layer learning rate (the SGD step is ``eta_v / N``); default ``eta``.
        ``sigma`` (0): output-noise standard deviation of the teacher's labels.
        ``train_second_layer`` (True): ``False`` freezes ``v`` (soft committee machine).
        ``gradient_flow`` (False): drop the ``eta**2`` terms (and with them sigma).
        ``weight_decay`` (0): L2 weight decay ``gamma`` of the first layer, ``-eta gamma w`` per
        unit alpha (``docs/theory.md`` §11): exact in the ODE (``-2 eta gamma Q``,
        ``-eta gamma R``), for dense and masked networks.
        ``l1`` (0): for a :class:`~odeprune.coords.CoordinateLaw` only (L1 acts per coordinate):
        ``integrate(law, ...)`` is :func:`odeprune.coords.integrate_law` with the options here
        that apply to it (``method``: ``"auto"``, ``"linear"`` or ``"particles"``; ``dt`` the
        particle step).
    method, rtol, atol, dt, max_steps, backend, threads :
        How the ODE is integrated, :class:`odeprune.options.Solver` (``solver=``).
        ``method`` ({"auto", "dopri5", "bdf", "radau", "rk4", "euler"}): ``"auto"`` (default):
        adaptive Dormand-Prince 5(4) while that is cheaper, then BDF once the dynamics are stiff
        (:class:`odeprune.ode.drivers.AutoDriver`; ``docs/speed.md``): a short run, or one that
        never becomes stiff, has exactly the numbers of ``"dopri5"``; a long one costs about the
        same at alpha = 1e5 as at 1e3, and resolves a small final eps_g; on a masked network
        its implicit steps solve with the classes' structure (:mod:`odeprune.ode.blocks`), and
        it switches only where that costs less than the explicit steps left. ``"dopri5"``:
        Dormand-Prince only. ``"bdf"``: compiled BDF from the start; ``"radau"``: scipy's
        Radau. ``"rk4"`` / ``"euler"``: classical RK4 / explicit Euler on the fixed grid
        ``alpha = n dt`` (outputs between grid points are interpolated; the steps never depend
        on ``save_at``). With ``backend="jax"`` ``"auto"`` is diffrax's Dopri5 (no stiff path).
        ``rtol``, ``atol`` (1e-7, 1e-10): tolerances of the adaptive methods, per component of
        the state vector (``rtol`` at least ``100 eps``, what float64 can honour).
        ``dt`` (0.01): step of the fixed-step methods.
        ``max_steps`` (1e7): give up (:class:`~odeprune.errors.MaxStepsReached`) after this many
        accepted steps.
        ``backend`` ({"numba", "jax"}): ``"jax"`` uses :mod:`odeprune.ode.jax_backend`
        (optional extra; dense states only): diffrax's Dopri5 in one compiled call, so no
        progress bar, checkpoint or fixed step.
        ``threads`` (None): spread the ``I4`` sum of each evaluation over numba's threads
        (``numba.set_num_threads`` or ``NUMBA_NUM_THREADS`` set how many). ``None``: for
        ``K >= 15``, on the cores that are idle, measured before every chunk of steps (about a
        quarter of a second; :func:`idle_threads`): serial on a loaded machine, where waiting
        threads would spin, and off Linux. ``True`` forces numba's thread count, ``False`` the
        serial sum. The numbers do not depend on the number of threads (bit for bit).
        :func:`odeprune.integrate_batch` runs members in parallel instead.
    progress, checkpoint, resume, chunk_steps, divergence_path :
        How the run is watched, :class:`odeprune.options.Control` (``control=``).
        ``progress`` (None): a progress bar on stderr; None: when stderr is a terminal.
        ``checkpoint`` (path): write the solver state there (atomically) every few seconds and
        on Ctrl-C / SIGTERM; removed when the run finishes.
        ``resume`` (False): continue from ``checkpoint`` (same parameters required); gives
        exactly the numbers of an uninterrupted run.
        ``chunk_steps``: upper bound on the steps between two looks from Python (default:
        chunks of about 0.25 s).
        ``divergence_path``: where to save the last good state if the run diverges (or uses
        up ``max_steps``).
    alpha0, track_initial :
        What the run records besides ``save_at``, :class:`odeprune.options.Output`
        (``output=``). ``alpha0`` (0): time of ``state`` on an earlier run: the saved ``alpha``
        are ``alpha0 + t`` (to continue a curve). ``track_initial`` (False): also integrate the
        two-time overlaps ``P_ik = w_i(alpha) . w_k(0) / N`` (``docs/theory.md`` §9); the curve
        then has ``P`` and ``joint_covariance(index)``.

    Returns
    -------
    LearningCurve
        For a SparseOrderParams a :class:`~odeprune.sparse.SparseLearningCurve` (``final`` is a
        SparseOrderParams; ``eg, Q, R, v`` those of the masked network); with
        ``track_initial`` a :class:`~odeprune.sparse.TwoTimeCurve` (dense).

    Raises
    ------
    DivergenceError
        The state became non-finite or not PSD; the message says at which alpha, what most
        likely caused it (learning rate, step, tolerance, overflow, a singular initial
        covariance) and what to change.
    MaxStepsReached
        The run used up ``max_steps`` before ``alpha_max`` (a budget, not a divergence).
    ValueError
        Bad arguments, before any work: e.g. ``rtol`` below ``100 eps`` (what float64 can
        honour; :data:`odeprune._validate.MIN_RTOL`).
    TypeError
        A keyword that is no option (the message lists them).
    OdepruneInterrupted
        Ctrl-C or SIGTERM; the checkpoint (if any) was written and the message says how to
        resume.

    Notes
    -----
    .. math:: \dot R_{in} = -\eta v_i \sum_c a_c I_3(i,n,c), \ \ldots \ \text{(docs/theory.md §4, §8)}
    """
    for cls, run in OTHER_STATES.items():  # a coordinate law (registered by odeprune.coords)
        if isinstance(state, cls):
            given = dict(options, activation=activation, seed=seed)
            given.update({k: v for k, v in (("eta", eta), ("save_at", save_at)) if v is not None})
            return _hand_off(run, state, alpha_max, given)
    if eta is not None:
        options["eta"] = eta
    if save_at is not None:
        options["save_at"] = save_at
    for name, missing in (("eta", eta is None and "dynamics" not in options),
                          ("alpha_max", alpha_max is None)):
        if missing:
            raise TypeError(f"integrate() missing required argument: {name!r}")
    dyn, solver, ctl, out = gather("integrate", options, RECORDS)
    alpha_max = OPTIONS["alpha_max"].check(alpha_max)
    if not isinstance(state, (OrderParams, SparseOrderParams)):
        raise ValueError("state must be an OrderParams, a SparseOrderParams or a CoordinateLaw, "
                         f"got {type(state).__name__}")
    if dyn.l1:
        raise ValueError("l1 acts per coordinate and does not close on the order parameters: "
                         "train the coordinate law, integrate(CoordinateLaw.from_state(state), "
                         "..., l1=...)")
    act = get_activation(_activation_of(state, activation))
    if solver.method in FIXED_STEP and solver.dt > alpha_max:
        raise ValueError(f"dt={solver.dt!r} is larger than alpha_max={alpha_max!r}: the "
                         "fixed-step method would take no step inside the run; use a smaller dt")
    t_out = default_save_at(alpha_max) if out.save_at is None else \
        check_save_at(out.save_at, alpha_max)
    run = _Run(state, dyn, solver, ctl, out, alpha_max, t_out, act)
    if solver.backend == "jax":
        return _integrate_jax(run)
    return _integrate_numba(run)


#: the options of the order-parameter ODE that a coordinate law has no use for
_ODE_ONLY = ("activation", "max_steps", "chunk_steps", "backend", "divergence_path",
             "track_initial", "alpha0", "threads")
#: the options :func:`integrate` hands on to the coordinate law's own integrate
_LAW_OPTIONS = ("save_at", "eta_v", "sigma", "l1", "weight_decay", "gradient_flow",
                "train_second_layer", "method", "dt", "seed", "progress", "checkpoint", "resume")


def _hand_off(run, state, alpha_max, keywords: dict):
    """``integrate(law, ...)``: the flat keywords the coordinate law's integrate accepts (records
    given whole are opened), refusing the options of the order-parameter ODE."""
    flat = dict(keywords)
    for rec in RECORDS:
        whole = flat.pop(rec.__name__.lower(), None)
        if whole is None:
            continue
        if not isinstance(whole, rec):
            raise ValueError(f"{rec.__name__.lower()}={whole!r} must be an "
                             f"odeprune.options.{rec.__name__}")
        beside = sorted(set(whole.as_dict()) & set(flat))
        if beside:
            raise ValueError(f"{beside} given beside {rec.__name__.lower()}=: set them in the "
                             "record")
        flat.update(whole.as_dict())
    known = {f.name for r in RECORDS for f in fields(r)} | {"activation", "seed"}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise TypeError(f"integrate() got unexpected keyword argument(s) {unknown}; its options "
                        f"are {sorted(known)}")
    eta = flat.pop("eta", None)
    given = sorted(k for k in _ODE_ONLY if flat.get(k, OPTIONS[k].default) != OPTIONS[k].default)
    if given:
        raise ValueError(f"{given} do not apply to a {type(state).__name__} (options of the "
                         "order-parameter ODE)")
    kw = {k: flat.get(k, OPTIONS[k].default) for k in _LAW_OPTIONS}
    kw["method"] = "auto" if kw["method"] == "dopri5" else kw["method"]
    kw.update({k: flat[k] for k in ("rtol", "atol")
               if k in flat and flat[k] != OPTIONS[k].default})
    return run(state, eta, alpha_max, **kw)


def _integrate_jax(run: _Run) -> LearningCurve:
    """``backend="jax"``: refuse what it cannot do, then :func:`odeprune.ode.jax_backend.integrate`."""
    sol, ctl, out = run.solver, run.control, run.output
    problems = []
    if sol.method not in ("auto", "dopri5"):
        problems.append(f"method={sol.method!r} is not available with backend='jax' (it uses "
                        "diffrax's adaptive Dopri5)")
    if ctl.checkpoint is not None or ctl.resume:
        problems.append("checkpoint/resume are not available with backend='jax' (one "
                        "compiled call)")
    if isinstance(run.state, SparseOrderParams):
        problems.append("a SparseOrderParams (masked network) is not available with "
                        "backend='jax'")
    if out.track_initial or out.alpha0:
        problems.append("track_initial/alpha0 are not available with backend='jax'")
    if run.dynamics.weight_decay:
        problems.append("weight_decay is not available with backend='jax'")
    if problems:
        raise ValueError("; ".join(problems) + "; use backend='numba'")
    from .jax_backend import JaxRun
    from .jax_backend import integrate as _jax_integrate

    return _jax_integrate(run.state, run.dynamics,
                          JaxRun(run.alpha_max, run.t_out, sol.rtol, sol.atol, "dopri5",
                                 int(min(sol.max_steps, 10_000_000))), run.act.name)


def _integrate_numba(run: _Run) -> LearningCurve:
    """The compiled drivers, in chunks watched by :class:`~odeprune.ode.runcontrol.RunControl`."""
    state, dyn, sol, ctl, out, t_out = (run.state, run.dynamics, run.solver, run.control,
                                        run.output, run.t_out)
    method, alpha0, checkpoint, track_P = sol.method, out.alpha0, ctl.checkpoint, out.track_initial
    auto_threads = sol.threads is None and state.K >= THREADED_K
    n_threads = numba.get_num_threads() if auto_threads else 1  # (starts numba's pool)
    threads = idle_threads(n_threads) > 1 if auto_threads else bool(sol.threads)
    # (decided per chunk: a run-time flag from the start, so that the decisions compile nothing
    # more; scipy's Radau keeps the first decision)
    per_chunk = auto_threads and DRIVERS.get(method) is not ScipyDriver
    p, y0, sp = _problem(state, dyn, run.act.code, track_P,
                         threads=None if per_chunk else threads)
    params = _params_dict(run)
    psd_tol = PSD_RTOL * 10  # integration error may add a little on top of the input tolerance
    Y_out = np.zeros((t_out.size, y0.size))
    f0 = rhs_eval(y0, p)
    if not np.all(np.isfinite(f0)):
        raise ValueError(overflow_message(state, dyn.eta, dyn.sigma))
    h0 = initial_step(y0, f0, sol.rtol, sol.atol, run.alpha_max) \
        if method in ("dopri5", "auto") else sol.dt
    drv = DRIVERS.get(method, ExplicitDriver)(method, p, y0, f0, h0, t_out, Y_out,
                                              StepControl(sol.rtol, sol.atol, sol.dt, 1, psd_tol))
    if ctl.resume:
        _load_checkpoint(checkpoint, params, y0, state, t_out, drv, Y_out)
    status = CHUNK
    # threads=None: threads on the idle cores, decided again before every chunk (an explicit
    # stepper only; the stiff path keeps the first decision). Same numbers either way.
    adapt = per_chunk
    with RunControl(run.alpha_max, "integrate", ctl.progress, start=drv.t,
                    max_chunk=ctl.chunk_steps) as rc:
        try:
            while status == CHUNK:
                if adapt:
                    n = idle_threads(n_threads)
                    drv.p = drv.p._replace(threads=n > 1)
                    if n > 1:
                        numba.set_num_threads(n)
                before = drv.counts()["n_accept"]
                t0 = time.perf_counter()
                status = drv.advance(max(1, min(rc.chunk_steps(), sol.max_steps - before)))
                n_accept = drv.counts()["n_accept"]
                rc.chunk_done(drv.t, n_accept - before, time.perf_counter() - t0)
                if status == CHUNK and n_accept >= sol.max_steps:
                    status = MAX_STEPS
                    break
                if rc.interrupted is not None:
                    raise KeyboardInterrupt
                if status == CHUNK and checkpoint is not None and rc.checkpoint_due():
                    _save_checkpoint(checkpoint, params, y0, state, t_out, drv, Y_out)
        except KeyboardInterrupt:
            if checkpoint is not None:
                _save_checkpoint(checkpoint, params, y0, state, t_out, drv, Y_out)
            raise interrupted_error("integration", rc.interrupted or "Ctrl-C",
                                    f"alpha={alpha0 + drv.t:.6g}", checkpoint) from None
        finally:
            if adapt:
                numba.set_num_threads(n_threads)
    last = drv.last_good()

    if status == MAX_STEPS:
        raise_max_steps(last, p, sp, dict(params, alpha0=alpha0), sol.max_steps, drv,
                        ctl.divergence_path)
    if status != OK:
        raise_divergence(status, last, p, sp, dict(params, alpha0=alpha0),
                         ctl.divergence_path, t_out, Y_out)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)

    masked = isinstance(state, SparseOrderParams)
    if masked:  # the class sums only; the per-class arrays when first read
        Y_out.setflags(write=False)
        Q, R, P, v = class_sums(Y_out, p.M, sp.patterns, track_P)
    else:
        Qc, Rc, Pc, v = unpack_classes(Y_out, p.M, sp.patterns, track_P)
        Q, R = Qc.sum(1), Rc.sum(1)
    eg = _eg_along(Q, R, v, p.T, sp.v_star, run.act)
    meta = dict(params)
    meta.update(drv.counts(), status=Status.SUCCESS.name.lower(),
                message="integration reached alpha_max",
                backend="numba", alpha0=alpha0, final_phase=drv.phase)
    _warn_unresolved_eg(eg, Y_out[-1], p, sp, run.act, sol, drv, meta)
    common = dict(alpha=alpha0 + t_out, eg=eg, Q=Q, R=R, v=v, T=p.T, v_star=sp.v_star,
                  metadata=meta)
    if masked:
        return SparseLearningCurve._unpacked_later(
            LearningCurve(**common, P=P), sp.patterns, sp.f, sp.T,
            functools.partial(_per_class, Y_out, p.M, sp.patterns, track_P))
    if track_P:
        return TwoTimeCurve(**common, P=Pc[:, 0])
    return LearningCurve(**common)


def _per_class(Y_out, M, patterns, track_P):
    """A masked curve's per-class ``Q, R, P`` (or None) from its saved states, frozen with what
    they view: the curve keeps them without a copy (~2 ms of a K=6, 64-class curve)."""
    Qc, Rc, Pc, _ = unpack_classes(Y_out, M, patterns, track_P)
    for a in (Qc, Rc, Pc):
        while isinstance(a, np.ndarray):
            a.setflags(write=False)
            a = a.base
    return Qc, Rc, Pc


def _eg_along(Q, R, v, T, v_star, act) -> np.ndarray:
    K, M = Q.shape[1], T.shape[0]
    code = activation_code(act.code)  # compile-time: the right-hand side's I2 kernel, no other
    out = np.empty(Q.shape[0])
    a = np.empty(K + M)
    a[K:] = -v_star
    C = np.zeros((K + M,) * 2)
    C[K:, K:] = T
    for j in range(Q.shape[0]):
        C[:K, :K] = Q[j]
        C[:K, K:] = R[j]
        C[K:, :K] = R[j].T
        a[:K] = v[j]
        out[j] = eg_from_cov(code, C, a)
    return out


# ------------------------------------------------------------------------------ drivers
STIFF_METHODS = ("auto", "bdf", "radau")
#: the driver of each method that is not a compiled explicit stepper (those: ExplicitDriver)
DRIVERS = {"auto": AutoDriver, "bdf": AutoDriver, "radau": ScipyDriver}


# ------------------------------------------------------------------------------ checkpoints
def _save_checkpoint(path, params, y0, state, t_out, drv, Y_out):
    i_out = int(drv.last_good().counters[I_OUT])
    _io.write_npz(path, "IntegrateCheckpoint",
                  {"t_out": t_out, "Y_done": Y_out[:i_out], "init": y0, **drv.get_state()},
                  {"params": params, "checkpoint_version": CHECKPOINT_VERSION})


def _load_checkpoint(path, params, y0, state, t_out, drv, Y_out):
    arrays, meta = _io.read_npz(path, "IntegrateCheckpoint")
    if meta.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} was written by another odeprune version's "
                         "solver; refusing to resume (delete it to start over)")
    if meta.get("params") != params:
        diff = {k: (meta.get("params", {}).get(k), v) for k, v in params.items()
                if meta.get("params", {}).get(k) != v}
        raise ValueError(f"checkpoint {str(path)!r} was made with other parameters "
                         f"(checkpoint vs now: {diff}); refusing to resume")
    if not (np.array_equal(arrays["init"], y0) and np.array_equal(arrays["t_out"], t_out)):
        raise ValueError(f"checkpoint {str(path)!r} was made from another initial state or "
                         "save_at; refusing to resume")
    drv.set_state(arrays)
    done = arrays["Y_done"]
    Y_out[:done.shape[0]] = done


# ------------------------------------------------------------------------------ accuracy
def _warn_unresolved_eg(eg, y_final, p, sp, act, solver: Solver, drv, meta):
    """Warn when the final eps_g is below what the tolerances resolve (explicit runs only;
    docs/speed.md §2): errors within rtol/atol may then change its leading digits. An eps_g at
    or below ``atol`` is zero within the absolute tolerance and draws no warning
    (:func:`odeprune.ode.stiff.eg_resolution_message`)."""
    rtol, atol, track_P = solver.rtol, solver.atol, p.track_P
    if solver.method == "euler" or not (eg[-1] > atol) or eg[-1] > 1e-4:
        return  # resolved (large) or zero within atol; skip the 2n evaluations

    def eg_of(y):  # (the class sums only: 2 n calls, n = 822 for 64 classes at K=6)
        Q, R, _, v = class_sums(y[None], p.M, sp.patterns, track_P)
        return float(_eg_along(Q, R, v, p.T, sp.v_star, act)[0])

    floor = resolved_eg_floor(eg_of, y_final, rtol, atol)
    meta["eg_resolution"] = floor / float(eg[-1])
    msg = eg_resolution_message(float(eg[-1]), floor, ended_implicit=drv.phase == "implicit",
                                eg_zero=atol)
    if msg:
        warnings.warn(msg, OdepruneAccuracyWarning, stacklevel=3)
