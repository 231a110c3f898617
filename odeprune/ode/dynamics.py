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

import os
import time
import warnings
from pathlib import Path

import numba
import numpy as np

from .. import _io
from .._validate import check_real as _positive
from .._validate import check_save_at, check_size, check_tolerances
from ..activations import eg_from_cov, get_activation
from ..errors import MaxStepsReached, OdepruneAccuracyWarning
from ..results import LearningCurve
from ..sparse import SparseLearningCurve, SparseOrderParams, TwoTimeCurve
from ..state import PSD_RTOL, OrderParams
from .divergence import FIXED_STEP, ode_divergence, overflow_message
from .drivers import AutoDriver, ScipyDriver
from .explicit import (
    CHUNK,
    I_OUT,
    MAX_STEPS,
    N_ACCEPT,
    NOT_PSD,
    OK,
    STATUS_TEXT,
    Control,
    ExplicitDriver,
    Status,
)
from .explicit import METHODS as _STEPPERS
from .rhs import make_params, pack_classes, rhs_eval, unpack_classes
from .runcontrol import RunControl, interrupted_error
from .stiff import eg_resolution_message, initial_step, resolved_eg_floor

__all__ = ["integrate", "default_save_at", "METHODS", "rhs_state"]

#: integrator names accepted by ``method=``: the compiled explicit steppers and the stiff path
METHODS = (*_STEPPERS, "auto", "bdf", "radau")

DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10
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
CHECKPOINT_VERSION = 3


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
def _problem(state, eta, eta_v, sigma, act_code, train_v, sgd, track_P, fast=True,
             threads=False, weight_decay=0.0):
    """``(params, y0)`` of a dense or sparse state: the dense one is one class."""
    sp = state if isinstance(state, SparseOrderParams) else SparseOrderParams.from_dense(state)
    R0 = sp.R if track_P else None
    p = make_params(sp.K, sp.M, sp.T.sum(0), sp.v_star, eta, eta_v, sigma, act_code, train_v,
                    sgd, fast, patterns=sp.patterns, f=sp.f, T_cls=sp.T, track_P=track_P,
                    R0_cls=R0, threads=threads, weight_decay=weight_decay)
    y0 = pack_classes(sp.patterns, sp.Q, sp.R, sp.v, sp.Q if track_P else None)
    return p, y0, sp


def rhs_state(state, eta: float, eta_v: float | None = None, sigma: float = 0.0,
              activation: str | None = None, train_second_layer: bool = True,
              gradient_flow: bool = False):
    """Time derivatives at ``state``: ``(dQ, dR, dv)`` for an OrderParams (shapes of Q, R, v);
    per class ``(dQ (S,K,K), dR (S,K,M), dv)`` for a SparseOrderParams."""
    act = get_activation(_activation_of(state, activation))
    eta_v = eta if eta_v is None else eta_v
    p, y0, sp = _problem(state, float(eta), float(eta_v), float(sigma), act.code,
                        bool(train_second_layer), not gradient_flow, False)
    dQ, dR, _, dv = unpack_classes(rhs_eval(y0, p), p.M, sp.patterns, False)
    if isinstance(state, SparseOrderParams):
        return dQ, dR, dv
    return dQ[0], dR[0], dv


def _activation_of(state, activation) -> str:
    """The state's activation (an explicit, different ``activation`` is refused)."""
    dense = state.dense() if isinstance(state, SparseOrderParams) else state
    return dense.check_activation(activation)


def _params_dict(state, eta, eta_v, sigma, activation, train_v, gradient_flow, method, rtol, atol,
                 dt, alpha_max, track_P) -> dict:
    d = dict(eta=eta, eta_v=eta_v, sigma=sigma, activation=activation,
             train_second_layer=train_v, gradient_flow=gradient_flow, method=method,
             rtol=rtol, atol=atol, dt=dt, alpha_max=alpha_max, K=state.K, M=state.M)
    if isinstance(state, SparseOrderParams):
        d["n_classes"] = state.n_classes
    if track_P:
        d["track_initial"] = True
    return d


def integrate(state, eta: float, alpha_max: float, save_at=None, eta_v=None,
              sigma: float = 0.0, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
              method: str = "auto", activation: str | None = None,
              train_second_layer: bool = True, gradient_flow: bool = False, dt: float = 0.01,
              max_steps: int = 10_000_000, progress: bool | None = None,
              checkpoint: str | os.PathLike | None = None, resume: bool = False,
              chunk_steps: int | None = None, backend: str = "numba",
              divergence_path: str | os.PathLike | None = None, track_initial: bool = False,
              alpha0: float = 0.0, threads: bool | None = None,
              weight_decay: float = 0.0, l1: float = 0.0, seed=0) -> LearningCurve:
    r"""Integrate the order-parameter ODEs of online SGD from ``state`` up to ``alpha_max``.

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
    eta_v : float, optional
        Second-layer learning rate (the SGD step is ``eta_v / N``); default ``eta``.
    sigma : float
        Output-noise standard deviation of the teacher's labels.
    rtol, atol : float
        Tolerances of the adaptive method, per component of the state vector.
    method : {"auto", "dopri5", "bdf", "radau", "rk4", "euler"}
        ``"auto"`` (default): adaptive Dormand-Prince 5(4) while that is cheaper, then BDF once
        the dynamics are stiff (:class:`odeprune.ode.drivers.AutoDriver`; ``docs/speed.md``):
        a short run, or one that never becomes stiff, has exactly the numbers of ``"dopri5"``;
        a long one costs about the same at alpha = 1e5 as at 1e3, and resolves a small final
        eps_g. ``"dopri5"``: Dormand-Prince only. ``"bdf"``: compiled BDF from the start;
        ``"radau"``: scipy's Radau. ``"rk4"`` / ``"euler"``: classical RK4 / explicit Euler on
        the fixed grid ``alpha = n dt`` (outputs between grid points are interpolated; the
        steps never depend on ``save_at``). With ``backend="jax"`` ``"auto"`` is diffrax's
        Dopri5 (no stiff path there).
    activation : str, optional
        The state's own activation is used; passing a different one is an error (it would be
        another network's dynamics).
    train_second_layer : bool
        ``False`` freezes ``v`` (soft committee machine).
    gradient_flow : bool
        Drop the ``eta**2`` terms (and with them sigma): the gradient-flow ODEs.
    dt : float
        Step of the fixed-step methods.
    max_steps : int
        Give up (:class:`~odeprune.errors.MaxStepsReached`) after this many accepted steps.
    progress : bool or None
        Show a progress bar on stderr; None (default): when stderr is a terminal.
    checkpoint : path, optional
        Write the solver state there (atomically) every few seconds and on Ctrl-C / SIGTERM;
        removed when the run finishes.
    resume : bool
        Continue from ``checkpoint`` (same parameters required); gives exactly the numbers of an
        uninterrupted run.
    chunk_steps : int, optional
        Upper bound on the steps between two looks from Python (default: chunks of about 0.25 s).
    backend : {"numba", "jax"}
        ``"jax"`` uses :mod:`odeprune.ode.jax_backend` (optional extra; dense states only):
        diffrax's Dopri5 in one compiled call, so no progress bar, checkpoint or fixed step.
    divergence_path : path, optional
        Where to save the last good state if the run diverges (or uses up ``max_steps``).
    track_initial : bool
        Also integrate the two-time overlaps ``P_ik = w_i(alpha) . w_k(0) / N``
        (``docs/theory.md`` §9); the curve then has ``P`` and ``joint_covariance(index)``.
    alpha0 : float
        Time of ``state`` on an earlier run: the saved ``alpha`` are ``alpha0 + t`` (to continue
        a curve).
    threads : bool, optional
        Spread the ``I4`` sum of each evaluation over numba's threads (``numba.set_num_threads``
        or ``NUMBA_NUM_THREADS`` set how many). Default (``None``): for ``K >= 15``, on the
        cores that are idle, measured before every chunk of steps (about a quarter of a
        second; :func:`idle_threads`): serial on a loaded machine, where waiting threads would
        spin, and off Linux. ``True`` forces numba's thread count, ``False`` the serial sum.
        The numbers do not depend on the number of threads (bit for bit).
        :func:`odeprune.integrate_batch` runs members in parallel instead.
    weight_decay : float
        L2 weight decay ``gamma`` of the first layer, ``-eta gamma w`` per unit alpha
        (``docs/theory.md`` §11): exact in the ODE (``-2 eta gamma Q``, ``-eta gamma R``), for
        dense and masked networks. L1 acts per coordinate: train a
        :class:`~odeprune.coords.CoordinateLaw` (``odeprune.coords.integrate_law(..., l1=)``).
    l1, seed : float, int
        For a :class:`~odeprune.coords.CoordinateLaw` only (the L1 strength, and the seed of
        its fresh Gaussians and decisions): ``integrate(law, ...)`` is
        :func:`odeprune.coords.integrate_law` with the options above that apply to it
        (``method``: ``"auto"``, ``"linear"`` or ``"particles"``; ``dt`` the particle step).

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
    OdepruneInterrupted
        Ctrl-C or SIGTERM; the checkpoint (if any) was written and the message says how to
        resume.

    Notes
    -----
    .. math:: \dot R_{in} = -\eta v_i \sum_c a_c I_3(i,n,c), \ \ldots \ \text{(docs/theory.md §4, §8)}
    """
    for cls, run in OTHER_STATES.items():  # a coordinate law (registered by odeprune.coords)
        if isinstance(state, cls):
            tol = {k: v for k, v, d in (("rtol", rtol, DEFAULT_RTOL),
                                           ("atol", atol, DEFAULT_ATOL)) if v != d}
            ode_only = dict(activation=(activation, None), max_steps=(max_steps, 10_000_000),
                            chunk_steps=(chunk_steps, None), backend=(backend, "numba"),
                            divergence_path=(divergence_path, None),
                            track_initial=(track_initial, False), alpha0=(alpha0, 0.0),
                            threads=(threads, None))
            given = sorted(k for k, (val, default) in ode_only.items() if val != default)
            if given:
                raise ValueError(f"{given} do not apply to a {cls.__name__} (options of the "
                                 "order-parameter ODE)")
            return run(state, eta, alpha_max, save_at=save_at, eta_v=eta_v, sigma=sigma,
                       l1=l1, weight_decay=weight_decay, gradient_flow=gradient_flow,
                       train_second_layer=train_second_layer,
                       method="auto" if method == "dopri5" else method, dt=dt, seed=seed,
                       progress=progress, checkpoint=checkpoint, resume=resume, **tol)
    if not isinstance(state, (OrderParams, SparseOrderParams)):
        raise ValueError("state must be an OrderParams, a SparseOrderParams or a CoordinateLaw, "
                         f"got {type(state).__name__}")
    if l1:
        raise ValueError("l1 acts per coordinate and does not close on the order parameters: "
                         "train the coordinate law, integrate(CoordinateLaw.from_state(state), "
                         "..., l1=...)")
    eta = _positive("eta", eta)
    eta_v = eta if eta_v is None else _positive("eta_v", eta_v, allow_zero=True)
    sigma = _positive("sigma", sigma, allow_zero=True)
    weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
    alpha_max = _positive("alpha_max", alpha_max)
    alpha0 = _positive("alpha0", alpha0, allow_zero=True)
    rtol, atol = check_tolerances(rtol, atol)
    dt = _positive("dt", dt)
    max_steps = check_size("max_steps", max_steps)
    if chunk_steps is not None:
        chunk_steps = check_size("chunk_steps", chunk_steps)
    act = get_activation(_activation_of(state, activation))
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; expected one of {list(METHODS)}")
    if backend not in ("numba", "jax"):
        raise ValueError(f"backend={backend!r} is unknown; expected 'numba' or 'jax'")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    if method in FIXED_STEP and dt > alpha_max:
        raise ValueError(f"dt={dt!r} is larger than alpha_max={alpha_max!r}: the fixed-step "
                         "method would take no step inside the run; use a smaller dt")
    t_out = default_save_at(alpha_max) if save_at is None else check_save_at(save_at, alpha_max)
    sparse = isinstance(state, SparseOrderParams)
    if backend == "jax":
        problems = []
        if method not in ("auto", "dopri5"):
            problems.append(f"method={method!r} is not available with backend='jax' (it uses "
                            "diffrax's adaptive Dopri5)")
        if checkpoint is not None or resume:
            problems.append("checkpoint/resume are not available with backend='jax' (one "
                            "compiled call)")
        if sparse:
            problems.append("a SparseOrderParams (masked network) is not available with "
                            "backend='jax'")
        if track_initial or alpha0:
            problems.append("track_initial/alpha0 are not available with backend='jax'")
        if weight_decay:
            problems.append("weight_decay is not available with backend='jax'")
        if problems:
            raise ValueError("; ".join(problems) + "; use backend='numba'")
        from .jax_backend import integrate as _jax_integrate

        return _jax_integrate(state, eta=eta, alpha_max=alpha_max, save_at=t_out, eta_v=eta_v,
                              sigma=sigma, rtol=rtol, atol=atol, activation=act.name,
                              train_second_layer=train_second_layer, gradient_flow=gradient_flow,
                              max_steps=int(min(max_steps, 10_000_000)))

    sgd = not gradient_flow
    track_P = bool(track_initial)
    auto_threads = threads is None and state.K >= THREADED_K
    n_threads = numba.get_num_threads() if auto_threads else 1  # (starts numba's pool)
    if auto_threads:
        threads = idle_threads(n_threads) > 1
    threads = bool(threads)
    p, y0, sp = _problem(state, eta, eta_v, sigma, act.code, bool(train_second_layer), sgd,
                         track_P, threads=threads, weight_decay=weight_decay)
    params = _params_dict(state, eta, eta_v, sigma, act.name, bool(train_second_layer),
                          bool(gradient_flow), method, rtol, atol, dt, alpha_max, track_P)
    if weight_decay:
        params["weight_decay"] = weight_decay
    psd_tol = PSD_RTOL * 10  # integration error may add a little on top of the input tolerance
    Y_out = np.zeros((t_out.size, y0.size))
    f0 = rhs_eval(y0, p)
    if not np.all(np.isfinite(f0)):
        raise ValueError(overflow_message(state, eta, sigma))
    h0 = initial_step(y0, f0, rtol, atol, alpha_max) if method in ("dopri5", "auto") else dt
    ctl = Control(rtol, atol, dt, 1, psd_tol)
    drv = DRIVERS.get(method, ExplicitDriver)(method, p, y0, f0, h0, t_out, Y_out, ctl)
    if resume:
        _load_checkpoint(checkpoint, params, y0, state, t_out, drv, Y_out)
    status = CHUNK
    # threads=None: threads on the idle cores, decided again before every chunk (an explicit
    # stepper only; the stiff path keeps the first decision). Same numbers either way.
    adapt = auto_threads and not isinstance(drv, ScipyDriver)
    with RunControl(alpha_max, "integrate", progress, start=drv.t,
                    max_chunk=chunk_steps) as rc:
        try:
            while status == CHUNK:
                if adapt:
                    n = idle_threads(n_threads)
                    drv.p = drv.p._replace(threads=n > 1)
                    if n > 1:
                        numba.set_num_threads(n)
                before = drv.counts()["n_accept"]
                t0 = time.perf_counter()
                status = drv.advance(max(1, min(rc.chunk_steps(), max_steps - before)))
                n_accept = drv.counts()["n_accept"]
                rc.chunk_done(drv.t, n_accept - before, time.perf_counter() - t0)
                if status == CHUNK and n_accept >= max_steps:
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
    run = drv.last_good()

    if status == MAX_STEPS:
        _raise_max_steps(run, p, sp, dict(params, alpha0=alpha0), max_steps, drv,
                         divergence_path)
    if status != OK:
        _raise_divergence(status, run, p, sp, state, dict(params, alpha0=alpha0),
                          divergence_path, t_out, Y_out)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)

    Qc, Rc, Pc, v = unpack_classes(Y_out, p.M, sp.patterns, track_P)
    Q, R = Qc.sum(1), Rc.sum(1)
    eg = _eg_along(Q, R, v, p.T, sp.v_star, act)
    meta = dict(params)
    meta.update(drv.counts(), status=Status.SUCCESS.name.lower(),
                message="integration reached alpha_max",
                backend="numba", alpha0=alpha0, final_phase=drv.phase)
    _warn_unresolved_eg(eg, Y_out[-1], p, sp, act, track_P, rtol, atol, method, drv, meta)
    common = dict(alpha=alpha0 + t_out, eg=eg, Q=Q, R=R, v=v, T=p.T, v_star=sp.v_star,
                  metadata=meta)
    if sparse:
        return SparseLearningCurve(**common, patterns=sp.patterns, f=sp.f, T_cls=sp.T,
                                   Q_cls=Qc, R_cls=Rc, P_cls=Pc)
    if track_P:
        return TwoTimeCurve(**common, P=Pc[:, 0])
    return LearningCurve(**common)


def _eg_along(Q, R, v, T, v_star, act) -> np.ndarray:
    K, M = Q.shape[1], T.shape[0]
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
        out[j] = eg_from_cov(act.code, C, a)
    return out


# ------------------------------------------------------------------------------ drivers
STIFF_METHODS = ("auto", "bdf", "radau")
#: the driver of each method that is not a compiled explicit stepper (those: ExplicitDriver)
DRIVERS = {"auto": AutoDriver, "bdf": AutoDriver, "radau": ScipyDriver}


# ------------------------------------------------------------------------------ divergence
def _raise_divergence(status, run, p, sp, state, params, path, t_out, Y_out):
    t = float(run.ts[0])
    alpha0 = params["alpha0"]
    last = _state_from(run.y, p, sp)
    if last is None and run.counters[I_OUT] > 0:
        last = _state_from(Y_out[run.counters[I_OUT] - 1], p, sp)
        t = float(t_out[run.counters[I_OUT] - 1])
    saved = None
    if path is not None and last is not None:
        saved = str(last.save(path, metadata={"alpha": alpha0 + t, "reason": "divergence"}))
    raise ode_divergence(STATUS_TEXT.get(status, "failed"), alpha0 + t, params, sp,
                         int(run.counters[N_ACCEPT]), not_psd=status == NOT_PSD, t_run=t,
                         last_state=last, saved_to=saved)


def _raise_max_steps(run, p, sp, params, max_steps, drv, path):
    """The step budget is used up: a :class:`~odeprune.errors.MaxStepsReached` that says how
    many steps, where, and how to raise the budget (not a divergence: the state is valid)."""
    t = float(run.ts[0])
    alpha = params["alpha0"] + t
    method = params["method"]
    hint = ("" if method in ("auto", "bdf", "radau") or method in FIXED_STEP else
            ", or use method='auto' (implicit once the dynamics are stiff: its steps then grow "
            "and the cost stops growing with alpha)")
    last = _state_from(run.y, p, sp)
    saved = ""
    if path is not None and last is not None:
        where = last.save(path, metadata={"alpha": alpha, "reason": "max_steps"})
        saved = f"; the state at alpha={alpha:.6g} was saved to {str(where)!r} (continue from it)"
    raise MaxStepsReached(
        f"the ODE run used its budget of max_steps={max_steps} accepted steps at "
        f"alpha={alpha:.6g} (of alpha_max={params['alpha0'] + params['alpha_max']:.6g}; "
        f"method={method}, {drv.counts()['nfev']} evaluations); the state is valid: raise the "
        f"budget with integrate(..., max_steps=...) (e.g. {10 * max_steps}){hint}{saved}",
        alpha=alpha, max_steps=max_steps, last_state=last)


def _state_from(y, p, sp):
    Qc, Rc, _, v = unpack_classes(y, p.M, sp.patterns, p.track_P)
    try:
        if p.n_cls == 1 and np.all(sp.patterns):
            return OrderParams(Q=Qc[0], R=Rc[0], T=p.T, v=v, v_star=sp.v_star,
                               activation=sp.activation)
        return sp.replace(Q=Qc, R=Rc, v=v)
    except ValueError:
        return None


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
def _warn_unresolved_eg(eg, y_final, p, sp, act, track_P, rtol, atol, method, drv, meta):
    """Warn when the final eps_g is below what the tolerances resolve (explicit runs only;
    docs/speed.md §2): errors within rtol/atol may then change its leading digits. An eps_g at
    or below ``atol`` is zero within the absolute tolerance and draws no warning
    (:func:`odeprune.ode.stiff.eg_resolution_message`)."""
    if method == "euler" or not (eg[-1] > atol) or eg[-1] > 1e-4:
        return  # resolved (large) or zero within atol; skip the 2n evaluations

    def eg_of(y):
        Qc, Rc, _, v = unpack_classes(y[None], p.M, sp.patterns, track_P)
        return float(_eg_along(Qc.sum(1), Rc.sum(1), v, p.T, sp.v_star, act)[0])

    floor = resolved_eg_floor(eg_of, y_final, rtol, atol)
    meta["eg_resolution"] = floor / float(eg[-1])
    msg = eg_resolution_message(float(eg[-1]), floor, ended_implicit=drv.phase == "implicit",
                                eg_zero=atol)
    if msg:
        warnings.warn(msg, OdepruneAccuracyWarning, stacklevel=3)
