r"""The per-class state of an edge-pruned network in the limit (``docs/theory.md`` §8-§9).

In the thermodynamic limit the coordinates ``j`` of the weights are i.i.d. Gaussian vectors, one
entry per student unit and teacher (and, for SNIP, per gradient coordinate), with the covariance of
the order parameters (Acharyya et al. 2021, Lemma 6, and the Gaussian-coordinate edge maps of
:mod:`odeprune.pruning.edge_rules`). An edge rule decides, per coordinate ``z``, which units keep
their weight: deterministically (magnitude, SNIP, given the calibrated thresholds) or with keep
probabilities ``p_i(z)`` (random, DPP-edge). The coordinates then fall into **classes** by their
mask pattern ``s`` and the masked network's per-class state (:class:`~odeprune.SparseOrderParams`)
is

.. math::

    f_s = E[P(s\mid z)],\quad Q^s_{ik} = E[P(s\mid z)\, m_i m_k w_i w_k],\quad
    R^s_{in} = E[P(s\mid z)\, m_i w_i w^*_n],\quad T^s = E[P(s\mid z)\, w^* w^{*T}],

with :math:`P(s\mid z) = \prod_i p_i^{m_i}(1-p_i)^{1-m_i}` (``m = s`` as 0/1). Summing over the
classes gives the edge map of today's :func:`odeprune.prune` (:meth:`SparseOrderParams.dense`).

Two entry points:

- :func:`sparse_state` -- the mask is decided by the weights it is applied to (pruning a trained or
  an initial network; ``prune(state, <edge rule>, c=...).sparse_state`` calls it).
- :func:`sparse_state_from_joint` -- the mask is decided by one set of weights and applied to
  another (lottery tickets: decide on the trained ``w(alpha_T)``, keep the rewound ``w(0)``). The
  coordinate law is the joint covariance of ``(w_values, w_decide, w*)``, from
  :meth:`odeprune.TwoTimeCurve.joint_covariance` or, per class of an already masked network,
  :meth:`odeprune.SparseLearningCurve.joint_covariance` (then the new mask refines the old classes:
  pattern = old pattern AND new keep decision; classes with equal patterns are merged by summing
  ``f, Q, R, T``, which is exact because the masked ODE is additive over classes with one pattern).

``random_edge`` on a dense state is exact (:meth:`SparseOrderParams.random_mask`). Everything else
is coordinate Monte Carlo, stratified over the input classes, in ``MC_BATCHES`` independent
moment-matched batches: the reported standard error of ``eg`` is the spread of the masked
network's error over the batches divided by ``sqrt(MC_BATCHES)`` (every covariance between the
class entries included). On a dense state the coordinates are drawn exactly as
:func:`~odeprune.pruning.edge_rules.edge_prune_map` draws them, so with the same integer seed the
class sums equal that map's Monte Carlo (SNIP) to rounding.

Calibration. On a dense state (or a dense joint law) the thresholds are the rule's own
(:meth:`EdgeRule.calibrate`, exactly as the edge maps). When a sparse state is refined, ``c`` is
the fraction of the weights *still kept* that stay (per row for the row rules, over all kept
weights for the global ones: pruned weights do not count), so the density becomes ``c`` times the
old one; the thresholds solve that equation on the mixture of the classes' Gaussian laws. SNIP
scores ``|w_ij g_ij|`` with the gradient of the deciding network (the masked network for a sparse
state): ``g_i = b_i . (w_decide, w*)`` per coordinate with ``b = G C^+``
(:func:`~odeprune.pruning.edge_rules.gradient_covariance`), exact for Gaussian inputs.

``PruneResult.sparse_state`` (and ``sparse_state_se``) of an edge rule calls :func:`sparse_state`
on first access with prune's ``n_samples`` and seed (an integer as given, ``None`` as the recorded
entropy ``metadata["seed"]``, a Generator as a snapshot taken by prune), then caches it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from .._validate import as_generator, check_rng_seed
from ..sparse import MAX_EXACT_K, SparseOrderParams, all_patterns
from ..state import PSD_RTOL, OrderParams
from . import node
from . import reweight as _rw
from .edge_rules import (
    GH_W,
    GH_X,
    MC_BATCHES,
    RULES,
    augmented_covariance,
    check_c,
    gradient_covariance,
    normal_sf,
    solve_threshold,
)
from .registry import NODE_METHODS, SPARSE_REWEIGHTS, methods

__all__ = ["sparse_state", "sparse_state_from_joint", "SparseMapError", "SPARSE_REWEIGHTS",
           "DEFAULT_SAMPLES"]

#: the rules with a per-class state (the edge rules)
SPARSE_METHODS = methods(sparse=True)
#: SPARSE_REWEIGHTS (from the registry): reweightings that keep a first-layer mask
#: (``rescale_rows`` rescales the kept weights, ``rescale`` / ``refit`` change the second layer
#: ``v`` of the masked network)
#: coordinates per call (as :func:`odeprune.prune` gives the edge maps)
DEFAULT_SAMPLES = 200_000
#: probabilistic rules (DPP-edge) weight every pattern by ``P(s|z)`` up to this many patterns;
#: beyond, each coordinate draws its mask (unbiased, noisier)
MAX_WEIGHTED_PATTERNS = 256


@dataclass(frozen=True, eq=False)
class SparseMapError:
    """Standard errors of a per-class state from :func:`sparse_state` (0 where exact).

    Attributes
    ----------
    eg : float
        Standard error of the masked (and reweighted) network's generalisation error: the spread
        of its value over ``n_batches`` independent Monte Carlo batches over ``sqrt(n_batches)``.
    f : ndarray, shape (S,)
    Q : ndarray, shape (S, K, K)
    R : ndarray, shape (S, K, M)
    T : ndarray, shape (S, M, M)
        Per-entry standard errors, aligned with the returned classes.
    dense_Q : ndarray, shape (K, K)
    dense_R : ndarray, shape (K, M)
        Standard errors of the class sums (the masked network's ``Q``, ``R``).
    eg_batches : ndarray, shape (n_batches,)
        The error of each batch (empty when exact).
    method : {"exact", "mc"}

    ``float(se)`` is ``se.eg``.
    """

    eg: float
    f: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    dense_Q: np.ndarray
    dense_R: np.ndarray
    eg_batches: np.ndarray
    method: str

    @property
    def n_batches(self) -> int:
        return int(self.eg_batches.shape[0])

    def __float__(self) -> float:
        return float(self.eg)


# ---------------------------------------------------------------------------------------------
# input checks (all before any work)
# ---------------------------------------------------------------------------------------------
def _check_common(rule, c, reweight, n_samples, K):
    if not isinstance(rule, str):
        raise ValueError(f"rule={rule!r} must be the name of an edge rule, one of "
                         f"{SPARSE_METHODS}")
    if rule in NODE_METHODS:
        raise ValueError(f"rule={rule!r} is a node method (it removes whole units, not a "
                         f"first-layer mask); sparse states come from edge rules {SPARSE_METHODS}")
    if rule not in SPARSE_METHODS:
        raise ValueError(f"rule={rule!r} is unknown; expected one of {SPARSE_METHODS}")
    c = check_c(c)
    if reweight not in SPARSE_REWEIGHTS:
        raise ValueError(f"reweight={reweight!r} does not keep a first-layer mask on a sparse "
                         f"state; allowed {SPARSE_REWEIGHTS}")
    if (isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer))
            or n_samples < 1):
        raise ValueError(f"n_samples={n_samples!r} must be an integer >= 1")
    if K > MAX_EXACT_K:
        raise ValueError(f"K={K} units give up to 2^{K} mask classes, more than "
                         f"2^{MAX_EXACT_K} (odeprune.sparse.MAX_EXACT_K); use finite N "
                         "(simulate with mask=...) instead")
    return c


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------
def sparse_state(state: OrderParams | SparseOrderParams, rule: str, c: float, *, seed=0,
                 n_samples: int = DEFAULT_SAMPLES, reweight: str = "none"
                 ) -> tuple[SparseOrderParams, SparseMapError]:
    r"""Per-class state of the network after the edge rule ``rule`` keeps a fraction ``c``.

    Parameters
    ----------
    state : OrderParams or SparseOrderParams
        The network to prune. A :class:`~odeprune.SparseOrderParams` (an already masked network)
        is refined: the rule decides among the *kept* weights (``c`` is the fraction of the kept
        weights that stay, per row or globally, so the density becomes ``c`` times the old one;
        global thresholds count kept weights only), new pattern = old pattern AND keep, equal
        patterns merged. SNIP's gradient is that of the masked network (its dense state).
    rule : str
        One of ``random_edge``, ``magnitude_edge``, ``magnitude_edge_global``, ``dpp_edge``,
        ``snip_edge``, ``snip_edge_global`` (:mod:`odeprune.pruning.edge_rules`).
    c : float
        Kept fraction, ``0 <= c <= 1``.
    seed : int, SeedSequence or Generator
        Coordinates of the Monte Carlo. With a dense state and the same integer seed and
        ``n_samples`` as :func:`~odeprune.pruning.edge_rules.edge_prune_map`, the same coordinates.
    n_samples : int
        Monte Carlo coordinates (over all ``MC_BATCHES`` batches).
    reweight : {"none", "rescale_rows", "rescale", "refit"}
        ``rescale_rows``: every kept row rescaled by :math:`1/s_i`,
        :math:`s_i = \sqrt{Q'_{ii}/Q_{ii}}` (variance-restoring; ``Q^s_ik / (s_i s_k)``,
        ``R^s_in / s_i``); ``rescale`` / ``refit``: the second layer of the masked network
        (Acharyya et al. 2021, Theorem 3, and the least-squares refit), from its dense state.

    Returns
    -------
    (SparseOrderParams, SparseMapError)
        The per-class state (classes with ``f_s = 0`` dropped) and its standard errors.

    Raises
    ------
    ValueError
        Unknown or node rule, ``c`` outside [0, 1], a reweighting that does not keep a mask,
        ``K > MAX_EXACT_K``; before any work.

    Notes
    -----
    ``docs/theory.md`` §8 (initial per-class state), Acharyya et al. (2021) for the edge maps.
    ``random_edge`` on a dense state is exact (:meth:`SparseOrderParams.random_mask`, Lemma 6).
    """
    if not isinstance(state, (OrderParams, SparseOrderParams)):
        raise ValueError(f"state must be an OrderParams or a SparseOrderParams, got "
                         f"{type(state).__name__}")
    c = _check_common(rule, c, reweight, n_samples, state.K)
    check_rng_seed(seed)
    K, M = state.K, state.M
    if isinstance(state, SparseOrderParams):
        # the joint law (w, w, w*) of each class: the weights decide and are kept
        idx = np.r_[0:K, 0:K, K:K + M]
        Js = []
        for s in range(state.n_classes):
            if state.f[s] > 0:
                C = np.block([[state.Q[s], state.R[s]], [state.R[s].T, state.T[s]]]) / state.f[s]
                Js.append(C[np.ix_(idx, idx)])
            else:
                Js.append(np.zeros((2 * K + M, 2 * K + M)))
        return sparse_state_from_joint(np.array(Js), state, rule, c, seed=seed,
                                       n_samples=n_samples, reweight=reweight)
    if rule == "random_edge":
        return _random_exact(state, c, reweight)
    rule_obj = RULES[rule]()
    Sigma = (augmented_covariance(state) if rule_obj.needs_gradient
             else np.array(state.covariance(), dtype=float))
    rule_obj.calibrate(Sigma, K, M, c)
    dec = _Decider(rule, list(range(K)),
                   list(range(K + M, 2 * K + M)) if rule_obj.needs_gradient else None, rule_obj)
    strata = [_Stratum(1.0, np.ones(K, dtype=bool), Sigma)]
    return _run(strata, dec, K, M, state.v, state.v_star, state.activation, state, n_samples,
                seed, reweight)


def sparse_state_from_joint(joint_cov, base: OrderParams | SparseOrderParams, rule: str,
                            c: float, *, v_decide=None, seed=0, n_samples: int = DEFAULT_SAMPLES,
                            reweight: str = "none") -> tuple[SparseOrderParams, SparseMapError]:
    r"""Per-class state when the mask is decided by one set of weights and applied to another.

    The coordinate law is the joint covariance of ``(w_values, w_decide, w*)`` (one coordinate
    each, ``docs/theory.md`` §9): e.g. ``TwoTimeCurve.joint_covariance(index)`` orders
    ``(w(0), w(alpha), w*)``, so a mask decided at ``alpha`` keeps the rewound ``w(0)`` (a lottery
    ticket). The kept values are the ``w_values``; the rule sees ``w_decide`` only.

    Parameters
    ----------
    joint_cov : array_like, shape (2K+M, 2K+M) or (S, 2K+M, 2K+M)
        The joint law of one coordinate; per class (conditional on the class, as
        ``SparseLearningCurve.joint_covariance`` gives it) when ``base`` is sparse.
    base : OrderParams or SparseOrderParams
        Gives ``v``, ``v_star`` and the activation of the resulting network (the rewound network's
        second layer, typically), and, when sparse, the classes (``patterns``, ``f``) that the new
        mask refines: new pattern = old pattern AND keep; equal patterns are merged. Then ``c``
        is the fraction of the *kept* weights that stay (per row, or over all kept weights for the
        global rules): the density becomes ``c`` times the old one.
    rule : str
        An edge rule (see :func:`sparse_state`). SNIP scores with the gradient of the
        deciding network (``w_decide`` with ``v_decide``; for a sparse base the masked network
        summed over the classes): ``g = b (w_decide, w*)`` per coordinate, ``b = G C^+`` with
        ``G`` of :func:`~odeprune.pruning.edge_rules.gradient_covariance`.
    c : float
        Kept fraction, ``0 <= c <= 1``.
    v_decide : array_like, shape (K,), optional
        Second layer of the deciding network (SNIP's gradient); default ``base.v``.
    seed, n_samples, reweight
        As in :func:`sparse_state`; ``rescale_rows`` restores the norm of the value rows.

    Returns
    -------
    (SparseOrderParams, SparseMapError)

    Raises
    ------
    ValueError
        Shapes that do not match ``base``, a covariance that is not symmetric PSD, more classes
        than ``2^MAX_EXACT_K``, and the errors of :func:`sparse_state`; before any work.
    """
    if not isinstance(base, (OrderParams, SparseOrderParams)):
        raise ValueError(f"base must be an OrderParams or a SparseOrderParams, got "
                         f"{type(base).__name__}")
    K, M = base.K, base.M
    c = _check_common(rule, c, reweight, n_samples, K)
    check_rng_seed(seed)
    try:
        J = np.array(joint_cov, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("joint_cov must be a real array") from None
    L = 2 * K + M
    sparse = isinstance(base, SparseOrderParams)
    want = (base.n_classes, L, L) if sparse else (L, L)
    if sparse and J.shape == (L, L) and base.n_classes == 1:
        J = J[None]
    if J.shape != want:
        raise ValueError(f"joint_cov must have shape {want} (covariance of (w_values, w_decide, "
                         f"w*) for K={K}, M={M}{', per class' if sparse else ''}), got {J.shape}")
    Js = J if sparse else J[None]
    if sparse:   # classes with f_s = 0 carry no coordinates (their conditional law may be nan)
        Js = np.where((base.f > 0)[:, None, None], Js, 0.0)
    if not np.all(np.isfinite(Js)):
        raise ValueError("joint_cov contains non-finite values")
    for s, C in enumerate(Js):
        scale = max(1.0, float(np.abs(C).max(initial=0)))
        if np.abs(C - C.T).max(initial=0) > 1e-10 * scale:
            raise ValueError(f"joint_cov{f'[{s}]' if sparse else ''} must be symmetric")
        lam = float(np.linalg.eigvalsh(0.5 * (C + C.T))[0])
        if lam < -PSD_RTOL * scale:
            raise ValueError(f"joint_cov{f'[{s}]' if sparse else ''} is not positive "
                             f"semi-definite (smallest eigenvalue {lam:.3e})")
    fw = base.f if sparse else np.ones(1)
    T_joint = np.einsum("s,snm->nm", fw, Js[:, 2 * K:, 2 * K:])
    T_base = base.T.sum(0) if sparse else np.array(base.T)
    if np.abs(T_joint - T_base).max() > 1e-8 * max(1.0, float(np.abs(T_base).max())):
        raise ValueError("the teacher block of joint_cov (last M rows, order (w_values, w_decide, "
                         "w*)) does not match base.T: wrong order or a different teacher")
    v_dec = base.v if v_decide is None else np.asarray(v_decide, dtype=float)
    if v_dec.shape != (K,) or not np.all(np.isfinite(v_dec)):
        raise ValueError(f"v_decide must be a finite array of shape ({K},), got {v_dec.shape}")
    # layout of one sampled coordinate: (values K, teacher M, decide K[, gradient K])
    perm = np.r_[0:K, 2 * K:2 * K + M, K:2 * K]
    f = base.f if sparse else np.ones(1)
    pats = base.patterns if sparse else np.ones((1, K), dtype=bool)
    decide_cols = list(range(K + M, 2 * K + M))
    strata = []
    for s in range(Js.shape[0]):
        if f[s] <= 0:
            continue
        C = 0.5 * (Js[s] + Js[s].T)[np.ix_(perm, perm)]
        strata.append(_Stratum(float(f[s]), pats[s], C))
    act = base.activation
    rule_obj = RULES[rule]()
    grad_cols = list(range(2 * K + M, 3 * K + M)) if rule_obj.needs_gradient else None
    # the deciding network (dense: the class sums), for its calibration and SNIP's gradient
    Cd = np.sum([st.f * st.Sigma[K:, K:] for st in strata], axis=0)    # (w*, w_decide)
    Cd = 0.5 * (Cd + Cd.T)
    dstate = OrderParams(Q=Cd[M:, M:], R=Cd[M:, :M], T=Cd[:M, :M], v=v_dec, v_star=base.v_star,
                         activation=act)
    if rule_obj.needs_gradient:
        Cdd = np.array(dstate.covariance(), dtype=float)
        b = gradient_covariance(dstate) @ np.linalg.pinv(Cdd, rcond=1e-12, hermitian=True)
        lin = np.zeros((K, 2 * K + M))           # g = b (w_decide, w*)
        lin[:, K + M:] = b[:, :K]
        lin[:, K:K + M] = b[:, K:]
        Lmap = np.vstack([np.eye(2 * K + M), lin])
        strata = [_Stratum(st.f, st.pattern, Lmap @ st.Sigma @ Lmap.T) for st in strata]
    dec = _Decider(rule, decide_cols, grad_cols, rule_obj)
    if sparse:
        _calibrate_mixture(dec, strata, K, c)
    else:   # one Gaussian: the rule's own calibration, as the edge maps
        rule_obj.calibrate(augmented_covariance(dstate) if rule_obj.needs_gradient
                           else np.array(dstate.covariance(), dtype=float), K, M, c)
    vals = [st.Sigma[:K + M, :K + M] * st.f for st in strata]
    Cv = np.sum(vals, axis=0)
    original = OrderParams(Q=0.5 * (Cv[:K, :K] + Cv[:K, :K].T), R=Cv[:K, K:],
                           T=0.5 * (Cv[K:, K:] + Cv[K:, K:].T), v=base.v, v_star=base.v_star,
                           activation=act)
    return _run(strata, dec, K, M, base.v, base.v_star, act, original, n_samples, seed, reweight)


# ---------------------------------------------------------------------------------------------
# rules on sampled coordinates
# ---------------------------------------------------------------------------------------------
@dataclass
class _Stratum:
    f: float                 # weight of the input class
    pattern: np.ndarray      # (K,) bool: units kept before this pruning
    Sigma: np.ndarray        # covariance of one coordinate, layout (values, teacher, extra...)


class _Decider:
    """Keep probabilities ``(n, K)`` of sampled coordinates with a calibrated rule object."""

    def __init__(self, name, decide_cols, grad_cols, rule_obj=None):
        self.name = name
        self.decide_cols = decide_cols
        self.grad_cols = grad_cols
        self.rule = rule_obj if rule_obj is not None else RULES[name]()

    def __call__(self, z):
        w = z[:, self.decide_cols]
        g = None if self.grad_cols is None else z[:, self.grad_cols]
        return np.column_stack([self.rule.keep_prob(i, w[:, i], None if g is None else g[:, i])
                                for i in range(w.shape[1])])


def _calibrate_mixture(dec: _Decider, strata, K: int, c: float) -> None:
    """Thresholds of ``dec.rule`` for a mixture of classes: kept fraction ``c`` of the weights
    that are still kept (per row, or over all rows for the global rules)."""
    rule = dec.rule
    fs = np.array([st.f for st in strata])
    m = np.array([st.pattern for st in strata], dtype=float)          # (S, K)
    sd = np.sqrt(np.maximum(np.array([np.diag(st.Sigma)[dec.decide_cols] for st in strata]),
                            0.0))                                        # (S, K)
    wk = fs[:, None] * m                                                 # kept mass (S, K)
    if dec.name == "random_edge":
        rule.c = c
        return
    if dec.name.startswith("magnitude"):
        def kept(t, rows):
            # P(|w| > t) per class; coordinates with zero variance are never kept (|0| > t fails)
            sdr = sd[:, rows]
            p = np.where(sdr > 0, 2.0 * normal_sf(t / np.where(sdr > 0, sdr, 1.0)), 0.0)
            return float((wk[:, rows] * p).sum() / wk[:, rows].sum())

        def solve(rows):
            if wk[:, rows].sum() <= 0:
                return np.inf
            if kept(0.0, rows) <= c:     # c = 1, or more than the non-zero weights asked for
                return 0.0
            return solve_threshold(lambda t: kept(t, rows), c, float(sd.max(initial=0.0)))

        if dec.name == "magnitude_edge":
            tau = np.array([solve([i]) for i in range(K)])
        else:
            tau = np.full(K, solve(list(range(K))))
        rule.tau = tau
        return
    if dec.name == "dpp_edge":
        lam = np.zeros(K)
        for i in range(K):
            if c == 1.0:
                lam[i] = np.inf
            elif c > 0 and np.any(wk[:, i] * sd[:, i] > 0):
                y2 = (sd[:, i, None] * GH_X[None]) ** 2                   # (S, n_gh)
                wts = wk[:, i] / wk[:, i].sum()

                def frac(log_l, y2=y2, wts=wts):
                    ell = math.exp(log_l)
                    return float(wts @ ((ell * y2 / (1 + ell * y2)) @ GH_W)) - c

                if frac(60.0) < 0:   # the zero-weight mass cannot reach c
                    lam[i] = np.inf
                else:
                    lam[i] = math.exp(optimize.brentq(frac, -60, 60, xtol=1e-14))
        rule.lam = lam
        return
    if dec.name.startswith("snip"):
        kept_table, scale = _snip_kept(strata, dec.decide_cols, dec.grad_cols)

        def solve_snip(rows):
            if wk[:, rows].sum() <= 0:
                return np.inf

            def kept(t):
                return float((wk[:, rows] * kept_table(t)[:, rows]).sum() / wk[:, rows].sum())

            if kept(0.0) <= c:
                return 0.0
            return solve_threshold(kept, c, scale)

        if dec.name == "snip_edge":
            rule.tau = np.array([solve_snip([i]) for i in range(K)])
        else:
            rule.tau = np.full(K, solve_snip(list(range(K))))
        return
    raise ValueError(f"rule {dec.name!r} has no mixture calibration")  # pragma: no cover


def _snip_kept(strata, decide_cols, grad_cols):
    """``P(|w_i g_i| > t)`` per class and unit, a function of ``t`` returning (S, K), as
    :meth:`~odeprune.pruning.edge_rules.SnipEdge._kept` per class (Gauss-Hermite over ``w_i``,
    ``g_i | w_i`` Gaussian); and the score scale."""
    d, g = np.array(decide_cols), np.array(grad_cols)
    vx = np.array([st.Sigma[d, d] for st in strata])
    cxy = np.array([st.Sigma[d, g] for st in strata])
    vy = np.array([st.Sigma[g, g] for st in strata])
    pos = vx > 0
    beta = np.where(pos, cxy / np.where(pos, vx, 1.0), 0.0)
    sres = np.sqrt(np.maximum(vy - np.where(pos, cxy * cxy / np.where(pos, vx, 1.0), 0.0), 0.0))
    sd = np.sqrt(np.maximum(vx, 0.0))
    x = sd[..., None] * GH_X                                  # (S, K, n)
    mu = beta[..., None] * x
    ss = sres[..., None]
    ss_safe = np.where(ss > 0, ss, 1.0)
    ax = np.maximum(np.abs(x), 1e-300)

    def table(t):
        tau = t / ax
        p = np.where(ss > 0, normal_sf((tau - mu) / ss_safe) + special.ndtr((-tau - mu) / ss_safe),
                     (np.abs(mu) > tau).astype(float))
        return p @ GH_W

    scale = float((sd * (np.abs(beta) * sd + sres)).max(initial=0.0)) + 1e-300
    return table, scale


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
def _features(z, K, M):
    iu = np.triu_indices(K)
    ju = np.triu_indices(M)
    x, t = z[:, :K], z[:, K:K + M]
    return np.hstack([x[:, iu[0]] * x[:, iu[1]],
                      (x[:, :, None] * t[:, None, :]).reshape(z.shape[0], K * M),
                      t[:, ju[0]] * t[:, ju[1]]])


def _unpack(F, pats, K, M):
    """Per-class ``Q, R, T`` from summed features ``F`` (..., S, nf), masked to the patterns."""
    iu = np.triu_indices(K)
    ju = np.triu_indices(M)
    nq, nr = iu[0].size, K * M
    lead = F.shape[:-1]
    Q = np.zeros(lead + (K, K))
    Q[..., iu[0], iu[1]] = F[..., :nq]
    Q[..., iu[1], iu[0]] = F[..., :nq]
    R = F[..., nq:nq + nr].reshape(lead + (K, M)).copy()
    T = np.zeros(lead + (M, M))
    T[..., ju[0], ju[1]] = F[..., nq + nr:]
    T[..., ju[1], ju[0]] = F[..., nq + nr:]
    m = pats.astype(float)
    Q *= m[:, :, None] * m[:, None, :]
    R *= m[:, :, None]
    return Q, R, T


def _pattern_weights(P):
    """``P(s | z)`` for every pattern s (binary order, unit 0 the lowest bit), shape (n, 2^K)."""
    W = np.ones((P.shape[0], 1))
    for i in range(P.shape[1]):
        p = P[:, i:i + 1]
        W = np.concatenate([W * (1.0 - p), W * p], axis=1)
    return W


def _draw(rng, A, per, r, L):
    """Moment-matched coordinates, exactly as ``edge_rules._mc_batch`` draws them."""
    if r == 0:
        return np.zeros((per, L))
    u = rng.standard_normal((per, r))
    u -= u.mean(axis=0)
    S = u.T @ u / per
    ev, V = np.linalg.eigh(S)
    u = u @ (V / np.sqrt(ev)) @ V.T             # sample covariance exactly I
    return u @ A.T


def _run(strata, dec, K, M, v, v_star, activation, original, n_samples, seed, reweight):
    rng = as_generator(seed)
    n_pat = 2 ** K
    iu = np.triu_indices(K)
    nf = iu[0].size + K * M + M * (M + 1) // 2
    B = MC_BATCHES
    f_b = np.zeros((B, n_pat))
    F_b = np.zeros((B, n_pat, nf))
    factors = []
    for st in strata:
        lam, U = np.linalg.eigh(st.Sigma)
        keep = lam > 1e-12 * max(1.0, float(lam[-1]))
        A = U[:, keep] * np.sqrt(lam[keep])
        r = A.shape[1]
        if len(strata) == 1:
            per = max(r + 2, n_samples // B)
        else:
            per = max(r + 2, int(math.ceil(st.f * n_samples / B)))
        factors.append((A, r, per))
    bits = 1 << np.arange(K)
    for b in range(B):
        # every stratum's moment-matched coordinates, then one pass over all of them
        zs, wts, pats = [], [], []
        for st, (A, r, per) in zip(strata, factors, strict=True):
            zs.append(_draw(rng, A, per, r, st.Sigma.shape[0]))
            wts.append(np.full(per, st.f / per))
            pats.append(np.broadcast_to(st.pattern, (per, K)))
        z = np.concatenate(zs) if len(zs) > 1 else zs[0]
        wt = np.concatenate(wts) if len(wts) > 1 else wts[0]
        P = np.asarray(dec(z), dtype=float) * (np.concatenate(pats) if len(pats) > 1
                                               else pats[0])
        F = _features(z, K, M) * wt[:, None]
        deterministic = bool(np.all((P == 0) | (P == 1)))
        if not deterministic and n_pat <= MAX_WEIGHTED_PATTERNS:
            W = _pattern_weights(P)                  # P(s | z), exact given z
            f_b[b] = wt @ W
            F_b[b] = W.T @ F
            continue
        if not deterministic:                        # too many patterns: draw the masks
            P = (rng.random(P.shape) < P).astype(float)
        code = (P > 0.5).astype(np.int64) @ bits
        f_b[b] = np.bincount(code, weights=wt, minlength=n_pat)
        for j in range(nf):
            F_b[b, :, j] = np.bincount(code, weights=F[:, j], minlength=n_pat)
    seen = np.flatnonzero(f_b.max(axis=0) > 0)
    pats = all_patterns(K)[seen]
    f_b, F_b = f_b[:, seen], F_b[:, seen]
    Q_b, R_b, T_b = _unpack(F_b, pats, K, M)
    # the estimate: the mean of the batches; then the reweighting, per batch for the errors
    f = f_b.mean(axis=0)
    Q, R, T = Q_b.mean(axis=0), R_b.mean(axis=0), T_b.mean(axis=0)
    sp, eg = _finish(pats, f, Q, R, T, v, v_star, activation, original, reweight)
    eg_b = np.empty(B)
    Qr_b, Rr_b = np.empty_like(Q_b), np.empty_like(R_b)
    for b in range(B):
        s, _, eg_b[b] = _reweight_dense(Q_b[b].sum(0), R_b[b].sum(0), T_b[b].sum(0), v, v_star,
                                        activation, original, reweight)
        Qr_b[b] = Q_b[b] / np.outer(s, s)
        Rr_b[b] = R_b[b] / s[:, None]
    sq = math.sqrt(B)
    se = SparseMapError(eg=float(eg_b.std(ddof=1) / sq), f=f_b.std(axis=0, ddof=1) / sq,
                        Q=Qr_b.std(axis=0, ddof=1) / sq, R=Rr_b.std(axis=0, ddof=1) / sq,
                        T=T_b.std(axis=0, ddof=1) / sq,
                        dense_Q=Qr_b.sum(1).std(axis=0, ddof=1) / sq,
                        dense_R=Rr_b.sum(1).std(axis=0, ddof=1) / sq, eg_batches=eg_b,
                        method="mc")
    return sp, se


def _reweight_dense(Q, R, T, v, v_star, activation, original, reweight):
    """``(s, v_new, eg)`` of the dense masked network ``(Q, R, T, v)``: the row scales of
    ``rescale_rows`` (ones otherwise; as :func:`~odeprune.pruning.edge_rules.rescale_rows`), the
    second layer after ``rescale``/``refit`` and the error (as :func:`odeprune.prune`)."""
    K = Q.shape[0]
    s = np.ones(K)
    if reweight == "rescale_rows":
        q0 = np.diag(original.Q)
        s = np.sqrt(np.where(q0 > 0, np.diag(Q) / np.where(q0 > 0, q0, 1.0), 1.0))
        s = np.where(s > 0, s, 1.0)
        Q = Q / np.outer(s, s)
        R = R / s[:, None]
    dense = OrderParams(Q=0.5 * (Q + Q.T), R=R, T=0.5 * (T + T.T), v=v, v_star=v_star,
                        activation=activation)
    Gp = node.activation_gram_all(dense, activation)
    G_SS, G_ST = Gp[:K, :K], Gp[:K, K:]
    v_new = np.array(v, dtype=float)
    v_star = np.array(v_star, dtype=float)
    if reweight == "rescale":
        v_new = _rw.rescale_factor(G_SS, G_ST, v_new, v_star) * v_new
    elif reweight == "refit":
        v_new = _rw.refit_weights(G_SS, G_ST, v_star)
    eg = float(_rw.eg_quadratic(G_SS, G_ST, Gp[K:, K:], v_new, v_star))
    return s, v_new, eg


def _finish(pats, f, Q, R, T, v, v_star, activation, original, reweight):
    s, v_new, eg = _reweight_dense(Q.sum(0), R.sum(0), T.sum(0), v, v_star, activation,
                                   original, reweight)
    Q = Q / np.outer(s, s)
    R = R / s[:, None]
    Q = 0.5 * (Q + np.swapaxes(Q, 1, 2))
    T = 0.5 * (T + np.swapaxes(T, 1, 2))
    sp = SparseOrderParams(patterns=pats, f=f / f.sum(), Q=Q, R=R, T=T, v=v_new, v_star=v_star,
                           activation=activation)
    return sp, eg


def _random_exact(state: OrderParams, c: float, reweight: str):
    sp = SparseOrderParams.random_mask(state, c)
    sp, eg = _finish(sp.patterns, sp.f, np.array(sp.Q), np.array(sp.R), np.array(sp.T),
                     state.v, state.v_star, state.activation, state, reweight)
    z = np.zeros
    se = SparseMapError(eg=0.0, f=z(sp.f.shape), Q=z(sp.Q.shape), R=z(sp.R.shape),
                        T=z(sp.T.shape), dense_Q=z(sp.Q.shape[1:]), dense_R=z(sp.R.shape[1:]),
                        eg_batches=z(0), method="exact")
    return sp, se


# ---------------------------------------------------------------------------------------------
# the hook of PruneResult
# ---------------------------------------------------------------------------------------------
def sparse_args_for_prune(state: OrderParams, seed: Any, rng: np.random.Generator,
                          seed_record: Any, n_samples: int) -> dict:
    """What :func:`odeprune.prune` keeps so that ``PruneResult.sparse_state`` can be computed
    on first access: the state, and the seed (an integer seed as given, ``None`` as the recorded
    entropy, a Generator as a snapshot taken now), and ``n_samples`` as the edge map used it."""
    if seed is None:
        s = seed_record
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        s = int(seed)
    else:
        s = copy.deepcopy(rng)
    return {"state": state, "seed": s, "n_samples": max(int(n_samples), DEFAULT_SAMPLES)}


def for_prune_result(result) -> tuple[SparseOrderParams, SparseMapError]:
    """``(sparse_state, se)`` of a :class:`~odeprune.pruning.PruneResult` of an edge rule."""
    meta = result.metadata
    if meta.get("method") not in SPARSE_METHODS:
        raise ValueError(f"sparse_state exists for edge rules {SPARSE_METHODS} only, not for "
                         f"{meta.get('method')!r} (node pruning removes whole units)")
    args = result._cache.get("sparse_args")
    if args is None:
        raise ValueError("this PruneResult does not hold the unpruned state (loaded from a file?);"
                         " call odeprune.pruning.sparse_maps.sparse_state(state, rule, c) instead")
    return sparse_state(args["state"], meta["method"], meta["c"], seed=args["seed"],
                        n_samples=args["n_samples"], reweight=meta["reweight"])
