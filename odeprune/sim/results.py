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
from ..results import CURVE_ARRAYS, SHARED, LearningCurve, compose, curve_fields, read_curve

__all__ = ["SimulationResult", "SimulationEnsemble"]


@curve_fields(*SHARED)
@dataclass(frozen=True, eq=False, init=False)
class SimulationResult:
    """A finite-N SGD run: the :class:`~odeprune.LearningCurve` of its weights' order
    parameters, its test errors and its weights.

    ``SimulationResult(curve, eg_test=..., eg_test_se=..., w=..., w_star=...)``, or the flat
    keywords of a ``LearningCurve`` (``P`` included) instead of ``curve``.

    Attributes
    ----------
    curve : LearningCurve
        ``alpha, eg, Q, R, v, T, v_star, P, activation, status, metadata`` are its: ``eg`` is
        computed from the order parameters of the weights (docs/theory.md §5), on noiseless
        labels; ``alpha = steps / N`` exactly (save times are rounded to whole steps); ``P``
        (n, K, K) the two-time overlaps ``P_ik = w_i(alpha) . w_k(0) / N`` of the (masked)
        weights, the finite-N counterpart of ``integrate(..., track_initial=True)``
        (docs/theory.md §9; None in files written before it was recorded); ``metadata`` the
        parameters (N, K, M, eta, eta_v, sigma, seed, n_test, n_train, ...), steps, wall time,
        message, package version.
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
    """

    curve: LearningCurve
    eg_test: np.ndarray
    eg_test_se: np.ndarray
    w: np.ndarray
    w_star: np.ndarray

    KIND = "SimulationResult"

    def __init__(self, curve: LearningCurve | None = None, *, eg_test, eg_test_se, w, w_star,
                 **fields) -> None:
        curve = compose("SimulationResult", curve, fields)
        object.__setattr__(self, "curve", curve)
        n = len(curve)
        for name, value in (("eg_test", eg_test), ("eg_test_se", eg_test_se), ("w", w),
                            ("w_star", w_star)):
            object.__setattr__(self, name, readonly(value))
        for name in ("eg_test", "eg_test_se"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if self.w.ndim != 2 or self.w.shape[0] != curve.K or self.w_star.shape != (
                curve.M, self.w.shape[1]):
            raise ValueError(f"w {self.w.shape} / w_star {self.w_star.shape} do not match "
                             f"K={curve.K}, M={curve.M}")

    def joint_covariance(self, index: int) -> np.ndarray:
        """Covariance of one coordinate ``(w(0), w(alpha), w*)`` at saved index ``index`` (as
        :meth:`odeprune.sparse.TwoTimeCurve.joint_covariance`)."""
        if self.curve.P is None:
            raise ValueError("this result has no two-time overlaps P (written by an older "
                             "odeprune)")
        return self.curve.joint_covariance(index)

    @property
    def initial(self):
        """The order parameters of the weights at the first saved time."""
        return self.curve.initial

    @property
    def final(self):
        """The order parameters of the final weights."""
        return self.curve.final

    @property
    def N(self) -> int:
        """Input dimension."""
        return self.w.shape[1]

    @property
    def v_final(self) -> np.ndarray:
        """Final student second layer, shape (K,)."""
        return self.curve.v[-1]

    @property
    def sigma(self) -> float:
        return float(self.curve.metadata.get("sigma", 0.0))

    @property
    def eg_noisy(self) -> np.ndarray:
        """Expected error on noisy labels, ``eg + sigma**2 / 2``."""
        return self.curve.eg + 0.5 * self.sigma ** 2

    @property
    def eg_test_noisy(self) -> np.ndarray:
        """Test error on noisy labels, ``eg_test + sigma**2 / 2`` (noise averaged exactly)."""
        return self.eg_test + 0.5 * self.sigma ** 2

    def __len__(self) -> int:
        return len(self.curve)

    # ---------------------------------------------------------------- files
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the file: the curve's and ``eg_test, eg_test_se, w, w_star``."""
        return dict(self.curve.arrays(), eg_test=self.eg_test, eg_test_se=self.eg_test_se,
                    w=self.w, w_star=self.w_star)

    def save(self, path: str | os.PathLike) -> Path:
        """One ``.npz``: :meth:`arrays` and JSON metadata. Atomic."""
        return _io.write_npz(path, self.KIND, self.arrays(), self.curve.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationResult:
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> SimulationResult:
        """The result from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        return cls(**read_curve(path, cls.KIND, arrays, meta, RUN_ARRAYS))

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


#: a finite-N run's arrays beside its curve's
RUN_ARRAYS = ("eg_test", "eg_test_se", "w", "w_star")


#: the arrays of an ensemble file: every run's, stacked on a leading run axis (``P`` when every
#: run has it)
_ENSEMBLE_ARRAYS = CURVE_ARRAYS + RUN_ARRAYS


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
        """One ``.npz``: every run's arrays stacked on a leading run axis (``P`` when every run
        has it), the ensemble's and every run's metadata in the JSON metadata. Atomic."""
        names = _ENSEMBLE_ARRAYS + (("P",) if all(r.P is not None for r in self.runs) else ())
        arrays = {n: self._stack(n) for n in names}
        meta = dict(self.metadata)
        meta.update(run_metadata=[r.metadata for r in self.runs])
        return _io.write_npz(path, self.KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationEnsemble:
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> SimulationEnsemble:
        """The ensemble from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        missing = set(_ENSEMBLE_ARRAYS) - set(arrays)
        if missing or "run_metadata" not in meta:
            raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing "
                             f"{sorted(missing) or ['run_metadata']}")
        meta = {k: v for k, v in meta.items() if k not in ("kind", "format_version")}
        run_meta = meta.pop("run_metadata")
        names = _ENSEMBLE_ARRAYS + (("P",) if "P" in arrays else ())
        runs = [SimulationResult(metadata=m, **{n: arrays[n][i] for n in names})
                for i, m in enumerate(run_meta)]
        return cls(runs=tuple(runs), metadata=meta)
