"""The results of finite-N SGD: :class:`SimulationResult` (one run) and
:class:`SimulationEnsemble` (several seeds at the same saved times); files as every result's
(``odeprune._io``), read back by :func:`odeprune.load`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _io
from .._validate import readonly
from ..results import LearningCurve, teacher_arrays
from ..sparse import joint_coordinate_covariance

__all__ = ["SimulationResult", "SimulationEnsemble"]


@dataclass(frozen=True, eq=False)
class SimulationResult(LearningCurve):
    """A finite-N SGD run: a :class:`~odeprune.LearningCurve` plus test errors and weights.

    Attributes
    ----------
    alpha, eg, Q, R, v, T, v_star
        As in :class:`~odeprune.LearningCurve`; ``eg`` is computed from the order parameters of
        the weights (docs/theory.md §5), on noiseless labels. ``alpha = steps / N`` exactly (save
        times are rounded to whole steps).
    eg_test : ndarray, shape (n,)
        Empirical test error ``mean(0.5 (phi - y)^2)`` on ``n_test`` held-out fresh samples with
        noiseless labels, at every saved time (the same test set throughout): an unbiased
        estimate of ``eg``. NaN when ``n_test=0``.
    eg_test_se : ndarray, shape (n,)
        Its standard error (sample std / sqrt(n_test)).
    w : ndarray, shape (K, N)
        Final student first layer (the final ``v`` is ``v[-1]``).
    w_star : ndarray, shape (M, N)
        Teacher first layer.
    P : ndarray, shape (n, K, K), optional
        Two-time overlaps ``P_ik = w_i(alpha) . w_k(0) / N`` of the (masked) weights at every
        saved time, the finite-N counterpart of ``integrate(..., track_initial=True)``
        (docs/theory.md §9). Absent (None) in files written before it was recorded.
    metadata : dict
        Parameters (N, K, M, eta, eta_v, sigma, activation, seed, n_test, n_train, ...), steps,
        wall time, status, message, package version.
    """

    eg_test: np.ndarray = None  # type: ignore[assignment]
    eg_test_se: np.ndarray = None  # type: ignore[assignment]
    w: np.ndarray = None  # type: ignore[assignment]
    w_star: np.ndarray = None  # type: ignore[assignment]
    P: np.ndarray | None = None

    KIND = "SimulationResult"

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.alpha.shape[0]
        for name in ("eg_test", "eg_test_se", "w", "w_star"):
            if getattr(self, name) is None:
                raise ValueError(f"SimulationResult needs {name}")
            object.__setattr__(self, name, readonly(getattr(self, name)))
        for name in ("eg_test", "eg_test_se"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if self.w.shape != (self.K, self.N) or self.w_star.shape != (self.M, self.N):
            raise ValueError(f"w {self.w.shape} / w_star {self.w_star.shape} do not match "
                             f"K={self.K}, M={self.M}")
        if self.P is not None:
            object.__setattr__(self, "P", readonly(self.P))
            if self.P.shape != self.Q.shape:
                raise ValueError(f"P must have the shape of Q {self.Q.shape}, got {self.P.shape}")

    def joint_covariance(self, index: int) -> np.ndarray:
        """Covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index ``index`` (as
        :meth:`odeprune.sparse.TwoTimeCurve.joint_covariance`)."""
        if self.P is None:
            raise ValueError("this result has no two-time overlaps P (written by an older "
                             "odeprune)")
        return joint_coordinate_covariance(self.Q[0], self.R[0], self.P[index], self.Q[index],
                                           self.R[index], self.T)

    @property
    def N(self) -> int:
        """Input dimension."""
        return self.w.shape[1]

    @property
    def v_final(self) -> np.ndarray:
        """Final student second layer, shape (K,)."""
        return self.v[-1]

    @property
    def sigma(self) -> float:
        return float(self.metadata.get("sigma", 0.0))

    @property
    def eg_noisy(self) -> np.ndarray:
        """Expected error on noisy labels, ``eg + sigma**2 / 2``."""
        return self.eg + 0.5 * self.sigma ** 2

    @property
    def eg_test_noisy(self) -> np.ndarray:
        """Test error on noisy labels, ``eg_test + sigma**2 / 2`` (noise averaged exactly)."""
        return self.eg_test + 0.5 * self.sigma ** 2

    def _arrays(self) -> dict[str, np.ndarray]:
        out = super()._arrays()
        out.update(eg_test=self.eg_test, eg_test_se=self.eg_test_se, w=self.w,
                   w_star=self.w_star)
        if self.P is not None:
            out["P"] = self.P
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationResult:
        arrays, meta = _io.read_npz(path, cls.KIND)
        arrays, meta = teacher_arrays(path, cls.KIND, arrays, meta,
                                       ("alpha", "eg", "Q", "R", "v", "eg_test", "eg_test_se",
                                        "w", "w_star"))
        return cls(metadata=meta, P=_io.read_npz(path, cls.KIND)[0].get("P"), **arrays)

    def to_csv(self) -> str:
        """``alpha,eg,eg_test,eg_test_se`` as CSV text."""
        lines = ["alpha,eg,eg_test,eg_test_se"]
        lines += [f"{a!r},{e!r},{t!r},{s!r}" for a, e, t, s in
                  zip(self.alpha.tolist(), self.eg.tolist(), self.eg_test.tolist(),
                      self.eg_test_se.tolist())]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (f"SimulationResult(N={self.N}, K={self.K}, M={self.M}, alpha=[{self.alpha[0]:g}.."
                f"{self.alpha[-1]:g}] ({len(self)} points), eg_final={self.eg[-1]:.6g}, "
                f"eg_test_final={self.eg_test[-1]:.6g})")


_ENSEMBLE_ARRAYS = ("alpha", "eg", "Q", "R", "v", "T", "v_star", "eg_test", "eg_test_se", "w",
                    "w_star")


@dataclass(frozen=True, eq=False)
class SimulationEnsemble:
    """Several :class:`SimulationResult` runs (different seeds) at the same saved times.

    Attributes
    ----------
    runs : tuple of SimulationResult
    alpha : ndarray, shape (n,)
    eg_mean, eg_std, eg_sem : ndarray, shape (n,)
        Mean over runs of ``eg`` (from the order parameters), the seed-to-seed standard deviation
        (``ddof=1``; 0 for one run) and the standard error of the mean ``eg_std / sqrt(n_runs)``.
    eg_test_mean : ndarray, shape (n,)
    """

    runs: tuple
    metadata: dict = field(default_factory=dict)

    KIND = "SimulationEnsemble"

    def __post_init__(self) -> None:
        runs = tuple(self.runs)
        if not runs:
            raise ValueError("a SimulationEnsemble needs at least one run")
        for r in runs[1:]:
            if not np.array_equal(r.alpha, runs[0].alpha):
                raise ValueError("all runs of an ensemble must share the saved times alpha")
        object.__setattr__(self, "runs", runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, i: int) -> SimulationResult:
        return self.runs[i]

    def __iter__(self):
        return iter(self.runs)

    @property
    def alpha(self) -> np.ndarray:
        return self.runs[0].alpha

    @property
    def seeds(self) -> list:
        return [r.metadata.get("seed") for r in self.runs]

    def _stack(self, name: str) -> np.ndarray:
        return np.stack([getattr(r, name) for r in self.runs])

    @property
    def eg_all(self) -> np.ndarray:
        """``eg`` of every run, shape (n_runs, n)."""
        return self._stack("eg")

    @property
    def eg_mean(self) -> np.ndarray:
        return self.eg_all.mean(axis=0)

    @property
    def eg_std(self) -> np.ndarray:
        if len(self) < 2:
            return np.zeros_like(self.alpha)
        return self.eg_all.std(axis=0, ddof=1)

    @property
    def eg_sem(self) -> np.ndarray:
        return self.eg_std / math.sqrt(len(self))

    @property
    def eg_test_mean(self) -> np.ndarray:
        return self._stack("eg_test").mean(axis=0)

    def __repr__(self) -> str:
        r = self.runs[0]
        return (f"SimulationEnsemble({len(self)} runs, N={r.N}, K={r.K}, M={r.M}, "
                f"eg_final={self.eg_mean[-1]:.6g} +- {self.eg_std[-1]:.2g})")

    def save(self, path: str | os.PathLike) -> Path:
        """One ``.npz``: every run's arrays stacked on a leading run axis, JSON metadata."""
        arrays = {n: self._stack(n) for n in _ENSEMBLE_ARRAYS}
        meta = dict(self.metadata)
        meta.update(run_metadata=[r.metadata for r in self.runs])
        return _io.write_npz(path, self.KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationEnsemble:
        arrays, meta = _io.read_npz(path, cls.KIND)
        missing = set(_ENSEMBLE_ARRAYS) - set(arrays)
        if missing or "run_metadata" not in meta:
            raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing "
                             f"{sorted(missing)}")
        run_meta = meta.pop("run_metadata")
        runs = [SimulationResult(metadata=m, **{n: arrays[n][i] for n in _ENSEMBLE_ARRAYS})
                for i, m in enumerate(run_meta)]
        return cls(runs=tuple(runs), metadata=meta)


