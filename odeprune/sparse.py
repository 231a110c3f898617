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

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _io
from ._validate import check_array, check_mask, check_real, readonly
from .activations import get_activation
from .results import (
    SHARED,
    LearningCurve,
    check_saved_from_start,
    compose,
    curve_fields,
    joint_coordinate_covariance,
    read_curve,
)
from .state import PSD_RTOL, OrderParams

__all__ = ["SparseOrderParams", "MaskClasses", "SparseLearningCurve", "TwoTimeCurve",
           "joint_coordinate_covariance", "check_saved_from_start", "MAX_EXACT_K",
           "all_patterns"]

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

    KIND = "SparseOrderParams"

    @classmethod
    def load(cls, path: str | os.PathLike) -> SparseOrderParams:
        """The masked network of a ``SparseOrderParams`` file, or the final state of a
        ``SparseLearningCurve`` file."""
        return cls.from_npz(path, *_io.read_npz(path, (cls.KIND, SparseLearningCurve.KIND)))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> SparseOrderParams:
        """The state from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        if meta["kind"] == SparseLearningCurve.KIND:
            return SparseLearningCurve.from_npz(path, arrays, meta).final
        names = ("patterns", "f", "Q", "R", "T", "v", "v_star")
        missing = sorted(set(names) - set(arrays))
        if missing:
            raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing {missing}")
        return cls(activation=meta.get("activation") or "erf", **{k: arrays[k] for k in names})


#: the per-class arrays of a masked curve: its keyword -> the field of :class:`MaskClasses`
CLASS_ARRAYS = {"patterns": "patterns", "f": "f", "T_cls": "T", "Q_cls": "Q", "R_cls": "R",
                "P_cls": "P"}


@dataclass(frozen=True, eq=False)
class MaskClasses:
    """The per-class part of a masked network's trajectory (``docs/theory.md`` §8).

    Attributes
    ----------
    patterns : ndarray of bool, shape (S, K)
    f : ndarray, shape (S,)
    T : ndarray, shape (S, M, M)
    Q : ndarray, shape (n, S, K, K)
    R : ndarray, shape (n, S, K, M)
    P : ndarray, shape (n, S, K, K), or None
        Per-class two-time overlaps ``w_i(alpha) . w_k(0) / N`` (``track_initial=True``).
    """

    patterns: np.ndarray
    f: np.ndarray
    T: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    P: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", readonly(_patterns(self.patterns), bool))
        for name in ("f", "T", "Q", "R") + (("P",) if self.P is not None else ()):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        S, K = self.patterns.shape
        n, M = self.Q.shape[0], self.T.shape[-1]
        for name, shape in (("f", (S,)), ("T", (S, M, M)), ("Q", (n, S, K, K)),
                            ("R", (n, S, K, M)), ("P", (n, S, K, K))):
            a = getattr(self, name)
            if a is not None and a.shape != shape:
                raise ValueError(f"per-class {name} must have shape {shape} ({S} classes, K={K}, "
                                 f"M={M}, {n} saved times), got {a.shape}")


def _frozen(a: Any) -> np.ndarray:
    """``a`` itself when it is a float array that nothing can write through (read-only, as is
    every array it views, down to one that owns its memory), else a read-only copy: a masked
    curve's per-class arrays are large (copying them was ~2 ms of a K=6 curve's 60 ms, mostly
    in page faults), and a driver that hands over frozen arrays need not have them copied."""
    if isinstance(a, np.ndarray) and a.dtype == np.float64:
        b = a
        while isinstance(b, np.ndarray) and not b.flags.writeable:
            if b.base is None:
                return a
            b = b.base
    return readonly(a)


def _check_class_sums(curve: LearningCurve, classes: MaskClasses) -> None:
    """The network's overlaps are the class sums (``docs/theory.md`` §8), to rounding."""
    scale = max(1.0, float(np.abs(curve.Q).max()), float(np.abs(curve.T).max()))
    for name, whole, parts in (("Q", curve.Q, classes.Q.sum(1)), ("R", curve.R, classes.R.sum(1)),
                               ("T", curve.T, classes.T.sum(0)),
                               ("P", curve.P, None if classes.P is None else classes.P.sum(1))):
        if whole is not None and np.abs(whole - parts).max() > 1e-10 * scale:
            raise ValueError(f"the curve's {name} is not the sum over classes of the per-class "
                             f"{name} (largest difference {np.abs(whole - parts).max():.3g})")


@curve_fields(*SHARED)
@dataclass(frozen=True, eq=False, init=False)
class SparseLearningCurve:
    """A learning curve of a masked network: the network's curve (class sums, as in
    :class:`~odeprune.results.LearningCurve`) and its per-class overlaps.

    ``SparseLearningCurve(curve, classes)``, or the flat keywords of a ``LearningCurve`` and
    ``patterns, f, T_cls, Q_cls, R_cls, P_cls`` (``P`` is then the class sum of ``P_cls``).

    Attributes
    ----------
    curve : LearningCurve
        The network: ``alpha, eg, Q, R, v, T, v_star, P, activation, status, metadata`` are its.
    classes : MaskClasses
    patterns, f, T_cls, Q_cls, R_cls, P_cls
        The arrays of ``classes`` (``T_cls`` is ``classes.T``, ...).
    """

    curve: LearningCurve
    classes: MaskClasses

    KIND = "SparseLearningCurve"

    def __init__(self, curve: LearningCurve | None = None, classes: MaskClasses | None = None,
                 **fields: Any) -> None:
        per_class = {CLASS_ARRAYS[k]: fields.pop(k) for k in list(fields) if k in CLASS_ARRAYS}
        if classes is None:
            classes = MaskClasses(**per_class)
        elif per_class:
            classes = dataclasses.replace(classes, **per_class)
        if curve is None and classes.P is not None:
            fields.setdefault("P", classes.P.sum(1))
        curve = compose("SparseLearningCurve", curve, fields)
        n, S, K, _ = classes.Q.shape
        if (n, K, curve.M) != (len(curve), curve.K, classes.T.shape[-1]):
            raise ValueError(f"the per-class overlaps ({n} saved times, K={K}, "
                             f"M={classes.T.shape[-1]}) do not match the curve ({len(curve)} "
                             f"saved times, K={curve.K}, M={curve.M})")
        if (classes.P is None) != (curve.P is None):
            raise ValueError("P and P_cls go together: the curve's P is the class sum of P_cls")
        _check_class_sums(curve, classes)
        object.__setattr__(self, "curve", curve)
        object.__setattr__(self, "classes", classes)

    @classmethod
    def _unpacked_later(cls, curve: LearningCurve, patterns, f, T, per_class
                        ) -> SparseLearningCurve:
        """The curve of a masked run whose per-class arrays are made on first read (an
        integration builds them from its saved states: ~5 MB for 201 states of 64 classes,
        K=6, more than the rest of a short curve's set-up): ``per_class()`` returns the
        frozen ``Q (n, S, K, K)``, ``R (n, S, K, M)``, ``P`` or None, whose class sums the caller
        has made ``curve``'s (``curve.P`` with ``P``). What a user reads is the same: ``classes``
        (and every per-class property) builds and keeps the :class:`MaskClasses` when first
        read."""
        self = object.__new__(cls)
        object.__setattr__(self, "curve", curve)
        object.__setattr__(self, "_per_class", (patterns, f, T, per_class))
        return self

    def __getattr__(self, name: str) -> Any:
        # only for ``classes`` of a curve made by _unpacked_later, on its first read
        later = self.__dict__.get("_per_class") if name == "classes" else None
        if later is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        patterns, f, T, per_class = later
        classes = MaskClasses(patterns, f, T, *per_class())
        object.__setattr__(self, "classes", classes)
        self.__dict__.pop("_per_class", None)
        return classes

    patterns = property(lambda self: self.classes.patterns, doc="``classes.patterns``, (S, K)")
    f = property(lambda self: self.classes.f, doc="``classes.f``, (S,)")
    T_cls = property(lambda self: self.classes.T, doc="``classes.T``, (S, M, M)")
    Q_cls = property(lambda self: self.classes.Q, doc="``classes.Q``, (n, S, K, K)")
    R_cls = property(lambda self: self.classes.R, doc="``classes.R``, (n, S, K, M)")
    P_cls = property(lambda self: self.classes.P, doc="``classes.P``, (n, S, K, K) or None")

    def sparse_state(self, index: int) -> SparseOrderParams:
        """The per-class state at saved index ``index``."""
        c = self.classes
        return SparseOrderParams(patterns=c.patterns, f=c.f, Q=c.Q[index], R=c.R[index], T=c.T,
                                 v=self.curve.v[index], v_star=self.curve.v_star,
                                 activation=self.curve.activation)

    @property
    def initial(self) -> SparseOrderParams:
        return self.sparse_state(0)

    @property
    def final(self) -> SparseOrderParams:
        """The masked network at the last saved time."""
        return self.sparse_state(-1)

    def joint_covariance(self, index: int) -> np.ndarray:
        """Per class, the covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index
        ``index`` (``docs/theory.md`` §9): shape (S, 2K+M, 2K+M), blocks
        ``[[Q0, P^T, R0], [P, Q, R], [R0^T, R^T, T]] / f_s``."""
        c = self.classes
        if c.P is None:
            raise ValueError("this curve has no two-time overlaps: integrate with "
                             "track_initial=True")
        check_saved_from_start(c.Q[0], c.P[0], self.curve.alpha[0])
        return np.array([joint_coordinate_covariance(c.Q[0, s], c.R[0, s], c.P[index, s],
                                                     c.Q[index, s], c.R[index, s], c.T[s])
                         / c.f[s] for s in range(c.f.shape[0])])

    def __len__(self) -> int:
        return len(self.curve)

    def __repr__(self) -> str:
        c = self.curve
        return (f"SparseLearningCurve(K={c.K}, M={c.M}, classes={self.f.shape[0]}, alpha=["
                f"{c.alpha[0]:g}..{c.alpha[-1]:g}] ({len(c)} points), eg_final={c.eg[-1]:.6g})")

    def to_csv(self) -> str:
        """``alpha,eg`` as CSV text."""
        return self.curve.to_csv()

    # ---------------------------------------------------------------- files
    def save(self, path: str | os.PathLike):
        """One ``.npz``: the curve's arrays but ``P`` (the class sum of ``P_cls``) and
        ``patterns, f, T_cls, Q_cls, R_cls`` (and ``P_cls``); JSON metadata. Atomic."""
        arrays = self.curve.arrays()
        arrays.pop("P", None)
        arrays.update({k: getattr(self.classes, v) for k, v in CLASS_ARRAYS.items()
                       if getattr(self.classes, v) is not None})
        return _io.write_npz(path, self.KIND, arrays, self.curve.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SparseLearningCurve:
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> SparseLearningCurve:
        """The curve from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        need = ("patterns", "f", "T_cls", "Q_cls", "R_cls")
        fields = read_curve(path, cls.KIND, arrays, meta, need)
        fields["P_cls"] = arrays.get("P_cls")
        del fields["P"]  # the class sum of P_cls
        return cls(**fields)


@curve_fields(*SHARED)
@dataclass(frozen=True, eq=False, init=False)
class TwoTimeCurve:
    """A dense learning curve with the two-time overlaps ``P_ik(alpha) = w_i(alpha).w_k(0)/N``
    (``integrate(..., track_initial=True)``; ``docs/theory.md`` §9).

    ``TwoTimeCurve(curve)`` (a :class:`~odeprune.results.LearningCurve` with ``P``), or the
    flat keywords of a ``LearningCurve`` with ``P``.

    Attributes
    ----------
    curve : LearningCurve
        ``alpha, eg, Q, R, v, T, v_star, P, activation, status, metadata`` are its.
    """

    curve: LearningCurve

    KIND = "TwoTimeCurve"

    def __init__(self, curve: LearningCurve | None = None, **fields: Any) -> None:
        curve = compose("TwoTimeCurve", curve, fields)
        if curve.P is None:
            raise ValueError("a TwoTimeCurve needs the two-time overlaps P")
        object.__setattr__(self, "curve", curve)

    @property
    def initial(self) -> OrderParams:
        return self.curve.initial

    @property
    def final(self) -> OrderParams:
        return self.curve.final

    def joint_covariance(self, index: int) -> np.ndarray:
        """Covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index ``index``:
        ``[[Q0, P^T, R0], [P, Q, R], [R0^T, R^T, T]]``, shape (2K+M, 2K+M)."""
        return self.curve.joint_covariance(index)

    def __len__(self) -> int:
        return len(self.curve)

    def __repr__(self) -> str:
        return "TwoTimeCurve" + repr(self.curve)[len("LearningCurve"):]

    def to_csv(self) -> str:
        """``alpha,eg`` as CSV text."""
        return self.curve.to_csv()

    def save(self, path: str | os.PathLike):
        """One ``.npz``: the curve's arrays with ``P``; JSON metadata. Atomic."""
        return _io.write_npz(path, self.KIND, self.curve.arrays(), self.curve.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TwoTimeCurve:
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> TwoTimeCurve:
        """The curve from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        return cls(**read_curve(path, cls.KIND, arrays, meta, ("P",)))
