r"""Finite-N online SGD of a two-layer student on a two-layer teacher: the ground truth.

``simulate(N, K, M, eta, alpha_max, ...)`` trains real weights with one fresh Gaussian sample per
step (docs/theory.md §1; Goldt et al. 2019, Section 2; Acharyya et al. 2021, Section 4):

.. math::

    w_k \leftarrow w_k - \frac{\eta}{\sqrt N} v_k \Delta g'(\lambda_k) x, \qquad
    v_k \leftarrow v_k - \frac{\eta_v}{N} \Delta g(\lambda_k), \qquad
    \Delta = \sum_k v_k g(\lambda_k) - \Big(\sum_n v^*_n g(\nu_n) + \sigma\zeta\Big),

with ``lambda_k = w_k . x / sqrt(N)``, ``nu_n = w*_n . x / sqrt(N)``, and time ``alpha = steps / N``.
The ODEs of :func:`odeprune.integrate` are the ``N -> infinity`` limit of this process.

Random streams (all from ``seed``, an int):

- initial weights: ``OrderParams.draw_weights(N, K, M, v_star, seed)``, i.e.
  ``numpy.random.default_rng(seed)`` drawing ``w_star``, ``w``, ``v``; hence
  ``simulate(..., seed=s).initial == OrderParams.random(N, K, M, v_star, s)`` exactly;
- ``np.random.SeedSequence(seed).spawn(3)`` gives three independent children (their spawn keys
  differ from the root's, so they are independent of the initial draw), each driving a ``PCG64``
  ``numpy.random.Generator``: [0] the SGD inputs ``x`` (``N`` standard normals per step, in order),
  [1] the label noise ``zeta`` (one per step, drawn only when ``sigma > 0``), [2] the test set.

The compiled loop draws ``x`` with numba's port of numpy's ``Generator.standard_normal`` on the
run's own generator (no shared global state, so threads running different seeds are independent and
reproducible); the numbers are those ``rng.standard_normal(N)`` gives in numpy, which is what the
plain-numpy twin in the tests uses.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from . import _io
from ._progress import want_progress
from ._rng import fill_normals
from ._validate import check_array
from ._validate import check_real as _real
from ._validate import check_size as _size
from .activations import check_code, get_activation
from .activations import g as _g
from .activations import g_prime as _g_prime
from .errors import DivergenceError, OdepruneInterrupted
from .results import LearningCurve, _readonly
from .sparse import joint_coordinate_covariance
from .state import OrderParams, _broadcast_v_star

__all__ = ["simulate", "SimulationResult", "SimulationEnsemble", "default_save_at", "sgd_streams"]

#: steps per call of the compiled loop (Python sees the run between calls: progress, Ctrl-C)
BLOCK_STEPS = 2000
#: minimum wall-clock seconds between two periodic checkpoint writes (environment variable
#: ``ODEPRUNE_CHECKPOINT_EVERY_S`` overrides it)
CHECKPOINT_EVERY_S = float(os.environ.get("ODEPRUNE_CHECKPOINT_EVERY_S", "30"))

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
# Reassociation lets LLVM vectorise the dot products; no 'nnan'/'ninf' so that divergence
# (a non-finite error) is still detected.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def default_save_at(alpha_max: float, n: int = 40) -> np.ndarray:
    """``0`` plus ``n`` log-spaced times from ``min(1, alpha_max/100)`` to ``alpha_max``."""
    lo = min(1.0, alpha_max / 100.0)
    return np.unique(np.concatenate([[0.0], np.geomspace(lo, alpha_max, n)]))


def sgd_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator,
                                    np.random.Generator]:
    """The three generators of a run: SGD inputs, label noise, test set (see module docstring)."""
    children = np.random.SeedSequence(seed).spawn(3)
    return tuple(np.random.Generator(np.random.PCG64(c)) for c in children)  # type: ignore


# ------------------------------------------------------------------------------ compiled kernel
@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _sgd_block(w, v, w_star, v_star, rng, noise_rng, x, n_steps, eta_w, eta_v, sigma, act,
               train_v, inv_sqrt_N, counter, mask, has_mask):
    """``n_steps`` online-SGD steps, in place on ``w`` (K, N), ``v`` (K,), ``rng``, ``counter``.

    ``eta_w = eta / sqrt(N)``, ``eta_v`` is already divided by N. ``x`` (N,) is scratch.
    ``counter[0]`` counts the steps done (updated with the weights, so the state seen from Python
    is always consistent). With ``has_mask`` the first-layer update is multiplied by ``mask``
    (K, N) (pruned weights stay zero: training a sparse network). Returns ``False`` (and stops before updating) when the error ``Delta``
    of a step is not finite.
    """
    check_code(act)  # an unknown activation code is an error (registry: odeprune.activations)
    K, N = w.shape
    M = w_star.shape[0]
    gl = np.empty(K)
    gp = np.empty(K)
    for _ in range(n_steps):
        fill_normals(rng, x)  # x ~ N(0, I_N): xoshiro256++ seeded from rng, ziggurat (_rng.py)
        y = 0.0
        for n in range(M):
            acc = 0.0
            for j in range(N):
                acc += w_star[n, j] * x[j]
            nu = acc * inv_sqrt_N
            y += v_star[n] * _g(act, nu)
        if sigma > 0.0:
            y += sigma * noise_rng.standard_normal()
        phi = 0.0
        for k in range(K):
            acc = 0.0
            for j in range(N):
                acc += w[k, j] * x[j]
            lam = acc * inv_sqrt_N
            gl[k] = _g(act, lam)
            gp[k] = _g_prime(act, lam)
            phi += v[k] * gl[k]
        delta = phi - y
        if not math.isfinite(delta):
            return False
        for k in range(K):
            c = eta_w * v[k] * delta * gp[k]
            if has_mask:
                for j in range(N):
                    w[k, j] -= c * x[j] * mask[k, j]
            else:
                for j in range(N):
                    w[k, j] -= c * x[j]
        if train_v:
            for k in range(K):
                v[k] -= eta_v * delta * gl[k]
        counter[0] += 1
    return True


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _fields(X, w, scale, out):
    """``out[i, k] = scale * X[i] . w[k]``: fields of a test set, ``X`` (n, N), ``w`` (K, N)."""
    n, N = X.shape
    K = w.shape[0]
    for i in range(n):
        for k in range(K):
            acc = 0.0
            for j in range(N):
                acc += X[i, j] * w[k, j]
            out[i, k] = acc * scale


# ------------------------------------------------------------------------------ results
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
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        for name in ("eg_test", "eg_test_se"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if self.w.shape != (self.K, self.N) or self.w_star.shape != (self.M, self.N):
            raise ValueError(f"w {self.w.shape} / w_star {self.w_star.shape} do not match "
                             f"K={self.K}, M={self.M}")
        if self.P is not None:
            object.__setattr__(self, "P", _readonly(self.P))
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
        from .results import _teacher_arrays

        arrays, meta = _io.read_npz(path, cls.KIND)
        arrays, meta = _teacher_arrays(path, cls.KIND, arrays, meta,
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


# ------------------------------------------------------------------------------ validation
def _seed(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer")
    return int(value)


def _weights(name: str, value: Any, shape: tuple) -> np.ndarray:
    try:
        got = np.shape(value)
    except ValueError:  # ragged
        got = None
    if got != shape:
        raise ValueError(f"init: {name} must have shape {shape}, got {got}")
    # real and finite, naming the first bad entry
    return np.array(check_array(f"init: {name}", value, len(shape)))


def _save_steps(save_at: Any, alpha_max: float, N: int) -> np.ndarray:
    from .dynamics import _check_save_at

    t = default_save_at(alpha_max) if save_at is None else _check_save_at(save_at, alpha_max)
    steps = np.rint(np.concatenate([[0.0], t, [alpha_max]]) * N).astype(np.int64)
    return np.unique(steps)


# ------------------------------------------------------------------------------ one run
class _Run:
    """One seed's run: state, streams, outputs, checkpoint; driven block by block."""

    def __init__(self, N, K, M, eta, alpha_max, steps_out, eta_v, sigma, v_star, act, seed,
                 n_test, train_v, n_train, init, checkpoint, mask=None):
        self.N, self.K, self.M = N, K, M
        self.act = act
        self.seed = seed
        self.eta, self.eta_v, self.sigma = eta, eta_v, sigma
        self.train_v = train_v
        self.n_train = n_train
        self.steps_out = steps_out
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        if init is None:
            w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star, seed)
        else:
            w, w_star, v = init
            v_star = _broadcast_v_star(v_star, M)
        self.has_mask = mask is not None
        self.mask = (np.ascontiguousarray(mask, dtype=float) if self.has_mask
                     else np.ones((1, 1)))
        if self.has_mask:
            w = w * self.mask
        self.w0, self.w_star, self.v0, self.v_star = w, w_star, v, v_star
        self.w = np.array(w, dtype=float, order="C")
        self.v = np.array(v, dtype=float)
        self.rng, self.noise_rng, test_rng = sgd_streams(seed)
        self.rng_start = self.rng.bit_generator.state
        self.noise_start = self.noise_rng.bit_generator.state
        self.counter = np.zeros(1, dtype=np.int64)
        self.x = np.empty(N)
        n_out = steps_out.size
        self.Q_out = np.empty((n_out, K, K))
        self.P_out = np.empty((n_out, K, K))
        self.R_out = np.empty((n_out, K, M))
        self.v_out = np.empty((n_out, K))
        self.eg_out = np.empty(n_out)
        self.egt_out = np.full(n_out, np.nan)
        self.egt_se = np.full(n_out, np.nan)
        self.i_out = 0
        self.inv_sqrt_N = 1.0 / math.sqrt(N)
        if n_test > 0:
            self.X_test = test_rng.standard_normal((n_test, N))
            nu = np.empty((n_test, M))
            _fields(self.X_test, np.ascontiguousarray(w_star, dtype=float), self.inv_sqrt_N, nu)
            self.y_test = act.g(nu) @ v_star
            self.lam_test = np.empty((n_test, K))
        else:
            self.X_test = None
        self.params = dict(N=N, K=K, M=M, eta=eta, eta_v=eta_v, sigma=sigma,
                           activation=act.name, seed=seed, n_test=n_test,
                           train_second_layer=train_v, n_train=n_train,
                           alpha_max=float(steps_out[-1]) / N, init="explicit" if init is not None
                           else "draw_weights",
                           mask_kept_fraction=(float(self.mask.mean()) if self.has_mask
                                               else None))
        self.wall = 0.0

    @property
    def step(self) -> int:
        return int(self.counter[0])

    def _record(self) -> None:
        i = self.i_out
        if not (np.all(np.isfinite(self.w)) and np.all(np.isfinite(self.v))):
            self._diverged()
        state = OrderParams.from_weights(self.w, self.w_star, self.v, self.v_star,
                                         activation=self.act.name)
        self.Q_out[i], self.R_out[i], self.v_out[i] = state.Q, state.R, state.v
        self.P_out[i] = self.w @ self.w0.T / self.N
        self.eg_out[i] = state.eg()
        if self.X_test is not None:
            _fields(self.X_test, self.w, self.inv_sqrt_N, self.lam_test)
            phi = self.act.g(self.lam_test) @ self.v
            e = 0.5 * (phi - self.y_test) ** 2
            self.egt_out[i] = e.mean()
            self.egt_se[i] = e.std(ddof=1) / math.sqrt(e.size) if e.size > 1 else np.nan
        self.i_out = i + 1

    def run(self, on_steps=None, stop: threading.Event | None = None) -> None:
        """Advance to the last saved time; ``on_steps(n)`` after each block."""
        eta_w = self.eta * self.inv_sqrt_N
        eta_v = self.eta_v / self.N
        last_ckpt = time.monotonic()
        t0 = time.perf_counter()
        try:
            while self.i_out < self.steps_out.size:
                target = int(self.steps_out[self.i_out])
                while self.step < target:
                    if stop is not None and stop.is_set():
                        raise KeyboardInterrupt
                    n = min(target - self.step, BLOCK_STEPS)
                    if self.n_train is not None:
                        pos = self.step % self.n_train
                        if pos == 0:  # a new pass over the training set: replay its streams
                            self.rng.bit_generator.state = self.rng_start
                            self.noise_rng.bit_generator.state = self.noise_start
                        n = min(n, self.n_train - pos)
                    before = self.step
                    ok = _sgd_block(self.w, self.v, self.w_star, self.v_star, self.rng,
                                    self.noise_rng, self.x, n, eta_w, eta_v, self.sigma,
                                    self.act.code, self.train_v, self.inv_sqrt_N, self.counter,
                                    self.mask, self.has_mask)
                    if not ok:
                        self._diverged()
                    if on_steps is not None:
                        on_steps(self.step - before)
                self._record()
                if self.checkpoint is not None and \
                        time.monotonic() - last_ckpt > CHECKPOINT_EVERY_S:
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
        except KeyboardInterrupt:
            self.wall += time.perf_counter() - t0
            msg = f"simulation (seed={self.seed}) interrupted at alpha={self.step / self.N:.6g}"
            if self.checkpoint is not None:
                self.save_checkpoint()
                msg += (f"; checkpoint saved to {str(self.checkpoint)!r}: resume with "
                        "resume=True (CLI: --resume)")
            raise OdepruneInterrupted(msg, None if self.checkpoint is None
                                      else str(self.checkpoint)) from None
        self.wall += time.perf_counter() - t0

    def _diverged(self):
        alpha = self.step / self.N
        last = None
        if np.all(np.isfinite(self.w)) and np.all(np.isfinite(self.v)):
            try:
                last = OrderParams.from_weights(self.w, self.w_star, self.v, self.v_star,
                                                activation=self.act.name)
            except ValueError:
                last = None
        if last is None and self.i_out > 0:
            j = self.i_out - 1
            last = OrderParams(Q=self.Q_out[j], R=self.R_out[j], T=self.w_star @ self.w_star.T
                               / self.N, v=self.v_out[j], v_star=self.v_star,
                               activation=self.act.name)
        raise DivergenceError(
            f"the SGD weights became non-finite at alpha={alpha:.6g} (step {self.step}, "
            f"eta={self.eta:g}, eta_v={self.eta_v:g}, N={self.N}, K={self.K}, M={self.M}); "
            f"the learning rate is likely too large: try a smaller eta (e.g. {self.eta / 2:g})",
            alpha=alpha, last_state=last)

    def result(self) -> SimulationResult:
        meta = dict(self.params)
        meta.update(steps=self.step, wall_time_s=self.wall, status="success",
                    message="simulation reached alpha_max", backend="numba",
                    streams="SeedSequence(seed).spawn(3): inputs, label noise, test set")
        return SimulationResult(
            alpha=self.steps_out / self.N, eg=self.eg_out, Q=self.Q_out, R=self.R_out,
            v=self.v_out, T=self.w_star @ self.w_star.T / self.N, v_star=self.v_star,
            metadata=meta, eg_test=self.egt_out, eg_test_se=self.egt_se, w=self.w,
            w_star=self.w_star, P=self.P_out)

    # -------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> None:
        i = self.i_out
        _io.write_npz(
            self.checkpoint, "SimulationCheckpoint",
            {"w": self.w, "v": self.v, "counter": self.counter, "w0": self.w0, "v0": self.v0,
             "w_star": self.w_star, "v_star": self.v_star, "steps_out": self.steps_out,
             "Q_out": self.Q_out[:i], "R_out": self.R_out[:i], "v_out": self.v_out[:i],
             "P_out": self.P_out[:i],
             "eg_out": self.eg_out[:i], "egt_out": self.egt_out[:i], "egt_se": self.egt_se[:i]},
            {"params": self.params, "rng": _state_json(self.rng), "wall": self.wall,
             "noise_rng": _state_json(self.noise_rng)})

    def load_checkpoint(self) -> None:
        arrays, meta = _io.read_npz(self.checkpoint, "SimulationCheckpoint")
        if meta.get("params") != self.params:
            old = meta.get("params", {})
            diff = {k: (old.get(k), v) for k, v in self.params.items() if old.get(k) != v}
            raise ValueError(f"checkpoint {str(self.checkpoint)!r} was made with other "
                             f"parameters (checkpoint vs now: {diff}); refusing to resume")
        same = all(np.array_equal(arrays[k], ref) for k, ref in
                   (("w0", self.w0), ("v0", self.v0), ("w_star", self.w_star),
                    ("v_star", self.v_star), ("steps_out", self.steps_out)))
        if not same:
            raise ValueError(f"checkpoint {str(self.checkpoint)!r} was made from other initial "
                             "weights or save_at; refusing to resume")
        self.w[...] = arrays["w"]
        self.v[...] = arrays["v"]
        self.counter[...] = arrays["counter"]
        i = arrays["eg_out"].shape[0]
        self.Q_out[:i], self.R_out[:i], self.v_out[:i] = (arrays["Q_out"], arrays["R_out"],
                                                         arrays["v_out"])
        if "P_out" in arrays:
            self.P_out[:i] = arrays["P_out"]
        else:  # a checkpoint of an older version: P of the saved times from the current weights
            raise ValueError(f"checkpoint {str(self.checkpoint)!r} predates the two-time "
                             "overlaps; delete it to start over")
        self.eg_out[:i], self.egt_out[:i], self.egt_se[:i] = (arrays["eg_out"],
                                                             arrays["egt_out"], arrays["egt_se"])
        self.i_out = i
        self.rng.bit_generator.state = meta["rng"]
        self.noise_rng.bit_generator.state = meta["noise_rng"]
        self.wall = float(meta.get("wall", 0.0))


def _state_json(rng: np.random.Generator) -> dict:
    # PCG64 state: 128-bit ints, JSON keeps them exact
    return rng.bit_generator.state


# ------------------------------------------------------------------------------ public entry
def simulate(N: int, K: int, M: int, eta: float, alpha_max: float, save_at=None,
             eta_v: float | None = None, sigma: float = 0.0, v_star: float | Any = 4.0,
             activation: str = "erf", seed: int = 0, n_test: int = 10_000, mask=None,
             train_second_layer: bool = True, n_train: int | None = None, init=None,
             seeds: Sequence[int] | None = None, n_runs: int | None = None,
             progress: bool | None = None, checkpoint: str | os.PathLike | None = None,
             resume: bool = False, executor: Executor | None = None,
             max_workers: int | None = None) -> SimulationResult | SimulationEnsemble:
    r"""Online SGD of a two-layer student (K units) on a teacher (M units) at input dimension N.

    Parameters
    ----------
    N, K, M : int
        Input dimension, student and teacher hidden units (all >= 1).
    eta : float
        First-layer learning rate (> 0); the step is ``eta / sqrt(N)``.
    alpha_max : float
        Final time; the run makes ``round(alpha_max * N)`` steps.
    save_at : array_like, optional
        Times at which to record ``Q, R, v, eg, eg_test``; rounded to whole steps; 0 and
        ``alpha_max`` are always added. Default: :func:`default_save_at` (0 and 40 log-spaced). Each saved time
        costs one pass over the test set (``n_test * N * K`` operations).
    eta_v : float, optional
        Second-layer learning rate (>= 0); the step is ``eta_v / N``. Default ``eta``.
    sigma : float
        Output-noise standard deviation of the training labels.
    v_star : float or array_like, shape (M,)
        Teacher second layer (default 4, as in Acharyya et al. 2021).
    activation : {"erf", "linear"}
        ``g(x) = erf(x / sqrt 2)`` or ``g(x) = x``.
    seed : int
        Seeds the initial weights (as :meth:`OrderParams.random`) and, through
        ``SeedSequence(seed).spawn(3)``, the SGD inputs, the label noise and the test set.
    n_test : int
        Size of the held-out test set for ``eg_test`` (0: skip; ``eg_test`` is NaN).
    train_second_layer : bool
        ``False`` freezes ``v`` (as ``integrate(..., train_second_layer=False)``).
    n_train : int, optional
        Finite training set: the first ``n_train`` samples (inputs and label noise) are replayed
        in the same order on every pass (one pass is ``n_train / N`` in alpha). Default: a fresh
        sample every step. The paper's protocol is ``N=500, n_train=800_000, alpha_max=1600``.
    init : tuple (w, w_star, v), optional
        Explicit initial weights, shapes (K, N), (M, N), (K,), instead of the seeded draw.
    mask : array_like of 0/1, shape (K, N), optional
        Train a sparse student: the initial first layer is multiplied by ``mask`` and so is
        every update (the mask of iterative magnitude pruning with rewinding).
    seeds : sequence of int, optional
        Several runs with these seeds; returns a :class:`SimulationEnsemble`.
    n_runs : int, optional
        Several runs with seeds ``seed, seed + 1, ..., seed + n_runs - 1``.
    progress : bool or None
        Progress bar on stderr (tqdm); ``None`` (default): when stderr is a terminal.
    checkpoint : path, optional
        Write the run's state there (atomically) every ``CHECKPOINT_EVERY_S`` seconds at a saved
        time and on Ctrl-C; removed when the run finishes. For several runs, one file per seed
        (``<stem>.seed<seed>.npz``).
    resume : bool
        Continue from ``checkpoint``; the result is bit-identical to an uninterrupted run.
    executor : concurrent.futures.Executor, optional
        Where to run several seeds; default a ``ThreadPoolExecutor`` (the compiled loop releases
        the GIL) with ``max_workers`` (default: number of CPUs) threads.

    Returns
    -------
    SimulationResult, or SimulationEnsemble when ``seeds`` or ``n_runs`` is given.

    Raises
    ------
    ValueError
        Invalid parameters (the message names the parameter, its value and what is expected).
    DivergenceError
        The error of a step became non-finite; says at which alpha, suggests a smaller eta.
    OdepruneInterrupted
        Ctrl-C; the checkpoint (when given) was written first.

    Notes
    -----
    .. math:: w_k \leftarrow w_k - \frac{\eta}{\sqrt N} v_k \Delta g'(\lambda_k) x,\quad
              v_k \leftarrow v_k - \frac{\eta_v}{N} \Delta g(\lambda_k)

    Goldt et al. (2019), Section 2; Acharyya et al. (2021), Section 4.
    """
    N, K, M = _size("N", N), _size("K", K), _size("M", M)
    progress = want_progress(progress)
    eta = _real("eta", eta, allow_zero=False)
    eta_v = eta if eta_v is None else _real("eta_v", eta_v, allow_zero=True)
    sigma = _real("sigma", sigma, allow_zero=True)
    alpha_max = _real("alpha_max", alpha_max, allow_zero=False)
    act = get_activation(activation)
    v_star = _broadcast_v_star(v_star, M)
    if isinstance(n_test, (bool, np.bool_)) or not isinstance(n_test, (int, np.integer)) \
            or n_test < 0:
        raise ValueError(f"n_test={n_test!r} must be an integer >= 0")
    if n_train is not None:
        n_train = _size("n_train", n_train)
    if init is not None:
        if len(init) != 3:
            raise ValueError("init must be a tuple (w, w_star, v) of shapes (K, N), (M, N), (K,)")
        init = (_weights("w", init[0], (K, N)), _weights("w_star", init[1], (M, N)),
                _weights("v", init[2], (K,)))
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (K, N):
            raise ValueError(f"mask must have shape (K, N) = ({K}, {N}), got {mask.shape}")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must contain only 0/1 (or False/True) entries")
        mask = mask.astype(float)
    steps_out = _save_steps(save_at, alpha_max, N)
    if steps_out[-1] < 1:
        raise ValueError(f"alpha_max={alpha_max!r} is less than one step (1/N = {1 / N:g})")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    common = dict(N=N, K=K, M=M, eta=eta, alpha_max=alpha_max, steps_out=steps_out, eta_v=eta_v,
                  sigma=sigma, v_star=v_star, act=act, n_test=int(n_test),
                  train_v=bool(train_second_layer), n_train=n_train, init=init, mask=mask)

    if seeds is None and n_runs is None:
        seed = _seed("seed", seed)
        run = _Run(seed=seed, checkpoint=checkpoint, **common)
        return _drive_single(run, progress, resume)

    if seeds is not None and n_runs is not None:
        raise ValueError("give seeds=[...] or n_runs=, not both")
    if seeds is None:
        n_runs = _size("n_runs", n_runs)
        seeds = [_seed("seed", seed) + i for i in range(n_runs)]
    seeds = [_seed("seeds[i]", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds} contains duplicates")
    return _drive_ensemble(seeds, common, progress, checkpoint, resume, executor, max_workers)


def _progress_bar(total_steps: int, N: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total_steps / N, unit="α", desc=desc, leave=False,
                bar_format="{l_bar}{bar}| α={n:.4g}/{total:g} [{elapsed}<{remaining}]")


def _drive_single(run: _Run, progress: bool, resume: bool) -> SimulationResult:
    if resume:
        if not run.checkpoint.exists():
            raise ValueError(f"resume=True but checkpoint {str(run.checkpoint)!r} does not exist")
        run.load_checkpoint()
    bar = _progress_bar(int(run.steps_out[-1]), run.N, "simulate") if progress else None
    try:
        if bar is not None:
            bar.update(run.step / run.N)
        run.run(on_steps=None if bar is None else (lambda n: bar.update(n / run.N)))
    finally:
        if bar is not None:
            bar.close()
    if run.checkpoint is not None and run.checkpoint.exists():
        run.checkpoint.unlink(missing_ok=True)  # a concurrent run may remove it
    return run.result()


def _seed_path(checkpoint, seed: int) -> Path | None:
    if checkpoint is None:
        return None
    p = Path(checkpoint)
    stem = p.name[:-4] if p.name.endswith(".npz") else p.name
    return p.with_name(f"{stem}.seed{seed}.npz")


def _drive_ensemble(seeds, common, progress, checkpoint, resume, executor, max_workers
                    ) -> SimulationEnsemble:
    stop = threading.Event()
    lock = threading.Lock()
    N = common["N"]
    bar = (_progress_bar(int(common["steps_out"][-1]) * len(seeds), N,
                         f"simulate x{len(seeds)}") if progress else None)

    def on_steps(n):
        with lock:
            bar.update(n / N)

    def one(seed: int) -> SimulationResult:
        path = _seed_path(checkpoint, seed)
        if resume and path is not None and path.exists():
            _, meta = _io.read_npz(path)
            if meta["kind"] == SimulationResult.KIND:  # this seed had finished
                res = SimulationResult.load(path)
                if bar is not None:
                    on_steps(int(res.metadata["steps"]))
                return res
        run = _Run(seed=seed, checkpoint=path, **common)
        if resume and path is not None and path.exists():
            run.load_checkpoint()
            if bar is not None:
                on_steps(run.step)
        run.run(on_steps=None if bar is None else on_steps, stop=stop)
        res = run.result()
        if path is not None:  # keep finished runs until the whole ensemble is done
            res.save(path)
        return res

    own = executor is None
    if own:
        workers = max_workers or min(len(seeds), os.cpu_count() or 1)
        executor = ThreadPoolExecutor(max_workers=workers)
    futures = [executor.submit(one, s) for s in seeds]
    try:
        try:
            results = [f.result() for f in futures]
        except BaseException:
            stop.set()  # one run failed or Ctrl-C: stop the others at their next block
            raise
    except KeyboardInterrupt:
        stop.set()
        for f in futures:
            try:
                f.result()
            except BaseException:  # noqa: BLE001 - every run stops; we report once below
                pass
        msg = "simulation interrupted"
        if checkpoint is not None:
            msg += (f"; checkpoints saved beside {str(checkpoint)!r}: resume with resume=True "
                    "(CLI: --resume)")
        raise OdepruneInterrupted(msg, None if checkpoint is None else str(checkpoint)) from None
    finally:
        if own:
            executor.shutdown(wait=True)
        if bar is not None:
            bar.close()
    if checkpoint is not None:
        for s in seeds:
            p = _seed_path(checkpoint, s)
            if p.exists():
                p.unlink(missing_ok=True)
    meta = {k: v for k, v in results[0].metadata.items() if k not in ("seed", "steps",
                                                                      "wall_time_s")}
    meta["seeds"] = list(seeds)
    return SimulationEnsemble(runs=tuple(results), metadata=meta)
