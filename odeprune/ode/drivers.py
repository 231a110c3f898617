"""The drivers of the stiff path behind :func:`odeprune.ode.dynamics.integrate`: ``AutoDriver``
(``method="auto"``, the default: compiled dopri5 until the step is stability-limited, then the
compiled BDF of :mod:`odeprune.ode.bdf`) and ``ScipyDriver`` (``"radau"``), with the callables of
a compiled problem (``stiff_callables``); docs/speed.md."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._validate import check_memory
from ..activations import ERF, LINEAR
from .bdf import NJEV, NLU, bdf_run, bdf_start, new_bdf
from .blocks import BLOCK_ARRAYS, implicit_cost, new_blocks
from .explicit import (
    CHUNK,
    I_OUT,
    N_ACCEPT,
    N_REJECT,
    NFEV,
    dopri5_run,
    new_run,
    output_ok,
)
from .jacobian import FD_JACOBIAN_MAX_N, column_entries, jacobian_into
from .rhs import make_work, rhs_into
from .stiff import (
    DEFAULT_SWITCH,
    MIN_IMPLICIT_RTOL,
    STIFF,
    Stepper,
    StiffProblem,
    SwitchRule,
    stiffness_test,
)

__all__ = ["AutoDriver", "ScipyDriver", "stiff_callables", "StiffProblem", "jacobian_columns"]


# ------------------------------------------------------------------------------ the drivers
def _patterns(p) -> np.ndarray:
    patterns = np.zeros((p.n_cls, p.K), dtype=bool)
    for s in range(p.n_cls):
        patterns[s, p.units[s, :p.nk[s]]] = True
    return patterns


def jacobian_columns(p) -> np.ndarray:
    """:func:`~odeprune.ode.jacobian.column_entries` of a compiled problem ``p``."""
    return column_entries(_patterns(p), p.K, p.M, p.track_P)


def _rhs_of(p) -> Callable:
    w = make_work(p.K, p.M)

    def f(y):
        y = np.ascontiguousarray(y, dtype=float)
        dy = np.empty_like(y)
        rhs_into(y, dy, p, w)
        return dy

    return f


#: ``"auto"`` runs its implicit phase at this fraction of the tolerances: at equal tolerances
#: BDF's global error (order <= 5, an error estimate of the lower order) measured 10x Dormand-
#: Prince's (M=2/K=6 to alpha=1e3, rtol=1e-7: 9.8e-7 against 9.2e-8, the largest state error
#: against DOP853 at rtol=1e-13); at a tenth 1.9e-7, for 1.3x the implicit evaluations (never
#: below MIN_IMPLICIT_RTOL)
AUTO_BDF_TOL = 0.1

#: activations whose implicit phase "auto" enters on its own. ReLU has no analytic I4 gradient:
#: its finite-difference Jacobian costs ~n evaluations of a right-hand side ~30x erf's. On
#: M=2/K=6 to alpha=1000 (v*=4) the switch cost 270 s of CPU (scipy's BDF, 25 437 Jacobians)
#: against 3.9 s explicit (dopri5, 15 625 evaluations), and the compiled BDF did not finish in
#: minutes. Measured again with the fitted rule and the det R(t) integrand (docs/relu.md): the
#: compiled BDF (method="bdf") finishes, but in 135 s of CPU (44 899 steps, 240 946 evaluations,
#: 24 357 Jacobians, 89 611 LU) against 0.82-0.87 s explicit (15 361-15 811 evaluations), and
#: less accurately (final state 1.5e-6 from dopri5 at rtol=1e-10, eps_g 3.7e-10 against 7.8e-11;
#: explicit: 4.1e-7); "auto" therefore stays explicit for ReLU ("bdf"/"radau" still run it)
AUTO_SWITCH_ACTIVATIONS = (ERF, LINEAR)


class AutoDriver:
    r"""``method="auto"`` (explicit Dormand-Prince until stiff, then BDF) and ``"bdf"`` (BDF from
    the start) on a compiled problem, all in compiled code: :func:`odeprune.ode.explicit.dopri5_run`
    in chunks that end at multiples of ``probe_steps`` accepted steps, :func:`stiffness_test` at
    such a point when the step has not grown (at most 2x the previous probe's), then
    :func:`bdf_run` with the compiled Jacobian (``fd_jacobian``: the plain differences of the
    right-hand side; None: for a state of at most
    :data:`~odeprune.ode.jacobian.FD_JACOBIAN_MAX_N` entries, else the structured Jacobian,
    :func:`~odeprune.ode.jacobian.jacobian_exact`; ``blocks``: a network of classes's Jacobian
    as block-diagonal plus low rank, solved by Woodbury, :mod:`odeprune.ode.blocks`; None: for a
    network of more than one class whose state exceeds ``FD_JACOBIAN_MAX_N`` entries, where a
    dense LU of the whole state cost ~20 ms at 64 classes and minutes at 256). The driver
    protocol of
    :func:`odeprune.ode.dynamics.integrate`: ``advance(n_steps) -> status``, ``t``, ``phase``,
    ``counts()``, ``last_good()``, ``get_state()`` / ``set_state()`` (plain arrays; resume is bit
    for bit), ``p`` (replaceable between chunks: threads). The numbers never depend on the
    chunking."""

    def __init__(self, method, p, y0, f0, h0, t_out, Y_out, ctl,
                 switch: SwitchRule = DEFAULT_SWITCH, fd_jacobian: bool | None = None,
                 blocks: bool | None = None):
        if method not in ("auto", "bdf"):
            raise ValueError(f"method={method!r}: AutoDriver runs 'auto' or 'bdf'")
        self.method = method
        self.may_switch = method == "auto" and int(p.act) in AUTO_SWITCH_ACTIVATIONS
        self.p, self.t_out, self.Y_out, self.ctl = p, t_out, Y_out, ctl
        self.probe_steps = int(switch.probe_steps)
        self.switch_h_rho = float(switch.switch_h_rho)
        self.min_remaining_steps = int(switch.min_remaining_steps)
        n = len(y0)
        if blocks is None:
            blocks = p.n_cls > 1 and n > FD_JACOBIAN_MAX_N
        if fd_jacobian is None:
            fd_jacobian = n <= FD_JACOBIAN_MAX_N
        # (the blocks' arrays are zeros not yet written: measured before the run touches them)
        self.blk = (new_blocks(_patterns(p), p.K, p.M, p.track_P, p.off) if blocks else None)
        need = (sum(getattr(self.blk, k).size for k in BLOCK_ARRAYS) if blocks
                else 2 * n * n)  # the Jacobian and the LU of the whole state
        check_memory(f"method={method!r} on a state of {n} entries", need,
                     "integrate to where it stops being stiff with method='dopri5', or use fewer "
                     "mask classes")
        if self.blk is not None:  # switch only when the explicit steps left cost more (6
            # evaluations each) than the implicit phase on this network (blocks.implicit_cost)
            self.min_remaining_steps = max(self.min_remaining_steps,
                                           math.ceil(implicit_cost(self.blk) / 6.0))
        self.cols = None if fd_jacobian or blocks else jacobian_columns(p)
        # "auto": a tenth of the tolerances in the implicit phase, not below MIN_IMPLICIT_RTOL
        fac = (max(AUTO_BDF_TOL, min(1.0, MIN_IMPLICIT_RTOL / ctl.rtol)) if method == "auto"
               else 1.0)
        self.ctl_bdf = ctl._replace(rtol=ctl.rtol * fac, atol=ctl.atol * fac)
        self.run = new_run(y0, f0, 0.0, h0)
        self.run.counters[NFEV] = 1
        self.bdf = new_bdf(y0, dense=not blocks)
        # [phase (0 explicit, 1 implicit), n_probe, evaluations of the probes]; [h_probe, t_switch]
        self.ints = np.zeros(3, dtype=np.int64)
        self.floats = np.array([math.inf, math.nan])
        if method == "bdf":
            self._switch(0.0)
            self.floats[1] = math.nan

    @property
    def phase(self) -> str:
        return "implicit" if self.ints[0] else "explicit"

    @property
    def t(self) -> float:
        return float((self.bdf if self.ints[0] else self.run).ts[0])

    def counts(self) -> dict:
        c = self.bdf.counters if self.ints[0] else self.run.counters
        b = self.bdf.counters
        return dict(nfev=int(c[NFEV] + self.ints[2]), n_accept=int(c[N_ACCEPT]),
                    n_reject=int(c[N_REJECT]), njev=int(b[NJEV]), nlu=int(b[NLU]),
                    n_probe=int(self.ints[1]), alpha_switch=float(self.floats[1]))

    def _switch(self, h: float) -> None:
        r, s = self.run, self.bdf
        s.counters[:4] = r.counters
        s.y[:] = r.y
        bdf_start(s, self.p, float(r.ts[0]), r.f, h, self.ctl_bdf.rtol, self.ctl_bdf.atol,
                  float(self.t_out[-1]))
        self.ints[0] = 1
        self.floats[1] = float(r.ts[0])

    def advance(self, n_steps: int) -> int:
        budget = int(n_steps)
        status = CHUNK
        while budget > 0 and status == CHUNK:
            if self.ints[0]:
                before = int(self.bdf.counters[N_ACCEPT])
                status = bdf_run(self.bdf, self.t_out, self.Y_out, self.p,
                                 self.ctl_bdf._replace(max_steps=budget), self.cols, self.blk)
                budget -= max(int(self.bdf.counters[N_ACCEPT]) - before, 1)
                continue
            r = self.run
            n = min(budget, self.probe_steps - int(r.counters[N_ACCEPT]) % self.probe_steps)
            before = int(r.counters[N_ACCEPT])
            status = dopri5_run(r, self.t_out, self.Y_out, self.p,
                                self.ctl._replace(max_steps=n))
            budget -= max(int(r.counters[N_ACCEPT]) - before, 1)
            if (self.may_switch and status == CHUNK
                    and r.counters[N_ACCEPT] % self.probe_steps == 0):
                h = float(r.ts[1])
                stagnant = h <= 2.0 * self.floats[0]
                self.floats[0] = h
                if stagnant:
                    f = _CountedEvals(_rhs_of(self.p))
                    stiff, probed = stiffness_test(
                        f, r.y, r.f, h, float(self.t_out[-1] - r.ts[0]), self.ctl.rtol,
                        self.switch_h_rho, self.min_remaining_steps)
                    self.ints[1] += probed
                    self.ints[2] += f.n
                    if stiff:
                        self._switch(0.0)  # BDF chooses its own first step
        return status

    def last_good(self):
        if not self.ints[0]:
            return self.run
        s = self.bdf
        r = new_run(s.y, np.zeros_like(s.y), s.ts[0], s.ts[1])
        r.counters[:] = s.counters[:4]
        return r

    def get_state(self) -> dict:
        r, s = self.run, self.bdf
        out = {"y": r.y, "f": r.f, "ts": r.ts, "counters": r.counters, "auto_ints": self.ints,
               "auto_floats": self.floats}
        out.update({f"bdf_{k}": v for k, v in s._asdict().items()})
        if self.blk is not None:
            out.update({f"blk_{k}": getattr(self.blk, k) for k in BLOCK_ARRAYS})
        return out

    def set_state(self, arrays) -> None:
        r, s = self.run, self.bdf
        for k in ("y", "f", "ts", "counters"):
            getattr(r, k)[:] = arrays[k]
        self.ints[:] = arrays["auto_ints"]
        self.floats[:] = arrays["auto_floats"]
        for k, v in s._asdict().items():
            v[...] = arrays[f"bdf_{k}"]
        if self.blk is not None:
            for k in BLOCK_ARRAYS:
                getattr(self.blk, k)[...] = arrays[f"blk_{k}"]


class _CountedEvals:
    __slots__ = ("f", "n")

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, y):
        self.n += 1
        return self.f(y)


def stiff_callables(p, ctl) -> StiffProblem:
    """The :class:`StiffProblem` of a compiled problem ``p`` (a :class:`~odeprune.ode.rhs.Params`)
    and its :class:`~odeprune.ode.explicit.Control`. The Jacobian is
    :func:`odeprune.ode.jacobian.jacobian_into` (compiled)."""
    w = make_work(p.K, p.M)
    f = _rhs_of(p)

    def explicit_chunk(t, y, h, fy, t_out, i_out, Y, max_steps):
        r = new_run(y, fy, t, h)
        r.counters[I_OUT] = i_out
        status = dopri5_run(r, t_out, Y, p, ctl._replace(max_steps=max_steps))
        c = r.counters
        return (status, float(r.ts[0]), r.y, float(r.ts[1]), r.f, int(c[I_OUT]),
                int(c[NFEV]), int(c[N_ACCEPT]), int(c[N_REJECT]))

    def check(y):
        return output_ok(y, p, w, ctl.psd_tol)

    cols = jacobian_columns(p)
    w0, w1 = make_work(p.K, p.M), make_work(p.K, p.M)

    def jac(y):
        y = np.ascontiguousarray(y, dtype=float)
        J = np.empty((y.shape[0], y.shape[0]))
        jacobian_into(y, p, w0, w1, cols, J)
        return J

    return StiffProblem(f, explicit_chunk, check, jac)


class ScipyDriver:
    """``method="radau"``: :class:`odeprune.ode.stiff.Stepper` with scipy's Radau from the start
    (``"auto"`` and ``"bdf"`` run compiled: :class:`odeprune.ode.drivers.AutoDriver`)."""

    def __init__(self, method, p, y0, f0, h0, t_out, Y_out, ctl):
        n = len(y0)  # scipy's Radau: the Jacobian, a real and a complex LU of the whole state
        check_memory(f"method={method!r} on a state of {n} entries", 4 * n * n,
                     "use method='auto' or 'bdf' (a masked network's implicit steps then solve "
                     "with its classes' structure)")
        sp = stiff_callables(p, ctl)
        self.st = Stepper(sp._replace(explicit_chunk=None), t_out, Y_out, ctl.rtol, ctl.atol,
                          method=method)
        self.st.start(0.0, y0, h0=0.0, f0=f0)
        self.st.fun.nfev += 1  # f0, as the compiled path counts it

    @property
    def t(self) -> float:
        return float(self.st.t)

    @property
    def phase(self) -> str:
        return "implicit" if self.st.phase == STIFF else "explicit"

    def counts(self) -> dict:
        st = self.st
        return dict(nfev=int(st.nfev), n_accept=int(st.n_accept), n_reject=int(st.n_reject),
                    njev=int(st.njev), alpha_switch=float(st.t_switch))

    def advance(self, n_steps: int) -> int:
        self.st.chunk_steps = int(n_steps)
        return self.st.step_chunk()

    def last_good(self):
        r = new_run(self.st.y, self.st.f0, self.st.t, self.st.h)
        r.counters[N_ACCEPT] = self.st.n_accept
        r.counters[I_OUT] = self.st.i_out
        return r

    def get_state(self) -> dict:
        return {f"stiff_{k}": v for k, v in self.st.get_state().items()}

    def set_state(self, arrays) -> None:
        self.st.set_state({k[len("stiff_"):]: arrays[k] for k in arrays
                           if k.startswith("stiff_")})
