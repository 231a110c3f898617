r"""The per-class state of an edge-pruned network by stratified coordinate Monte Carlo: the
engine of :mod:`odeprune.pruning.sparse_maps` (``docs/theory.md`` §8, "Initial per-class states").

The coordinates of each input stratum (a mask class of an already masked network, or the one
stratum of a dense network) are drawn moment-matched (:func:`~odeprune.pruning.gaussian.
moment_matched`, as :func:`~odeprune.pruning.edge_map.edge_prune_map` draws them) in
``MC_BATCHES`` independent batches; a calibrated rule (:class:`Decider`) gives every coordinate
its keep probabilities, and the class sums

.. math::

    f_s = E[P(s\mid z)],\quad Q^s_{ik} = E[P(s\mid z)\, m_i m_k w_i w_k],\quad
    R^s_{in} = E[P(s\mid z)\, m_i w_i w^*_n],\quad T^s = E[P(s\mid z)\, w^* w^{*T}]

are accumulated per batch; the standard errors are the spread over the batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import as_generator
from ..sparse import SparseOrderParams, all_patterns
from ..state import OrderParams
from . import node
from . import reweight as _rw
from .edge_map import MC_BATCHES
from .edge_rules import RULES
from .gaussian import factor, moment_matched

__all__ = ["SparseMapError", "Stratum", "Decider", "run_strata", "random_exact",
           "MAX_WEIGHTED_PATTERNS"]

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
# rules on sampled coordinates
# ---------------------------------------------------------------------------------------------
@dataclass
class Stratum:
    f: float                 # weight of the input class
    pattern: np.ndarray      # (K,) bool: units kept before this pruning
    Sigma: np.ndarray        # covariance of one coordinate, layout (values, teacher, extra...)


class Decider:
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


def run_strata(strata, dec, original, n_samples, seed, reweight):
    """``(SparseOrderParams, SparseMapError)`` of the coordinates of ``strata`` masked by the
    calibrated decider ``dec``: ``run_strata(strata, dec, original, n_samples, seed,
    reweight)``, ``n_samples`` coordinates in ``MC_BATCHES`` batches (per stratum in proportion
    to its weight), the class sums per batch, their mean and spread, then the reweighting.
    ``original`` is the unpruned network (an :class:`~odeprune.state.OrderParams`): its second
    layers, activation and sizes, and the row norms of ``rescale_rows``."""
    K, M = original.K, original.M
    rng = as_generator(seed)
    n_pat = 2 ** K
    iu = np.triu_indices(K)
    nf = iu[0].size + K * M + M * (M + 1) // 2
    B = MC_BATCHES
    f_b = np.zeros((B, n_pat))
    F_b = np.zeros((B, n_pat, nf))
    factors = []
    for st in strata:
        A = factor(st.Sigma)
        r = A.shape[1]
        if len(strata) == 1:
            per = max(r + 2, n_samples // B)
        else:
            per = max(r + 2, int(math.ceil(st.f * n_samples / B)))
        factors.append((A, per))
    bits = 1 << np.arange(K)
    for b in range(B):
        # every stratum's moment-matched coordinates, then one pass over all of them
        zs, wts, pats = [], [], []
        for st, (A, per) in zip(strata, factors, strict=True):
            zs.append(moment_matched(rng, A, per))
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
    sp, eg = _finish(pats, f, Q, R, T, original, reweight)
    eg_b = np.empty(B)
    Qr_b, Rr_b = np.empty_like(Q_b), np.empty_like(R_b)
    for b in range(B):
        s, _, eg_b[b] = _reweight_dense(Q_b[b].sum(0), R_b[b].sum(0), T_b[b].sum(0), original,
                                        reweight)
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


def _reweight_dense(Q, R, T, original, reweight):
    """``(s, v_new, eg)`` of the dense masked network ``(Q, R, T)`` with the second layers and
    activation of ``original`` (the unpruned network): the row scales of
    ``rescale_rows`` (ones otherwise; as :func:`~odeprune.pruning.edge_map.rescale_rows`), the
    second layer after ``rescale``/``refit`` and the error (as :func:`odeprune.prune`)."""
    K = Q.shape[0]
    v, v_star, activation = original.v, original.v_star, original.activation
    s = np.ones(K)
    if reweight == "rescale_rows":
        s = _rw.row_scales(np.diag(Q), np.diag(original.Q))
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


def _finish(pats, f, Q, R, T, original, reweight):
    s, v_new, eg = _reweight_dense(Q.sum(0), R.sum(0), T.sum(0), original, reweight)
    v_star, activation = original.v_star, original.activation
    Q = Q / np.outer(s, s)
    R = R / s[:, None]
    Q = 0.5 * (Q + np.swapaxes(Q, 1, 2))
    T = 0.5 * (T + np.swapaxes(T, 1, 2))
    sp = SparseOrderParams(patterns=pats, f=f / f.sum(), Q=Q, R=R, T=T, v=v_new, v_star=v_star,
                           activation=activation)
    return sp, eg


def random_exact(state: OrderParams, c: float, reweight: str):
    sp = SparseOrderParams.random_mask(state, c)
    sp, eg = _finish(sp.patterns, sp.f, np.array(sp.Q), np.array(sp.R), np.array(sp.T), state,
                     reweight)
    z = np.zeros
    se = SparseMapError(eg=0.0, f=z(sp.f.shape), Q=z(sp.Q.shape), R=z(sp.R.shape),
                        T=z(sp.T.shape), dense_Q=z(sp.Q.shape[1:]), dense_R=z(sp.R.shape[1:]),
                        eg_batches=z(0), method="exact")
    return sp, se


