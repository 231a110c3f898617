"""Compiled ODE steppers for the order-parameter ODEs: one Runge-Kutta loop, methods as data.

Every explicit method is a :class:`Tableau` (Butcher coefficients, error weights, how outputs
between steps are interpolated) run by the one compiled loop :func:`rk_run`; :data:`TABLEAUX`
maps names to tableaux. Every stepper ``run(r, t_out, Y_out, p, ctl) -> status`` (``rk_run``
with a method's tableau: :func:`dopri5_run`, :func:`rk4_run`, :func:`euler_run`) advances
the run state ``r`` (a :class:`RunState` of arrays, updated in place: ``y``, ``f = rhs(y)``,
``ts = [t, h]`` and the integer counters) until every requested output ``Y_out[i]`` at
``t_out[i]`` is filled or ``ctl.max_steps`` steps were taken (status ``CHUNK``). Because the
whole state lives in ``r``, a run split into chunks gives bit-for-bit the numbers of one call:
this is what makes progress bars, checkpoints, interrupts and resume exact. :data:`METHODS` maps
names to steppers (like scipy's ``solve_ivp`` table).

- ``dopri5``: adaptive Dormand-Prince 5(4) with its 4th-order dense output (Dormand & Prince
  1980; Shampine 1986), with the Butcher tableau of scipy's ``RK45`` (written out as rationals,
  checked against scipy in the tests); scipy's step-size controller, as in
  ``scipy.integrate._ivp.rk.RungeKutta._step_impl``: accept when the RMS norm of
  ``err / (atol + rtol * max(|y|, |y_new|))`` is below 1, new step ``h * factor`` with
  ``factor = min(10, 0.9 * norm**(-1/5))`` (10 when the norm is 0), capped at 1 on the step
  that follows a rejection (no growth right after a failure); a rejection shrinks by
  ``max(0.2, 0.9 * norm**(-1/5))``. From the same first step and tolerances it takes the
  steps of scipy's ``RK45`` (tested), except that scipy shortens its last step to end on
  ``t_bound`` while this stepper steps past the last output and interpolates it.
- ``rk4`` / ``euler``: a fixed step ``dt`` on the grid ``t_n = n dt`` (the steps never depend
  on the output times); outputs between grid points are interpolated (cubic Hermite for RK4,
  which keeps its 4th order; the Euler line itself for Euler).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from ..results import Status  # (the one definition of the codes)
from .rhs import make_work, rhs_into, unpack_cov

__all__ = ["Status", "RunState", "Control", "new_run", "METHODS", "is_psd", "output_ok", "OK",
           "CHUNK", "NONFINITE", "NOT_PSD", "STEP_TOO_SMALL", "MAX_STEPS", "STATUS_TEXT",
           "ExplicitDriver", "Tableau", "TABLEAUX", "DOPRI5", "RK4", "EULER", "rk_run",
           "dopri5_run", "rk4_run", "euler_run"]

# Dormand & Prince (1980) RK5(4)7M and Shampine's (1986) dense output, as rationals: the values
# of scipy's RK45.A/B/E/P (a test checks them against scipy; importing scipy.integrate here
# cost 0.4 s of start-up).
_A_DP = np.array([
    [0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]])
_B_DP = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_E_DP = np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_P_DP = np.array([
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0, 127303824393 / 49829197408, -318862633887 / 49829197408,
     701980252875 / 199316789632],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423]])

#: the codes as plain ints, for compiled code (numba reads module-level ints as constants)
OK, CHUNK, NONFINITE, NOT_PSD, STEP_TOO_SMALL, MAX_STEPS = (int(s) for s in Status)
STATUS_TEXT = {NONFINITE: "became non-finite", NOT_PSD: "stopped being positive semi-definite",
               STEP_TOO_SMALL: "needed a vanishing step"}

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0

#: indices into RunState.counters
I_OUT, NFEV, N_ACCEPT, N_REJECT = 0, 1, 2, 3


class RunState(NamedTuple):
    """The complete state of a run: ``y`` (n,), ``f = rhs(y)`` (n,), ``ts = [t, h]``,
    ``counters = [i_out, nfev, n_accept, n_reject]`` (int64), and stepper scratch ``K`` (7, n)."""

    y: np.ndarray
    f: np.ndarray
    ts: np.ndarray
    counters: np.ndarray
    Ks: np.ndarray


class Control(NamedTuple):
    """Solver settings: tolerances, fixed step, step budget of one call, PSD tolerance."""

    rtol: float
    atol: float
    dt: float
    max_steps: int
    psd_tol: float


def new_run(y, f, t, h) -> RunState:
    y = np.array(y, dtype=float)
    return RunState(y, np.array(f, dtype=float), np.array([float(t), float(h)]),
                    np.zeros(4, dtype=np.int64), np.empty((7, y.shape[0])))


@njit(cache=True, error_model="numpy", nogil=True)
def is_psd(C, tol, work):
    """True when the smallest eigenvalue of ``C`` is at least ``-tol * max(1, max|C|)``.

    A Cholesky factorisation of ``C + tol * scale * I`` succeeds exactly then. Written out here
    (``work`` is an (L, L) scratch array) rather than calling LAPACK's eigvalsh: numba's LAPACK
    wrappers serialise threads, and this check runs at every saved time of every curve of a
    threaded batch.
    """
    L = C.shape[0]
    scale = 1.0
    for i in range(L):
        for j in range(L):
            if abs(C[i, j]) > scale:
                scale = abs(C[i, j])
    shift = tol * scale
    for j in range(L):
        d = C[j, j] + shift
        for k in range(j):
            d -= work[j, k] * work[j, k]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        work[j, j] = d
        for i in range(j + 1, L):
            acc = C[i, j]
            for k in range(j):
                acc -= work[i, k] * work[j, k]
            work[i, j] = acc / d
    return True


@njit(cache=True, error_model="numpy", nogil=True)
def _all_finite(x):
    for j in range(x.shape[0]):
        if not math.isfinite(x[j]):
            return False
    return True


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _combine(c, Ks, m, out):
    """``out[j] = sum_{q < m} c[q] Ks[q, j]``, the terms added in order of ``q`` (from 0.0)."""
    n = out.shape[0]
    for j in range(n):
        out[j] = 0.0
    for q in range(m):
        cq = c[q]
        Kq = Ks[q]
        for j in range(n):
            out[j] += cq * Kq[j]


@njit(cache=True, error_model="numpy", nogil=True)
def output_ok(Y_row, p, w, psd_tol):
    """The PSD check of a saved state (the global covariance)."""
    unpack_cov(Y_row, p, w.C, w.a)
    return is_psd(w.C, psd_tol, w.Cw)


#: how a tableau's outputs between steps are interpolated: its dense-output polynomial ``P``
#: (dopri5), the cubic Hermite on ``(y, f, y_new, f_new)`` (RK4: keeps its 4th order), the line
#: of the step itself (Euler)
DENSE, HERMITE, LINEAR = 0, 1, 2


class Tableau(NamedTuple):
    """An explicit Runge-Kutta method as data, for the one stepping loop :func:`rk_run`.

    ``S`` stages: stage ``s`` is ``f(y + h sum_{q<s} A[s, q] k_q)`` (``k_0 = f(y)``); the step is
    ``y_new = y + (h / B_den) sum_q B[q] k_q`` (``B`` as integers over ``B_den`` where that is how
    the method is written, so that the sums round as they always did). An ``adaptive`` method
    estimates its error ``h sum_q E[q] k_q`` over the ``S`` stages and ``k_S = f(y_new)`` (first
    same as last) and controls ``h`` with exponent ``err_exponent``; otherwise it steps on the
    fixed grid ``n dt``. ``interp``: :data:`DENSE` (``y + h sum_q k_q sum_m P[q, m]
    theta^(m+1)``), :data:`HERMITE` or :data:`LINEAR`."""

    A: np.ndarray
    B: np.ndarray
    B_den: float
    E: np.ndarray
    P: np.ndarray
    err_exponent: float
    adaptive: bool
    interp: int


_NONE1 = np.zeros(1)
_NONE2 = np.zeros((1, 4))
#: Dormand-Prince 5(4) with Shampine's dense output (the rationals above)
DOPRI5 = Tableau(_A_DP, _B_DP, 1.0, _E_DP, _P_DP, -0.2, True, DENSE)
#: classical RK4 (weights 1, 2, 2, 1 over 6), cubic Hermite outputs
RK4 = Tableau(np.array([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0],
                        [0.0, 0.0, 1.0, 0.0]]),
              np.array([1.0, 2.0, 2.0, 1.0]), 6.0, _NONE1, _NONE2, 0.0, False, HERMITE)
#: explicit Euler, outputs on its line
EULER = Tableau(np.zeros((1, 1)), np.ones(1), 1.0, _NONE1, _NONE2, 0.0, False, LINEAR)
#: method name -> tableau
TABLEAUX = {"dopri5": DOPRI5, "rk4": RK4, "euler": EULER}


def rk_run(r, t_out, Y_out, p, ctl, tab):
    """The one explicit Runge-Kutta loop: the method ``tab`` (a :class:`Tableau`); see the
    module docstring for the protocol. On divergence ``r`` holds the last good accepted state.

    Adaptive (dopri5): scipy's controller and steps. Fixed (RK4, Euler): the step ``ctl.dt`` on
    the grid ``t_n = n dt``; outputs within ``1e-12`` (relative) of a grid point are on it."""
    return _rk_kernel(bool(tab.adaptive), int(tab.interp))(r, t_out, Y_out, p, ctl, tab)


@functools.cache
def _rk_kernel(adaptive, interp):
    # rk_run compiled for one kind of method: ``adaptive`` and ``interp`` are constants of the
    # closure, so numba drops the other kinds' branches before typing them (dopri5 compiles no
    # fixed-step, Hermite or Euler code: its own code 3601 -> 2852 LLVM instructions, 0.3 s of
    # a first run)
    def run(r, t_out, Y_out, p, ctl, tab):
        y, f, Ks, cnt = r.y, r.f, r.Ks, r.counters
        w = make_work(p.K, p.M)  # scratch allocated here: LLVM then knows it aliases nothing
        n = y.shape[0]
        A, B, E, P = tab.A, tab.B, tab.E, tab.P  # (read once, not in loops)
        S = B.shape[0]
        err_exponent = tab.err_exponent
        slack = 0.0 if adaptive else 1e-12  # (0: comparisons exactly those of t itself)
        t = r.ts[0]
        h = r.ts[1] if adaptive else ctl.dt
        step_index = 0 if adaptive else int(round(t / h))
        y_new = np.empty(n)
        f_new = np.empty(n)
        ytmp = np.empty(n)
        acc_v = np.empty(n)
        n_out = t_out.shape[0]
        while cnt[I_OUT] < n_out and t_out[cnt[I_OUT]] <= t + slack * max(1.0, t):
            for j in range(n):  # (element loops: a slice copy compiles numba's shape checks)
                Y_out[cnt[I_OUT], j] = y[j]
            cnt[I_OUT] += 1
        steps = 0
        status = OK
        rejected = False  # a rejection since the last accepted step (scipy's step_rejected)
        while cnt[I_OUT] < n_out:
            if steps >= ctl.max_steps:
                status = CHUNK
                break
            if adaptive and h < 1e-12 * max(1.0, abs(t)):
                status = STEP_TOO_SMALL
                break
            for j in range(n):
                Ks[0, j] = f[j]
            # the stage sums stage by stage over whole rows (each element adds its terms in the
            # same order as a per-element loop, bit for bit; the rows vectorise: a masked state
            # has hundreds of entries)
            for s in range(1, S):
                _combine(A[s], Ks, s, acc_v)
                for j in range(n):
                    ytmp[j] = y[j] + h * acc_v[j]
                rhs_into(ytmp, Ks[s], p, w)
            hb = h / tab.B_den
            _combine(B, Ks, S, acc_v)
            for j in range(n):
                y_new[j] = y[j] + hb * acc_v[j]
            cnt[NFEV] += S - 1
            finite = _all_finite(y_new)
            if finite:
                rhs_into(y_new, f_new, p, w)  # the next step's first stage
                cnt[NFEV] += 1
                finite = _all_finite(f_new)
            en = 0.0
            if not adaptive:
                if not finite:
                    return NONFINITE
            elif finite:
                for j in range(n):
                    Ks[S, j] = f_new[j]
                _combine(E, Ks, S + 1, acc_v)
                s2 = 0.0
                for j in range(n):
                    sc = ctl.atol + ctl.rtol * max(abs(y[j]), abs(y_new[j]))
                    s2 += (h * acc_v[j] / sc) ** 2
                en = math.sqrt(s2 / n)
            else:
                en = math.inf
            if en < 1.0:
                t_new = t + h if adaptive else (step_index + 1) * h
                while cnt[I_OUT] < n_out and t_out[cnt[I_OUT]] <= t_new + slack * max(1.0, t_new):
                    i_out = cnt[I_OUT]
                    th = (t_out[i_out] - t) / h
                    if not adaptive and th > 1.0:
                        th = 1.0
                    if interp == DENSE:
                        th2 = th * th
                        for j in range(n):
                            acc = 0.0
                            for q in range(P.shape[0]):
                                acc += Ks[q, j] * (P[q, 0] * th + P[q, 1] * th2
                                                   + P[q, 2] * th2 * th + P[q, 3] * th2 * th2)
                            Y_out[i_out, j] = y[j] + h * acc
                    elif interp == HERMITE:  # cubic Hermite on (y, f, y_new, f_new)
                        th2, th3 = th**2, th**3
                        h00 = 2 * th3 - 3 * th2 + 1
                        h10 = th3 - 2 * th2 + th
                        h01 = -2 * th3 + 3 * th2
                        h11 = th3 - th2
                        for j in range(n):
                            Y_out[i_out, j] = (h00 * y[j] + h10 * h * Ks[0, j] + h01 * y_new[j]
                                               + h11 * h * f_new[j])
                    else:  # the step's own line
                        for j in range(n):
                            Y_out[i_out, j] = y[j] + th * h * Ks[0, j]
                    if not output_ok(Y_out[i_out], p, w, ctl.psd_tol):
                        if adaptive:
                            r.ts[0] = t
                            r.ts[1] = h
                        return NOT_PSD
                    cnt[I_OUT] += 1
                t = t_new
                for j in range(n):  # (element loops: a slice copy compiles numba's shape checks)
                    y[j] = y_new[j]
                    f[j] = f_new[j]
                cnt[N_ACCEPT] += 1
                steps += 1
                if adaptive:
                    factor = MAX_FACTOR if en == 0.0 else min(MAX_FACTOR,
                                                              SAFETY * en ** err_exponent)
                    if rejected:
                        factor = min(1.0, factor)
                    rejected = False
                    h = h * factor
                else:
                    step_index += 1
                    r.ts[0] = t
            else:
                rejected = True
                cnt[N_REJECT] += 1
                if not math.isfinite(en):
                    # a non-finite trial: shrink hard; if h is already tiny the run has diverged
                    if h < 1e-8 * max(1.0, abs(t)):
                        status = NONFINITE
                        break
                    h = h * MIN_FACTOR
                else:
                    h = h * max(MIN_FACTOR, SAFETY * en ** err_exponent)
        if adaptive:
            r.ts[0] = t
            r.ts[1] = h
        return status

    return njit(cache=True, error_model="numpy", nogil=True)(run)


def dopri5_run(r, t_out, Y_out, p, ctl):
    """Adaptive Dormand-Prince 5(4): :func:`rk_run` with :data:`DOPRI5`."""
    return rk_run(r, t_out, Y_out, p, ctl, DOPRI5)


def rk4_run(r, t_out, Y_out, p, ctl):
    """Classical RK4 on the fixed grid ``n dt``; Hermite-interpolated outputs."""
    return rk_run(r, t_out, Y_out, p, ctl, RK4)


def euler_run(r, t_out, Y_out, p, ctl):
    """Explicit Euler on the fixed grid ``n dt``; outputs on the Euler line."""
    return rk_run(r, t_out, Y_out, p, ctl, EULER)


#: method name -> stepper (the one compiled loop with the method's tableau)
METHODS = {"dopri5": dopri5_run, "rk4": rk4_run, "euler": euler_run}


class ExplicitDriver:
    """A compiled stepper of :data:`METHODS` (dopri5, rk4, euler) behind the driver protocol of
    :func:`odeprune.ode.dynamics.integrate` (``advance(n_steps) -> status``, ``t``, ``phase``,
    ``counts()``, ``last_good()``, ``get_state()`` / ``set_state()``, ``p``)."""

    def __init__(self, method, p, y0, f0, h0, t_out, Y_out, ctl):
        self.stepper = METHODS[method]
        self.p, self.t_out, self.Y_out, self.ctl = p, t_out, Y_out, ctl
        self.run = new_run(y0, f0, 0.0, h0)
        self.run.counters[NFEV] = 1
        self.phase = "explicit"

    @property
    def t(self) -> float:
        return float(self.run.ts[0])

    def counts(self) -> dict:
        c = self.run.counters
        return dict(nfev=int(c[NFEV]), n_accept=int(c[N_ACCEPT]), n_reject=int(c[N_REJECT]))

    def advance(self, n_steps: int) -> int:
        return self.stepper(self.run, self.t_out, self.Y_out, self.p,
                            self.ctl._replace(max_steps=n_steps))

    def last_good(self):
        return self.run

    def get_state(self) -> dict:
        r = self.run
        return {"y": r.y, "f": r.f, "ts": r.ts, "counters": r.counters}

    def set_state(self, arrays) -> None:
        r = self.run
        r.y[:] = arrays["y"]
        r.f[:] = arrays["f"]
        r.ts[:] = arrays["ts"]
        r.counters[:] = arrays["counters"]
