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
:func:`~odeprune.pruning.edge_map.edge_prune_map` draws them, so with the same integer seed the
class sums equal that map's Monte Carlo (SNIP) to rounding.

Calibration. Every rule is calibrated by its own :meth:`~odeprune.pruning.edge_rules.EdgeRule.
calibrate` on :class:`~odeprune.pruning.edge_rules.UnitLaws`: a dense state (or a dense joint law)
is one stratum, exactly as the edge maps. When a sparse state is refined, the strata are its mask
classes and ``c`` is the fraction of the weights *still kept* that stay (per row for the row
rules, over all kept weights for the global ones: pruned weights do not count), so the density
becomes ``c`` times the old one; the thresholds solve that equation on the mixture of the
classes' Gaussian laws. The Monte Carlo itself is :mod:`odeprune.pruning.sparse_mc`. SNIP
scores ``|w_ij g_ij|`` with the gradient of the deciding network (the masked network for a sparse
state): ``g_i = b_i . (w_decide, w*)`` per coordinate with ``b = G C^+``
(:func:`~odeprune.pruning.gaussian.gradient_covariance`), exact for Gaussian inputs.

``PruneResult.sparse_state`` (and ``sparse_state_se``) of an edge rule calls :func:`sparse_state`
on first access with prune's ``n_samples`` and seed (an integer as given, ``None`` as the recorded
entropy ``metadata["seed"]``, a Generator as a snapshot taken by prune), then caches it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._validate import check_rng_seed
from ..sparse import MAX_EXACT_K, SparseOrderParams
from ..state import PSD_RTOL, OrderParams
from .edge_rules import RULES, UnitLaws, check_c
from .gaussian import augmented_covariance, gradient_covariance
from .registry import NODE_METHODS, SPARSE_REWEIGHTS, methods
from .sparse_mc import Decider, SparseMapError, Stratum, random_exact, run_strata

__all__ = ["sparse_state", "sparse_state_from_joint", "SparseMapError", "SPARSE_REWEIGHTS",
           "DEFAULT_SAMPLES"]

#: the rules with a per-class state (the edge rules)
SPARSE_METHODS = methods(sparse=True)
#: SPARSE_REWEIGHTS (from the registry): reweightings that keep a first-layer mask
#: (``rescale_rows`` rescales the kept weights, ``rescale`` / ``refit`` change the second layer
#: ``v`` of the masked network)
#: coordinates per call (as :func:`odeprune.prune` gives the edge maps)
DEFAULT_SAMPLES = 200_000
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
        ``n_samples`` as :func:`~odeprune.pruning.edge_map.edge_prune_map`, the same coordinates.
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
        return random_exact(state, c, reweight)
    rule_obj = RULES[rule]()
    Sigma = (augmented_covariance(state) if rule_obj.needs_gradient
             else np.array(state.covariance(), dtype=float))
    rule_obj.calibrate(UnitLaws.dense(Sigma, K, M, rule_obj.needs_gradient), c)
    dec = Decider(rule, list(range(K)),
                   list(range(K + M, 2 * K + M)) if rule_obj.needs_gradient else None, rule_obj)
    strata = [Stratum(1.0, np.ones(K, dtype=bool), Sigma)]
    return run_strata(strata, dec, state, n_samples, seed, reweight)


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
        ``G`` of :func:`~odeprune.pruning.gaussian.gradient_covariance`.
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
        strata.append(Stratum(float(f[s]), pats[s], C))
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
        strata = [Stratum(st.f, st.pattern, Lmap @ st.Sigma @ Lmap.T) for st in strata]
    dec = Decider(rule, decide_cols, grad_cols, rule_obj)
    if sparse:   # the mixture of the classes, counting the weights still kept
        rule_obj.calibrate(UnitLaws.from_strata([st.Sigma for st in strata],
                                                [st.f * st.pattern for st in strata],
                                                decide_cols, grad_cols), c)
    else:   # one Gaussian: exactly as the edge maps
        rule_obj.calibrate(UnitLaws.dense(augmented_covariance(dstate) if rule_obj.needs_gradient
                                          else np.array(dstate.covariance(), dtype=float),
                                          K, M, rule_obj.needs_gradient), c)
    vals = [st.Sigma[:K + M, :K + M] * st.f for st in strata]
    Cv = np.sum(vals, axis=0)
    original = OrderParams(Q=0.5 * (Cv[:K, :K] + Cv[:K, :K].T), R=Cv[:K, K:],
                           T=0.5 * (Cv[K:, K:] + Cv[K:, K:].T), v=base.v, v_star=base.v_star,
                           activation=act)
    return run_strata(strata, dec, original, n_samples, seed, reweight)


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
