r"""The coordinate law (``docs/theory.md`` §11): the network as weighted particles of coordinates.

In the limit N → ∞ the input coordinates ``j`` of a two-layer network, each the vector
``u_j = (w_1j..w_Kj, w*_1j..w*_Mj)`` with its mask pattern ``m_j``, have an empirical law whose
second moments are the order parameters (``Q = E[w w^T]``, ``R = E[w w*^T]``, ``T = E[w* w*^T]``,
per mask class for a masked network, §8). :class:`CoordinateLaw` carries that law as ``S``
weighted particles ``(w_j, w*_j, m_j)`` (student coordinates stored masked: ``w_ij = 0`` where
``m_ij = 0``), in ``R`` independent **replicas** (a leading axis): every replica is a complete
estimate of the law, so the spread of any result over replicas is its Monte-Carlo error
(:meth:`CoordinateLaw.eg` returns the mean over replicas and its standard error).

Fresh samples are **moment-matched**: the particles of a Gaussian law are whitened so that their
weighted second moments equal the state's exactly, replica by replica (:meth:`dense` of a fresh
sample is the state it came from, to rounding). Between decisions the map from one time to
another is linear plus an independent Gaussian (§11), so nothing but the decisions themselves
(masks chosen on the particles, an L1 threshold) carries Monte-Carlo error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _io
from .._stats import sem
from .._validate import as_generator, check_int, check_mask
from ..activations import get_activation
from ..sparse import SparseOrderParams
from ..state import OrderParams, broadcast_v_star

__all__ = ["CoordinateLaw", "moment_matched_normals", "sqrt_psd"]

KIND = "CoordinateLaw"


def sqrt_psd(C: np.ndarray) -> np.ndarray:
    """A square root ``A`` with ``A A^T = C`` of a symmetric positive semi-definite ``C``
    (eigen-decomposition; round-off negative eigenvalues set to zero)."""
    lam, V = np.linalg.eigh(0.5 * (C + C.T))
    return V * np.sqrt(np.clip(lam, 0.0, None))


def moment_matched_normals(rng: np.random.Generator, n: int, d: int,
                           against: np.ndarray | None = None,
                           weights: np.ndarray | None = None) -> np.ndarray:
    """``n`` standard normal vectors in ``d`` dimensions whose weighted second moment is the
    identity exactly and that are exactly uncorrelated (weighted) with the columns of
    ``against`` (n, p): whitened Gaussian draws. Needs ``n > d + p``; weights default to 1/n."""
    wt = np.full(n, 1.0 / n) if weights is None else weights / weights.sum()
    Z = rng.standard_normal((n, d))
    sw = np.sqrt(wt)[:, None]
    if against is not None and against.shape[1]:
        A = sw * against
        # remove the weighted projection on span(against) (least squares, rank-safe)
        coef, *_ = np.linalg.lstsq(A, sw * Z, rcond=None)
        Z = Z - against @ coef
    G = (sw * Z).T @ (sw * Z)
    L = np.linalg.cholesky(0.5 * (G + G.T))
    return np.linalg.solve(L, Z.T).T


def _check_particles(name: str, a: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(arr)))} non-finite entries")
    return arr


@dataclass(frozen=True, eq=False)
class CoordinateLaw:
    """Weighted particles of the coordinates of a two-layer network, in independent replicas.

    Parameters
    ----------
    w : array, shape (R, S, K)
        Student coordinates (masked: zero where ``mask`` is False).
    w_star : array, shape (R, S, M)
        Teacher coordinates.
    mask : array of bool, shape (R, S, K)
        Which student weights exist (a dense network: all True).
    weights : array, shape (R, S)
        Particle weights, non-negative, summing to 1 in each replica.
    v : array, shape (R, K)
        Student second layer (one per replica: it trains on the replica's order parameters).
    v_star : array, shape (M,)
    activation : str
    """

    w: np.ndarray
    w_star: np.ndarray
    mask: np.ndarray
    weights: np.ndarray
    v: np.ndarray
    v_star: np.ndarray
    activation: str = "erf"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation).name)
        w = _check_particles("w", self.w, 3)
        ws = _check_particles("w_star", self.w_star, 3)
        R, S, K = w.shape
        if ws.shape[:2] != (R, S):
            raise ValueError(f"w_star must have shape ({R}, {S}, M), got {ws.shape}")
        if S < 2:
            raise ValueError(f"a coordinate law needs S >= 2 particles per replica, got S={S}")
        m = check_mask("mask", self.mask, w.shape, "(R, S, K)")
        wt = _check_particles("weights", self.weights, 2)
        if wt.shape != (R, S):
            raise ValueError(f"weights must have shape ({R}, {S}), got {wt.shape}")
        if np.any(wt < 0):
            raise ValueError("particle weights must be non-negative")
        if not np.allclose(wt.sum(1), 1.0, rtol=0, atol=1e-12):
            raise ValueError(f"particle weights must sum to 1 in every replica, got "
                             f"{wt.sum(1)}")
        v = _check_particles("v", self.v, 2)
        if v.shape != (R, K):
            raise ValueError(f"v must have shape ({R}, {K}), got {v.shape}")
        v_star = broadcast_v_star(self.v_star, ws.shape[2])
        w = np.where(m, w, 0.0)
        for name, arr in (("w", w), ("w_star", ws), ("mask", m), ("weights", wt), ("v", v),
                          ("v_star", v_star)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------ shape
    @property
    def replicas(self) -> int:
        return self.w.shape[0]

    @property
    def S(self) -> int:
        """Particles per replica."""
        return self.w.shape[1]

    @property
    def K(self) -> int:
        return self.w.shape[2]

    @property
    def M(self) -> int:
        return self.w_star.shape[2]

    def replace(self, **changes: Any) -> CoordinateLaw:
        kw = dict(w=self.w, w_star=self.w_star, mask=self.mask, weights=self.weights, v=self.v,
                  v_star=self.v_star, activation=self.activation)
        kw.update(changes)
        return CoordinateLaw(**kw)

    # ------------------------------------------------------------------ moments
    def moments(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Q, R, T)`` of replica ``r``: the weighted second moments of its particles."""
        sw = np.sqrt(self.weights[r])[:, None]
        X, Y = sw * self.w[r], sw * self.w_star[r]
        Q = X.T @ X
        return 0.5 * (Q + Q.T), X.T @ Y, Y.T @ Y

    def replica_state(self, r: int) -> OrderParams:
        """The :class:`OrderParams` of replica ``r`` (its network's order parameters)."""
        Q, R, T = self.moments(r)
        return OrderParams(Q, R, 0.5 * (T + T.T), self.v[r], self.v_star,
                           activation=self.activation)

    def dense(self) -> OrderParams:
        """The order parameters of the law: the replicas' second moments and ``v`` averaged."""
        Qs, Rs, Ts = zip(*(self.moments(r) for r in range(self.replicas)))
        T = np.mean(Ts, 0)
        return OrderParams(np.mean(Qs, 0), np.mean(Rs, 0), 0.5 * (T + T.T),
                           self.v.mean(0), self.v_star, activation=self.activation)

    def classes(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """``(patterns, index)`` of replica ``r``: its distinct mask patterns (n_classes, K)
        and the class of every particle (S,)."""
        pats, index = np.unique(self.mask[r], axis=0, return_inverse=True)
        return pats, index.reshape(-1)

    def sparse_replica(self, r: int) -> tuple[SparseOrderParams, np.ndarray]:
        """The per-class state (§8) of replica ``r`` and the class of every particle."""
        pats, idx = self.classes(r)
        n, K, M = pats.shape[0], self.K, self.M
        wt = self.weights[r]
        f = np.bincount(idx, weights=wt, minlength=n)
        Q, R, T = np.zeros((n, K, K)), np.zeros((n, K, M)), np.zeros((n, M, M))
        for s in range(n):
            sel = idx == s
            sw = np.sqrt(wt[sel])[:, None]
            X, Y = sw * self.w[r][sel], sw * self.w_star[r][sel]
            Q[s] = X.T @ X
            R[s], T[s] = X.T @ Y, Y.T @ Y
        Q = 0.5 * (Q + Q.transpose(0, 2, 1))
        T = 0.5 * (T + T.transpose(0, 2, 1))
        sp = SparseOrderParams(patterns=pats, f=f / f.sum(), Q=Q, R=R, T=T, v=self.v[r],
                               v_star=self.v_star, activation=self.activation)
        return sp, idx

    def sparse(self) -> SparseOrderParams:
        """The per-class state of the first replica (a masked network's order parameters)."""
        return self.sparse_replica(0)[0]

    def density(self) -> float:
        """Kept fraction of the first-layer weights (weighted over particles, replica mean)."""
        return float(np.mean(np.einsum("rs,rsk->r", self.weights, self.mask) / self.K))

    def eg_replicas(self) -> np.ndarray:
        """ε_g of every replica (R,)."""
        return np.array([self.replica_state(r).eg() for r in range(self.replicas)])

    def eg(self) -> tuple[float, float]:
        """``(eg, se)``: the mean ε_g over replicas and its Monte-Carlo standard error (the
        spread over the independent replicas; NaN with one replica)."""
        e = self.eg_replicas()
        return float(e.mean()), (float(sem(e)) if e.size > 1 else float("nan"))

    def fraction_below(self, thresholds) -> np.ndarray:
        """Weighted fraction of kept student weights with ``|w| <`` each threshold (the
        coordinate histogram), mean over replicas."""
        th = np.atleast_1d(np.asarray(thresholds, float))
        kept = self.weights[:, :, None] * self.mask
        tot = kept.sum((1, 2))
        out = [((np.abs(self.w) < t) * kept).sum((1, 2)) / tot for t in th]
        return np.mean(out, axis=1)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_state(cls, state: OrderParams | SparseOrderParams, S: int = 20_000,
                   replicas: int = 8, seed: Any = 0) -> CoordinateLaw:
        """Gaussian particles of ``state`` (the law of an ``OrderParams``, or per class of a
        ``SparseOrderParams``), moment-matched per replica (and per class): their second
        moments equal the state's exactly. ``S`` particles per replica (per class at least
        ``K + M + 2``; classes get particles in proportion to their fraction and weights that
        give their exact fraction)."""
        S = check_int("S", S, 2)
        replicas = check_int("replicas", replicas, 1)
        rng = as_generator(seed)
        if isinstance(state, OrderParams):
            state = SparseOrderParams.from_dense(state)
        if not isinstance(state, SparseOrderParams):
            raise TypeError(f"expected an OrderParams or SparseOrderParams, got "
                            f"{type(state).__name__}")
        K, M = state.K, state.M
        L = K + M
        n_cls = state.f.shape[0]
        live = state.f > 0
        counts = np.where(live, np.maximum(np.floor(state.f * S).astype(int), L + 2), 0)
        if counts.sum() > 4 * S:
            raise ValueError(f"S={S} particles cannot represent {int(live.sum())} classes with "
                             f"at least {L + 2} particles each: raise S")
        tot = int(counts.sum())
        W = np.zeros((replicas, tot, K))
        Y = np.zeros((replicas, tot, M))
        mask = np.zeros((replicas, tot, K), bool)
        wt = np.zeros((replicas, tot))
        start = 0
        for s in range(n_cls):
            n = counts[s]
            if n == 0:
                continue
            keep = state.patterns[s]
            Cs = np.block([[state.Q[s], state.R[s]], [state.R[s].T, state.T[s]]]) / state.f[s]
            A = sqrt_psd(Cs)
            for r in range(replicas):
                Z = moment_matched_normals(rng, n, L)
                U = Z @ A.T
                W[r, start:start + n] = np.where(keep, U[:, :K], 0.0)
                Y[r, start:start + n] = U[:, K:]
            mask[:, start:start + n] = keep
            wt[:, start:start + n] = state.f[s] / n
            start += n
        wt /= wt.sum(1, keepdims=True)
        return cls(W, Y, mask, wt, np.broadcast_to(state.v, (replicas, K)), state.v_star,
                   activation=state.activation)

    @classmethod
    def from_weights(cls, w, w_star, v, v_star, mask=None, activation: str = "erf"
                     ) -> CoordinateLaw:
        """The exact law of a finite network: one replica whose particles are its ``N``
        coordinates (weights 1/N); ``mask`` (K, N) optional. Its Monte-Carlo error is not
        defined (one replica): :meth:`eg` returns NaN as the standard error."""
        w = _check_particles("w", w, 2)
        ws = _check_particles("w_star", w_star, 2)
        K, N = w.shape
        if ws.shape[1] != N:
            raise ValueError(f"w_star must have shape (M, {N}), got {ws.shape}")
        m = np.ones((K, N), bool) if mask is None else check_mask("mask", mask, (K, N), "(K, N)")
        v = _check_particles("v", np.atleast_1d(v), 1)
        if v.shape != (K,):
            raise ValueError(f"v must have shape ({K},), got {v.shape}")
        return cls(w.T[None], ws.T[None], m.T[None], np.full((1, N), 1.0 / N), v[None],
                   v_star, activation=activation)

    @classmethod
    def from_joint(cls, curve, index: int = -1, S: int = 20_000, replicas: int = 8,
                   seed: Any = 0) -> tuple[CoordinateLaw, CoordinateLaw]:
        """Particles of the joint law of ``(w(0), w(alpha), w*)`` of a two-time curve
        (``TwoTimeCurve`` or ``SparseLearningCurve`` with ``P``, §9) at saved ``index``:
        ``(law at alpha, law at 0)``, the same particles (rewinding a mask decided at alpha).
        ``v`` is the curve's at each time."""
        S = check_int("S", S, 2)
        replicas = check_int("replicas", replicas, 1)
        rng = as_generator(seed)
        J = np.asarray(curve.joint_covariance(index))
        if J.ndim == 2:
            J, pats, f = J[None], np.ones((1, curve.Q.shape[1]), bool), np.ones(1)
        else:
            pats, f = np.asarray(curve.patterns), np.asarray(curve.f)
        K = pats.shape[1]
        M = J.shape[1] - 2 * K
        L = 2 * K + M
        counts = np.where(f > 0, np.maximum(np.floor(f * S).astype(int), L + 2), 0)
        tot = int(counts.sum())
        W0, WT = np.zeros((replicas, tot, K)), np.zeros((replicas, tot, K))
        Y = np.zeros((replicas, tot, M))
        mask = np.zeros((replicas, tot, K), bool)
        wt = np.zeros((replicas, tot))
        start = 0
        for s in range(len(f)):
            n = counts[s]
            if n == 0:
                continue
            A = sqrt_psd(J[s])
            for r in range(replicas):
                U = moment_matched_normals(rng, n, L) @ A.T
                W0[r, start:start + n] = np.where(pats[s], U[:, :K], 0.0)
                WT[r, start:start + n] = np.where(pats[s], U[:, K:2 * K], 0.0)
                Y[r, start:start + n] = U[:, 2 * K:]
            mask[:, start:start + n] = pats[s]
            wt[:, start:start + n] = f[s] / n
            start += n
        wt /= wt.sum(1, keepdims=True)
        v0 = np.broadcast_to(np.asarray(curve.v[0]), (replicas, K))
        vT = np.broadcast_to(np.asarray(curve.v[index]), (replicas, K))
        act = curve.metadata.get("activation", "erf")
        return (cls(WT, Y, mask, wt, vT, curve.v_star, activation=act),
                cls(W0, Y, mask, wt, v0, curve.v_star, activation=act))

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, metadata: dict | None = None):
        """Save as ``.npz`` (arrays ``w, w_star, mask, weights, v, v_star``); atomic."""
        meta = dict(metadata or {})
        meta["activation"] = self.activation
        return _io.write_npz(path, KIND, dict(w=self.w, w_star=self.w_star, mask=self.mask,
                                              weights=self.weights, v=self.v,
                                              v_star=self.v_star), meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CoordinateLaw:
        arrays, meta = _io.read_npz(path, KIND)
        missing = sorted({"w", "w_star", "mask", "weights", "v", "v_star"} - set(arrays))
        if missing:
            raise ValueError(f"file {str(path)!r} is a truncated {KIND}: missing {missing}")
        return cls(arrays["w"], arrays["w_star"], arrays["mask"], arrays["weights"],
                   arrays["v"], arrays["v_star"], activation=meta.get("activation", "erf"))

    def __repr__(self) -> str:
        return (f"CoordinateLaw(K={self.K}, M={self.M}, S={self.S}, replicas={self.replicas}, "
                f"density={self.density():.4g}, activation={self.activation!r})")
