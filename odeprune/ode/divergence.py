"""Why an ODE run failed, in one message: the same text for every driver (the compiled and
stiff ones of :mod:`odeprune.ode.dynamics`, the JAX backend), and the errors a compiled run
raises when it diverges or uses up its step budget."""

from __future__ import annotations

import numpy as np

from ..errors import DivergenceError, MaxStepsReached
from ..options import FIXED_STEP
from ..sparse import SparseOrderParams
from ..state import OrderParams
from .explicit import I_OUT, N_ACCEPT, NOT_PSD, STATUS_TEXT
from .rhs import unpack_classes

__all__ = ["ode_divergence", "diagnosis", "overflow_message", "FIXED_STEP", "raise_divergence",
           "raise_max_steps", "state_from"]


def overflow_message(state, eta, sigma) -> str:
    d = state.dense() if isinstance(state, SparseOrderParams) else state
    big = max(float(np.abs(d.covariance()).max()), float(np.abs(d.signed_weights()).max()))
    return (f"the right-hand side overflows at the initial state (largest overlap or second-layer "
            f"weight {big:.3g}, eta={eta:g}, sigma={sigma:g}): the inputs are too large to "
            "represent the dynamics in floating point; rescale v_star / the weights (the "
            "paper's scale is O(1)-O(10))")


def diagnosis(params: dict, state, n_accept: int, not_psd: bool, t_run: float) -> str:
    """What most likely happened, and what to change (one sentence each). ``state``: the run's
    initial state (dense or sparse); ``t_run``: the alpha the run failed at, from its start."""
    eta, method = params["eta"], params["method"]
    d = state.dense() if isinstance(state, SparseOrderParams) else state
    C = d.covariance()
    lam_min = float(np.linalg.eigvalsh(C)[0])
    scale = max(1.0, float(np.abs(C).max()))
    fixed = method in FIXED_STEP
    if not fixed and (params["rtol"] > 1e-3 or params["atol"] > 1e-3):
        return (f"the tolerances rtol={params['rtol']:g}, atol={params['atol']:g} are too loose "
                "to keep the state a valid covariance: use the defaults (rtol=1e-7, atol=1e-10)")
    if fixed and n_accept <= 2:
        return (f"the fixed step dt={params['dt']:g} is beyond the stability limit of "
                f"{method} here: use a smaller dt (e.g. {params['dt'] / 10:g}) or the adaptive "
                "method dopri5")
    if params["sigma"] > 0 and params["sigma"] ** 2 > 100 * max(1.0, float(np.abs(d.v_star).max()) ** 2):
        return (f"the noise term eta^2 sigma^2 J2 dominates (sigma={params['sigma']:g} is far "
                "above the teacher's output scale): the student's norms blow up; use a smaller "
                "sigma or eta")
    if not_psd and lam_min < 1e-6 * scale and t_run < 1e-3 * params["alpha_max"] + 100:
        return (f"the initial covariance [[Q, R], [R^T, T]] is singular (smallest eigenvalue "
                f"{lam_min:.2g}); an exact ansatz such as OrderParams.specialised sits on the "
                "boundary of valid states and the SGD noise (eta^2 terms) pushes it out: start "
                "near it instead (e.g. mix in a little of a random state, see the README), or "
                "use gradient_flow=True")
    if fixed:
        return (f"the fixed step dt={params['dt']:g} is likely too large for {method}: use a "
                "smaller dt or the adaptive method dopri5")
    return (f"eta={eta:g} is likely too large for this K={d.K} and M={d.M} (the eta^2 terms run "
            f"away): try a smaller eta (e.g. {eta / 2:g})")


def ode_divergence(what: str, alpha: float, params: dict, state, n_accept: int, not_psd: bool,
                   t_run: float, last_state=None, saved_to: str | None = None,
                   backend: str | None = None) -> DivergenceError:
    """The :class:`~odeprune.errors.DivergenceError` of a failed ODE run: what happened
    (``what``, e.g. "became non-finite") at which ``alpha``, with the run's parameters, and the
    :func:`diagnosis`; where the last good state was saved."""
    d = state.dense() if isinstance(state, SparseOrderParams) else state
    on = f", {backend} backend" if backend else ""
    msg = (f"the ODE state {what} after alpha={alpha:.6g} (eta={params['eta']:g}, K={d.K}, "
           f"M={d.M}, {n_accept} steps{on}): "
           + diagnosis(params, state, n_accept, not_psd, t_run))
    if saved_to:
        msg += f"; last good state saved to {saved_to!r} (continue from it with --init)"
    return DivergenceError(msg, alpha=alpha, last_state=last_state, saved_to=saved_to)


def raise_divergence(status, run, p, sp, params, path, t_out, Y_out):
    """Raise the :class:`~odeprune.errors.DivergenceError` of a compiled run that ended with
    ``status``: at the last good state of the run state ``run`` (else the last saved output),
    saved to ``path`` if given."""
    t = float(run.ts[0])
    alpha0 = params["alpha0"]
    last = state_from(run.y, p, sp)
    if last is None and run.counters[I_OUT] > 0:
        last = state_from(Y_out[run.counters[I_OUT] - 1], p, sp)
        t = float(t_out[run.counters[I_OUT] - 1])
    saved = None
    if path is not None and last is not None:
        saved = str(last.save(path, metadata={"alpha": alpha0 + t, "reason": "divergence"}))
    raise ode_divergence(STATUS_TEXT.get(status, "failed"), alpha0 + t, params, sp,
                         int(run.counters[N_ACCEPT]), not_psd=status == NOT_PSD, t_run=t,
                         last_state=last, saved_to=saved)


def raise_max_steps(run, p, sp, params, max_steps, drv, path):
    """The step budget is used up: a :class:`~odeprune.errors.MaxStepsReached` that says how
    many steps, where, and how to raise the budget (not a divergence: the state is valid)."""
    t = float(run.ts[0])
    alpha = params["alpha0"] + t
    method = params["method"]
    hint = ("" if method in ("auto", "bdf", "radau") or method in FIXED_STEP else
            ", or use method='auto' (implicit once the dynamics are stiff: its steps then grow "
            "and the cost stops growing with alpha)")
    last = state_from(run.y, p, sp)
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


def state_from(y, p, sp):
    """The state of the packed vector ``y`` (dense where it is one full class), or None where
    it is no valid state."""
    Qc, Rc, _, v = unpack_classes(y, p.M, sp.patterns, p.track_P)
    try:
        if p.n_cls == 1 and np.all(sp.patterns):
            return OrderParams(Q=Qc[0], R=Rc[0], T=p.T, v=v, v_star=sp.v_star,
                               activation=sp.activation)
        return sp.replace(Q=Qc, R=Rc, v=v)
    except ValueError:
        return None
