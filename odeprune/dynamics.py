r"""Learning curves in the thermodynamic limit: ``integrate(state, eta, alpha_max, ...)``.

Integrates the Saad & Solla / Goldt et al. (2019) ODEs for ``(Q, R, v)`` (EQUATIONS.md §4) with a
compiled adaptive Dormand-Prince 5(4) method (default) or a fixed-step RK4 / Euler scheme for
comparison. The solver loops in compiled code; Python only sees it every ``chunk_steps`` accepted
steps, to update a progress bar, write a checkpoint, or notice Ctrl-C.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _io
from ._rhs import n_state, pack, rhs, unpack
from ._solvers import (
    CHUNK,
    NONFINITE,
    NOT_PSD,
    OK,
    STEP_TOO_SMALL,
    dopri5_run,
    fixed_run,
)
from ._validate import check_real as _positive
from .activations import get_activation
from .errors import DivergenceError, OdepruneInterrupted
from .results import LearningCurve
from .state import PSD_RTOL, OrderParams

__all__ = ["integrate", "default_save_at", "METHODS", "rhs_state"]

#: integrator names accepted by ``method=``
METHODS = ("dopri5", "rk4", "euler")

DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10


def default_save_at(alpha_max: float, n: int = 200) -> np.ndarray:
    """``0`` plus ``n`` log-spaced times from ``min(0.01, alpha_max/100)`` to ``alpha_max``."""
    lo = min(0.01, alpha_max / 100.0)
    return np.unique(np.concatenate([[0.0], np.geomspace(lo, alpha_max, n)]))


def _check_save_at(save_at: Any, alpha_max: float) -> np.ndarray:
    t = np.array(save_at, dtype=float).ravel()
    if t.size == 0:
        raise ValueError("save_at must contain at least one time")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"save_at must contain finite times >= 0, got {t}")
    if np.any(t > alpha_max * (1 + 1e-12)):
        raise ValueError(f"save_at contains {float(t.max())!r} > alpha_max={alpha_max!r}")
    t = np.unique(np.concatenate([t, [alpha_max]]))
    return t


def rhs_state(state: OrderParams, eta: float, eta_v: float | None = None, sigma: float = 0.0,
              activation: str = "erf", train_second_layer: bool = True,
              gradient_flow: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time derivatives ``(dQ, dR, dv)`` at ``state`` (shapes of Q, R, v)."""
    act = get_activation(activation)
    eta_v = eta if eta_v is None else eta_v
    y = pack(state.Q, state.R, state.v)
    dy = rhs(y, state.K, state.M, np.ascontiguousarray(state.T), np.ascontiguousarray(state.v_star),
             float(eta), float(eta_v), float(sigma), act.code, bool(train_second_layer),
             not gradient_flow, True)
    return unpack(dy, state.K, state.M)


def _params_dict(state, eta, eta_v, sigma, activation, train_v, gradient_flow, method, rtol, atol,
                 dt, alpha_max) -> dict:
    return dict(eta=eta, eta_v=eta_v, sigma=sigma, activation=activation,
                train_second_layer=train_v, gradient_flow=gradient_flow, method=method,
                rtol=rtol, atol=atol, dt=dt, alpha_max=alpha_max, K=state.K, M=state.M)


def integrate(state: OrderParams, eta: float, alpha_max: float, save_at=None, eta_v=None,
              sigma: float = 0.0, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
              method: str = "dopri5", activation: str = "erf", train_second_layer: bool = True,
              gradient_flow: bool = False, dt: float = 0.01, max_steps: int = 10_000_000,
              progress: bool = False, checkpoint: str | os.PathLike | None = None,
              resume: bool = False, chunk_steps: int = 500, backend: str = "numba",
              divergence_path: str | os.PathLike | None = None) -> LearningCurve:
    r"""Integrate the order-parameter ODEs of online SGD from ``state`` up to ``alpha_max``.

    Parameters
    ----------
    state : OrderParams
        Initial order parameters (e.g. ``OrderParams.random(N, K, M, v_star, seed)``).
    eta : float
        First-layer learning rate (the SGD step is ``eta / sqrt(N)``).
    alpha_max : float
        Final time, in units of ``alpha = steps / N``.
    save_at : array_like, optional
        Times at which to record the state; ``alpha_max`` is always added. Default:
        :func:`default_save_at` (0 and 200 log-spaced times).
    eta_v : float, optional
        Second-layer learning rate (the SGD step is ``eta_v / N``); default ``eta``.
    sigma : float
        Output-noise standard deviation of the teacher's labels.
    rtol, atol : float
        Tolerances of the adaptive method, per component of the state vector.
    method : {"dopri5", "rk4", "euler"}
        Adaptive Dormand-Prince 5(4) (default) or a fixed step ``dt``.
    activation : {"erf", "linear"}
    train_second_layer : bool
        ``False`` freezes ``v`` (soft committee machine).
    gradient_flow : bool
        Drop the ``eta**2`` terms (and with them sigma): the gradient-flow ODEs.
    dt : float
        Step of the fixed-step methods.
    progress : bool
        Show a progress bar (stderr).
    checkpoint : path, optional
        Write the solver state there every ``chunk_steps`` accepted steps (atomically) and on
        Ctrl-C; removed when the run finishes.
    resume : bool
        Continue from ``checkpoint`` (same parameters required); gives exactly the numbers of an
        uninterrupted run.
    backend : {"numba", "jax"}
        ``"jax"`` uses :mod:`odeprune.backends.jax` (optional extra): diffrax's Dopri5 in one
        compiled call, so no progress bar, checkpoint or fixed-step method there.
    divergence_path : path, optional
        Where to save the last good state if the run diverges.

    Returns
    -------
    LearningCurve

    Raises
    ------
    DivergenceError
        The state became non-finite or not PSD; the message gives alpha and suggests a smaller eta.

    Notes
    -----
    .. math:: \dot R_{in} = -\eta v_i \sum_c a_c I_3(i,n,c), \ \ldots \ \text{(EQUATIONS.md §4)}

    Goldt et al. (2019), supplementary S3-S4; Saad & Solla (1995).
    """
    if not isinstance(state, OrderParams):
        raise ValueError(f"state must be an OrderParams, got {type(state).__name__}")
    eta = _positive("eta", eta)
    eta_v = eta if eta_v is None else _positive("eta_v", eta_v, allow_zero=True)
    sigma = _positive("sigma", sigma, allow_zero=True)
    alpha_max = _positive("alpha_max", alpha_max)
    rtol = _positive("rtol", rtol)
    atol = _positive("atol", atol)
    dt = _positive("dt", dt)
    act = get_activation(activation)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; expected one of {list(METHODS)}")
    if backend not in ("numba", "jax"):
        raise ValueError(f"backend={backend!r} is unknown; expected 'numba' or 'jax'")
    t_out = default_save_at(alpha_max) if save_at is None else _check_save_at(save_at, alpha_max)
    if backend == "jax":
        if method != "dopri5":
            raise ValueError(f"method={method!r} is not available with backend='jax' (it uses "
                             "diffrax's adaptive Dopri5); use backend='numba'")
        if checkpoint is not None or resume:
            raise ValueError("checkpoint/resume are not available with backend='jax' (one "
                             "compiled call); use backend='numba'")
        from .backends.jax import integrate as _jax_integrate

        # the JAX run is one compiled call: no progress bar; max_steps counts attempted steps
        return _jax_integrate(state, eta=eta, alpha_max=alpha_max, save_at=t_out, eta_v=eta_v,
                              sigma=sigma, rtol=rtol, atol=atol, activation=act.name,
                              train_second_layer=train_second_layer, gradient_flow=gradient_flow,
                              max_steps=int(min(max_steps, 10_000_000)))

    K, M = state.K, state.M
    T = np.ascontiguousarray(state.T)
    v_star = np.ascontiguousarray(state.v_star)
    sgd = not gradient_flow
    params = _params_dict(state, eta, eta_v, sigma, act.name, bool(train_second_layer),
                          bool(gradient_flow), method, rtol, atol, dt, alpha_max)
    psd_tol = PSD_RTOL * 10  # integration error may add a little on top of the input tolerance

    n = n_state(K, M)
    Y_out = np.zeros((t_out.size, n))
    y = pack(state.Q, state.R, state.v)
    t = 0.0
    i_out = 0
    counters = np.zeros(3, dtype=np.int64)  # nfev, n_accept, n_reject
    f = rhs(y, K, M, T, v_star, eta, eta_v, sigma, act.code, bool(train_second_layer), sgd, True)
    counters[0] += 1
    h = _initial_step(y, f, rtol, atol, alpha_max) if method == "dopri5" else dt

    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH")
        t, y, h, f, i_out, counters, Y_done = _load_checkpoint(checkpoint, params, state, t_out)
        Y_out[:i_out] = Y_done

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=float(alpha_max), unit="α", desc="integrate", leave=False,
                   bar_format="{l_bar}{bar}| α={n:.4g}/{total:g} [{elapsed}<{remaining}]")
        bar.update(t)
    status = CHUNK
    try:
        while status == CHUNK:
            if method == "dopri5":
                status, t, y, h, f, i_out, nfev, nacc, nrej = dopri5_run(
                    t, y, h, f, t_out, i_out, Y_out, K, M, T, v_star, eta, eta_v, sigma, act.code,
                    bool(train_second_layer), sgd, True, rtol, atol, chunk_steps, psd_tol)
            else:
                status, t, y, i_out, nfev, nacc = fixed_run(
                    t, y, dt, t_out, i_out, Y_out, K, M, T, v_star, eta, eta_v, sigma, act.code,
                    bool(train_second_layer), sgd, True, method == "rk4", chunk_steps, psd_tol)
                nrej = 0
            counters += (nfev, nacc, nrej)
            if bar is not None:
                bar.update(min(t, alpha_max) - bar.n)
            if status == CHUNK and counters[1] >= max_steps:
                status = STEP_TOO_SMALL
                break
            if status == CHUNK and checkpoint is not None:
                _save_checkpoint(checkpoint, params, state, t_out, t, y, h, f, i_out, counters,
                                 Y_out)
    except KeyboardInterrupt:
        msg = "integration interrupted"
        if checkpoint is not None:
            _save_checkpoint(checkpoint, params, state, t_out, t, y, h, f, i_out, counters, Y_out)
            msg += (f" at alpha={t:.6g}; checkpoint saved to {str(checkpoint)!r}: resume with "
                    "resume=True (CLI: --resume)")
        raise OdepruneInterrupted(msg, None if checkpoint is None else str(checkpoint)) from None
    finally:
        if bar is not None:
            bar.close()

    if status != OK:
        _raise_divergence(status, t, y, K, M, state, eta, counters, divergence_path, i_out,
                          t_out, Y_out)
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()

    Q, R, v = unpack(Y_out, K, M)
    eg = _eg_along(Q, R, v, state, act)
    meta = dict(params)
    meta.update(nfev=int(counters[0]), n_accept=int(counters[1]), n_reject=int(counters[2]),
                status="success", message="integration reached alpha_max", backend="numba")
    return LearningCurve(alpha=t_out, eg=eg, Q=Q, R=R, v=v, T=state.T, v_star=state.v_star,
                         metadata=meta)


def _eg_along(Q, R, v, state, act) -> np.ndarray:
    from .activations import eg_from_cov

    out = np.empty(Q.shape[0])
    a = np.empty(state.K + state.M)
    a[state.K:] = -state.v_star
    C = np.zeros((state.K + state.M,) * 2)
    C[state.K:, state.K:] = state.T
    for j in range(Q.shape[0]):
        C[:state.K, :state.K] = Q[j]
        C[:state.K, state.K:] = R[j]
        C[state.K:, :state.K] = R[j].T
        a[:state.K] = v[j]
        out[j] = eg_from_cov(act.code, C, a)
    return out


def _initial_step(y, f, rtol, atol, alpha_max) -> float:
    # Hairer, Norsett & Wanner (1993), II.4 -- the simple first guess (as scipy does)
    scale = atol + np.abs(y) * rtol
    d0 = np.sqrt(np.mean((y / scale) ** 2))
    d1 = np.sqrt(np.mean((f / scale) ** 2))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    return float(min(h0, alpha_max))


def _raise_divergence(status, t, y, K, M, state, eta, counters, path, i_out, t_out, Y_out):
    Q, R, v = unpack(y, K, M)
    last = None
    try:
        last = OrderParams(Q=Q, R=R, T=state.T, v=v, v_star=state.v_star)
    except ValueError:
        if i_out > 0:
            Qo, Ro, vo = unpack(Y_out[i_out - 1], K, M)
            try:
                last = OrderParams(Q=Qo, R=Ro, T=state.T, v=vo, v_star=state.v_star)
                t = float(t_out[i_out - 1])
            except ValueError:
                last = None
    saved = None
    if path is not None and last is not None:
        saved = str(last.save(path, metadata={"alpha": t, "reason": "divergence"}))
    what = {NONFINITE: "became non-finite", NOT_PSD: "stopped being positive semi-definite",
            STEP_TOO_SMALL: "needed a vanishing step (or exceeded max_steps)"}.get(status, "failed")
    msg = (f"the ODE state {what} after alpha={t:.6g} (eta={eta:g}, K={K}, M={M}, "
           f"{int(counters[1])} steps); eta is likely too large for this K and M: try a smaller "
           f"eta (e.g. {eta / 2:g})")
    if saved:
        msg += f"; last good state saved to {saved!r}"
    raise DivergenceError(msg, alpha=float(t), last_state=last, saved_to=saved)


# --------------------------------------------------------------------- checkpoints
def _save_checkpoint(path, params, state, t_out, t, y, h, f, i_out, counters, Y_out):
    _io.write_npz(path, "IntegrateCheckpoint",
                  {"t_out": t_out, "y": y, "f": f, "Y_done": Y_out[:i_out], "counters": counters,
                   "init": pack(state.Q, state.R, state.v), "T": state.T, "v_star": state.v_star,
                   "scalars": np.array([t, h, float(i_out)])},
                  {"params": params})


def _load_checkpoint(path, params, state, t_out):
    arrays, meta = _io.read_npz(path, "IntegrateCheckpoint")
    if meta.get("params") != params:
        diff = {k: (meta.get("params", {}).get(k), v) for k, v in params.items()
                if meta.get("params", {}).get(k) != v}
        raise ValueError(f"checkpoint {str(path)!r} was made with other parameters "
                         f"(checkpoint vs now: {diff}); refusing to resume")
    same = (np.array_equal(arrays["init"], pack(state.Q, state.R, state.v))
            and np.array_equal(arrays["T"], state.T) and np.array_equal(arrays["v_star"],
                                                                         state.v_star)
            and np.array_equal(arrays["t_out"], t_out))
    if not same:
        raise ValueError(f"checkpoint {str(path)!r} was made from another initial state or "
                         "save_at; refusing to resume")
    t, h, i_out = arrays["scalars"]
    return (float(t), arrays["y"], float(h), arrays["f"], int(i_out), arrays["counters"],
            arrays["Y_done"])

