r"""The order-parameter ODEs in JAX (float64), integrated with diffrax; single runs and batches.

The right-hand side is :mod:`odeprune.ode.jax_rhs` (the array expressions of the numba
:mod:`odeprune.ode.rhs`; docs/theory.md §4). The ODEs are integrated with diffrax's adaptive
Dormand-Prince 5(4) (``solver="dopri5"``, the method of the numba backend) or Tsitouras 5(4)
(``"tsit5"``) under a PI step-size controller with the same error norm as scipy (RMS of
``err / (atol + rtol * max(|y|, |y_new|))``), saving at the requested times with dense output.

Batches (:func:`integrate_batch`) are one jitted ``vmap`` over initial states and hyper-parameters
(``eta``, ``eta_v``, ``sigma``; ``T`` and ``v_star`` may differ per member). Under ``vmap``,
diffrax's adaptive loop runs in lockstep: every member pays the step count of the slowest one, so
group similar runs (same ``K, M``, similar ``eta``) into one batch and very different ones into
separate calls. Each member has its own result code, checked after the solve (``throw=False``).

A run is given as its learning rule (:class:`odeprune.options.Dynamics`, one per member) and a
:class:`JaxRun` (save grid, tolerances, diffrax solver, step bound).

Precision: everything runs in float64 inside ``jax.enable_x64(True)`` context managers, so the
process-wide JAX setting (``jax_enable_x64``, float32 by default) is left untouched for the caller's
own JAX code. Arrays handed back are numpy arrays.

JAX is an optional dependency: ``pip install -e ".[jax]"``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..errors import DivergenceError
from ..options import DEFAULT_ATOL, DEFAULT_RTOL, Dynamics
from ..results import LearningCurve
from ..state import PSD_RTOL, OrderParams
from .divergence import ode_divergence
from .jax_rhs import _S3 as _S3  # (re-exported, as _asin, _I2_rows: tests and benchmarks use them)
from .jax_rhs import _S4_J2 as _S4_J2

# jax, jax.numpy and diffrax through jax_rhs: without them its import says how to install them
from .jax_rhs import INSTALL_HINT, _code, _eg, _layout, _vector_field, diffrax, eg, jax, jnp, rhs
from .jax_rhs import _asin as _asin
from .jax_rhs import _I2_rows as _I2_rows
from .rhs import pack, unpack

__all__ = ["integrate", "integrate_batch", "rhs", "eg", "JaxRun", "SOLVERS", "DEFAULT_MAX_STEPS",
           "INSTALL_HINT"]

#: diffrax solvers accepted by ``solver=``
SOLVERS = {"dopri5": diffrax.Dopri5, "tsit5": diffrax.Tsit5}

#: default bound on the number of (accepted + rejected) steps of one run
DEFAULT_MAX_STEPS = 1_000_000

_PSD_TOL = PSD_RTOL * 10  # as the numba backend: integration error on top of the input tolerance


class JaxRun(NamedTuple):
    """What a JAX solve needs besides the learning rule: the length ``alpha_max``, the sorted
    saving times ``save_at`` (ending at ``alpha_max``), the tolerances of the PI controller, the
    diffrax ``solver`` (:data:`SOLVERS`) and the bound ``max_steps`` on attempted steps."""

    alpha_max: float
    save_at: np.ndarray
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    solver: str = "dopri5"
    max_steps: int = DEFAULT_MAX_STEPS


# ------------------------------------------------------------------------------ solver
def _all_finite_rms_norm(x):
    # diffrax's PI controller turns an infinite error into a step shrunk by `factormin`, but a
    # NaN error into a NaN step: map non-finite errors to +inf so a blow-up shrinks the step
    # down to `dtmin` and ends the run with `dt_min_reached`.
    n = jnp.sqrt(jnp.mean(x * x))
    return jnp.where(jnp.isfinite(n), n, jnp.inf)


def _make_solve(K, M, activation, train_v, sgd, solver, max_steps):
    lay = _layout(K, M)
    code = _code(activation)

    def field(t, y, args):
        T, v_star, eta, eta_v, sigma = args
        return _vector_field(y, T, v_star, eta, eta_v, sigma, lay, code, train_v, sgd)

    term = diffrax.ODETerm(field)

    def solve(y0, T, v_star, eta, eta_v, sigma, ts, rtol, atol, dtmin):
        controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=False,
                                           norm=_all_finite_rms_norm)
        sol = diffrax.diffeqsolve(term, SOLVERS[solver](), t0=ts[0] * 0.0, t1=ts[-1], dt0=None,
                                  y0=y0, args=(T, v_star, eta, eta_v, sigma),
                                  saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller,
                                  max_steps=max_steps, throw=False)
        ys = sol.ys
        eg = jax.vmap(lambda y: _eg(y, T, v_star, lay, code))(ys)
        # public comparisons of diffrax's result enumeration -> our codes (_RESULT_TEXT)
        R = diffrax.RESULTS
        result = jnp.where(sol.result == R.successful, 0,
                           jnp.where(sol.result == R.max_steps_reached, 1,
                                     jnp.where(sol.result == R.dt_min_reached, 2, 3)))
        return dict(ys=ys, eg=eg, result=result, num_steps=sol.stats["num_steps"],
                    num_accepted=sol.stats["num_accepted_steps"],
                    num_rejected=sol.stats["num_rejected_steps"])

    return solve


@functools.lru_cache(maxsize=64)
def _compiled(K, M, activation, train_v, sgd, solver, max_steps, batched):
    solve = _make_solve(K, M, activation, train_v, sgd, solver, max_steps)
    if batched:
        solve = jax.vmap(solve, in_axes=(0, 0, 0, 0, 0, 0, None, None, None, None))
    return jax.jit(solve)




# ------------------------------------------------------------------------------ public entry points
def _run(states: Sequence[OrderParams], members: Sequence[Dynamics], run: JaxRun, activation,
         batched: bool):
    """Solve every member (its learning rule in ``members``); returns the raw numpy outputs (one
    vmapped call if ``batched``)."""
    if run.solver not in SOLVERS:
        raise ValueError(f"solver={run.solver!r} is unknown; expected one of {sorted(SOLVERS)}")
    flags = {(d.train_second_layer, d.gradient_flow) for d in members}
    if len(flags) > 1:
        raise ValueError("the members of one JAX call must share train_second_layer and "
                         "gradient_flow")
    train_v, gradient_flow = flags.pop()
    K, M = states[0].K, states[0].M
    fn = _compiled(K, M, activation, bool(train_v), not gradient_flow, run.solver,
                   int(run.max_steps), batched)
    ts = np.asarray(run.save_at, dtype=float)
    y0 = np.stack([pack(s.Q, s.R, s.v) for s in states])
    T = np.stack([s.T for s in states])
    v_star = np.stack([s.v_star for s in states])
    rates = [[d.eta for d in members], [d.second_layer_rate for d in members],
             [d.sigma for d in members]]
    dtmin = 1e-12 * max(1.0, float(run.alpha_max))
    with jax.enable_x64(True):
        args = [jnp.asarray(x, dtype=jnp.float64) for x in (y0, T, v_star, *rates)]
        shared = (jnp.asarray(ts), jnp.asarray(float(run.rtol)), jnp.asarray(float(run.atol)),
                  jnp.asarray(dtmin))
        if batched:
            out = fn(*args, *shared)
            out = {k: np.asarray(v) for k, v in out.items()}
        else:
            outs = [fn(*(x[j] for x in args), *shared) for j in range(len(states))]
            out = {k: np.stack([np.asarray(o[k]) for o in outs]) for k in outs[0]}
    return out


def _curve_or_error(state, out, j, ts, params, batch_info=None):
    """Build the LearningCurve of member ``j``, or the DivergenceError that describes its failure."""
    K, M = state.K, state.M
    ys = out["ys"][j]
    code = int(out["result"][j])
    stats = dict(num_steps=int(out["num_steps"][j]), n_accept=int(out["num_accepted"][j]),
                 n_reject=int(out["num_rejected"][j]))
    stats["nfev"] = 6 * stats["num_steps"] + 3  # FSAL 5(4) pair: 6 per attempted step (+3 start)
    # the stiff-path statistics of the numba backend's default: diffrax's Dopri5 never switches
    stats.update(njev=0, nlu=0, n_probe=0, alpha_switch=float("nan"))
    Q, R, v = unpack(ys, K, M)
    # first saved time at which the state is not finite or not PSD
    bad = None
    for idx in range(ts.size):
        if not (np.all(np.isfinite(ys[idx])) and np.isfinite(out["eg"][j][idx])):
            bad = idx
            break
        C = np.block([[Q[idx], R[idx]], [R[idx].T, state.T]])
        scale = max(1.0, float(np.max(np.abs(C))))
        if np.linalg.eigvalsh(C)[0] / scale < -_PSD_TOL:
            bad = idx
            break
    if code == 0 and bad is None:
        meta = dict(params)
        meta.update(stats, status="success", message="integration reached alpha_max",
                    backend="jax", alpha0=0.0, final_phase="explicit")
        if batch_info:
            meta.update(batch_info)
        return LearningCurve(alpha=ts, eg=out["eg"][j], Q=Q, R=R, v=v, T=state.T,
                             v_star=state.v_star, metadata=meta)
    last_idx = (bad if bad is not None else ts.size) - 1
    if code != 0:
        # outputs after the failure are not reached; the last finite one is the last good state
        finite = np.flatnonzero(np.all(np.isfinite(ys), axis=1))
        finite = finite[finite <= last_idx]
        last_idx = int(finite[-1]) if finite.size else -1
    last = None
    alpha = 0.0
    if last_idx >= 0:
        alpha = float(ts[last_idx])
        try:
            last = OrderParams(Q=Q[last_idx], R=R[last_idx], T=state.T, v=v[last_idx],
                               v_star=state.v_star, activation=state.activation)
        except ValueError:
            last = None
    if code == 1:
        why = f"exceeded max_steps={params['max_steps']} (raise max_steps or loosen rtol)"
    elif code == 2:
        why = "needed a vanishing step (its right-hand side became non-finite)"
    elif code != 0:
        why = "failed (diffrax's result: not successful)"
    else:
        why = "became non-finite or stopped being positive semi-definite"
    return ode_divergence(why, alpha, params, state, stats["n_accept"],
                          not_psd=code == 0 and bad is not None, t_run=alpha, last_state=last,
                          backend="jax")


def _params(state, dynamics: Dynamics, run: JaxRun, activation: str) -> dict:
    """The parameters a JAX run records (the keys of the numba backend's, and ``max_steps``)."""
    d = dynamics
    return dict(eta=float(d.eta), eta_v=float(d.second_layer_rate), sigma=float(d.sigma),
                activation=activation, train_second_layer=bool(d.train_second_layer),
                gradient_flow=bool(d.gradient_flow), method=run.solver, rtol=float(run.rtol),
                atol=float(run.atol), alpha_max=float(run.alpha_max), K=state.K, M=state.M,
                max_steps=int(run.max_steps))


def integrate(state: OrderParams, dynamics: Dynamics, run: JaxRun,
              activation: str | None = None) -> LearningCurve:
    r"""Integrate the order-parameter ODEs from ``state`` with diffrax (JAX, float64).

    Called by :func:`odeprune.integrate` with ``backend="jax"``, which validates the arguments.

    Parameters
    ----------
    state : OrderParams
    dynamics : odeprune.options.Dynamics
        The learning rule (``weight_decay`` and ``l1`` are not available here).
    run : JaxRun
        Save grid, tolerances, diffrax solver (``"dopri5"`` or ``"tsit5"``) and the bound on
        attempted steps; reaching it raises :class:`~odeprune.errors.DivergenceError`.
    activation : {"erf", "linear", "relu"}, optional
        Defaults to the state's own activation (and may only repeat it).

    Returns
    -------
    LearningCurve
        ``metadata["backend"] == "jax"``; ``nfev`` is derived from the step count (6 per attempted
        step of the FSAL pair, plus 3 at the start).

    Raises
    ------
    DivergenceError
        Non-finite or non-PSD state, vanishing step, or ``max_steps`` reached; ``.alpha`` is the
        last good saved time.

    Notes
    -----
    Goldt et al. (2019), supplementary S3-S4; Saad & Solla (1995). First call for a given
    ``(K, M, activation, train_second_layer, gradient_flow, solver, len(save_at))`` compiles
    (seconds); later calls reuse the compiled function.
    """
    act = state.check_activation(activation)
    out = _run([state], [dynamics], run, act, batched=False)
    res = _curve_or_error(state, out, 0, np.asarray(run.save_at, dtype=float),
                          _params(state, dynamics, run, act))
    if isinstance(res, DivergenceError):
        raise res
    return res


def integrate_batch(states: Sequence[OrderParams], members: Sequence[Dynamics], run: JaxRun,
                    activation: str | None = None, chunk_size: int | None = None
                    ) -> list[LearningCurve | DivergenceError]:
    """Integrate a batch in jitted ``vmap`` calls; one result (curve or error) per member.

    Parameters
    ----------
    states : sequence of OrderParams, all with the same K and M
    members : sequence of odeprune.options.Dynamics, one per state
        The learning rule of each member: ``eta``, ``eta_v`` and ``sigma`` may differ (a
        hyper-parameter sweep), ``train_second_layer`` and ``gradient_flow`` are shared.
    run, activation :
        As :func:`integrate`; shared by all members.
    chunk_size : int, optional
        Members per ``vmap`` call (default: all). Members of one call advance in lockstep until
        the slowest finishes, so smaller groups of similar runs waste fewer steps.

    Returns
    -------
    list of LearningCurve or DivergenceError
        In the order of ``states``; a failed member gives its error instead of raising, so one
        diverging run does not lose the others. ``metadata["lockstep_steps"]`` is the step count
        the whole group paid.
    """
    ts = np.asarray(run.save_at, dtype=float)
    B = len(states)
    if len(members) != B:
        raise ValueError(f"members must have one Dynamics per state ({B}), got {len(members)}")
    acts = {s.check_activation(activation) for s in states}
    if len(acts) > 1:
        raise ValueError(f"the states of one batch must share their activation, got {sorted(acts)}")
    act = acts.pop()
    size = B if chunk_size is None else max(1, int(chunk_size))
    results: list[LearningCurve | DivergenceError] = []
    for start in range(0, B, size):
        sl = slice(start, min(B, start + size))
        group = list(states[sl])
        out = _run(group, list(members[sl]), run, act, batched=True)
        info = dict(lockstep_steps=int(np.max(out["num_steps"])), batch_size=len(group))
        for j, state in enumerate(group):
            params = _params(state, members[start + j], run, act)
            results.append(_curve_or_error(state, out, j, ts, params, info))
    return results
