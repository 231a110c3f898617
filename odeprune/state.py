"""``OrderParams``: a two-layer network in the thermodynamic limit, as its order parameters.

A student with ``K`` hidden units and a teacher with ``M`` are described (docs/theory.md §2) by

- ``Q`` (K, K): ``Q_ik = w_i . w_k / N``, symmetric;
- ``R`` (K, M): ``R_in = w_i . w*_n / N``;
- ``T`` (M, M): ``T_nm = w*_n . w*_m / N``, symmetric;
- ``v`` (K,), ``v_star`` (M,): the second layers.

The joint covariance ``C = [[Q, R], [R^T, T]]`` of the local fields must be positive
semi-definite: its smallest eigenvalue may not be below ``-PSD_RTOL * max(1, |C|_max)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _io
from ._validate import as_generator, check_array, check_memory
from ._validate import check_size as _check_size
from .activations import ACTIVATIONS, activation_code, eg_from_cov, get_activation

__all__ = ["OrderParams", "PSD_RTOL", "SYMMETRY_RTOL", "as_generator", "load_state",
           "check_weights"]

#: Relative tolerance on the smallest eigenvalue of the covariance (scaled by its largest entry).
PSD_RTOL = 1e-8
#: Relative tolerance on the asymmetry of Q and T.
SYMMETRY_RTOL = 1e-10


def _check_symmetric(name: str, A: np.ndarray) -> None:
    scale = max(1.0, float(np.max(np.abs(A)))) if A.size else 1.0
    asym = float(np.max(np.abs(A - A.T))) if A.size else 0.0
    if asym > SYMMETRY_RTOL * scale:
        i, k = np.unravel_index(np.argmax(np.abs(A - A.T)), A.shape)
        raise ValueError(f"{name} must be symmetric: {name}[{i},{k}]={float(A[i, k])!r} but "
                         f"{name}[{k},{i}]={float(A[k, i])!r}")


@dataclass(frozen=True, eq=False)
class OrderParams:
    """Order parameters of a student (K units) and a teacher (M units); immutable and validated.

    Parameters
    ----------
    Q : array_like, shape (K, K)
        Student-student overlaps, symmetric.
    R : array_like, shape (K, M)
        Student-teacher overlaps.
    T : array_like, shape (M, M)
        Teacher-teacher overlaps, symmetric.
    v : array_like, shape (K,)
        Student second layer.
    v_star : array_like, shape (M,)
        Teacher second layer.
    activation : str
        The activation ``g`` of student and teacher (a name of
        :data:`odeprune.activations.ACTIVATIONS`; default ``"erf"``). It is part of the state:
        the error, the dynamics and every pruning map use it, and files keep it.

    Raises
    ------
    ValueError
        Wrong shapes, non-finite entries, asymmetric Q or T, negative diagonal, or a joint
        covariance ``[[Q, R], [R^T, T]]`` that is not positive semi-definite (the message says by
        how much), or an unknown activation.
    """

    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    v: np.ndarray
    v_star: np.ndarray
    activation: str = "erf"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation).name)
        Q = check_array("Q", self.Q, 2)
        R = check_array("R", self.R, 2)
        T = check_array("T", self.T, 2)
        v = check_array("v", self.v, 1)
        v_star = check_array("v_star", self.v_star, 1)
        K, M = v.shape[0], v_star.shape[0]
        if K < 1:
            raise ValueError("v must have at least one entry (K >= 1 student units)")
        if M < 1:
            raise ValueError("v_star must have at least one entry (M >= 1 teacher units)")
        for name, arr, shape in (("Q", Q, (K, K)), ("R", R, (K, M)), ("T", T, (M, M))):
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for K={K} (len v) and M={M} "
                                 f"(len v_star), got {arr.shape}")
        _check_symmetric("Q", Q)
        _check_symmetric("T", T)
        # exact symmetry from here on
        Q = 0.5 * (Q + Q.T)
        T = 0.5 * (T + T.T)
        for name, A in (("Q", Q), ("T", T)):
            # a squared norm: negative only by rounding (within the PSD tolerance, e.g. -1e-111
            # after integrating a state of norm 1e-117), which is set to 0
            d = np.diag(A)
            floor = -PSD_RTOL * max(1.0, float(np.max(np.abs(A))))
            if np.any(d < floor):
                i = int(np.argmin(d))
                raise ValueError(f"{name}[{i},{i}]={float(d[i])!r} is negative; a squared norm "
                                 "must be >= 0")
            if np.any(d < 0):
                A[np.diag_indices_from(A)] = np.maximum(d, 0.0)
        Q.setflags(write=False)
        T.setflags(write=False)
        object.__setattr__(self, "Q", Q)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "v", v)
        object.__setattr__(self, "v_star", v_star)
        C = self.covariance()
        _check_correlations(C, K)
        scale = max(1.0, float(np.max(np.abs(C))))
        lam_min = float(np.linalg.eigvalsh(C)[0])
        if lam_min < -PSD_RTOL * scale:
            raise ValueError(
                "covariance [[Q, R], [R^T, T]] is not positive semi-definite: smallest eigenvalue "
                f"{lam_min:.3e} (allowed down to {-PSD_RTOL * scale:.1e}); check |Q_ik| <= "
                "sqrt(Q_ii Q_kk) and |R_in| <= sqrt(Q_ii T_nn)"
            )

    # ------------------------------------------------------------------ basic properties
    @property
    def K(self) -> int:
        """Number of student hidden units."""
        return self.v.shape[0]

    @property
    def M(self) -> int:
        """Number of teacher hidden units."""
        return self.v_star.shape[0]

    def covariance(self) -> np.ndarray:
        """The joint covariance ``[[Q, R], [R^T, T]]`` of the local fields, shape (K+M, K+M)."""
        C = np.block([[self.Q, self.R], [self.R.T, self.T]])
        C.setflags(write=False)
        return C

    def signed_weights(self) -> np.ndarray:
        """``a = (v_1..v_K, -v*_1..-v*_M)``: the error is ``sum_c a_c g(field_c)``."""
        return np.concatenate([self.v, -self.v_star])

    def eg(self, activation: str | None = None) -> float:
        r"""Generalisation error :math:`\epsilon_g = \frac12\sum_{c,d} a_c a_d I_2(c,d)`.

        The noiseless-label error (docs/theory.md §5) of this network, with its own activation;
        the error on labels with output noise ``sigma`` is ``eg + sigma**2 / 2``. For erf this is
        Eq. (5)-(8) of Acharyya et al. (2021). ``activation`` may only repeat the state's own
        (another one would be the error of a different network: use
        ``state.replace(activation=...)`` for that).
        """
        act = get_activation(self.check_activation(activation))
        key = ("eg", act.name)
        if key not in self._cache:
            self._cache[key] = float(
                eg_from_cov(activation_code(act.code), np.ascontiguousarray(self.covariance()),
                            self.signed_weights())
            )
        return self._cache[key]

    def check_activation(self, activation: str | None, what: str = "activation") -> str:
        """The state's activation; ``activation`` (when not None) must name the same one.

        Raises ``ValueError`` for a different activation: computing with another ``g`` than
        the network's would silently give another network's numbers.
        """
        if activation is None:
            return self.activation
        name = get_activation(activation).name
        if name != self.activation:
            raise ValueError(
                f"{what}={activation!r} conflicts with the state's activation "
                f"{self.activation!r}; omit it (the state's is used), or reinterpret the overlaps "
                f"explicitly with state.replace(activation={name!r})")
        return name

    def replace(self, **changes: Any) -> OrderParams:
        """A new, validated ``OrderParams`` with some fields (or the activation) replaced."""
        kw = dict(Q=self.Q, R=self.R, T=self.T, v=self.v, v_star=self.v_star,
                  activation=self.activation)
        unknown = set(changes) - set(kw)
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; expected {sorted(kw)}")
        kw.update(changes)
        return OrderParams(**kw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrderParams):
            return NotImplemented
        return self.activation == other.activation and all(
            np.array_equal(getattr(self, n), getattr(other, n))
            for n in ("Q", "R", "T", "v", "v_star"))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"OrderParams(K={self.K}, M={self.M}, activation={self.activation!r}, "
                f"eg={self.eg():.6g})")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_weights(cls, w, w_star, v, v_star, activation: str = "erf") -> OrderParams:
        """Order parameters of finite-N weights.

        Parameters
        ----------
        w : array_like, shape (K, N)
        w_star : array_like, shape (M, N)
        v : array_like, shape (K,)
        v_star : array_like, shape (M,)
        activation : str
            The networks' activation (default ``"erf"``).
        """
        w, w_star = check_weights(w, w_star)
        N = w.shape[1]
        return cls(Q=w @ w.T / N, R=w @ w_star.T / N, T=w_star @ w_star.T / N, v=v, v_star=v_star,
                   activation=activation)

    @staticmethod
    def draw_weights(N: int, K: int, M: int, v_star: float | Any = 1.0,
                     seed: int | np.random.Generator | None = 0):
        """The paper's initial draw: ``w`` (K,N), ``w_star`` (M,N), ``v`` (K,) all i.i.d. N(0,1).

        Draw order (fixed, so that simulations reproduce it): ``w_star``, then ``w``, then ``v``,
        from one ``numpy.random.Generator`` built from ``seed``.

        Returns
        -------
        w, w_star, v, v_star : ndarray
        """
        N, K, M = _check_size("N", N), _check_size("K", K), _check_size("M", M)
        v_star = broadcast_v_star(v_star, M)
        # the weights, and the (K+M)^2 overlaps with their PSD check (a few copies)
        check_memory(f"drawing N={N}, K={K}, M={M} weights", (K + M) * N + 4 * (K + M) ** 2,
                     "use a smaller N or K (the limit N -> infinity needs no weights: "
                     "OrderParams.specialised, or the overlaps of a smaller draw)")
        rng = as_generator(seed)
        w_star = rng.standard_normal((M, N))
        w = rng.standard_normal((K, N))
        v = rng.standard_normal(K)
        return w, w_star, v, v_star

    @classmethod
    def random(cls, N: int, K: int, M: int, v_star: float | Any = 1.0,
               seed: int | np.random.Generator | None = 0, activation: str = "erf"
               ) -> OrderParams:
        """Order parameters of the paper's random initialisation at input dimension ``N``.

        Every first-layer weight (teacher and student) and the student's ``v`` are i.i.d. N(0,1)
        (Acharyya et al. 2021, Section 4); ``v_star`` is a scalar broadcast to all M units or an
        array of length M. See :meth:`draw_weights` for the draw order.
        """
        act = get_activation(activation).name  # checked before the draw
        w, w_star, v, v_star = cls.draw_weights(N, K, M, v_star, seed)
        return cls.from_weights(w, w_star, v, v_star, activation=act)

    @classmethod
    def specialised(cls, M: int, Z: int, v_star: float | Any = 1.0, activation: str = "erf"
                    ) -> OrderParams:
        """The paper's specialised ansatz (docs/theory.md §6; Goldt et al. 2019, S58-S60).

        ``K = Z M`` students; unit ``i`` learns teacher ``i // Z``: ``Q_ik = 1`` within a block
        and 0 across, ``R_in = 1`` for the block of ``n``, ``T = I`` and ``v_i = v*_n / Z``.
        """
        M, Z = _check_size("M", M), _check_size("Z", Z)
        v_star = broadcast_v_star(v_star, M)
        block = np.repeat(np.arange(M), Z)
        R = (block[:, None] == np.arange(M)[None, :]).astype(float)
        Q = R @ R.T
        return cls(Q=Q, R=R, T=np.eye(M), v=v_star[block] / Z, v_star=v_star,
                   activation=activation)

    # ------------------------------------------------------------------ files
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The numeric arrays ``Q, R, T, v, v_star`` (the activation is :attr:`activation`; a
        plain ``np.savez(path, activation=np.array(state.activation), **state.to_arrays())``
        keeps it, and :meth:`load` reads it back)."""
        return {"Q": self.Q, "R": self.R, "T": self.T, "v": self.v, "v_star": self.v_star}

    def save(self, path: str | os.PathLike, metadata: dict | None = None):
        """Save as ``.npz`` with keys ``Q, R, T, v, v_star`` (plus JSON metadata with the
        activation); atomic."""
        meta = dict(metadata or {})
        meta["activation"] = self.activation
        return _io.write_npz(path, "OrderParams", self.to_arrays(), meta)

    @classmethod
    def load(cls, path: str | os.PathLike, pick: int | str | None = None,
             run: int | None = None) -> OrderParams:
        """The order parameters held by any odeprune file, or by a plain ``.npz`` of arrays.

        - ``OrderParams``: the state;
        - ``LearningCurve`` / ``SimulationResult``: the state at the last saved time;
        - ``SimulationEnsemble``: the last state of run ``run`` (required with several runs);
        - ``PruneResult``: the pruned state of outcome ``pick`` (an index, or ``"likeliest"``;
          required with several outcomes);
        - a plain ``np.savez`` file (no odeprune metadata) with arrays ``Q, R, T, v, v_star``, or
          the weights ``w, w_star, v, v_star`` (:meth:`from_weights`); the activation is the
          one in an ``activation`` array if there is one, else erf.

        The state keeps the activation recorded in the file (erf for files written before it
        was recorded).
        """
        return load_state(path, pick=pick, run=run)[0]

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> OrderParams:
        """The state of an ``OrderParams`` file or a plain one, from its arrays and metadata
        (:func:`odeprune._io.load` has read and checked them)."""
        reader = _io.STATE_READERS[meta["kind"]]
        return reader(path, arrays, meta, dict(pick=None, run=None, names={}))[0]


#: Arrays of a plain order-parameter file and of a plain weights file.
PLAIN_STATE_ARRAYS = ("Q", "R", "T", "v", "v_star")
PLAIN_WEIGHT_ARRAYS = ("w", "w_star", "v", "v_star")


def _choose(path, n: int, index, option: str, what: str, probs=None) -> int:
    """Index into ``n`` candidates: ``index`` (int or 'likeliest'), or the only one."""
    if index is None:
        if n == 1:
            return 0
        hint = " or 'likeliest' (the most probable)" if probs is not None else ""
        raise ValueError(f"file {str(path)!r} holds {n} {what}; choose one with {option}=I "
                         f"(0..{n - 1}){hint}")
    if isinstance(index, str) and probs is not None and index == "likeliest":
        return int(np.argmax(probs))
    if isinstance(index, str):
        try:
            index = int(index)
        except ValueError:
            extra = " or 'likeliest'" if probs is not None else ""
            raise ValueError(f"{option}={index!r} must be an integer in 0..{n - 1}{extra}"
                             ) from None
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"{option}={index!r} must be an integer in 0..{n - 1}")
    if not -n <= index < n:
        raise ValueError(f"{option}={index} is out of range: file {str(path)!r} holds {n} "
                         f"{what} (0..{n - 1})")
    return int(index) % n


def _plain_activation(path, arrays) -> tuple[str, str]:
    if "activation" not in arrays:
        return "erf", "assumed"
    a = arrays["activation"]
    if a.ndim != 0 or a.dtype.kind not in "US":
        raise ValueError(f"file {str(path)!r}: array 'activation' must be a string "
                         f"(one of {sorted(ACTIVATIONS)}), got dtype {a.dtype}, shape {a.shape}")
    return get_activation(str(a)).name, "file"


def load_state(path: str | os.PathLike, pick: int | str | None = None,
               run: int | None = None, names: dict | None = None) -> tuple[OrderParams, dict]:
    """:meth:`OrderParams.load`, also returning what was read: ``info`` has ``kind`` (the kind of
    file, ``"plain"`` for a file without odeprune metadata), ``activation_source`` (``"file"``,
    or ``"assumed"`` when the file does not record it), ``alpha`` (the time of the state for a
    curve, else None) and ``description`` (one line). ``names`` maps ``"pick"`` / ``"run"`` to
    the option names used in messages (the CLI's ``--pick`` / ``--run``).

    The file is read by the reader registered for its kind (:data:`odeprune._io.STATE_READERS`,
    :func:`odeprune._io.register_kind`); ``pick`` and ``run`` are for the kinds whose reader
    takes them (a reader's ``selects`` attribute).
    """
    names = {"pick": "pick", "run": "run", **(names or {})}
    arrays, meta = _io.read_npz(path, allow_plain=True)
    kind = meta["kind"]
    held = "plain arrays" if kind == "plain" else f"a {kind}"
    reader = _io.STATE_READERS.get(kind)
    for option, value in (("run", run), ("pick", pick)):
        if value is not None and getattr(reader, "selects", None) != option:
            takes = " or ".join(sorted(k for k, r in _io.STATE_READERS.items()
                                       if getattr(r, "selects", None) == option))
            raise ValueError(f"{names[option]}={value!r} applies to a {takes} file; "
                             f"{str(path)!r} holds {held}")
    if kind.endswith("Checkpoint"):
        _io.result_class(kind, path)  # the one-line message for a checkpoint
    if isinstance(reader, str):
        raise ValueError(f"file {str(path)!r} holds a {kind}: {reader}")
    if reader is None:
        raise ValueError(f"file {str(path)!r} holds a {kind}, which has no order parameters")
    info: dict[str, Any] = dict(kind=kind, alpha=None, activation_source="file")
    select = dict(pick=pick, run=run, names=names)
    state, more = reader(path, arrays, meta, select)
    info.update(more)
    return state, info


def _recorded_activation(meta: dict) -> tuple[str, str]:
    """The activation a result file records (its own, or its first run's), and whether it was
    recorded (``"file"``) or is erf by default (``"assumed"``, files written before it was)."""
    if meta.get("activation"):
        return get_activation(meta["activation"]).name, "file"
    if meta.get("run_metadata"):
        return get_activation(meta["run_metadata"][0].get("activation", "erf")).name, "file"
    return "erf", "assumed"


def _need(path, arrays, names) -> None:
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise ValueError(f"file {str(path)!r} lacks array(s) {missing}")


def _read_plain(path, arrays, meta, select):
    """A ``np.savez`` file without metadata: ``Q, R, T, v, v_star`` or ``w, w_star, v, v_star``,
    the activation from an ``activation`` array (erf when absent)."""
    activation, source = _plain_activation(path, arrays)
    info = dict(activation_source=source)
    if set(PLAIN_STATE_ARRAYS) <= set(arrays):
        info["description"] = "plain arrays Q, R, T, v, v_star"
        return OrderParams(**{k: arrays[k] for k in PLAIN_STATE_ARRAYS},
                           activation=activation), info
    if set(PLAIN_WEIGHT_ARRAYS) <= set(arrays):
        info["description"] = "plain weights w, w_star, v, v_star"
        return OrderParams.from_weights(*(arrays[k] for k in PLAIN_WEIGHT_ARRAYS),
                                        activation=activation), info
    missing = sorted(set(PLAIN_STATE_ARRAYS) - set(arrays))
    raise ValueError(
        f"file {str(path)!r} has no metadata entry (not an odeprune result) and is not a "
        f"plain set of order parameters: it lacks array(s) {missing} (expected Q, R, T, "
        f"v, v_star, or the weights w, w_star, v, v_star); it has {sorted(arrays)}")


def _read_order_params(path, arrays, meta, select):
    activation, source = _recorded_activation(meta)
    _need(path, arrays, PLAIN_STATE_ARRAYS)
    info = dict(activation_source=source, description="OrderParams")
    if isinstance(meta.get("alpha"), (int, float)) and not isinstance(meta["alpha"], bool):
        info["alpha"] = float(meta["alpha"])  # a state saved along a run (last good state)
    return OrderParams(**{k: arrays[k] for k in PLAIN_STATE_ARRAYS},
                       activation=activation), info


def _read_final_state(path, arrays, meta, select):
    """The state at the last saved time of a curve (``T`` / ``v_star`` in the JSON metadata in
    format 1, arrays since format 2)."""
    kind = meta["kind"]
    activation, source = _recorded_activation(meta)
    _need(path, arrays, ("alpha", "Q", "R", "v"))
    T = arrays["T"] if "T" in arrays else meta.get("T")
    v_star = arrays["v_star"] if "v_star" in arrays else meta.get("v_star")
    if T is None or v_star is None:
        raise ValueError(f"file {str(path)!r} is a truncated {kind}: missing T / v_star")
    alpha = float(arrays["alpha"][-1])
    info = dict(activation_source=source, alpha=alpha,
                description=f"the final state of a {kind} (alpha={alpha:g})")
    return OrderParams(Q=arrays["Q"][-1], R=arrays["R"][-1], T=T, v=arrays["v"][-1],
                       v_star=v_star, activation=activation), info


def _read_ensemble_run(path, arrays, meta, select):
    activation, source = _recorded_activation(meta)
    _need(path, arrays, ("alpha", "Q", "R", "v", "T", "v_star"))
    names = select["names"]
    j = _choose(path, arrays["Q"].shape[0], select["run"], names["run"], "runs")
    info = dict(activation_source=source, alpha=float(arrays["alpha"][j][-1]),
                description=f"the final state of run {j} of a SimulationEnsemble")
    return OrderParams(Q=arrays["Q"][j][-1], R=arrays["R"][j][-1], T=arrays["T"][j],
                       v=arrays["v"][j][-1], v_star=arrays["v_star"][j],
                       activation=activation), info


_read_ensemble_run.selects = "run"  # type: ignore[attr-defined]


def _read_prune_outcome(path, arrays, meta, select):
    if any(name.startswith("masked_") for name in arrays) or "masked_state" in meta:
        raise ValueError(f"file {str(path)!r} holds an edge-pruned (masked) network: its "
                         "summed order parameters would train as a dense network; read it "
                         "with odeprune.load(path).sparse_state (CLI: odeprune integrate "
                         "--init FILE)")
    activation, source = _recorded_activation(meta)
    _need(path, arrays, ("Q", "R", "v", "T", "v_star", "probabilities"))
    n = arrays["Q"].shape[0]
    what = f"outcomes of {meta.get('method', 'pruning')}"
    j = _choose(path, n, select["pick"], select["names"]["pick"], what,
                probs=arrays["probabilities"])
    info = dict(activation_source=source,
                description=f"outcome {j} of a PruneResult ({meta.get('method', '?')})")
    return OrderParams(Q=arrays["Q"][j], R=arrays["R"][j], T=arrays["T"], v=arrays["v"][j],
                       v_star=arrays["v_star"], activation=activation), info


_read_prune_outcome.selects = "pick"  # type: ignore[attr-defined]

_MASKED = ("a masked network (per-class order parameters), not a dense state; load it with "
           "odeprune.sparse.SparseOrderParams.load (integrate --init accepts it)")
_LAW = ("a coordinate law (particles), not one set of order parameters: train it on with "
        "integrate (CLI: odeprune integrate --init FILE), prune it with odeprune.coords.decide")

# the readers of the kinds this release writes (a kind registered later brings its own)
_io.STATE_READERS.update({
    "plain": _read_plain, "OrderParams": _read_order_params,
    "LearningCurve": _read_final_state, "SimulationResult": _read_final_state,
    "TwoTimeCurve": _read_final_state, "SimulationEnsemble": _read_ensemble_run,
    "PruneResult": _read_prune_outcome, "SparseOrderParams": _MASKED,
    "SparseLearningCurve": _MASKED, "CoordinateLaw": _LAW, "CoordinateCurve": _LAW,
})


def _check_correlations(C: np.ndarray, K: int) -> None:
    """Name the first pair of fields with |C_ab| > sqrt(C_aa C_bb) (a necessary PSD condition)."""
    d = np.sqrt(np.clip(np.diag(C), 0, None))
    bound = np.outer(d, d)
    excess = np.abs(C) - bound * (1 + PSD_RTOL) - PSD_RTOL * max(1.0, float(np.max(np.abs(C))))
    if np.any(excess > 0):
        a, b = np.unravel_index(int(np.argmax(excess)), C.shape)
        a, b = min(a, b), max(a, b)

        def name(x, y):
            if x < K and y < K:
                return f"Q[{x},{y}]", f"Q[{x},{x}]", f"Q[{y},{y}]"
            if x < K:
                return f"R[{x},{y - K}]", f"Q[{x},{x}]", f"T[{y - K},{y - K}]"
            return f"T[{x - K},{y - K}]", f"T[{x - K},{x - K}]", f"T[{y - K},{y - K}]"

        n_ab, n_aa, n_bb = name(a, b)
        raise ValueError(
            f"|{n_ab}|={abs(float(C[a, b])):.6g} exceeds sqrt({n_aa} {n_bb})="
            f"{float(bound[a, b]):.6g}: an overlap cannot exceed the product of the norms "
            "(the covariance [[Q, R], [R^T, T]] must be positive semi-definite)"
        )


def check_weights(w, w_star) -> tuple[np.ndarray, np.ndarray]:
    """``(w, w_star)``, first layers of finite networks, shapes (K, N) and (M, N): read-only
    finite real arrays (:func:`odeprune._validate.check_array`) that share ``N >= 1`` columns."""
    w = check_array("w", w, 2)
    w_star = check_array("w_star", w_star, 2)
    if w.shape[1] != w_star.shape[1]:
        raise ValueError(f"w (K, N) and w_star (M, N) must share N: w has N={w.shape[1]} "
                         f"columns but w_star has {w_star.shape[1]}")
    if w.shape[1] < 1:
        raise ValueError("w must have at least one column (N >= 1)")
    return w, w_star


def broadcast_v_star(v_star: Any, M: int) -> np.ndarray:
    """``v_star`` as an array of shape (M,) (a scalar is repeated), finite."""
    arr = np.array(v_star, dtype=float)
    if arr.ndim == 0:
        arr = np.full(M, float(arr))
    if arr.shape != (M,):
        raise ValueError(f"v_star must be a scalar or have shape ({M},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"v_star must be finite, got {arr}")
    return arr
