r"""Zhang et al.'s (2024) pruning-limit protocol, exactly in the limit N → ∞ and on real weights
(docs/landscape.md §5).

Their protocol (``QiaozheZhang/Global-One-shot-Pruning``: ``cal_rate.py``, ``utils.py``): train
with an L1 penalty; prune the trained weights once, globally by magnitude, with **no retraining
and no refit**; the "actual" limit is the smallest kept fraction whose performance is not worse
than the dense model's; the prediction is the Gaussian-width formula

.. math:: \rho = 1 - \frac1D\sum_i \frac{r_i^2}{\|w^r\|^2 + r_i^2},\qquad r_i^2 = \frac{2\varepsilon}{|\lambda_i|},

with the spectrum entering as :math:`|\lambda_i|`, a fraction :math:`f_0` of "flat" weights (a
Hessian row of norm ~0) added with :math:`r_i = \infty`, :math:`\|w^r\|` the norm of the weights
that global magnitude pruning removes at that ρ, and ε the standard deviation of the mini-batch
training loss (B = 128) at the trained model.

Here, per replica of a :class:`~odeprune.coords.CoordinateLaw` (or per seed of real networks):

- ε_g of the pruned network: global magnitude pruning of the particles (the rule of
  ``coords.decide(law, "magnitude_edge_global", ρ)``; exact for any law, no Gaussian
  assumption), second layer as trained;
- the actual limit: the smallest ρ with :math:`\epsilon_g(\rho') \le \epsilon_g^* + \varepsilon`
  for every grid point :math:`\rho' \ge \rho` (a scan, then bisection);
- ε free, and ε = the B-sample batch-loss spread :func:`batch_loss_sd`;
- the prediction with the exact population spectrum (bulk :math:`2\mu_a`, negative values as
  flat, as :func:`~odeprune.landscape.pruning_limit`), with :math:`|\mu_a|` (their use), and with
  :math:`|\mu_a|` plus their flat fraction (:func:`flat_fraction`); their upper bound (Hessian
  restricted to the removed coordinates, exact over the particles) and their trace bound; the
  removed norm from the particles themselves (:math:`m_r(\rho) = \|w^r\|^2/N`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special
from scipy.stats import qmc

from .._stats import sem
from .._validate import as_generator, check_int
from ..activations import get_activation
from ..coords import CoordinateLaw
from ..options import Option, Record, gather
from ..sim import SimulationEnsemble, SimulationResult
from ..state import OrderParams
from .l1 import L1Minimum, _check_l1, l1_residual
from .limits import _removed_terms, _terms, smallest_kept_fraction
from .spectrum import hessian_spectrum

__all__ = ["BatchSpread", "Protocol", "ProtocolLimit", "batch_loss_sd", "flat_fraction",
           "protocol_limit"]

#: the mini-batch size of Zhang et al.'s configurations
BATCH = 128
#: a tolerance of exactly 0 (a batch spread that vanishes with eps_g) enters the formula as this
_TINY = float(np.finfo(float).tiny)


# ---------------------------------------------------------------------------------------------
# their epsilon: the spread of the mini-batch loss
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSpread:
    r"""Standard deviation of the mean loss of B i.i.d. samples at a state (:func:`batch_loss_sd`).

    Attributes
    ----------
    sd, sd_se : float
        :math:`\sqrt{(E[\Delta^4]/4 - \bar\ell^2)/B}` and its quadrature standard error.
    B : int
    mean_loss : float
        :math:`\bar\ell = E[\Delta^2]/2 = \epsilon_g + \sigma^2/2` (exact).
    fourth_moment, fourth_moment_se : float
        :math:`E[\Delta^4]`.
    method : str
        ``"exact"`` (linear: Δ is Gaussian) or ``"qmc"`` (scrambled Sobol replicates).
    """

    sd: float
    sd_se: float
    B: int
    mean_loss: float
    fourth_moment: float
    fourth_moment_se: float
    method: str


def batch_loss_sd(state: OrderParams, B: int = BATCH, sigma: float = 0.0,
                  samples: int = 2 ** 14, replicates: int = 8, seed: Any = 0) -> BatchSpread:
    r"""Standard deviation of the B-sample mean of the per-sample loss :math:`\ell = \Delta^2/2`
    (Zhang et al.'s ε: the spread of the mini-batch training loss at the trained model).

    .. math:: \mathrm{sd}_B = \sqrt{\frac{E[\Delta^4]/4 - \bar\ell^{\,2}}{B}},\qquad
              \bar\ell = \epsilon_g + \sigma^2/2,\quad \Delta = \sum_c a_c g(z_c) - \sigma\zeta,
              \ z \sim N(0, C)

    Linear activation: Δ is Gaussian with variance :math:`2\bar\ell`, so
    :math:`E[\Delta^4] = 12\bar\ell^2` and :math:`\mathrm{sd}_B = \bar\ell\sqrt{2/B}` exactly
    (ε_g/8 at B = 128). Otherwise :math:`E[\Delta^4]` is a Gaussian integral over the rank-r
    span of the fields, computed by randomised quasi-Monte Carlo (``replicates`` independent
    scramblings of a Sobol set of ``samples`` points, rounded up to a power of 2) with its
    standard error. Exact at every N for Gaussian inputs (it depends on the order parameters
    only).

    Parameters
    ----------
    state : OrderParams
    B : int
        Mini-batch size (their 128).
    sigma : float
        Label noise.
    samples, replicates : int
    seed : int or Generator
    """
    if not isinstance(state, OrderParams):
        raise ValueError(f"state must be an OrderParams, got {type(state).__name__}")
    B = check_int("B", B, 1)
    if isinstance(sigma, bool) or not math.isfinite(float(sigma)) or sigma < 0:
        raise ValueError(f"sigma={sigma!r} must be >= 0 and finite")
    samples = check_int("samples", samples, 2)
    replicates = check_int("replicates", replicates, 2)
    act = get_activation(state.activation)
    mean_loss = float(state.eg()) + 0.5 * float(sigma) ** 2
    if act.name == "linear":
        e4 = 12.0 * mean_loss ** 2
        var = e4 / 4 - mean_loss ** 2
        return BatchSpread(sd=math.sqrt(max(var, 0.0) / B), sd_se=0.0, B=B, mean_loss=mean_loss,
                           fourth_moment=e4, fourth_moment_se=0.0, method="exact")
    C = np.array(state.covariance(), dtype=float)
    lam, U = np.linalg.eigh(C)
    keep = lam > 1e-12 * max(float(lam[-1]), 1e-300)
    A = U[:, keep] * np.sqrt(lam[keep])                   # (L, r), A A^T = C
    a = np.asarray(state.signed_weights(), dtype=float)
    d = A.shape[1] + (1 if sigma > 0 else 0)
    m = int(math.ceil(math.log2(samples)))
    rng = as_generator(seed)
    est = np.empty(replicates)
    for k in range(replicates):
        u = qmc.Sobol(d, scramble=True, seed=rng).random_base2(m)
        xi = special.ndtri(np.clip(u, 1e-16, 1 - 1e-16))
        z = xi[:, :A.shape[1]] @ A.T
        delta = act.g(z) @ a
        if sigma > 0:
            delta = delta - sigma * xi[:, -1]
        est[k] = float(np.mean(delta ** 4))
    e4, e4_se = float(est.mean()), float(sem(est))
    var = e4 / 4 - mean_loss ** 2
    sd = math.sqrt(max(var, 0.0) / B)
    sd_se = e4_se / (8.0 * B * sd) if sd > 0 else math.inf
    return BatchSpread(sd=sd, sd_se=sd_se, B=B, mean_loss=mean_loss, fourth_moment=e4,
                       fourth_moment_se=e4_se, method="qmc")


# ---------------------------------------------------------------------------------------------
# their flat-fraction correction
# ---------------------------------------------------------------------------------------------
def flat_fraction(state: OrderParams, rtol: float = 1e-6, spectrum=None) -> float:
    r"""Fraction of first-layer weights whose Hessian row vanishes (Zhang et al.'s "important
    eigenvalue" count: weights whose Hessian row has norm ~0 enter with :math:`r = \infty`).

    In the limit the row of :math:`w_{ij}` is, in natural units, :math:`2G_{i\cdot}` on the bulk
    plus the rows of unit ``i`` of the outlier matrix ``F`` (docs/theory.md §10); it vanishes for
    every ``j`` or for none. A unit is flat when the largest entry of both is at most ``rtol``
    times the largest over all units; the result is (flat units)/K.
    """
    spec = hessian_spectrum(state) if spectrum is None else spectrum
    G, F, r, K = spec.G, spec.outlier_matrix, spec.rank, state.K
    row = np.array([max(float(np.max(np.abs(2.0 * G[i]))),
                        float(np.max(np.abs(F[i * r:(i + 1) * r]))) if r else 0.0)
                    for i in range(K)])
    top = float(row.max())
    if top == 0:
        return 1.0
    return float(np.mean(row <= rtol * top))


# ---------------------------------------------------------------------------------------------
# one replica: global magnitude pruning of its particles
# ---------------------------------------------------------------------------------------------
class _Replica:
    """Global magnitude pruning of replica ``r`` of a dense law (the rule of
    ``coords.decide(..., "magnitude_edge_global", c)``), its removed mass and ε_g."""

    def __init__(self, law: CoordinateLaw, r: int):
        self.law, self.r = law, r
        self.state = law.replica_state(r)
        w = law.w[r]
        self.rows, self.cols = np.nonzero(law.mask[r])
        mag = np.abs(w[self.rows, self.cols])
        self.wts = law.weights[r][self.rows]
        self.order = np.argsort(-mag, kind="stable")          # largest first (as decide)
        self.cum = np.cumsum(self.wts[self.order])
        asc = self.order[::-1]
        self.asc = asc
        self.frac_removed = np.concatenate([[0.0], np.cumsum(self.wts[asc]) / self.cum[-1]])
        self.mass_removed = np.concatenate([[0.0], np.cumsum(self.wts[asc] * mag[asc] ** 2)])
        self.mag = mag
        self.sw = np.sqrt(law.weights[r])[:, None]
        Y = self.sw * law.w_star[r]
        T = Y.T @ Y
        self.T = 0.5 * (T + T.T)
        self.memo: dict = {}

    def kept(self, rho: float) -> np.ndarray:
        n = int(np.searchsorted(self.cum, rho * self.cum[-1] * (1 + 1e-12), side="right"))
        keep = np.zeros(self.mag.size, bool)
        keep[self.order[:n]] = True
        return keep

    def eg(self, rho: float) -> float:
        rho = float(rho)
        if rho not in self.memo:
            keep = self.kept(rho)
            wp = np.zeros_like(self.law.w[self.r])
            wp[self.rows[keep], self.cols[keep]] = self.law.w[self.r][self.rows[keep],
                                                                       self.cols[keep]]
            X = self.sw * wp
            Q = X.T @ X
            st = OrderParams(0.5 * (Q + Q.T), X.T @ (self.sw * self.law.w_star[self.r]),
                             self.T, self.law.v[self.r], self.law.v_star,
                             activation=self.law.activation)
            self.memo[rho] = float(st.eg())
        return self.memo[rho]

    def removed_mass(self, rho: float) -> float:
        """:math:`\\|w^r\\|^2/N` removed when keeping ``rho`` (linear between particles)."""
        return float(np.interp(1.0 - rho, self.frac_removed, self.mass_removed))

    def removed(self, rho: float) -> np.ndarray:
        """Boolean (S, K): the weights removed when keeping ``rho``."""
        n = int(np.searchsorted(self.frac_removed[1:], (1.0 - rho) * (1 - 1e-12), side="left"))
        out = np.zeros(self.law.w[self.r].shape, bool)
        idx = self.asc[:n]
        out[self.rows[idx], self.cols[idx]] = True
        return out

    def actual(self, eps: float, eg_star: float, grid: int, xtol: float) -> float:
        return smallest_kept_fraction(self.eg, eg_star + eps, grid, xtol)

    def predicted(self, mu: np.ndarray, eps: float, flat: float = 0.0) -> float:
        eps = max(eps, _TINY)       # eps -> 0: every curved direction counts as kept

        def excess(rho):
            t = float(np.mean(_terms(mu, eps, self.removed_mass(rho))))
            return rho - (1.0 - (flat + (1.0 - flat) * t))

        if excess(0.0) >= 0:
            return 0.0
        return float(optimize.brentq(excess, 0.0, 1.0, xtol=1e-12, rtol=1e-12))

    def upper(self, G: np.ndarray, eps: float, rho: float) -> float:
        """Their upper bound at ``rho``: per particle the eigenvalues of ``G[s_j, s_j]`` on its
        removed units ``s_j``, exact over the particles."""
        removed = self.removed(rho)
        m = self.removed_mass(rho)
        eps = max(eps, _TINY)
        per, inv = _removed_terms(removed, G, eps, m)
        wt = self.law.weights[self.r]
        return float(1.0 - np.sum(wt * per[inv]) / (wt.sum() * self.law.K))


# ---------------------------------------------------------------------------------------------
# the protocol
# ---------------------------------------------------------------------------------------------
_QUANTITIES = ("actual", "predicted", "predicted_abs", "predicted_theirs", "upper", "trace")


@dataclass(frozen=True, eq=False)
class ProtocolLimit:
    r"""Zhang et al.'s protocol at a trained network, per replica (or seed) and tolerance
    (:func:`protocol_limit`).

    Attributes
    ----------
    eps_labels : tuple of str
        One per column: the free tolerances, then ``"batch"`` (their ε, :func:`batch_loss_sd`).
    eps : ndarray, shape (R, n)
        Tolerance per replica and column.
    eg_star : ndarray, shape (R,)
        ε_g of the trained (dense) network.
    batch_sd, batch_sd_se : ndarray, shape (R,)
    nonzero : ndarray, shape (R,)
        Fraction of first-layer weights that are not exactly zero.
    flat : ndarray, shape (R,)
        Their flat fraction (:func:`flat_fraction`).
    actual : ndarray, shape (R, n)
        Smallest kept fraction with :math:`\epsilon_g \le \epsilon_g^* + \varepsilon` after one-shot
        global magnitude pruning, no refit (to ``xtol``).
    predicted, predicted_abs, predicted_theirs : ndarray, shape (R, n)
        The formula's fixed point with the exact spectrum (negative bulk values as flat), with
        :math:`|\mu_a|`, and with :math:`|\mu_a|` plus the flat fraction.
    upper, trace : ndarray, shape (R, n)
        Their upper bound and their trace bound at ``predicted``.
    removed_mass : ndarray, shape (R, n)
        :math:`\|w^r\|^2/N` at ``predicted``.
    N : int or None
    l1 : float
    """

    eps_labels: tuple
    eps: np.ndarray
    eg_star: np.ndarray
    batch_sd: np.ndarray
    batch_sd_se: np.ndarray
    nonzero: np.ndarray
    flat: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    predicted_abs: np.ndarray
    predicted_theirs: np.ndarray
    upper: np.ndarray
    trace: np.ndarray
    removed_mass: np.ndarray
    N: int | None
    l1: float
    metadata: dict = field(default_factory=dict)

    def mean(self, name: str) -> np.ndarray:
        """Mean over replicas (seeds) of a per-replica quantity."""
        return np.mean(getattr(self, name), axis=0)

    def se(self, name: str) -> np.ndarray:
        """Standard error over replicas (seeds); NaN with one."""
        x = np.asarray(getattr(self, name))
        return sem(x) if x.shape[0] > 1 else np.full(x.shape[1:], np.nan)

    def rows(self, **labels) -> list[dict]:
        """Long-format rows (one per tolerance and quantity: mean, se), with ``labels``."""
        out = []
        for j, lab in enumerate(self.eps_labels):
            for q in _QUANTITIES:
                out.append(dict(labels, eps_label=lab, eps=float(self.mean("eps")[j]),
                                quantity=q, value=float(self.mean(q)[j]),
                                se=float(self.se(q)[j])))
        return out


def _as_law(minimum, l1, S, replicas, seed):
    """``(law, l1, stationary, message)`` from the accepted inputs."""
    if isinstance(minimum, L1Minimum):
        if l1 is not None and _check_l1(l1) != minimum.l1:
            raise ValueError(f"l1={l1!r} differs from the minimum's l1={minimum.l1!r}")
        return minimum.law, minimum.l1, minimum.stationary, minimum.message, minimum.N
    l1 = 0.0 if l1 is None else _check_l1(l1)
    if isinstance(minimum, OrderParams):
        return CoordinateLaw.from_state(minimum, S=S, replicas=replicas, seed=seed), l1, \
            None, "", None
    if isinstance(minimum, SimulationResult):
        minimum = [minimum]
    if isinstance(minimum, (SimulationEnsemble, list, tuple)) and len(minimum) and all(
            isinstance(s, SimulationResult) for s in minimum):
        sims = list(minimum)
        N, K = sims[0].w.shape
        law = CoordinateLaw(np.stack([s.w.T for s in sims]), np.stack([s.w_star.T for s in sims]),
                            np.ones((len(sims), N, K), bool), np.full((len(sims), N), 1.0 / N),
                            np.stack([np.asarray(s.v[-1]) for s in sims]), sims[0].v_star,
                            activation=sims[0].metadata.get("activation", "erf"))
        return law, l1, None, "", int(N)
    if isinstance(minimum, CoordinateLaw):
        return minimum, l1, None, "", None
    raise ValueError(f"expected an L1Minimum, CoordinateLaw, OrderParams or simulation result, "
                     f"got {type(minimum).__name__}")


#: the settings of their protocol (checked by the table's vocabulary,
#: :class:`odeprune.options.Option`)
PROTOCOL_OPTIONS = {o.name: o for o in (
    Option("B", BATCH, "batch size of their epsilon (the spread of the B-sample batch loss)",
           "size"),
    Option("batch_samples", 2 ** 14, "quasi-Monte Carlo points per replicate of "
           "batch_loss_sd", "size"),
    Option("xtol", 1e-3, "bisection tolerance of the actual limit, in (0, 1)", "positive"),
    Option("grid", 21, "scan points of the actual limit (>= 2)", "size"),
    Option("flat_rtol", 1e-6, "relative row norm below which a Hessian row counts as flat "
           "(their correction)", "positive"),
)}


@dataclass(frozen=True)
class Protocol(Record):
    """The settings of Zhang et al.'s protocol in :func:`protocol_limit` (flat keywords or
    whole, ``protocol=``): their batch size ``B`` and the quadrature of its spread
    (``batch_samples``), the search of the actual limit (``xtol``, ``grid``), the flat rows
    (``flat_rtol``)."""

    B: int = PROTOCOL_OPTIONS["B"].default
    batch_samples: int = PROTOCOL_OPTIONS["batch_samples"].default
    xtol: float = PROTOCOL_OPTIONS["xtol"].default
    grid: int = PROTOCOL_OPTIONS["grid"].default
    flat_rtol: float = PROTOCOL_OPTIONS["flat_rtol"].default

    TABLE = PROTOCOL_OPTIONS

    def __post_init__(self):
        super().__post_init__()
        if self.xtol >= 1:
            raise ValueError(f"xtol={self.xtol!r} must be in (0, 1)")
        check_int("grid", self.grid, 2)
        check_int("batch_samples", self.batch_samples, 2)


def protocol_limit(minimum, eps=(1e-3, 1e-2, 1e-1), *, l1: float | None = None,
                   check: str = "raise", residual_tol: float | None = None, S: int = 20_000,
                   replicas: int = 8, seed: Any = 0, **protocol) -> ProtocolLimit:
    r"""Zhang et al.'s pruning-limit protocol at a trained network (module docstring).

    Parameters
    ----------
    minimum : L1Minimum, CoordinateLaw, OrderParams, SimulationResult or SimulationEnsemble
        The trained network: an :class:`~odeprune.landscape.L1Minimum` (its stationarity
        checks decide), a law (checked by :func:`~odeprune.landscape.l1_residual` with ``l1``),
        an unregularised minimum (``OrderParams``: Gaussian particles, ``S`` × ``replicas``),
        or finite-N runs (one replica per run, their N coordinates).
    eps : sequence of float
        Free tolerances; their batch-spread ε is always added as the last column.
    l1 : float, optional
        λ of the training (for the stationarity check of a law; default 0).
    check : {"raise", "warn", "ignore"}
        What to do when the input is not a minimum.
    residual_tol : float, optional
        Largest accepted KKT residual of a law (default ``0.5 λ + 1e-3``, as
        :func:`~odeprune.landscape.l1_minimum`).
    seed : int
        Particles of an ``OrderParams`` and the quadrature of the batch spread.
    protocol
        Their settings (:class:`Protocol`, flat or ``protocol=``): ``B`` (batch size of their
        ε, 128), ``batch_samples`` (quasi-Monte Carlo points per replicate of
        :func:`batch_loss_sd`), ``xtol`` and ``grid`` (bisection tolerance and scan points of
        the actual limit), ``flat_rtol`` (relative row norm below which a Hessian row counts
        as flat: their correction).

    Returns
    -------
    ProtocolLimit
    """
    if check not in ("raise", "warn", "ignore"):
        raise ValueError(f"check={check!r} must be 'raise', 'warn' or 'ignore'")
    eps_free = np.atleast_1d(np.asarray(eps, dtype=float))
    if eps_free.ndim != 1 or not np.all(np.isfinite(eps_free)) or np.any(eps_free <= 0):
        raise ValueError(f"eps={eps!r} must be positive finite tolerances")
    (settings,) = gather("protocol_limit", protocol, (Protocol,))
    B, xtol, grid, flat_rtol = settings.B, settings.xtol, settings.grid, settings.flat_rtol
    law, l1v, stationary, message, N = _as_law(minimum, l1, S, replicas, seed)
    if not np.all(law.mask):
        raise ValueError("protocol_limit takes a dense (unmasked) network: pruning is the "
                         "protocol's own step")
    problem = None
    if stationary is False:
        problem = f"not an L1 minimum: {message}"
    elif stationary is None:
        tol = (0.5 * l1v + 1e-3) if residual_tol is None else float(residual_tol)
        res = float(np.max(l1_residual(law, l1v)))
        if res > tol:
            problem = (f"not a minimum of eps_g + l1|w| (l1={l1v:g}): KKT residual {res:.3g} > "
                       f"{tol:g}; train it with landscape.l1_minimum(...)")
    if problem is not None and check != "ignore":
        if check == "raise":
            raise ValueError(problem + " (or pass check='warn')")
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    R, K = law.replicas, law.K
    n = eps_free.size + 1
    out = {q: np.zeros((R, n)) for q in _QUANTITIES + ("eps", "removed_mass")}
    eg_star, bsd, bsd_se, nonzero, flat = (np.zeros(R) for _ in range(5))
    seeds = np.random.SeedSequence(seed if isinstance(seed, int) else None).spawn(R)
    for r in range(R):
        rep = _Replica(law, r)
        st = rep.state
        eg_star[r] = float(st.eg())
        spread = batch_loss_sd(st, B=B, samples=settings.batch_samples,
                               seed=np.random.default_rng(seeds[r]))
        bsd[r], bsd_se[r] = spread.sd, spread.sd_se
        nonzero[r] = float(np.sum(law.weights[r][:, None] * (law.w[r] != 0)) / K)
        spec = hessian_spectrum(st)
        mu = 0.5 * spec.bulk
        flat[r] = flat_fraction(st, flat_rtol, spec)
        trG = max(float(np.sum(mu)), 0.0)
        for j, e in enumerate(list(eps_free) + [spread.sd]):
            e = float(e)
            out["eps"][r, j] = e
            out["actual"][r, j] = rep.actual(e, eg_star[r], grid, xtol)
            rho = rep.predicted(mu, e)
            out["predicted"][r, j] = rho
            out["predicted_abs"][r, j] = rep.predicted(np.abs(mu), e)
            out["predicted_theirs"][r, j] = rep.predicted(np.abs(mu), e, flat[r])
            m = rep.removed_mass(rho)
            out["removed_mass"][r, j] = m
            et = max(e, _TINY)
            out["trace"][r, j] = 1.0 - K * et / (m * trG + K * et)
            out["upper"][r, j] = rep.upper(spec.G, e, rho)
    labels = tuple(f"{e:g}" for e in eps_free) + ("batch",)
    return ProtocolLimit(eps_labels=labels, eg_star=eg_star, batch_sd=bsd, batch_sd_se=bsd_se,
                         nonzero=nonzero, flat=flat, N=N, l1=l1v,
                         metadata=dict(B=B, xtol=xtol, grid=grid, flat_rtol=flat_rtol,
                                       problem=problem or ""),
                         **out)
