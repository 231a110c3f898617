r"""Zhang et al.'s (2024) pruning limit in the limit N → ∞ and the kept fraction that one-shot
pruning actually needs (docs/theory.md §10, "The pruning limit of Z24 in the thermodynamic
limit").

The pruning limit of Zhang et al. (2024, "How sparse can we prune a deep network: a fundamental
limit perspective"), :math:`\rho \approx 1 - \frac1D\sum_i r_i^2/(\|w^r\|^2 + r_i^2)`,
:math:`r_i^2 = 2\varepsilon/\lambda_i`, then has the limit (:func:`pruning_limit`)

.. math::

    \rho = 1 - \frac1K \sum_{a=1}^K \frac{\varepsilon/\mu_a}{m_r(\rho) + \varepsilon/\mu_a},
    \qquad m_r(\rho) = \|w^r\|^2/N = \sum_i E\big[w_i^2\, 1\{|w_i| < \tau(\rho)\}\big],

with :math:`w \sim N(0, Q)` the coordinate law of the student's rows and :math:`\tau(\rho)` the
global magnitude threshold that keeps a fraction :math:`\rho` of all first-layer weights.

Global magnitude pruning is the one edge rule of :mod:`odeprune.pruning.edge_rules`
(``magnitude_edge_global``): its threshold (:func:`global_threshold`), the mass it removes
(:func:`removed_mass`) and its map (through :func:`odeprune.prune`) are computed there.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ..errors import OdepruneAccuracyWarning
from ..ode.dynamics import integrate
from ..pruning import prune
from ..pruning.edge_rules import MagnitudeEdgeGlobal, UnitLaws
from ..state import OrderParams, as_generator
from .derivatives import _activation_name, _check_state, gradient
from .spectrum import hessian_spectrum

__all__ = ["PruningLimit", "ActualLimit", "pruning_limit", "actual_limit", "global_threshold",
           "removed_mass", "smallest_kept_fraction", "GRAD_TOL", "CURVATURE_RTOL"]

#: Default tolerance on the gradient norm (``Gradient.norm``, natural units) in
#: :func:`pruning_limit`. Gradient flow approaches the degenerate minima of K > M students by a
#: power law (e.g. M=2, K=6, v*=4: 3e-4 at alpha=1e3, 4e-8 at 3e4), while random states and
#: saddles sit at 1e-2..10.
GRAD_TOL = 1e-4
#: Default tolerance on negative curvature, relative to the largest |N lambda| (unconverged
#: gradient-flow states near a degenerate minimum show negative outliers of the order of the
#: gradient norm).
CURVATURE_RTOL = 1e-6


@dataclass(frozen=True)
class PruningLimit:
    r"""The limit of Zhang et al.'s pruning-ratio formula at a minimum (see :func:`pruning_limit`).

    Attributes
    ----------
    eps : float
        Loss tolerance: :math:`\epsilon_g \le \epsilon_g^* + \varepsilon`.
    rho : float
        Predicted smallest kept fraction (their formula, = their lower bound), fixed point of
        :math:`\rho = 1 - \frac1K\sum_a \frac{\varepsilon/\mu_a}{m_r(\rho) + \varepsilon/\mu_a}`.
    rho_upper : float
        Their upper bound with the eigenvalues of the Hessian restricted to the removed
        coordinates, evaluated with ``k`` and :math:`\|w^r\|` at ``rho`` (Monte Carlo over the
        coordinates, standard error ``rho_upper_se``); NaN when ``upper_samples=0``.
    rho_upper_se : float
    rho_trace : float
        Their sharpness bound :math:`1 - \frac{2\varepsilon D}{\|w^r\|^2\mathrm{Tr}H + 2\varepsilon D}`
        at ``rho`` (limit: :math:`1 - \frac{K\varepsilon}{m_r\,\mathrm{tr}G + K\varepsilon}`),
        an upper bound on ``rho`` (Jensen).
    removed_mass : float
        :math:`m_r(\rho) = \|w^r\|^2/N`.
    threshold : float
        Global magnitude threshold :math:`\tau(\rho)` on :math:`|w_{ij}|`.
    mu : ndarray, shape (K,)
        Eigenvalues of G (half the bulk).
    eg_star : float
    gradient_norm : float
    min_curvature : float
        Smallest first-layer eigenvalue (natural units).
    """

    eps: float
    rho: float
    rho_upper: float
    rho_upper_se: float
    rho_trace: float
    removed_mass: float
    threshold: float
    mu: np.ndarray
    eg_star: float
    gradient_norm: float
    min_curvature: float


@dataclass(frozen=True)
class ActualLimit:
    r"""Smallest kept fraction at which one-shot global magnitude pruning keeps
    :math:`\epsilon_g \le \epsilon_g^* + \varepsilon` (see :func:`actual_limit`).

    Attributes
    ----------
    eps : float
    c : float
        The kept fraction (to ``xtol``).
    eg : float
        :math:`\epsilon_g` of the pruned network at ``c``.
    eg_star : float
    reweight : str
        The second-layer treatment, or ``"retrained(alpha=...)"``.
    evaluations : int
        Pruned errors computed so far (cumulative over the ``eps`` of one call).
    """

    eps: float
    c: float
    eg: float
    eg_star: float
    reweight: str
    evaluations: int



# ---------------------------------------------------------------------------------------------
# global magnitude pruning: the edge rule's threshold and the mass it removes
# ---------------------------------------------------------------------------------------------
class _GlobalMagnitude:
    """Global magnitude pruning of rows ``w ~ N(0, Q)``: the edge rule
    :class:`~odeprune.pruning.edge_rules.MagnitudeEdgeGlobal` calibrated to keep each ``rho``
    asked for, on laws built once (a cache for the calls of one fixed-point search)."""

    def __init__(self, Q: np.ndarray):
        Q = np.asarray(Q, dtype=float)
        self.laws = UnitLaws.dense(Q, Q.shape[0], 0)
        self.d = np.clip(np.diag(Q), 0, None)
        self.rules: dict = {}

    def rule(self, rho: float) -> MagnitudeEdgeGlobal:
        rho = float(rho)
        if rho not in self.rules:
            rule = MagnitudeEdgeGlobal()
            rule.calibrate(self.laws, rho)
            self.rules[rho] = rule
        return self.rules[rho]

    def threshold(self, rho: float) -> float:
        return float(self.rule(rho).tau[0])

    def removed_mass(self, rho: float) -> float:
        d, rule = self.d, self.rule(rho)
        kept = sum(rule.kept_second_moment(i, math.sqrt(d[i])) for i in range(d.size))
        return float(max(d.sum() - kept, 0.0))


def global_threshold(Q: np.ndarray, rho: float) -> float:
    r"""Threshold :math:`\tau` with :math:`\frac1K\sum_i P(|w_i| > \tau) = \rho`,
    :math:`w_i \sim N(0, Q_{ii})` (global magnitude pruning keeping a fraction ``rho``; the
    calibration of :class:`~odeprune.pruning.edge_rules.MagnitudeEdgeGlobal`)."""
    return _GlobalMagnitude(Q).threshold(rho)


def removed_mass(Q: np.ndarray, rho: float) -> float:
    r""":math:`m_r(\rho) = \|w^r\|^2/N = \sum_i E[w_i^2 1\{|w_i| < \tau(\rho)\}]`,
    :math:`w_i \sim N(0, Q_{ii})`, for global magnitude pruning keeping a fraction ``rho``: the
    trace of ``Q`` minus the kept second moments of the edge rule."""
    return _GlobalMagnitude(Q).removed_mass(rho)


def _terms(mu: np.ndarray, eps: float, m: float) -> np.ndarray:
    r""":math:`r^2/(\|w^r\|^2 + r^2)` per bulk value in the limit: ``eps / (m mu + eps)``
    (1 for flat directions, mu = 0)."""
    mu = np.clip(mu, 0.0, None)
    return eps / (m * mu + eps)


def pruning_limit(state: OrderParams, eps: float, activation: str | None = None,
                  grad_tol: float = GRAD_TOL, curvature_rtol: float = CURVATURE_RTOL,
                  check: str = "raise", upper_samples: int = 20_000,
                  seed: int | np.random.Generator | None = 0) -> PruningLimit:
    r"""The limit of Zhang et al.'s (2024) pruning-ratio formula at a minimum.

    Parameters
    ----------
    state : OrderParams
        A minimum of :math:`\epsilon_g` (e.g. the end of
        ``integrate(state, eta, alpha_max, gradient_flow=True)``).
    eps : float
        Loss tolerance :math:`\varepsilon > 0`: keep :math:`\epsilon_g \le \epsilon_g^* + \varepsilon`.
    activation : str, optional
        Default: ``state.activation`` when present, else ``"erf"``.
    grad_tol : float
        Largest accepted :math:`\|\nabla\epsilon_g\|` (``Gradient.norm``, natural units).
    curvature_rtol : float
        Largest accepted negative eigenvalue of the first-layer Hessian, relative to its largest
        :math:`|N\lambda|`.
    check : {"raise", "warn", "ignore"}
        What to do at a state that is not a minimum (gradient above ``grad_tol`` or negative
        curvature): ``ValueError``, ``RuntimeWarning``, or nothing.
    upper_samples : int
        Coordinates for the Monte Carlo of the upper bound (0: skip it).
    seed : int or Generator
        For the upper-bound Monte Carlo.

    Returns
    -------
    PruningLimit

    Notes
    -----
    With :math:`D = KN` first-layer weights, bulk eigenvalues :math:`\lambda = 2\mu_a/N` (each a
    fraction :math:`1/K` of all eigenvalues; the ``K r`` outliers have weight 0 in the limit),
    :math:`r^2 = 2\varepsilon/\lambda = N\varepsilon/\mu_a` and :math:`\|w^r\|^2 = N m_r(\rho)`:

    .. math:: \rho = 1 - \frac1K\sum_a\frac{\varepsilon}{m_r(\rho)\mu_a + \varepsilon}.

    The right-hand side decreases in :math:`\rho` (less removed mass), so the fixed point is
    unique; it is found by Brent's method. Flat directions (:math:`\mu_a = 0`) contribute 1.

    Upper bound (their Theorem, second inequality, as we read it): the sum runs over the
    :math:`D-k` eigenvalues of the Hessian restricted to the removed coordinates. In the limit
    that restriction is block-diagonal over input coordinates ``j``: :math:`2G[s_j, s_j]` with
    :math:`s_j = \{i: |w_{ij}| < \tau\}` (outliers again weight 0), so
    :math:`\rho_U = 1 - \frac1K E_j\big[\sum_{\nu\in\mathrm{eig}\,G[s_j,s_j]}
    \frac{\varepsilon}{m_r\nu + \varepsilon}\big]`, a Monte Carlo over :math:`w_j\sim N(0,Q)`.
    By Cauchy interlacing :math:`\rho_U \ge \rho`.
    """
    _check_state(state, dense_only=True)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(eps)) or eps <= 0:
        raise ValueError(f"eps={eps!r} must be a positive finite number (the loss tolerance)")
    if check not in ("raise", "warn", "ignore"):
        raise ValueError(f"check={check!r} must be 'raise', 'warn' or 'ignore'")
    eps = float(eps)
    name = _activation_name(state, activation)
    grad = gradient(state, name)
    spec = hessian_spectrum(state, None, name)
    lam_min = float(spec.eigenvalues.min())
    scale = float(np.max(np.abs(spec.eigenvalues))) or 1.0
    problems = []
    if grad.norm > grad_tol:
        problems.append(f"gradient norm {grad.norm:.3g} > grad_tol={grad_tol:g}")
    if lam_min < -curvature_rtol * scale:
        problems.append(f"negative curvature (smallest Hessian eigenvalue N*lambda = "
                        f"{lam_min:.3g})")
    if problems and check != "ignore":
        msg = ("pruning_limit needs a minimum of eps_g, but this state has "
               + " and ".join(problems) + "; converge it first with "
               "odeprune.integrate(state, eta, alpha_max, gradient_flow=True) "
               "(or pass check='warn')")
        if check == "raise":
            raise ValueError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    mu = 0.5 * spec.bulk
    Q = np.array(state.Q, float)
    magnitude = _GlobalMagnitude(Q)   # the laws once, each rho's calibration once

    def excess(rho):
        return rho - (1.0 - float(np.mean(_terms(mu, eps, magnitude.removed_mass(rho)))))

    lo, hi = 0.0, 1.0
    if excess(lo) >= 0:
        rho = 0.0
    else:
        rho = optimize.brentq(excess, lo, hi, xtol=1e-13, rtol=1e-12)
    m = magnitude.removed_mass(rho)
    tau = magnitude.threshold(rho)
    trG = float(np.sum(mu))
    K = state.K
    rho_trace = 1.0 - K * eps / (m * max(trG, 0.0) + K * eps)
    up, up_se = math.nan, math.nan
    if upper_samples:
        up, up_se = _upper_bound(Q, spec.G, eps, m, tau, int(upper_samples), as_generator(seed))
    return PruningLimit(eps=eps, rho=float(rho), rho_upper=up, rho_upper_se=up_se,
                        rho_trace=float(rho_trace), removed_mass=m, threshold=float(tau), mu=mu,
                        eg_star=grad.eg, gradient_norm=grad.norm, min_curvature=lam_min)


def _removed_terms(removed: np.ndarray, G: np.ndarray, eps: float, m: float):
    """Per distinct row of ``removed`` (n, K) bool: the sum of :func:`_terms` over the
    eigenvalues of ``G`` restricted to its removed units (0 when none); and the index of each
    row's pattern, shape (n,)."""
    patterns, inverse = np.unique(removed, axis=0, return_inverse=True)
    per_pattern = np.zeros(patterns.shape[0])
    for j, pat in enumerate(patterns):
        if pat.any():
            per_pattern[j] = _terms(np.linalg.eigvalsh(G[np.ix_(pat, pat)]), eps, m).sum()
    return per_pattern, np.asarray(inverse).ravel()


def _upper_bound(Q, G, eps, m, tau, n, rng):
    """Monte Carlo of the upper bound: per sampled coordinate, the eigenvalues of ``G[s, s]`` on
    its removed rows ``s`` (computed once per distinct pattern)."""
    K = Q.shape[0]
    lam, U = np.linalg.eigh(Q)
    A = U * np.sqrt(np.clip(lam, 0, None))
    w = rng.standard_normal((n, K)) @ A.T
    per_pattern, inverse = _removed_terms(np.abs(w) < tau, G, eps, m)
    t = per_pattern[inverse] / K
    return float(1.0 - t.mean()), float(t.std(ddof=1) / math.sqrt(t.size))


def actual_limit(state: OrderParams, eps, reweight: str = "refit",
                 activation: str | None = None, xtol: float = 1e-3, grid: int = 11,
                 method: str = "magnitude_edge_global", retrain_alpha: float | None = None,
                 retrain_eta: float = 1.0, seed: int = 0):
    r"""Smallest kept fraction ``c`` at which one-shot edge pruning keeps
    :math:`\epsilon_g \le \epsilon_g^* + \varepsilon` (no retraining).

    Parameters
    ----------
    state : OrderParams
    eps : float or array_like of float
        Tolerance :math:`\varepsilon > 0`; :math:`\epsilon_g^*` is the unpruned error. Several
        values share the pruned errors already computed.
    reweight : {"refit", "none", "rescale", "rescale_rows"}
        Second-layer treatment after pruning (``"refit"``: the best second layer for the pruned
        first layer), passed to :func:`odeprune.prune`.
    activation : str, optional
    xtol : float
        Bracket width on ``c`` at which the bisection stops.
    grid : int
        Points of the coarse scan of ``c`` in [0, 1]. The bracket is taken below the smallest
        grid point above which every grid point meets the tolerance, so ``c`` is the smallest
        kept fraction with :math:`\epsilon_g(c') \le \epsilon_g^* + \varepsilon` for every grid
        point ``c' >= c`` (the pruned error need not be monotone in ``c``).
    method : str
        Edge method of :func:`odeprune.prune` (default global magnitude pruning).
    retrain_alpha : float, optional
        Retrain the pruned network before measuring: the masked network
        (``prune(...).sparse_state``, docs/theory.md §8; exact classes, so ``K <= 12``) is
        integrated by gradient flow (second layer trained too) for ``retrain_alpha`` at learning
        rate ``retrain_eta``, and its final :math:`\epsilon_g` is compared with
        :math:`\epsilon_g^* + \varepsilon`. ``reweight`` is then ignored (retraining moves
        ``v``). The per-class state is a coordinate Monte Carlo: one ``seed`` for every ``c``
        (common random numbers), so the bisection sees a smooth function; its standard error is
        that of ``PruneResult.sparse_state_se``.
    retrain_eta : float
    seed : int
        Seed of the per-class Monte Carlo (with ``retrain_alpha``).

    Returns
    -------
    ActualLimit or list of ActualLimit
        One per ``eps`` (a list when ``eps`` is an array). ``c`` is the upper end of the final
        bracket, where the tolerance holds.
    """
    _check_state(state, dense_only=True)
    eps_arr = np.atleast_1d(np.asarray(eps, dtype=float))
    if eps_arr.ndim != 1 or eps_arr.size == 0 or not np.all(np.isfinite(eps_arr)) \
            or np.any(eps_arr <= 0):
        raise ValueError(f"eps={eps!r} must be positive finite number(s) (the loss tolerance)")
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid={grid!r} must be an integer >= 2")
    if not (0 < xtol < 1):
        raise ValueError(f"xtol={xtol!r} must be in (0, 1)")
    name = _activation_name(state, activation)
    eg_star = float(state.eg(name))
    memo: dict = {}

    def pruned(c, **options):
        try:
            return prune(state, method, c=c, activation=name, **options)
        except ValueError as err:
            raise ValueError(f"actual_limit: prune(state, {method!r}, c={c:.6g}) failed: "
                             f"{err}") from err

    if retrain_alpha is not None:
        if not (math.isfinite(retrain_alpha) and retrain_alpha > 0):
            raise ValueError(f"retrain_alpha={retrain_alpha!r} must be a positive time")

        def retrained(c):
            sparse = pruned(c, seed=seed).sparse_state
            with warnings.catch_warnings():  # eps >= 1e-3 here: tiny eps_g digits do not matter
                warnings.simplefilter("ignore", OdepruneAccuracyWarning)
                curve = integrate(sparse, retrain_eta, float(retrain_alpha), gradient_flow=True,
                                  save_at=[0.0, float(retrain_alpha)])
            # the recorded eps_g of the summed state (reading .final would re-validate every
            # class, and tiny classes can drift past the PSD tolerance by rounding)
            return float(curve.eg[-1])

    def eg_at(c):
        c = float(c)
        if c not in memo:
            if retrain_alpha is not None:
                memo[c] = retrained(c) if c > 0 else pruned(0.0).eg_mean
            else:
                memo[c] = pruned(c, reweight=reweight).eg_mean
        return memo[c]

    label = reweight if retrain_alpha is None else f"retrained(alpha={float(retrain_alpha):g})"
    for c in np.linspace(0.0, 1.0, int(grid)):   # the grid first: shared by every eps
        eg_at(c)
    out = []
    for e in eps_arr:
        target = eg_star + float(e)
        if not eg_at(1.0) <= target:
            raise ValueError(f"even c=1 misses eg* + eps with reweight={reweight!r} "
                             f"(eg={eg_at(1.0):.6g} > {target:.6g})")
        c = smallest_kept_fraction(eg_at, target, int(grid), xtol)
        out.append(ActualLimit(eps=float(e), c=c, eg=eg_at(c), eg_star=eg_star,
                               reweight=label, evaluations=len(memo)))
    return out if np.ndim(eps) else out[0]


def smallest_kept_fraction(eg_at, target: float, grid: int, xtol: float) -> float:
    """The smallest kept fraction ``c`` (to ``xtol``) with ``eg_at(c') <= target`` at every
    point ``c' >= c`` of the grid ``linspace(0, 1, grid)``: bisection in the grid interval below
    the smallest such grid point (0 when every grid point meets the target). The pruned error
    need not be monotone in ``c``; ``eg_at`` should memoise."""
    cs = np.linspace(0.0, 1.0, grid)
    ok = [eg_at(float(c)) <= target for c in cs]
    j = len(cs) - 1
    while j > 0 and ok[j - 1]:
        j -= 1
    if j == 0:
        return 0.0
    lo, hi = float(cs[j - 1]), float(cs[j])
    while hi - lo > xtol:
        mid = 0.5 * (lo + hi)
        if eg_at(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi

