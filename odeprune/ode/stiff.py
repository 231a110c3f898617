r"""Stiff-capable integration with an automatic explicit -> implicit switch: the default method.

After the learning is done, the order-parameter ODEs relax towards a fixed point along directions
whose rates differ by orders of magnitude: an explicit method (Dormand-Prince) is then limited by
its stability region, not by accuracy, and its cost grows linearly with ``alpha``. An implicit
method (BDF, or Radau IIA of order 5) takes steps limited by accuracy only.

The compiled problem (what :func:`odeprune.ode.dynamics.integrate` runs)
------------------------------------------------------------------------
- :class:`AutoDriver`: ``method="auto"`` (the default) and ``"bdf"``, all compiled.
  :func:`odeprune.ode.explicit.dopri5_run` in chunks that end at multiples of ``probe_steps``
  (50) accepted steps; at such a point, when the step has not grown (at most 2x the previous
  probe's), :func:`stiffness_test` estimates the spectral radius ``rho`` (:func:`spectral_radius`)
  and switches once ``h * rho >= 1`` and at least ``min_remaining_steps`` (200) explicit steps
  would remain. Dormand-Prince's stability interval on the negative real axis is about
  ``[-3.3, 0]``; a step that the controller keeps at ``h rho >= 1`` is stability-limited (the fast
  modes have decayed, otherwise the error estimate would have forced ``h rho << 1``), so explicit
  steps have become the bottleneck, and a small final ``eps_g`` (a sum of O(1) terms that cancel)
  is only resolved by an implicit step, which reproduces the stable fixed point. A short run, or
  one that never becomes stiff, is Dormand-Prince's bit for bit. No switch back, none below
  ``rtol = MIN_IMPLICIT_RTOL``. The implicit phase runs at :data:`AUTO_BDF_TOL` of the
  tolerances, so that its global error matches Dormand-Prince's.
- :func:`bdf_run`: scipy's BDF (``scipy/integrate/_ivp/bdf.py``) ported to compiled code (the
  same steps, tested), with :func:`odeprune.ode.jacobian.jacobian_into` (the exact erf ``I4``
  gradient) and :func:`lu_factor` (blocked, no BLAS threads); no Python per step.
- :class:`ScipyDriver`: ``method="radau"`` (scipy's Radau through :class:`Stepper`).

Python callables
----------------
:class:`Stepper` integrates any ``f(y) -> dy`` (autonomous) with scipy's Radau or BDF, or, with
an *explicit chunk* callable (the leading arguments and return values of
:func:`odeprune.ode.explicit.dopri5_run`, e.g. :func:`stiff_callables`; a :class:`StiffProblem`
holds ``f``, the chunk, a check and a Jacobian, a :class:`SwitchRule` the stiffness test)::

    explicit_chunk(t, y, h, f, t_out, i_out, Y_out, max_steps)
        -> (status, t, y, h, f, i_out, nfev, n_accept, n_reject)

the same automatic switch (:func:`stiffness_test`). :func:`fd_jacobian` is its default
Jacobian (``n`` evaluations).

Reproducibility
---------------
The numbers never depend on how a run is cut into chunks: the explicit phase is chunk-invariant
(the compiled stepper carries its full state), the probes sit at fixed multiples of
``probe_steps`` accepted steps, and the implicit state lives across chunks. ``get_state`` /
``set_state`` (plain arrays) resume bit for bit (:class:`AutoDriver`: the whole BDF state;
:class:`Stepper` with BDF: scipy's differences, order, Jacobian and LU). With Radau only ``h``
and the Jacobian are saved: a resumed Radau phase agrees within the tolerance, not bitwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from .explicit import (
    CHUNK,
    NONFINITE,
    NOT_PSD,
    OK,
    STEP_TOO_SMALL,
)

__all__ = [
    "Stepper",
    "StiffProblem",
    "SwitchRule",
    "DEFAULT_SWITCH",
    "fd_jacobian",
    "fd_increment",
    "spectral_radius",
    "stiffness_test",
    "resolved_eg_floor",
    "eg_resolution_message",
    "STIFF_METHODS",
]

#: implicit methods by name
STIFF_METHODS = ("radau", "bdf")

#: phases of a :class:`Stepper`
EXPLICIT, STIFF = 0, 1

#: below this rtol ``"auto"`` never switches: scipy's Newton iteration must then resolve
#: ``~2e-5 * rtol * |y|`` (``newton_tol = max(10 eps / rtol, sqrt(rtol))``), i.e. a few ulp of
#: ``y``, under the roundoff of the right-hand side (sums of hundreds of terms): measured on
#: M=2/K=6 to alpha=1e5, BDF at rtol=1e-9, atol=1e-10 takes 883 steps and 14 Jacobians, at
#: rtol=1e-10 4097 steps and 1682 Jacobians, at rtol=1e-11 it stalls (a Jacobian every other step)
MIN_IMPLICIT_RTOL = 1e-9

_EPS = np.finfo(float).eps
_SQRT_EPS = math.sqrt(_EPS)


def fd_increment(yj: float) -> tuple[float, float]:
    """The forward-difference step of an entry ``yj``: ``(yj + h, h)`` with ``h = sqrt(eps) *
    max(|yj|, 1e-3)`` rounded to the representable difference ``(yj + h) - yj``. The one rule of
    :func:`fd_jacobian` and of the compiled Jacobians (:mod:`odeprune.ode.jacobian`, which
    compile this function), so that they difference with the same increments."""
    yp = yj + _SQRT_EPS * max(abs(yj), 1e-3)
    return yp, yp - yj


def fd_jacobian(f: Callable, y: np.ndarray, f0: np.ndarray) -> np.ndarray:
    r"""Forward-difference Jacobian ``J[i, j] = (f(y + h_j e_j)_i - f0_i) / h_j``, shape (n, n).

    ``n`` evaluations of ``f``. The increment ``h_j = sqrt(eps) * max(|y_j|, 1e-3)`` is rounded
    to a representable difference (``(y_j + h_j) - y_j``), so the only error is the truncation
    error ``O(h_j |f''|)`` and ``O(eps |f| / h_j)`` of rounding: about ``1e-8`` relative, ample
    for the Newton iteration of an implicit method (which only needs an approximate Jacobian).
    """
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    J = np.empty((n, n))
    yp = y.copy()
    for j in range(n):
        yj = y[j]
        yp[j], h = fd_increment(yj)
        J[:, j] = (f(yp) - f0) / h
        yp[j] = yj
    return J


def spectral_radius(f: Callable, y: np.ndarray, f0: np.ndarray, max_iter: int = 20,
                    rel_tol: float = 0.02) -> tuple[float, int]:
    r"""Estimate ``max |lambda(J)|`` of the Jacobian of ``f`` at ``y`` by power iteration.

    Each iteration is one finite-difference Jacobian-vector product
    :math:`Jv \approx (f(y + \delta v) - f(y)) / \delta`; the start vector is fixed (seed 0),
    so the estimate is deterministic. Stops when two successive estimates agree within
    ``rel_tol`` (at least 3 iterations). Returns ``(rho, n_evaluations)``.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a blown-up state: rho = inf or nan
        return _power_iteration(f, np.asarray(y, dtype=float), f0, max_iter, rel_tol)


def _power_iteration(f, y, f0, max_iter, rel_tol):
    v = np.random.default_rng(0).standard_normal(y.shape[0])
    v /= np.linalg.norm(v)
    delta = _SQRT_EPS * max(1.0, float(np.linalg.norm(y)))
    rho_old, rho = 0.0, 0.0
    it = 0
    for it in range(1, max_iter + 1):
        w = (f(y + delta * v) - f0) / delta
        rho = float(np.linalg.norm(w))
        if not math.isfinite(rho) or rho == 0.0:
            return rho, it
        v = w / rho
        if it >= 3 and abs(rho - rho_old) <= rel_tol * rho:
            break
        rho_old = rho
    return rho, it


def resolved_eg_floor(eg: Callable, y: np.ndarray, rtol: float, atol: float) -> float:
    r"""The smallest ``eps_g`` that tolerances ``(rtol, atol)`` resolve at state ``y``.

    An error ``e`` in the state within the tolerance (``|e_j| <= atol + rtol |y_j|``) changes
    ``eps_g`` by :math:`\nabla\epsilon_g \cdot e \le \sum_j |\partial_j \epsilon_g|
    (\mathrm{atol} + \mathrm{rtol}|y_j|)`, which does not vanish with ``eps_g`` itself when the
    terms of ``eps_g`` cancel (near a minimum ``|grad eps_g| ~ sqrt(eps_g)``, so the relative
    error grows like ``rtol / sqrt(eps_g)``). Returns that bound (central differences of ``eg``,
    ``2 n`` evaluations); compare it with ``eps_g`` to warn (see docs/speed.md).
    """
    y = np.asarray(y, dtype=float)
    scale = atol + rtol * np.abs(y)
    total = 0.0
    yp = y.copy()
    for j in range(y.shape[0]):
        h = 1e-6 * max(abs(y[j]), 1e-3)
        yp[j] = y[j] + h
        up = eg(yp)
        yp[j] = y[j] - h
        down = eg(yp)
        yp[j] = y[j]
        total += abs(up - down) / (2 * h) * scale[j]
    return float(total)


def eg_resolution_message(eg_value: float, floor: float, ended_implicit: bool,
                          threshold: float = 1e-2, eg_zero: float = 0.0) -> str | None:
    r"""The warning for a run whose final ``eps_g`` the tolerances may not resolve, or ``None``.

    ``floor`` is :func:`resolved_eg_floor` at the final state. Measured on a small-noise case
    (M=K=2, sigma = 1e-3, eps_g ~ 1e-7), the explicit method's actual error was up to
    ``5e-3 * floor / eps_g`` (a stability-limited step keeps re-making errors at the tolerance),
    while a run that ended implicitly (``"auto"`` after its switch, ``"bdf"``, ``"radau"``) was
    accurate to 1e-7 relative whatever the bound (an implicit step reproduces a stable fixed
    point); hence the warning only for explicit runs and ``floor / eps_g > threshold`` (1e-2:
    errors beyond ~5e-5 relative are then possible).

    ``eg_zero`` is the absolute floor: an ``eps_g <= eg_zero`` is zero within the tolerances and
    draws no warning (:func:`odeprune.ode.dynamics.integrate` passes ``atol``, the absolute error the
    caller accepts on every overlap and weight: asking for the relative digits of an ``eps_g``
    at that level asks for more than the tolerances promise: without this floor the warning fired
    on ``eps_g = 3e-18`` and ``6e-14``, "1124338026.1 %"). The relative size is written as a
    percentage below 1 and as a multiple of ``eps_g`` above it.
    """
    if ended_implicit:  # Stepper.phase == STIFF at the end
        return None
    if not (eg_value > eg_zero) or not (eg_value > 0.0) or floor <= threshold * eg_value:
        return None
    ratio = floor / eg_value
    share = f"{100 * ratio:.2g}% of it" if ratio < 1 else f"{ratio:.3g} times eps_g itself"
    return (f"the final eps_g = {eg_value:.3g} is small against what the tolerances resolve "
            f"(errors within rtol/atol may change it by up to {floor:.2g}, {share}); the "
            "explicit method's last digits may be wrong: use method='auto' (implicit once "
            "stiff), or smaller rtol and atol")


def stiffness_test(f: Callable, y, f0, h: float, remaining: float, rtol: float,
                   switch_h_rho: float = 1.0, min_remaining_steps: int = 200) -> tuple[bool, int]:
    """The switch of ``"auto"`` at a probe point (explicit step ``h``, span ``remaining`` left):
    ``(switch, probed)``. Switch when the step is stability-limited (``h rho >= switch_h_rho``,
    ``rho`` by :func:`spectral_radius`, about 10-20 evaluations of ``f``) and the explicit method
    would still need at least ``min_remaining_steps`` steps (the implicit start-up, a Jacobian,
    an LU and a few dozen steps of rising order, then costs less than the explicit steps it
    saves; shorter runs stay explicit, bit for bit the explicit method's numbers). Never below
    ``rtol = MIN_IMPLICIT_RTOL``. ``probed``: 1 if the spectral radius was estimated."""
    if rtol < MIN_IMPLICIT_RTOL:
        return False, 0  # Newton could not resolve such a tolerance above the roundoff of f
    if remaining < min_remaining_steps * h:
        return False, 0
    rho, _ = spectral_radius(f, y, f0)
    return bool(math.isfinite(rho) and h * rho >= switch_h_rho), 1


class _Counted:
    """``f`` counting its evaluations; ``fun(t, y)`` for scipy; the first call may be cached."""

    __slots__ = ("f", "nfev", "cached", "last")

    def __init__(self, f):
        self.f = f
        self.nfev = 0
        self.cached = None
        self.last = None

    def __call__(self, y):
        self.nfev += 1
        out = np.array(self.f(y), dtype=float)
        self.last = (np.array(y, dtype=float), out)
        return out

    def at(self, y):
        """``f(y)``, reusing the last evaluation when it was at the same point."""
        if self.last is not None and np.array_equal(self.last[0], y):
            return self.last[1]
        return self(y)

    def fun(self, t, y):
        if self.cached is not None:
            c, self.cached = self.cached, None
            if np.array_equal(c[0], y):
                return c[1].copy()
        return self(y)


class StiffProblem(NamedTuple):
    """What :class:`Stepper` integrates: the right-hand side ``f(y)``, and optionally the
    Dormand-Prince chunk ``explicit_chunk(t, y, h, f, t_out, i_out, Y_out, max_steps)`` (needed
    by ``"auto"`` and ``"explicit"``), the check ``check(y)`` of a saved state and the Jacobian
    ``jac(y)`` (default: :func:`fd_jacobian`)."""

    f: Callable
    explicit_chunk: Callable | None = None
    check: Callable | None = None
    jac: Callable | None = None


class SwitchRule(NamedTuple):
    """The stiffness test of ``"auto"`` (module docstring): probe every ``probe_steps``
    accepted steps; switch once ``h * rho >= switch_h_rho`` with at least
    ``min_remaining_steps`` explicit steps left."""

    probe_steps: int = 50
    switch_h_rho: float = 1.0
    min_remaining_steps: int = 200


#: the stiffness test of ``"auto"`` by default
DEFAULT_SWITCH = SwitchRule()


class Stepper:
    r"""Chunked integration of ``y' = f(y)`` from ``t`` to ``t_out[-1]``, filling ``Y_out``.

    Parameters
    ----------
    problem : StiffProblem or callable
        ``f(y) -> dy`` (arrays of shape (n,)) alone, or with the explicit chunk (required for
        ``"auto"`` and ``"explicit"``; see the module docstring), a ``check(y) -> bool`` at
        every output of the implicit phase (e.g. a PSD test; ``False`` stops with status
        ``NOT_PSD``; the explicit chunk does its own checks) and ``jac(y) -> J`` (n, n), e.g.
        :func:`odeprune.ode.jacobian.jacobian_into` (counted in ``njev`` only, not in
        ``nfev``; default: :func:`fd_jacobian` of ``f``, ``n`` evaluations each, counted in
        ``nfev``).
    t_out : ndarray, shape (n_out,)
        Increasing output times (the last one is the end).
    rtol, atol : float
        Tolerances of both phases (per component, scipy's RMS norm).
    method : {"auto", "radau", "bdf", "explicit"}
        ``"auto"``: explicit until stiff, then ``stiff_method``; ``"radau"``/``"bdf"``: implicit
        from the start; ``"explicit"``: the explicit chunk only (no switch).
    stiff_method : {"radau", "bdf"}
        The implicit method of ``"auto"``.
    chunk_steps : int
        Accepted steps per :meth:`step_chunk` (the unit of progress and checkpoints).
    switch : SwitchRule
        The stiffness test of ``"auto"``.

    Attributes
    ----------
    status : int
        ``CHUNK`` while running, then ``OK`` or an error code.
    t, y, h, f0, i_out : the current state
    nfev, njev, nlu, n_accept, n_reject, n_probe : counters (``nfev`` includes the Jacobian and
        the stiffness probes); ``t_switch`` : time of the switch to the implicit method (nan if
        none).
    """

    def __init__(self, problem: StiffProblem | Callable, t_out, Y_out: np.ndarray, rtol: float,
                 atol: float, method: str = "auto", stiff_method: str = "radau",
                 chunk_steps: int = 500, switch: SwitchRule = DEFAULT_SWITCH):
        if not isinstance(problem, StiffProblem):
            problem = StiffProblem(problem)
        f, explicit_chunk, check, jac = problem
        if method not in ("auto", "explicit", *STIFF_METHODS):
            raise ValueError(f"method={method!r} is unknown; expected 'auto', 'explicit', "
                             f"{', '.join(map(repr, STIFF_METHODS))}")
        if stiff_method not in STIFF_METHODS:
            raise ValueError(f"stiff_method={stiff_method!r} is unknown; expected one of "
                             f"{list(STIFF_METHODS)}")
        if method in ("auto", "explicit") and explicit_chunk is None:
            raise ValueError(f"method={method!r} needs explicit_chunk")
        probe_steps, switch_h_rho, min_remaining_steps = switch
        self.fun = _Counted(f)
        self.t_out = np.asarray(t_out, dtype=float)
        self.Y_out = Y_out
        self.rtol, self.atol = float(rtol), float(atol)
        self.method = method
        self.stiff_method = method if method in STIFF_METHODS else stiff_method
        self.explicit_chunk = explicit_chunk
        self.chunk_steps = int(chunk_steps)
        self.check = check
        self.probe_steps = int(probe_steps)
        self.switch_h_rho = float(switch_h_rho)
        self.min_remaining_steps = int(min_remaining_steps)
        self.user_jac = jac
        self.status = CHUNK
        self.message = ""
        self.phase = EXPLICIT if method in ("auto", "explicit") else STIFF
        self.t = 0.0
        self.y = None
        self.h = 0.0
        self.f0 = None
        self.i_out = 0
        self.nfev_explicit = 0
        self.njev = self.nlu = self.n_accept = self.n_reject = self.n_probe = 0
        self.t_switch = math.nan
        self.h_probe = math.inf  # h at the last stiffness probe point
        self._solver = None  # the live implicit solver (scipy), kept across chunks
        self._saved_solver = None  # its state from set_state, applied when it is rebuilt
        self._primed_J = None
        self._nlu_seen = 0

    # ------------------------------------------------------------------ state
    @property
    def nfev(self) -> int:
        """All evaluations of ``f``: explicit chunks, implicit phase, Jacobians and probes."""
        return self.nfev_explicit + self.fun.nfev

    def start(self, t0: float, y0, h0: float = 0.0, f0=None) -> Stepper:
        """Set the initial state (``h0 = 0``: the method picks the first step)."""
        self.t = float(t0)
        self.y = np.array(y0, dtype=float)
        self.f0 = self.fun(self.y) if f0 is None else np.array(f0, dtype=float)
        self.h = float(h0)
        while self.i_out < self.t_out.size and self.t_out[self.i_out] <= self.t:
            self.Y_out[self.i_out] = self.y
            self.i_out += 1
        if self.phase == EXPLICIT and self.h <= 0.0:
            self.h = initial_step(self.y, self.f0, self.rtol, self.atol,
                                   float(self.t_out[-1]) - self.t)
        return self

    _COUNTERS = ("nfev_explicit", "nfev_other", "njev", "nlu", "n_accept", "n_reject", "n_probe")

    def get_state(self) -> dict:
        """The state between chunks as plain arrays (``Y_out[:i_out]`` is kept by the caller).

        Includes the complete state of a live BDF solver (differences, order, Jacobian, LU), so
        that :meth:`set_state` resumes bit for bit; for Radau only ``h`` and the Jacobian are kept
        (its Newton starting guess and predictive controller restart: a resumed Radau phase
        agrees with the uninterrupted one within the tolerance, not bitwise).
        """
        state = {
            "phase": np.int64(self.phase),
            "t": np.float64(self.t), "h": np.float64(self.h), "t_switch": np.float64(self.t_switch),
            "h_probe": np.float64(self.h_probe),
            "y": self.y.copy(), "f": self.f0.copy(), "i_out": np.int64(self.i_out),
            "counters": np.array([self.nfev_explicit, self.fun.nfev, self.njev, self.nlu,
                                  self.n_accept, self.n_reject, self.n_probe], dtype=np.int64),
        }
        solver = self._solver
        saved = self._saved_solver
        if solver is not None:
            lu = getattr(solver, "LU", None)
            n = self.y.shape[0]
            saved = {"J": np.array(solver.J, dtype=float), "h": np.float64(solver.h_abs),
                     "D": np.array(getattr(solver, "D", np.zeros((0, n)))),
                     "order": np.int64(getattr(solver, "order", 0)),
                     "n_equal_steps": np.int64(getattr(solver, "n_equal_steps", 0)),
                     "lu_valid": np.bool_(lu is not None),
                     "lu": np.array(lu[0]) if lu is not None else np.zeros((n, n)),
                     "piv": np.array(lu[1]) if lu is not None else np.zeros(n, dtype=np.int32)}
        if saved is not None:
            state.update({f"solver_{k}": v for k, v in saved.items()})
        return state

    def set_state(self, state: dict) -> Stepper:
        """Restore :meth:`get_state` (``Y_out[:i_out]`` must be restored by the caller)."""
        self.phase = int(state["phase"])
        self.t, self.h = float(state["t"]), float(state["h"])
        self.t_switch = float(state["t_switch"])
        self.y = np.array(state["y"], dtype=float)
        self.f0 = np.array(state["f"], dtype=float)
        self.i_out = int(state["i_out"])
        self.h_probe = float(state["h_probe"])
        saved = {k[len("solver_"):]: v for k, v in state.items() if k.startswith("solver_")}
        self._solver = None
        self._saved_solver = saved or None
        c = [int(x) for x in state["counters"]]
        (self.nfev_explicit, self.fun.nfev, self.njev, self.nlu, self.n_accept, self.n_reject,
         self.n_probe) = c
        self.status = CHUNK if self.i_out < self.t_out.size else OK
        return self

    # ------------------------------------------------------------------ stepping
    def step_chunk(self) -> int:
        """Advance by up to ``chunk_steps`` accepted steps; returns (and sets) ``status``.

        The numbers never depend on the chunking: the stiffness probes sit at fixed multiples
        of ``probe_steps`` accepted steps, and the implicit solver lives across chunks.
        """
        if self.status != CHUNK:
            return self.status
        budget = self.chunk_steps
        while budget > 0 and self.status == CHUNK:
            if self.phase == EXPLICIT:
                budget -= self._explicit(budget)
            else:
                with _one_blas_thread():
                    budget -= self._implicit(budget)
        return self.status

    def _explicit(self, budget: int) -> int:
        probing = self.method == "auto"
        n = budget
        if probing:  # stop at the next multiple of probe_steps (independent of the chunking)
            n = min(budget, self.probe_steps - self.n_accept % self.probe_steps)
        status, t, y, h, f, i_out, nfev, nacc, nrej = self.explicit_chunk(
            self.t, self.y, self.h, self.f0, self.t_out, self.i_out, self.Y_out, n)
        self.t, self.y, self.h, self.f0, self.i_out = float(t), y, float(h), f, int(i_out)
        self.nfev_explicit += int(nfev)
        self.n_accept += int(nacc)
        self.n_reject += int(nrej)
        self.status = int(status)
        if probing and self.status == CHUNK and self.n_accept % self.probe_steps == 0:
            stagnant = self.h <= 2.0 * self.h_probe
            self.h_probe = self.h
            if stagnant:
                self._maybe_switch()
        return max(int(nacc), 1)

    def _maybe_switch(self) -> None:
        stiff, probed = stiffness_test(self.fun, self.y, self.f0, self.h,
                                       float(self.t_out[-1]) - self.t, self.rtol,
                                       self.switch_h_rho, self.min_remaining_steps)
        self.n_probe += probed
        if stiff:
            self.phase = STIFF
            self.t_switch = self.t
            self.h = 0.0  # the implicit method chooses its own first step

    def _jac(self, t, y):
        if self._primed_J is not None:  # a restored solver's saved Jacobian (not re-evaluated)
            J, self._primed_J = self._primed_J, None
            return J
        self.njev += 1
        if self.user_jac is None:
            return fd_jacobian(self.fun, y, self.fun.at(y))
        return np.asarray(self.user_jac(y), dtype=float)  # counted in njev only

    def _new_solver(self):
        from scipy.integrate import BDF, Radau

        cls = Radau if self.stiff_method == "radau" else BDF
        fun = self.fun
        saved = self._saved_solver
        self._saved_solver = None
        if saved is not None:
            self._primed_J = np.array(saved["J"], dtype=float)
        # f(y) at the start is known: scipy's first call and the first Jacobian reuse it (set
        # from the state alone, so that a resumed run counts exactly as an uninterrupted one)
        fun.cached = (self.y.copy(), self.f0.copy())
        fun.last = (self.y.copy(), self.f0.copy())
        t_end = float(self.t_out[-1])
        solver = cls(fun.fun, self.t, self.y, t_end, rtol=self.rtol, atol=self.atol,
                     jac=self._jac,
                     first_step=(min(self.h, t_end - self.t) if self.h > 0 else None))
        fun.cached = None
        self._primed_J = None
        if saved is not None and cls is BDF:
            # the complete BDF state: differences, order, LU (kept as factorised: scipy reuses
            # an LU across step-size changes, so it cannot be recomputed from J and h)
            solver.D[...] = saved["D"]
            solver.order = int(saved["order"])
            solver.n_equal_steps = int(saved["n_equal_steps"])
            solver.h_abs = float(saved["h"])
            solver.J = np.array(saved["J"], dtype=float)
            solver.LU = ((np.array(saved["lu"], dtype=float), np.array(saved["piv"]))
                         if bool(saved["lu_valid"]) else None)
        self._nlu_seen = solver.nlu
        return solver

    def _implicit(self, budget: int) -> int:
        t_end = float(self.t_out[-1])
        if self.t >= t_end:
            self._fill_to(self.t, None)
            self.status = OK
            return 1
        if self._solver is None:
            self._solver = self._new_solver()
        solver = self._solver
        steps = 0
        while steps < budget:
            t_old = solver.t
            message = solver.step()
            if solver.status == "failed":
                self.status = STEP_TOO_SMALL
                self.message = str(message)
                break
            y_new = solver.y
            if not np.all(np.isfinite(y_new)):
                self.status = NONFINITE
                break
            if not self._fill_to(solver.t, solver, t_old):
                self.status = NOT_PSD  # t, y stay the last good state
                break
            steps += 1
            self.t, self.y = float(solver.t), y_new.copy()
            if solver.status == "finished" or self.i_out >= self.t_out.size:
                self.status = OK
                break
        self.h = float(solver.h_abs)
        if getattr(solver, "f", None) is not None and solver.t == self.t:
            self.f0 = np.array(solver.f)  # Radau's f(y) of the last step (BDF has none)
        self.nlu += solver.nlu - self._nlu_seen
        self._nlu_seen = solver.nlu
        self.n_accept += steps
        if self.status != CHUNK:
            self._solver = None
        return max(steps, 1)

    def _fill_to(self, t_new, solver, t_old=None) -> bool:
        t_out, i = self.t_out, self.i_out
        dense = None
        while i < t_out.size and t_out[i] <= t_new:
            if solver is None or t_out[i] == t_new:
                yi = self.y if solver is None else solver.y
            else:
                if dense is None:
                    dense = solver.dense_output()
                yi = dense(t_out[i])
            self.Y_out[i] = yi
            if self.check is not None and not self.check(self.Y_out[i]):
                self.i_out = i
                return False
            i += 1
        self.i_out = i
        return True


def _one_blas_thread():
    """Run the LU factorisations of the implicit phase on one BLAS thread: for n <= ~500 a
    multi-threaded LU gains nothing, and OpenBLAS's spinning threads took the cores from numba's
    threaded right-hand side (K=20, M=5, alpha=1e5: 2.8 s instead of 1.0 s on the idle 2-core
    machine; on a loaded one 2.3x slower)."""
    return threadpool_limits(1, user_api="blas")


def initial_step(y, f, rtol, atol, span) -> float:
    # Hairer, Norsett & Wanner (1993), II.4 -- the simple first guess (as dynamics.py does)
    scale = atol + np.abs(y) * rtol
    d0 = np.sqrt(np.mean((y / scale) ** 2))
    d1 = np.sqrt(np.mean((f / scale) ** 2))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    return float(min(h0, span))
