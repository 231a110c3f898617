r"""Networks with a fixed first-layer mask in the limit: per-class order parameters.

A mask ``m`` (K, N) splits the input coordinates into **classes** by their pattern
``s(j) = {i : m_ij = 1}`` (``docs/theory.md`` §8). Per class ``s`` (fraction ``f_s`` of the
coordinates) the partial overlaps of the masked weights ``w~ = m * w`` are

.. math::

    Q^s_{ik} = \frac1N\sum_{j\in s}\tilde w_{ij}\tilde w_{kj},\quad
    R^s_{in} = \frac1N\sum_{j\in s}\tilde w_{ij} w^*_{nj},\quad
    T^s_{nm} = \frac1N\sum_{j\in s} w^*_{nj} w^*_{mj},

zero outside the pattern. The network's order parameters are the class sums
(:meth:`SparseOrderParams.dense`); the masked-network ODE (:func:`odeprune.integrate`) moves the
classes separately, which is what keeps pruned weights at zero while the rest trains.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _io
from ._validate import check_array, check_mask, check_real, readonly
from .activations import get_activation
from .results import LearningCurve
from .state import PSD_RTOL, OrderParams

__all__ = ["SparseOrderParams", "SparseLearningCurve", "TwoTimeCurve",
           "joint_coordinate_covariance", "MAX_EXACT_K", "all_patterns"]

#: the largest K for which every one of the 2^K mask classes is kept (exact limit)
MAX_EXACT_K = 12
#: classes' fractions must sum to 1 within this
F_SUM_TOL = 1e-12


def all_patterns(K: int) -> np.ndarray:
    """Every mask pattern over K units, shape (2^K, K), bool, in binary order (unit 0 first)."""
    if K > MAX_EXACT_K:
        raise ValueError(f"K={K} units have 2^{K} mask classes: the exact limit is limited to "
                         f"K <= {MAX_EXACT_K}; use finite N (simulate with mask=...) instead")
    return np.array(list(itertools.product([False, True], repeat=K)), dtype=bool)[:, ::-1]


def _patterns(value: Any) -> np.ndarray:
    if np.ndim(value) != 2:
        raise ValueError(f"patterns must have shape (n_classes, K), got shape "
                         f"{np.shape(value)}")
    a = check_mask("patterns (masks)", value)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SparseOrderParams:
    """Order parameters of a network with a fixed first-layer mask, per mask class.

    Parameters
    ----------
    patterns : array_like of bool, shape (S, K)
        ``patterns[s, i]``: unit ``i`` keeps the coordinates of class ``s``.
    f : array_like, shape (S,)
        Fraction of the input coordinates in each class (in [0, 1], summing to 1).
    Q : array_like, shape (S, K, K)
        Per-class student overlaps, zero outside ``patterns[s] x patterns[s]``.
    R : array_like, shape (S, K, M)
        Per-class student-teacher overlaps, zero for units outside the pattern.
    T : array_like, shape (S, M, M)
        Per-class teacher overlaps.
    v : array_like, shape (K,)
    v_star : array_like, shape (M,)
    activation : str
        The activation of the network ("erf", "linear", ...).

    Raises
    ------
    ValueError
        Wrong shapes, masks that are not 0/1, fractions outside [0, 1] or not summing to 1,
        non-zero entries outside a class's pattern, or a class whose covariance
        ``[[Q^s, R^s], [R^s^T, T^s]]`` is not positive semi-definite.
    """

    patterns: np.ndarray
    f: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    v: np.ndarray
    v_star: np.ndarray
    activation: str = "erf"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation).name)
        pats = _patterns(self.patterns)
        f = check_array("f", self.f, 1)
        Q, R, T = check_array("Q", self.Q, 3), check_array("R", self.R, 3), check_array("T", self.T, 3)
        v, v_star = check_array("v", self.v, 1), check_array("v_star", self.v_star, 1)
        S, K = pats.shape
        M = v_star.shape[0]
        if S < 1:
            raise ValueError("a sparse state needs at least one class")
        for name, a, shape in (("f", f, (S,)), ("Q", Q, (S, K, K)), ("R", R, (S, K, M)),
                               ("T", T, (S, M, M)), ("v", v, (K,))):
            if a.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for {S} classes, K={K} "
                                 f"(patterns' width) and M={M} (len v_star), got {a.shape}")
        if np.any(f < 0) or np.any(f > 1):
            s = int(np.argmax((f < 0) | (f > 1)))
            raise ValueError(f"class fraction f[{s}]={float(f[s])!r} is outside [0, 1]")
        if abs(float(f.sum()) - 1.0) > F_SUM_TOL * S:
            raise ValueError(f"class fractions f must sum to 1, got {float(f.sum())!r}")
        m = pats.astype(float)
        outside_Q = np.abs(Q * (1 - m[:, :, None] * m[:, None, :]))
        outside_R = np.abs(R * (1 - m[:, :, None]))
        if outside_Q.max(initial=0) > 0 or outside_R.max(initial=0) > 0:
            which = "Q" if outside_Q.max(initial=0) > 0 else "R"
            idx = np.unravel_index(int(np.argmax(outside_Q if which == "Q" else outside_R)),
                                   (Q if which == "Q" else R).shape)
            raise ValueError(f"{which}[{', '.join(map(str, idx))}] is non-zero but unit {idx[1]} "
                             f"is pruned in class {idx[0]}: entries outside a class's pattern "
                             "must be exactly 0")
        # tolerances on the scale of the whole network (the class sums), as for OrderParams:
        # a small class carries the integration error of the whole state vector
        scale = max(1.0, float(np.abs(Q.sum(0)).max(initial=0)), float(np.abs(T.sum(0)).max()),
                    float(np.abs(R.sum(0)).max(initial=0)))
        for s in range(S):
            for name, A in (("Q", Q[s]), ("T", T[s])):
                if np.abs(A - A.T).max(initial=0) > 1e-10 * scale:
                    raise ValueError(f"{name}[{s}] must be symmetric")
            C = np.block([[Q[s], R[s]], [R[s].T, T[s]]])
            C = 0.5 * (C + C.T)
            lam = float(np.linalg.eigvalsh(C)[0])
            if lam < -PSD_RTOL * scale:
                raise ValueError(f"class {s}: covariance [[Q^s, R^s], [R^s^T, T^s]] is not "
                                 f"positive semi-definite (smallest eigenvalue {lam:.3e})")
        for name, a in (("patterns", pats), ("f", f), ("Q", Q), ("R", R), ("T", T), ("v", v),
                        ("v_star", v_star)):
            object.__setattr__(self, name, a)

    # ------------------------------------------------------------------ basic properties
    @property
    def K(self) -> int:
        return self.v.shape[0]

    @property
    def M(self) -> int:
        return self.v_star.shape[0]

    @property
    def n_classes(self) -> int:
        return self.patterns.shape[0]

    def dense_arrays(self) -> dict[str, np.ndarray]:
        return {"Q": self.Q.sum(0), "R": self.R.sum(0), "T": self.T.sum(0), "v": self.v,
                "v_star": self.v_star}

    def dense(self) -> OrderParams:
        """The :class:`OrderParams` of the masked network (the class sums)."""
        if "dense" not in self._cache:
            self._cache["dense"] = OrderParams(**self.dense_arrays(),
                                               activation=self.activation)
        return self._cache["dense"]

    def eg(self) -> float:
        """Generalisation error of the masked network (noiseless labels; ``docs/theory.md`` §5)."""
        return self.dense().eg()

    def density(self) -> tuple[np.ndarray, float]:
        """Kept fraction of first-layer weights per unit (K,) and overall."""
        per_unit = self.f @ self.patterns.astype(float)
        return per_unit, float(per_unit.mean())

    def __repr__(self) -> str:
        return (f"SparseOrderParams(K={self.K}, M={self.M}, classes={self.n_classes}, "
                f"density={self.density()[1]:.4g}, eg={self.eg():.6g})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseOrderParams):
            return NotImplemented
        return self.activation == other.activation and all(
            np.array_equal(getattr(self, n), getattr(other, n))
            for n in ("patterns", "f", "Q", "R", "T", "v", "v_star"))

    __hash__ = None  # type: ignore[assignment]

    def replace(self, **changes: Any) -> SparseOrderParams:
        kw = {n: getattr(self, n) for n in ("patterns", "f", "Q", "R", "T", "v", "v_star",
                                            "activation")}
        unknown = set(changes) - set(kw)
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; expected {sorted(kw)}")
        kw.update(changes)
        return SparseOrderParams(**kw)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_weights(cls, w, w_star, v, v_star, mask, activation: str = "erf"
                     ) -> SparseOrderParams:
        """Exact per-class order parameters of finite-N weights with a 0/1 mask (K, N).

        Classes are the distinct columns of ``mask`` (sorted); ``w`` is masked here (``m * w``).
        """
        w = np.asarray(w, dtype=float)
        w_star = np.asarray(w_star, dtype=float)
        if w.ndim != 2 or w_star.ndim != 2 or w.shape[1] != w_star.shape[1]:
            raise ValueError(f"w (K, N) and w_star (M, N) must share N, got {w.shape} and "
                             f"{w_star.shape}")
        mask = check_mask("mask", mask, w.shape, "the shape of w")
        K, N = w.shape
        M = w_star.shape[0]
        pats, inverse = np.unique(mask.T, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        wm = np.where(mask, w, 0.0)
        S = pats.shape[0]
        Q, R, T = np.zeros((S, K, K)), np.zeros((S, K, M)), np.zeros((S, M, M))
        f = np.zeros(S)
        for s in range(S):
            cols = inverse == s
            ws, xs = wm[:, cols], w_star[:, cols]
            Q[s] = ws @ ws.T / N
            R[s] = ws @ xs.T / N
            T[s] = xs @ xs.T / N
            f[s] = cols.sum() / N
        return cls(patterns=pats, f=f, Q=Q, R=R, T=T, v=v, v_star=v_star, activation=activation)

    @classmethod
    def from_dense(cls, state: OrderParams) -> SparseOrderParams:
        """One class, nothing pruned: the same network as ``state``."""
        return cls(patterns=np.ones((1, state.K), dtype=bool), f=[1.0], Q=state.Q[None],
                   R=state.R[None], T=state.T[None], v=state.v, v_star=state.v_star,
                   activation=state.activation)

    @classmethod
    def random_mask(cls, state: OrderParams, c: float) -> SparseOrderParams:
        """Independent Bernoulli(``c``) masks in the limit (``docs/theory.md`` §8).

        ``f_s = c^|s| (1-c)^(K-|s|)``, ``Q^s = f_s Q|_s``, ``R^s = f_s R|_s``, ``T^s = f_s T``;
        :meth:`dense` is Lemma 6 of Acharyya et al. (2021). Classes with ``f_s = 0`` (c = 0 or 1)
        are dropped.
        """
        c = check_real("c", c, allow_zero=True)
        if c > 1:
            raise ValueError(f"c={c!r} must be in [0, 1] (the kept fraction of edges)")
        pats = all_patterns(state.K)
        m = pats.astype(float)
        k = m.sum(1)
        f = c ** k * (1.0 - c) ** (state.K - k)
        keep = f > 0
        pats, m, f = pats[keep], m[keep], f[keep]
        Q = f[:, None, None] * state.Q[None] * m[:, :, None] * m[:, None, :]
        R = f[:, None, None] * state.R[None] * m[:, :, None]
        T = f[:, None, None] * state.T[None]
        return cls(patterns=pats, f=f / f.sum(), Q=Q, R=R, T=T, v=state.v, v_star=state.v_star,
                   activation=state.activation)

    def split(self, n: int = 2) -> SparseOrderParams:
        """The same network with every class split into ``n`` equal sub-classes (a test of the
        per-class algebra: integrating the split state must give the same network)."""
        rep = lambda a: np.repeat(a, n, axis=0)  # noqa: E731
        return SparseOrderParams(patterns=rep(self.patterns), f=rep(self.f) / n,
                                 Q=rep(self.Q) / n, R=rep(self.R) / n, T=rep(self.T) / n,
                                 v=self.v, v_star=self.v_star, activation=self.activation)

    # ------------------------------------------------------------------ files
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"patterns": self.patterns, "f": self.f, "Q": self.Q, "R": self.R, "T": self.T,
                "v": self.v, "v_star": self.v_star}

    def save(self, path: str | os.PathLike, metadata: dict | None = None):
        """Save as ``.npz`` (arrays ``patterns, f, Q, R, T, v, v_star``; JSON metadata); atomic."""
        meta = dict(metadata or {})
        meta["activation"] = self.activation
        return _io.write_npz(path, "SparseOrderParams", self.to_arrays(), meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SparseOrderParams:
        arrays, meta = _io.read_npz(path)
        if meta["kind"] == "SparseOrderParams":
            return cls(activation=meta.get("activation", "erf"),
                       **{k: arrays[k] for k in ("patterns", "f", "Q", "R", "T", "v", "v_star")})
        if meta["kind"] == SparseLearningCurve.KIND:
            return SparseLearningCurve.load(path).final
        raise ValueError(f"file {str(path)!r} holds a {meta['kind']}, not a SparseOrderParams")


@dataclass(frozen=True, eq=False)
class SparseLearningCurve(LearningCurve):
    """A learning curve of a masked network: the network's ``Q, R, v, eg`` (class sums, as in
    :class:`~odeprune.results.LearningCurve`) plus the per-class overlaps.

    Attributes
    ----------
    patterns : ndarray, shape (S, K)
    f : ndarray, shape (S,)
    T_cls : ndarray, shape (S, M, M)
    Q_cls : ndarray, shape (n, S, K, K)
    R_cls : ndarray, shape (n, S, K, M)
    P_cls : ndarray, shape (n, S, K, K) or None
        Per-class two-time overlaps ``w_i(alpha) . w_k(0) / N`` (``track_initial=True``).
    """

    patterns: np.ndarray = None
    f: np.ndarray = None
    T_cls: np.ndarray = None
    Q_cls: np.ndarray = None
    R_cls: np.ndarray = None
    P_cls: np.ndarray | None = None

    KIND = "SparseLearningCurve"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("f", "T_cls", "Q_cls", "R_cls"):
            object.__setattr__(self, name, readonly(getattr(self, name)))
        object.__setattr__(self, "patterns", readonly(self.patterns, bool))
        if self.P_cls is not None:
            object.__setattr__(self, "P_cls", readonly(self.P_cls))

    def sparse_state(self, index: int) -> SparseOrderParams:
        """The per-class state at saved index ``index``."""
        return SparseOrderParams(patterns=self.patterns, f=self.f, Q=self.Q_cls[index],
                                 R=self.R_cls[index], T=self.T_cls, v=self.v[index],
                                 v_star=self.v_star,
                                 activation=self.metadata.get("activation", "erf"))

    @property
    def final(self) -> SparseOrderParams:  # type: ignore[override]
        return self.sparse_state(-1)

    @property
    def initial(self) -> SparseOrderParams:  # type: ignore[override]
        return self.sparse_state(0)

    @property
    def P(self) -> np.ndarray | None:
        """Two-time overlaps of the network, ``P_ik = w_i(alpha) . w_k(0) / N``, (n, K, K)."""
        return None if self.P_cls is None else self.P_cls.sum(1)

    def joint_covariance(self, index: int) -> np.ndarray:
        """Per class, the covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index
        ``index`` (``docs/theory.md`` §9): shape (S, 2K+M, 2K+M), blocks
        ``[[Q0, P^T, R0], [P, Q, R], [R0^T, R^T, T]] / f_s``."""
        if self.P_cls is None:
            raise ValueError("this curve has no two-time overlaps: integrate with "
                             "track_initial=True")
        check_saved_from_start(self.Q_cls[0], self.P_cls[0], self.alpha[0])
        out = []
        for s in range(self.f.shape[0]):
            out.append(joint_coordinate_covariance(
                self.Q_cls[0, s], self.R_cls[0, s], self.P_cls[index, s], self.Q_cls[index, s],
                self.R_cls[index, s], self.T_cls[s]) / self.f[s])
        return np.array(out)

    def _arrays(self) -> dict[str, np.ndarray]:
        out = super()._arrays()
        out.update(patterns=self.patterns, f=self.f, T_cls=self.T_cls, Q_cls=self.Q_cls,
                   R_cls=self.R_cls)
        if self.P_cls is not None:
            out["P_cls"] = self.P_cls
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> SparseLearningCurve:
        return _load_curve(cls, path, ("patterns", "f", "T_cls", "Q_cls", "R_cls"), ("P_cls",))


def check_saved_from_start(Q0, P0, alpha0) -> None:
    """The joint law uses the first saved state as ``w(0)``: refuse a curve whose first saved
    time is not its start (there ``P = w(alpha).w(0)/N`` differs from ``Q``)."""
    scale = max(1.0, float(np.max(np.abs(Q0))))
    if np.max(np.abs(np.asarray(P0) - np.asarray(Q0))) > 1e-9 * scale:
        raise ValueError(f"this curve's first saved time (alpha={float(alpha0):g}) is not its "
                         "start, which the joint law of (w(0), w(alpha), w*) needs: integrate "
                         "with save_at including 0")


def joint_coordinate_covariance(Q0, R0, P, Q, R, T) -> np.ndarray:
    """``[[Q0, P^T, R0], [P, Q, R], [R0^T, R^T, T]]``: the covariance of one coordinate
    ``(w(0), w(alpha), w*)`` (times N; docs/theory.md §9)."""
    return np.block([[Q0, P.T, R0], [P, Q, R], [R0.T, R.T, T]])


@dataclass(frozen=True, eq=False)
class TwoTimeCurve(LearningCurve):
    """A dense learning curve with the two-time overlaps ``P_ik(alpha) = w_i(alpha).w_k(0)/N``
    (``integrate(..., track_initial=True)``; ``docs/theory.md`` §9).

    Attributes
    ----------
    P : ndarray, shape (n, K, K)
    """

    P: np.ndarray = None

    KIND = "TwoTimeCurve"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "P", readonly(self.P))
        if self.P.shape != self.Q.shape:
            raise ValueError(f"P must have the shape of Q {self.Q.shape}, got {self.P.shape}")

    def joint_covariance(self, index: int) -> np.ndarray:
        """Covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index ``index``:
        ``[[Q0, P^T, R0], [P, Q, R], [R0^T, R^T, T]]``, shape (2K+M, 2K+M)."""
        check_saved_from_start(self.Q[0], self.P[0], self.alpha[0])
        return joint_coordinate_covariance(self.Q[0], self.R[0], self.P[index], self.Q[index],
                                           self.R[index], self.T)

    def _arrays(self) -> dict[str, np.ndarray]:
        out = super()._arrays()
        out["P"] = self.P
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> TwoTimeCurve:
        return _load_curve(cls, path, ("P",))


def _load_curve(cls, path, extra: tuple, optional: tuple = ()):
    """A curve file of kind ``cls.KIND``: the LearningCurve arrays plus ``extra`` (required)
    and ``optional`` ones."""
    arrays, meta = _io.read_npz(path, cls.KIND)
    meta = {k: v for k, v in meta.items() if k not in ("kind", "format_version")}
    names = ("alpha", "eg", "Q", "R", "v", "T", "v_star", *extra)
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing {missing}")
    return cls(metadata=meta, **{k: arrays[k] for k in names},
               **{k: arrays.get(k) for k in optional})
