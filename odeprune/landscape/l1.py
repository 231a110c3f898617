r"""L1-trained minima: the coordinate law trained with an L1 penalty (N → ∞) and its finite-N
counterpart, with a stationarity check (docs/theory.md §11, docs/landscape.md §5).

The objective is :math:`F = \epsilon_g + \frac{\lambda}{N}\|W\|_1` (penalty λ|w| per first-layer
weight, the convention of ``simulate(l1=)`` and ``integrate_law(l1=)``: the proximal step moves a
weight by :math:`\eta\lambda` per unit of α). In natural units the gradient of ε_g at coordinate
``j`` is :math:`g_j = N\nabla_{w_{\cdot j}}\epsilon_g = 2Gw_j + H_Rw^*_j` (docs/theory.md §10),
and a stationary point of F satisfies the KKT conditions
:math:`g_{ij} + \lambda\,\mathrm{sign}(w_{ij}) = 0` where :math:`w_{ij} \ne 0`,
:math:`|g_{ij}| \le \lambda` where :math:`w_{ij} = 0`, and :math:`\partial\epsilon_g/\partial v = 0`.
:func:`l1_residual` is the root mean square over the weights of the minimal-norm subgradient
(together with :math:`\|\partial\epsilon_g/\partial v\|`); with ``l1 = 0`` it is
``landscape.gradient(state).norm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._stats import sem
from .._validate import check_int, check_real
from ..coords import CoordinateCurve, CoordinateLaw, integrate_law
from ..options import PARTICLE_DT, Dynamics, gather
from ..sim import SimulationResult, simulate
from ..state import OrderParams
from .derivatives import gradient

__all__ = ["L1Minimum", "HISTOGRAM_THRESHOLDS", "L1_RULE", "l1_minimum", "l1_minimum_finite",
           "l1_residual", "realise_weights"]

#: thresholds of the coordinate histogram reported and checked for stationarity
HISTOGRAM_THRESHOLDS = (0.01, 0.05, 0.2)


def _check_l1(l1: Any) -> float:
    if isinstance(l1, (bool, np.bool_)) or not isinstance(l1, (int, float, np.integer,
                                                                np.floating)):
        raise ValueError(f"l1={l1!r} must be a real number >= 0 (the L1 strength)")
    if not math.isfinite(float(l1)) or l1 < 0:
        raise ValueError(f"l1={l1!r} must be >= 0 and finite (the L1 strength lambda)")
    return float(l1)


def l1_residual(law: CoordinateLaw, l1: float) -> np.ndarray:
    r"""KKT residual of :math:`\epsilon_g + \frac{\lambda}{N}\|W\|_1` per replica, shape (R,).

    .. math:: s_{ij} = \begin{cases} g_{ij} + \lambda\,\mathrm{sign}\,w_{ij} & w_{ij}\ne0\\
              \max(|g_{ij}| - \lambda, 0) & w_{ij} = 0\end{cases},\qquad
              \mathrm{res} = \Big(\sum_j \omega_j\sum_i s_{ij}^2
              + \|\partial\epsilon_g/\partial v\|^2\Big)^{1/2}

    over the kept weights (``law.mask``), ``ω_j`` the particle weights; ``g_j = 2Gw_j + H_Rw^*_j``
    with ``G, H_R`` of the replica's order parameters (natural units: N times the per-weight
    gradient). Zero exactly at a stationary point; with ``l1 = 0`` it equals
    ``gradient(replica_state).norm``.
    """
    if not isinstance(law, CoordinateLaw):
        raise ValueError(f"expected a CoordinateLaw, got {type(law).__name__}")
    l1 = _check_l1(l1)
    out = np.empty(law.replicas)
    for r in range(law.replicas):
        grad = gradient(law.replica_state(r))
        w = law.w[r]
        g = 2.0 * w @ grad.dQ.T + law.w_star[r] @ grad.dR.T
        s = np.where(w != 0, g + l1 * np.sign(w), np.maximum(np.abs(g) - l1, 0.0))
        s = np.where(law.mask[r], s, 0.0)
        sq = float(np.sum(law.weights[r][:, None] * s * s)) + float(grad.dv @ grad.dv)
        out[r] = math.sqrt(max(sq, 0.0))
    return out


@dataclass(frozen=True, eq=False)
class L1Minimum:
    r"""A network trained with an L1 penalty until stationary (:func:`l1_minimum`,
    :func:`l1_minimum_finite`).

    Attributes
    ----------
    law : CoordinateLaw
        The trained law: N → ∞ particles in independent replicas, or (finite N) one replica per
        seed whose particles are the N real coordinates.
    l1, eta : float
    gradient_flow : bool
    alpha : float
        Training time.
    N : int or None
        ``None`` in the limit.
    eg, eg_se : float
        ε_g (mean over replicas/seeds) and its standard error.
    eg_drift, eg_drift_se : float
        Mean change of ε_g over the last ``window`` of training and its standard error.
    histogram : ndarray, shape (3,)
        Fraction of kept weights with ``|w|`` below 0.01, 0.05, 0.2 (:data:`HISTOGRAM_THRESHOLDS`).
    histogram_drift : float
        Largest change of ``histogram`` over the last window (NaN at finite N: the run keeps the
        final weights only).
    velocity : float
        Root-mean-square change of the particles over the last window relative to their rms size
        (gradient flow only; NaN otherwise).
    residual : ndarray, shape (R,)
        :func:`l1_residual` per replica/seed.
    tol, residual_tol : float
    window : float
    stationary : bool
    message : str
        Which criteria failed ("" when stationary).
    curve : CoordinateCurve or None
        The limit's learning curve (None at finite N).
    """

    law: CoordinateLaw
    l1: float
    eta: float
    gradient_flow: bool
    alpha: float
    N: int | None
    eg: float
    eg_se: float
    eg_drift: float
    eg_drift_se: float
    histogram: np.ndarray
    histogram_drift: float
    velocity: float
    residual: np.ndarray
    tol: float
    residual_tol: float
    window: float
    stationary: bool
    message: str
    curve: CoordinateCurve | None = None
    metadata: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise ``ValueError`` (one line) unless stationary."""
        if not self.stationary:
            raise ValueError(f"not an L1 minimum: {self.message}; train longer "
                             f"(alpha_max) or with a smaller dt")


def _stationarity(eg0, eg1, hist0, hist1, velocity, residual, tol, residual_tol,
                  gradient_flow):
    d = np.asarray(eg1) - np.asarray(eg0)
    drift = float(d.mean())
    drift_se = float(sem(d)) if d.size > 1 else 0.0
    eg = float(np.mean(eg1))
    problems = []
    if abs(drift) > tol * eg + 3.0 * drift_se:
        problems.append(f"eps_g moved by {drift:.3g} (> {tol:g} eps_g + 3 se) over the last "
                        "window")
    hdrift = float(np.max(np.abs(hist1 - hist0))) if hist0 is not None else math.nan
    if hist0 is not None and hdrift > tol:
        problems.append(f"the coordinate histogram moved by {hdrift:.3g} (> {tol:g})")
    if gradient_flow:
        if velocity > tol:
            problems.append(f"the particles moved by {velocity:.3g} of their size (> {tol:g})")
        if float(np.max(residual)) > residual_tol:
            problems.append(f"KKT residual {float(np.max(residual)):.3g} > "
                            f"residual_tol={residual_tol:g}")
    return drift, drift_se, hdrift, problems


#: the learning rule of :func:`l1_minimum` where it differs from the table's: gradient flow, with
#: eta = 1 (alpha is then the gradient-flow time)
L1_RULE = dict(eta=1.0, gradient_flow=True)


def l1_minimum(start: OrderParams | CoordinateLaw, l1: float, *, alpha_max: float = 1000.0,
               window: float | None = None, S: int = 4000, replicas: int = 4,
               dt: float = PARTICLE_DT, tol: float = 1e-2, residual_tol: float | None = None,
               seed: Any = 0, **options) -> L1Minimum:
    r"""Train the coordinate law with the L1 penalty λ|w| per first-layer weight (N → ∞, exact
    up to the particles' Monte-Carlo error and the step ``dt``) and check that it is stationary.

    Parameters
    ----------
    start : OrderParams or CoordinateLaw
        Initial network (an ``OrderParams`` is sampled as ``S`` moment-matched particles in
        ``replicas`` replicas).
    l1 : float
        λ >= 0.
    alpha_max : float
        Training time; the last ``window`` (default ``alpha_max / 10``) is the stationarity check.
    S, replicas : int
    dt : float
        Step of the particle scheme (stochastic Heun with the proximal step split around it).
    tol : float
        Stationarity: over the last window ε_g changes by at most ``tol`` ε_g (+ 3 standard
        errors), the histogram (fractions below 0.01, 0.05, 0.2) by at most ``tol``, and (gradient
        flow) the particles by at most ``tol`` of their rms size.
    residual_tol : float, optional
        Gradient flow: largest accepted :func:`l1_residual`. Default ``0.5 λ + 1e-3``: the fixed
        point of the discrete scheme carries a residual of order ``dt`` (the Heun average of the
        drift at w and at the predictor; ≈ 0.3 λ at dt = 0.05 for M=2, K=6, v* = 4, halving with
        dt), while a state still training has a residual of order 1.
    seed : int or Generator
    options
        The learning rule (:class:`~odeprune.options.Dynamics`, flat or ``dynamics=``; its
        ``l1`` is ``l1``): ``eta`` (default 1: gradient flow's α is then its time),
        ``gradient_flow`` (default True: exact zeros; False: online SGD, the particle SDE with
        its noise), ``sigma`` (label noise, SGD), ... (:data:`L1_RULE`).

    Returns
    -------
    L1Minimum
        ``stationary`` says whether the checks passed (see :meth:`L1Minimum.check`).
    """
    l1 = _check_l1(l1)
    kw = dict(options) if "dynamics" in options else dict(L1_RULE, **options, l1=l1)
    (dyn,) = gather("l1_minimum", kw, (Dynamics,))
    if dyn.l1 != l1:
        raise ValueError(f"l1={l1!r} differs from the l1={dyn.l1!r} of dynamics=")
    eta, gradient_flow = dyn.eta, dyn.gradient_flow
    alpha_max = check_real("alpha_max", alpha_max)
    tol = check_real("tol", tol)
    window = alpha_max / 10 if window is None else check_real("window", window)
    if window >= alpha_max:
        raise ValueError(f"window={window!r} must be shorter than alpha_max={alpha_max!r}")
    residual_tol = (0.5 * l1 + 1e-3) if residual_tol is None else check_real("residual_tol",
                                                                              residual_tol)
    if isinstance(start, OrderParams):
        law = CoordinateLaw.from_state(start, S=S, replicas=replicas, seed=seed)
    elif isinstance(start, CoordinateLaw):
        law = start
    else:
        raise ValueError(f"start must be an OrderParams or a CoordinateLaw, got "
                         f"{type(start).__name__}")
    ss = np.random.SeedSequence(seed if isinstance(seed, int) else None).spawn(2)
    common = dict(dynamics=dyn, dt=dt,
                  method="particles" if l1 > 0 or not gradient_flow else "auto")
    a0 = alpha_max - window
    grid0 = np.unique(np.concatenate([[0.0], np.geomspace(min(1.0, a0), a0, 16)]))
    first = integrate_law(law, None, a0, save_at=grid0, seed=np.random.default_rng(ss[0]),
                          **common)
    mid = first.final
    second = integrate_law(mid, None, window, save_at=[0.0, window],
                           seed=np.random.default_rng(ss[1]), **common)
    final = second.final
    th = HISTOGRAM_THRESHOLDS
    h0, h1 = mid.fraction_below(th), final.fraction_below(th)
    velocity = math.nan
    if gradient_flow:
        dw = np.sqrt(np.sum(final.weights[:, :, None] * (final.w - mid.w) ** 2, axis=(1, 2)))
        size = np.sqrt(np.sum(final.weights[:, :, None] * final.w ** 2, axis=(1, 2)))
        velocity = float(np.max(dw / np.maximum(size, 1e-300)))
    residual = l1_residual(final, l1)
    drift, drift_se, hdrift, problems = _stationarity(
        mid.eg_replicas(), final.eg_replicas(), h0, h1, velocity, residual, tol, residual_tol,
        gradient_flow)
    eg, eg_se = final.eg()
    curve = CoordinateCurve(
        np.concatenate([first.alpha, a0 + second.alpha[1:]]),
        np.concatenate([first.eg, second.eg[1:]]),
        np.concatenate([first.eg_se, second.eg_se[1:]]),
        np.concatenate([first.eg_replicas, second.eg_replicas[:, 1:]], axis=1),
        np.concatenate([first.Q, second.Q[1:]]), np.concatenate([first.R, second.R[1:]]),
        np.concatenate([first.v, second.v[1:]]), final, "particles",
        dict(first.metadata, alpha_max=alpha_max))
    return L1Minimum(law=final, l1=l1, eta=eta, gradient_flow=bool(gradient_flow),
                     alpha=alpha_max, N=None, eg=eg, eg_se=eg_se, eg_drift=drift,
                     eg_drift_se=drift_se, histogram=h1, histogram_drift=hdrift,
                     velocity=velocity, residual=residual, tol=tol, residual_tol=residual_tol,
                     window=window, stationary=not problems, message="; ".join(problems),
                     curve=curve, metadata=dict(S=law.S, replicas=law.replicas, dt=dt,
                                                seed=seed if isinstance(seed, int) else None))


def realise_weights(state: OrderParams, N: int, seed: Any = 0):
    r"""Finite weights whose order parameters are exactly ``state``'s:
    :math:`Z = \sqrt N\,B U^T` with :math:`BB^T = C` and ``U`` (N, L) a random orthonormal
    frame (seeded), so the coordinates are Gaussian with covariance C up to O(1/N).

    Returns
    -------
    w, w_star : ndarray, shapes (K, N), (M, N)
    """
    N = check_int("N", N, state.K + state.M)
    C = np.array(state.covariance(), dtype=float)
    lam, V = np.linalg.eigh(C)
    B = V * np.sqrt(np.clip(lam, 0, None))
    U, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((N, C.shape[0])))
    Z = math.sqrt(N) * B @ U.T
    return Z[:state.K], Z[state.K:]


def l1_minimum_finite(start: OrderParams, N: int, l1: float, *, eta: float = 0.5,
                      alpha_max: float = 100.0, seeds=(0, 1, 2, 3),
                      window: float | None = None, tol: float = 1e-2, sigma: float = 0.0,
                      activation: str | None = None) -> L1Minimum:
    r"""Online SGD with the L1 proximal step at finite N (``simulate(..., l1=)``), one run per
    seed, all from weights realised with exactly ``start``'s order parameters
    (:func:`realise_weights`, frame seeded by the seed; the seed also drives the SGD inputs).

    The result's ``law`` has one replica per seed (its N coordinates, weights 1/N), so
    ``law.eg()`` and everything computed per replica are a mean over seeds with its standard
    error. Stationarity: ε_g over the last ``window`` (default ``alpha_max/10``) moved by at most
    ``tol`` ε_g + 3 standard errors (the histogram drift is not available: NaN).
    """
    l1 = _check_l1(l1)
    eta = check_real("eta", eta)
    alpha_max = check_real("alpha_max", alpha_max)
    window = alpha_max / 10 if window is None else check_real("window", window)
    if window >= alpha_max:
        raise ValueError(f"window={window!r} must be shorter than alpha_max={alpha_max!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    act = activation or start.activation
    ws, wss, vs, eg0, eg1 = [], [], [], [], []
    for s in seeds:
        w, w_star = realise_weights(start, N, seed=s)
        sim = simulate(N, start.K, start.M, eta, alpha_max, save_at=[alpha_max - window],
                       v_star=np.array(start.v_star), activation=act, seed=s, n_test=0,
                       init=(w, w_star, np.array(start.v)), l1=l1, sigma=sigma,
                       progress=False)
        assert isinstance(sim, SimulationResult)
        j = int(np.argmin(np.abs(np.asarray(sim.alpha) - (alpha_max - window))))
        ws.append(sim.w)
        wss.append(sim.w_star)
        vs.append(np.asarray(sim.v[-1]))
        eg0.append(float(sim.eg[j]))
        eg1.append(float(sim.eg[-1]))
    R = len(seeds)
    law = CoordinateLaw(np.stack([w.T for w in ws]), np.stack([w.T for w in wss]),
                        np.ones((R, N, start.K), bool), np.full((R, N), 1.0 / N),
                        np.stack(vs), start.v_star, activation=act)
    residual = l1_residual(law, l1)
    drift, drift_se, hdrift, problems = _stationarity(eg0, eg1, None, None, math.nan, residual,
                                                      tol, math.inf, False)
    eg, eg_se = law.eg()
    return L1Minimum(law=law, l1=l1, eta=eta, gradient_flow=False, alpha=alpha_max, N=int(N),
                     eg=eg, eg_se=eg_se, eg_drift=drift, eg_drift_se=drift_se,
                     histogram=law.fraction_below(HISTOGRAM_THRESHOLDS), histogram_drift=hdrift,
                     velocity=math.nan, residual=residual, tol=tol, residual_tol=math.inf,
                     window=window, stationary=not problems, message="; ".join(problems),
                     metadata=dict(seeds=seeds))
