"""The result of a run, by composition: one trajectory type and the results that hold one.

:class:`LearningCurve` is the trajectory of a network's order parameters at the saved times
(``alpha, eg, Q, R, v, T, v_star``) with the networks' activation and the run's
:class:`Status` as typed fields, optional two-time overlaps ``P`` (``docs/theory.md`` §9) and
free-form provenance (``metadata``). The other results hold one as ``.curve`` and add their own
parts: :class:`~odeprune.sparse.TwoTimeCurve` (``P`` required),
:class:`~odeprune.sparse.SparseLearningCurve` (per-class overlaps of a masked network),
:class:`~odeprune.sim.SimulationResult` (finite-N test errors and weights). They read the
curve's fields through :func:`curve_fields` and are registered as learning curves
(``isinstance(result, LearningCurve)``) without inheriting from it.

Every result class owns its file: ``save(path)`` writes one ``.npz`` (``odeprune._io``) under
its kind, ``from_npz(path, arrays, metadata)`` builds it from a file read once, and
:func:`load` dispatches on the kind recorded in the file (:data:`KINDS`).
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABCMeta
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from . import _io
from ._validate import readonly
from .activations import get_activation
from .state import OrderParams

__all__ = ["LearningCurve", "Status", "curve_fields", "joint_coordinate_covariance",
           "check_saved_from_start", "load", "register_kind", "KINDS"]


class Status(IntEnum):
    """How a run (or one chunk of it) ended; the one definition of the codes every driver of
    :mod:`odeprune.ode` returns (the compiled steppers return the plain ints below) and every
    result records (``LearningCurve.status``; ``metadata["status"]`` is its lower-case name).

    ``SUCCESS``: every output filled. ``CHUNK``: the chunk's step budget is used and the run goes
    on (never final). ``NONFINITE``, ``NOT_PSD``, ``STEP_TOO_SMALL``: a divergence
    (:class:`~odeprune.errors.DivergenceError`). ``MAX_STEPS``: the run's budget ``max_steps`` is
    used up, set by the driver (:class:`~odeprune.errors.MaxStepsReached`: a budget, not a
    divergence).
    """

    SUCCESS = 0
    CHUNK = 1
    NONFINITE = 2
    NOT_PSD = 3
    STEP_TOO_SMALL = 4
    MAX_STEPS = 5

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @classmethod
    def of(cls, value: Any) -> Status:
        """A status from itself, its code or its name in any case (``"success"``); a run that
        goes on (``CHUNK``) is not a result's status."""
        if isinstance(value, str) and value.upper() in cls.__members__:
            status = cls[value.upper()]
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and \
                int(value) in cls._value2member_map_:
            status = cls(int(value))
        else:
            raise ValueError(f"status={value!r} is not a run status: one of "
                             f"{[s.name.lower() for s in cls if s is not cls.CHUNK]}")
        if status is cls.CHUNK:
            raise ValueError("status 'chunk' is not final: a result records how its run ended")
        return status


#: the arrays of every trajectory, in file order
CURVE_ARRAYS = ("alpha", "eg", "Q", "R", "v", "T", "v_star")


@dataclass(frozen=True, eq=False)
class LearningCurve(metaclass=ABCMeta):
    """Order parameters and generalisation error along a run, at the saved times.

    Attributes
    ----------
    alpha : ndarray, shape (n,)
        Saved times (alpha = steps / N).
    eg : ndarray, shape (n,)
        Generalisation error on noiseless labels (add ``sigma**2 / 2`` for noisy labels).
    Q : ndarray, shape (n, K, K)
    R : ndarray, shape (n, K, M)
    v : ndarray, shape (n, K)
    T : ndarray, shape (M, M)
        Constant teacher overlaps.
    v_star : ndarray, shape (M,)
    metadata : dict
        Free-form provenance: parameters (eta, eta_v, sigma, ...), solver statistics (nfev,
        n_accept, n_reject), message, package version. Its ``"activation"`` and ``"status"``
        entries mirror the fields below (given there, they set the fields).
    activation : str
        The networks' activation, carried by every state of the curve (``None`` when
        constructing: the metadata's, else erf).
    status : Status
        How the run ended (``None`` when constructing: the metadata's, else ``SUCCESS``).
    P : ndarray, shape (n, K, K), or None
        Two-time overlaps ``P_ik = w_i(alpha) . w_k(0) / N`` (``docs/theory.md`` §9), when the
        run tracked them.
    """

    alpha: np.ndarray
    eg: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    T: np.ndarray
    v_star: np.ndarray
    metadata: dict = field(default_factory=dict)
    activation: str | None = None
    status: Status | str | None = None
    P: np.ndarray | None = None

    KIND = "LearningCurve"

    def __post_init__(self) -> None:
        for name in CURVE_ARRAYS:
            object.__setattr__(self, name, readonly(getattr(self, name)))
        n = self.alpha.shape[0]
        for name in ("eg", "Q", "R", "v"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, alpha has {n}")
        if self.P is not None:
            object.__setattr__(self, "P", readonly(self.P))
            if self.P.shape != self.Q.shape:
                raise ValueError(f"P must have the shape of Q {self.Q.shape}, got {self.P.shape}")
        meta = {k: v for k, v in dict(self.metadata).items()
                if k not in ("kind", "format_version")}
        activation = _given("activation", self.activation, meta, _activation_name) or "erf"
        status = _given("status", self.status, meta, Status.of)
        status = Status.SUCCESS if status is None else status
        meta.update(activation=activation, status=status.name.lower())
        object.__setattr__(self, "activation", activation)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "metadata", meta)

    @property
    def K(self) -> int:
        return self.v.shape[1]

    @property
    def M(self) -> int:
        return self.v_star.shape[0]

    def state(self, index: int) -> OrderParams:
        """The order parameters at saved index ``index``."""
        return OrderParams(Q=self.Q[index], R=self.R[index], T=self.T, v=self.v[index],
                           v_star=self.v_star, activation=self.activation)

    @property
    def initial(self) -> OrderParams:
        return self.state(0)

    @property
    def final(self) -> OrderParams:
        """The order parameters at the last saved time (``alpha_max``)."""
        return self.state(-1)

    def index(self, alpha: float) -> int:
        """The saved index of time ``alpha``; raises ``ValueError`` naming the nearest saved
        times."""
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=1e-12, atol=1e-12))
        if idx.size == 0:
            near = self.alpha[np.argsort(np.abs(self.alpha - alpha))[:2]]
            raise ValueError(f"alpha={alpha!r} is not a saved time; nearest saved: "
                             f"{sorted(near.tolist())}. Add it to save_at.")
        return int(idx[0])

    def at(self, alpha: float) -> OrderParams:
        """The state at a saved time; raises ``ValueError`` naming the nearest saved times."""
        return self.state(self.index(alpha))

    def joint_covariance(self, index: int) -> np.ndarray:
        """Covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index ``index``:
        ``[[Q0, P^T, R0], [P, Q, R], [R0^T, R^T, T]]``, shape (2K+M, 2K+M)
        (``docs/theory.md`` §9; ``w(0)`` is the first saved state)."""
        if self.P is None:
            raise ValueError("this curve has no two-time overlaps: integrate with "
                             "track_initial=True")
        check_saved_from_start(self.Q[0], self.P[0], self.alpha[0])
        return joint_coordinate_covariance(self.Q[0], self.R[0], self.P[index], self.Q[index],
                                           self.R[index], self.T)

    def __len__(self) -> int:
        return self.alpha.shape[0]

    def __repr__(self) -> str:
        return (f"LearningCurve(K={self.K}, M={self.M}, alpha=[{self.alpha[0]:g}.."
                f"{self.alpha[-1]:g}] ({len(self)} points), eg_final={self.eg[-1]:.6g})")

    # ---------------------------------------------------------------- files
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the file: ``alpha, eg, Q, R, v, T, v_star`` (and ``P``)."""
        out = {name: getattr(self, name) for name in CURVE_ARRAYS}
        if self.P is not None:
            out["P"] = self.P
        return out

    def save(self, path: str | os.PathLike):
        """Write ``.npz`` with arrays ``alpha, eg, Q, R, v, T, v_star`` (and ``P``) and JSON
        metadata (with the activation and the status); atomic."""
        return _io.write_npz(path, self.KIND, self.arrays(), self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LearningCurve:
        """Read a file written by :meth:`save` (any format version)."""
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> LearningCurve:
        """The curve from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        return cls(**read_curve(path, meta["kind"], arrays, meta))

    def to_csv(self) -> str:
        """``alpha,eg`` as CSV text."""
        lines = ["alpha,eg"] + [f"{a!r},{e!r}" for a, e in zip(self.alpha.tolist(),
                                                              self.eg.tolist())]
        return "\n".join(lines) + "\n"


def _given(name: str, value: Any, meta: dict, canonical) -> Any:
    """A typed field given directly or through the metadata (both: they must agree), as
    ``canonical(value)``; None when neither gives it."""
    recorded = meta.get(name)
    if value is None:
        return None if recorded is None else canonical(recorded)
    value = canonical(value)
    if recorded is not None and canonical(recorded) != value:
        raise ValueError(f"{name}={value!s} conflicts with metadata[{name!r}]={recorded!r}")
    return value


def _activation_name(value: Any) -> str | None:
    """The canonical name of an activation; None for an empty one (erf by default)."""
    return get_activation(value).name if value else None


def read_curve(path, kind: str, arrays: dict, meta: dict, extra: tuple = ()) -> dict:
    """The keywords of a :class:`LearningCurve` (and the required arrays ``extra``) from a
    file's checked arrays and metadata; one line naming what a truncated file lacks."""
    missing = sorted(set(CURVE_ARRAYS + tuple(extra)) - set(arrays))
    if missing:
        raise ValueError(f"file {str(path)!r} is a truncated {kind}: missing {missing}")
    out = {name: arrays[name] for name in CURVE_ARRAYS + tuple(extra)}
    out.update(P=arrays.get("P"), metadata=meta)
    return out


def curve_fields(*names: str):
    """Class decorator: read-only properties ``names`` that read ``self.curve.<name>``, and
    the class registered as a :class:`LearningCurve` (a result that holds one)."""
    def deco(cls):
        for name in names:
            prop = property(lambda self, n=name: getattr(self.curve, n),
                            doc=f"``curve.{name}`` (:class:`LearningCurve`)")
            setattr(cls, name, prop)
        LearningCurve.register(cls)
        return cls
    return deco


#: what every result holding a curve reads from it
SHARED = ("alpha", "eg", "Q", "R", "v", "T", "v_star", "P", "metadata", "activation", "status",
          "K", "M", "state", "index", "at")


def compose(cls_name: str, curve: LearningCurve | None, fields: dict) -> LearningCurve:
    """The curve a composed result holds: ``curve`` with ``fields`` changed, or a new one from
    ``fields`` (the flat keywords of :class:`LearningCurve`)."""
    if curve is None:
        return LearningCurve(**fields)
    if type(curve) is not LearningCurve:
        raise TypeError(f"{cls_name} holds a LearningCurve, got {type(curve).__name__}")
    return dataclasses.replace(curve, **fields) if fields else curve


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


#: kind stored in a file -> ``"module:Class"`` that reads it (the one registry,
#: :data:`odeprune._io.KINDS`; :func:`register_kind` adds to it)
KINDS = _io.KINDS
register_kind = _io.register_kind
load = _io.load
