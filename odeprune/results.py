"""Result containers and their files: arrays + metadata, saved as one ``.npz`` (see ``_io``).

``LearningCurve`` is the result of :func:`odeprune.integrate`. The other result classes live
beside the code that makes them (``SimulationResult`` in :mod:`odeprune.sim`,
``PruneResult`` in :mod:`odeprune.pruning`) and use the same file format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import _io
from ._validate import readonly
from .activations import get_activation
from .state import OrderParams

__all__ = ["LearningCurve", "load", "register_kind", "KINDS"]


@dataclass(frozen=True, eq=False)
class LearningCurve:
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
        Parameters (eta, eta_v, sigma, activation, ...), solver statistics (nfev, n_accept,
        n_reject), status and message, package version. ``metadata["activation"]`` is the
        networks' activation (erf when absent) and is carried by every state of the curve.
    """

    alpha: np.ndarray
    eg: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    T: np.ndarray
    v_star: np.ndarray
    metadata: dict = field(default_factory=dict)

    KIND = "LearningCurve"

    def __post_init__(self) -> None:
        for name in ("alpha", "eg", "Q", "R", "v", "T", "v_star"):
            object.__setattr__(self, name, readonly(getattr(self, name)))
        n = self.alpha.shape[0]
        for name in ("eg", "Q", "R", "v"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, alpha has {n}")
        get_activation(self.metadata.get("activation") or "erf")  # refuse an unknown one

    @property
    def activation(self) -> str:
        """The networks' activation (``metadata["activation"]``; erf when not recorded)."""
        return get_activation(self.metadata.get("activation") or "erf").name

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

    def at(self, alpha: float) -> OrderParams:
        """The state at a saved time; raises ``ValueError`` naming the nearest saved times."""
        idx = np.flatnonzero(np.isclose(self.alpha, alpha, rtol=1e-12, atol=1e-12))
        if idx.size == 0:
            near = self.alpha[np.argsort(np.abs(self.alpha - alpha))[:2]]
            raise ValueError(f"alpha={alpha!r} is not a saved time; nearest saved: "
                             f"{sorted(near.tolist())}. Add it to save_at.")
        return self.state(int(idx[0]))

    def __len__(self) -> int:
        return self.alpha.shape[0]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(K={self.K}, M={self.M}, alpha=[{self.alpha[0]:g}.."
                f"{self.alpha[-1]:g}] ({len(self)} points), eg_final={self.eg[-1]:.6g})")

    # ---------------------------------------------------------------- files
    def _arrays(self) -> dict[str, np.ndarray]:
        return {"alpha": self.alpha, "eg": self.eg, "Q": self.Q, "R": self.R, "v": self.v,
                "T": self.T, "v_star": self.v_star}

    def save(self, path: str | os.PathLike):
        """Write ``.npz`` with arrays ``alpha, eg, Q, R, v, T, v_star`` and JSON metadata (with
        the activation)."""
        meta = dict(self.metadata)
        meta["activation"] = self.activation
        return _io.write_npz(path, self.KIND, self._arrays(), meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LearningCurve:
        """Read a file written by :meth:`save` (any format version)."""
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> LearningCurve:
        """The curve from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        arrays, meta = teacher_arrays(path, cls.KIND, arrays, meta,
                                       ("alpha", "eg", "Q", "R", "v"))
        return cls(metadata=meta, **arrays)

    def to_csv(self) -> str:
        """``alpha,eg`` as CSV text."""
        lines = ["alpha,eg"] + [f"{a!r},{e!r}" for a, e in zip(self.alpha.tolist(),
                                                              self.eg.tolist())]
        return "\n".join(lines) + "\n"


def teacher_arrays(path, kind: str, arrays: dict, meta: dict, need) -> tuple[dict, dict]:
    """The arrays ``need`` plus ``T`` and ``v_star`` of a curve file, and the metadata without
    file bookkeeping. ``T`` / ``v_star`` are arrays since format 2; format-1 files kept them in
    the JSON metadata, still read here."""
    meta = {k: v for k, v in meta.items() if k not in ("kind", "format_version")}
    out = {}
    for name in ("T", "v_star"):
        if name in arrays:
            out[name] = arrays[name]
            meta.pop(name, None)
        elif name in meta:
            out[name] = meta.pop(name)
    missing = sorted((set(need) - set(arrays)) | ({"T", "v_star"} - set(out)))
    if missing:
        raise ValueError(f"file {str(path)!r} is a truncated {kind}: missing {missing}")
    out.update({name: arrays[name] for name in need})
    return out, meta


#: kind stored in a file -> ``"module:Class"`` that reads it (the one registry,
#: :data:`odeprune._io.KINDS`; :func:`register_kind` adds to it)
KINDS = _io.KINDS
register_kind = _io.register_kind
load = _io.load
