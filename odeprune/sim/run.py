r"""Finite-N online SGD of a two-layer student on a two-layer teacher: runs, their control, and
:func:`simulate` (``docs/theory.md`` §1; Goldt et al. 2019, Section 2; Acharyya et al. 2021,
Section 4). The step itself is :func:`odeprune.sim.kernel.sgd_steps`; the ODEs of
:func:`odeprune.integrate` are the ``N -> infinity`` limit of this process.

Random streams (all from ``seed``, an int):

- initial weights: ``OrderParams.draw_weights(N, K, M, v_star, seed)``, i.e.
  ``numpy.random.default_rng(seed)`` drawing ``w_star``, ``w``, ``v``; hence
  ``simulate(..., seed=s).initial == OrderParams.random(N, K, M, v_star, s)`` exactly;
- ``np.random.SeedSequence(seed).spawn(3)`` gives three independent children (their spawn keys
  differ from the root's, so they are independent of the initial draw), each driving a ``PCG64``
  ``numpy.random.Generator``: [0] the SGD inputs ``x`` (``N`` standard normals per step, drawn by
  :func:`odeprune._rng.fill_normals` from a generator seeded per step from this one), [1] the
  label noise ``zeta`` (one per step, drawn only when ``sigma > 0``), [2] the test set.

Run control (progress bar, chunks sized by wall time, checkpoints by time, Ctrl-C / SIGTERM) is
:class:`odeprune.ode.runcontrol.RunControl`, the helper every driver uses.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from .. import _io
from .._pool import map_parallel
from .._validate import (
    check_array,
    check_mask,
    check_memory,
    check_save_at,
    check_seed,
    check_workers,
)
from .._validate import check_real as _real
from .._validate import check_size as _size
from ..activations import get_activation
from ..errors import DivergenceError, OdepruneInterrupted
from ..grid import save_times
from ..ode.progress import want_progress
from ..ode.runcontrol import RunControl, interrupted_error
from ..state import OrderParams, broadcast_v_star
from .kernel import fields, make_sgd_params, sgd_steps
from .results import SimulationEnsemble, SimulationResult

__all__ = ["simulate", "default_save_at", "sgd_streams", "Run", "MAX_CHUNK_STEPS"]

#: upper bound on the steps of one call of the compiled loop; between calls Python updates the
#: progress bar, writes checkpoints and sees Ctrl-C (chunks are otherwise sized to ~0.25 s)
MAX_CHUNK_STEPS = 1_000_000


def default_save_at(alpha_max: float, n: int = 40) -> np.ndarray:
    """The default saved times of a simulation: :func:`odeprune.grid.save_times` (0 plus ``n``
    log-spaced times from ``min(1, alpha_max/100)`` to ``alpha_max``)."""
    return save_times(alpha_max, n)


def sgd_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator,
                                    np.random.Generator]:
    """The three generators of a run: SGD inputs, label noise, test set (see module docstring)."""
    children = np.random.SeedSequence(seed).spawn(3)
    return tuple(np.random.Generator(np.random.PCG64(c)) for c in children)  # type: ignore


# ------------------------------------------------------------------------------ validation
def _weights(name: str, value: Any, shape: tuple) -> np.ndarray:
    try:
        got = np.shape(value)
    except ValueError:  # ragged
        got = None
    if got != shape:
        raise ValueError(f"init: {name} must have shape {shape}, got {got}")
    # real and finite, naming the first bad entry
    return np.array(check_array(f"init: {name}", value, len(shape)))


def _floats_per_run(N: int, K: int, M: int, n_test: int, n_out: int, masked: bool) -> float:
    """The float64 numbers one run holds at once: weights (current, initial, mask), teacher,
    the test inputs and their fields, the (K+M)^2 overlaps of the initial state, and the saved
    Q, P, R, v (:class:`Run`)."""
    return ((3 if masked else 2) * K * N + M * N + N + n_test * (N + K + M)
            + 4 * (K + M) ** 2 + n_out * (2 * K * K + K * M + K + 3))


def _save_steps(save_at: Any, alpha_max: float, N: int) -> np.ndarray:
    t = default_save_at(alpha_max) if save_at is None else check_save_at(save_at, alpha_max)
    steps = np.rint(np.concatenate([[0.0], t, [alpha_max]]) * N).astype(np.int64)
    return np.unique(steps)


# ------------------------------------------------------------------------------ one run
class Run:
    """One seed's run: weights, streams, outputs, checkpoint; advanced chunk by chunk by a
    driver (:meth:`advance`), which owns the run control."""

    def __init__(self, N, K, M, eta, alpha_max, steps_out, eta_v, sigma, v_star, act, seed,
                 n_test, train_v, n_train, init, checkpoint, mask=None, weight_decay=0.0,
                 l1=0.0, teacher_mask=None):
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
            v_star = broadcast_v_star(v_star, M)
        if teacher_mask is not None:  # a sparse teacher: zero off its support
            w_star = np.where(teacher_mask, w_star, 0.0)
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
        self.sgd = make_sgd_params(w_star, v_star, eta, eta_v, sigma, act.code, train_v,
                                   mask=self.mask if self.has_mask else None,
                                   weight_decay=weight_decay, l1=l1)
        if n_test > 0:
            self.X_test = test_rng.standard_normal((n_test, N))
            nu = np.empty((n_test, M))
            fields(self.X_test, np.ascontiguousarray(w_star, dtype=float), self.inv_sqrt_N, nu)
            self.y_test = act.g(nu) @ v_star
            self.lam_test = np.empty((n_test, K))
        else:
            self.X_test = None
        self.params = dict(N=N, K=K, M=M, eta=eta, eta_v=eta_v, sigma=sigma,
                           weight_decay=float(weight_decay), l1=float(l1), activation=act.name, seed=seed, n_test=n_test,
                           train_second_layer=train_v, n_train=n_train,
                           alpha_max=float(steps_out[-1]) / N, init="explicit" if init is not None
                           else "draw_weights",
                           teacher_support_fraction=(None if teacher_mask is None else
                                                     float(np.mean(teacher_mask))),
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
            fields(self.X_test, self.w, self.inv_sqrt_N, self.lam_test)
            phi = self.act.g(self.lam_test) @ self.v
            e = 0.5 * (phi - self.y_test) ** 2
            self.egt_out[i] = e.mean()
            self.egt_se[i] = e.std(ddof=1) / math.sqrt(e.size) if e.size > 1 else np.nan
        self.i_out = i + 1

    @property
    def done(self) -> bool:
        return self.i_out >= self.steps_out.size

    def advance(self, max_steps: int) -> int:
        """At most ``max_steps`` SGD steps, stopping at the next saved time (recorded there) and
        at the end of a pass over a finite training set; returns the steps made."""
        if self.done:
            return 0
        target = int(self.steps_out[self.i_out])
        n = min(target - self.step, max(1, int(max_steps)))
        if n > 0 and self.n_train is not None:
            pos = self.step % self.n_train
            if pos == 0:  # a new pass over the training set: replay its streams
                self.rng.bit_generator.state = self.rng_start
                self.noise_rng.bit_generator.state = self.noise_start
            n = min(n, self.n_train - pos)
        before = self.step
        t0 = time.perf_counter()
        if n > 0:
            ok = sgd_steps(self.w, self.v, self.x, self.counter, self.rng, self.noise_rng, n,
                           self.sgd)
            if not ok:
                self._diverged()
        if self.step >= target:
            self._record()
        self.wall += time.perf_counter() - t0
        return self.step - before

    def drive(self, rc: RunControl, report) -> None:
        """Advance to the end in chunks sized by ``rc``, calling ``report(step, n, seconds)``
        after each and checkpointing when ``rc`` says so. A stop request seen by ``rc``
        (Ctrl-C, SIGTERM, or another run of an ensemble failing) or a second Ctrl-C writes the
        checkpoint and raises :class:`~odeprune.errors.OdepruneInterrupted`."""
        try:
            while not self.done:
                if rc.interrupted is not None:
                    raise self.interrupted(rc.interrupted)
                t0 = time.perf_counter()
                n = self.advance(rc.chunk_steps())
                report(self.step, n, time.perf_counter() - t0)
                if self.checkpoint is not None and not self.done and rc.checkpoint_due():
                    self.save_checkpoint()
        except KeyboardInterrupt as exc:  # the command line's SIGTERM arrives as one too
            why = "SIGTERM" if getattr(exc, "signum", None) == signal.SIGTERM else "Ctrl-C"
            raise self.interrupted(why) from None

    def interrupted(self, why: str) -> OdepruneInterrupted:
        """Write the checkpoint (when there is one) and return the exception to raise."""
        if self.checkpoint is not None:
            self.save_checkpoint()
        return interrupted_error(f"simulation (seed={self.seed})", why,
                                 f"alpha={self.step / self.N:.6g}", self.checkpoint)

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
             max_workers: int | None = None, weight_decay: float = 0.0, l1: float = 0.0,
             teacher_mask=None) -> SimulationResult | SimulationEnsemble:
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
    activation : str
        A name of the activation registry (:mod:`odeprune.activations`: "erf", "linear",
        "relu").
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
    weight_decay, l1 : float
        Regularisers of the first layer (``docs/theory.md`` §11): after every step
        ``w <- (1 - eta * weight_decay / N) w`` and the L1 proximal step
        ``w <- sign(w) max(|w| - eta * l1 / N, 0)``; the penalty ``(gamma/2)|w|^2 + lambda|w|_1``
        per weight, in units where it moves each weight by O(1) per unit of alpha.
    teacher_mask : array_like of 0/1, shape (M, N), optional
        A sparse teacher: its first-layer weights are zero off this support (every run; e.g.
        :func:`odeprune.teachers.teacher_support`). With ``init`` the given ``w_star`` is masked.
    seeds : sequence of int, optional
        Several runs with these seeds; returns a :class:`SimulationEnsemble`.
    n_runs : int, optional
        Several runs with seeds ``seed, seed + 1, ..., seed + n_runs - 1``.
    progress : bool or None
        Progress bar on stderr (tqdm); ``None`` (default): when stderr is a terminal.
    checkpoint : path, optional
        Write the run's state there (atomically) after the first chunk, then every
        ``ODEPRUNE_CHECKPOINT_EVERY_S`` seconds (default 2), and on Ctrl-C / SIGTERM; removed
        when the run finishes. For several runs, one file per seed
        (``<stem>.seed<seed>.npz``).
    resume : bool
        Continue from ``checkpoint``; the result is bit-identical to an uninterrupted run.
    executor : concurrent.futures.Executor, optional
        Where to run several seeds; default a thread pool (the compiled loop releases the GIL)
        of ``max_workers`` threads (default: the available cores, at most one per seed;
        :func:`odeprune._pool.map_parallel`).

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
    weight_decay = _real("weight_decay", weight_decay, allow_zero=True)
    l1 = _real("l1", l1, allow_zero=True)
    if (eta * weight_decay + eta * l1) / N >= 1:
        raise ValueError(f"eta*(weight_decay + l1)/N = {(eta * (weight_decay + l1)) / N:g} per "
                         "step must be below 1 (the regulariser would flip or erase every "
                         "weight in one step)")
    act = get_activation(activation)
    v_star = broadcast_v_star(v_star, M)
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
    if teacher_mask is not None:
        teacher_mask = check_mask("teacher_mask", teacher_mask, (M, N), "(M, N)")
    steps_out = _save_steps(save_at, alpha_max, N)
    n_runs_mem = (len(seeds) if hasattr(seeds, "__len__") else
                  n_runs if isinstance(n_runs, (int, np.integer)) and n_runs > 0 else 1)
    check_memory(f"simulate with N={N}, K={K}, M={M}" + (f", {n_runs_mem} runs" if n_runs_mem > 1
                                                           else ""),
                 n_runs_mem * _floats_per_run(N, K, M, int(n_test), steps_out.size,
                                              mask is not None),
                 "use a smaller N, K, n_test or fewer saved times (save_at)")
    if steps_out[-1] < 1:
        raise ValueError(f"alpha_max={alpha_max!r} is less than one step (1/N = {1 / N:g})")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    common = dict(N=N, K=K, M=M, eta=eta, alpha_max=alpha_max, steps_out=steps_out, eta_v=eta_v,
                  sigma=sigma, v_star=v_star, act=act, n_test=int(n_test),
                  train_v=bool(train_second_layer), n_train=n_train, init=init, mask=mask,
                  weight_decay=weight_decay, l1=l1, teacher_mask=teacher_mask)

    if seeds is None and n_runs is None:
        seed = check_seed("seed", seed)
        run = Run(seed=seed, checkpoint=checkpoint, **common)
        return _drive_single(run, progress, resume)

    if seeds is not None and n_runs is not None:
        raise ValueError("give seeds=[...] or n_runs=, not both")
    check_workers("max_workers", max_workers)
    if seeds is None:
        n_runs = _size("n_runs", n_runs)
        seeds = [check_seed("seed", seed) + i for i in range(n_runs)]
    seeds = [check_seed("seeds[i]", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds} contains duplicates")
    return _drive_ensemble(seeds, common, progress, checkpoint, resume, executor, max_workers)


def _drive_single(run: Run, progress: bool, resume: bool) -> SimulationResult:
    if resume:
        if not run.checkpoint.exists():
            raise ValueError(f"resume=True but checkpoint {str(run.checkpoint)!r} does not exist")
        run.load_checkpoint()
    N = run.N
    with RunControl(float(run.steps_out[-1]) / N, "simulate", progress, start=run.step / N,
                    max_chunk=MAX_CHUNK_STEPS) as rc:
        run.drive(rc, lambda step, n, seconds: rc.chunk_done(step / N, n, seconds))
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
    lock = threading.Lock()
    N = common["N"]
    done_steps = {s: 0 for s in seeds}
    total = float(common["steps_out"][-1]) * len(seeds) / N

    def one(seed: int, rc: RunControl) -> SimulationResult:
        path = _seed_path(checkpoint, seed)

        def report(step: int, n: int, seconds: float) -> None:
            with lock:
                done_steps[seed] = step
                rc.chunk_done(sum(done_steps.values()) / N, n, seconds)

        if resume and path is not None and path.exists():
            _, meta = _io.read_npz(path)
            if meta["kind"] == SimulationResult.KIND:  # this seed had finished
                res = SimulationResult.load(path)
                report(int(res.metadata["steps"]), 0, 0.0)
                return res
        run = Run(seed=seed, checkpoint=path, **common)
        if resume and path is not None and path.exists():
            run.load_checkpoint()
        report(run.step, 0, 0.0)
        run.drive(rc, report)
        res = run.result()
        if path is not None:  # keep finished runs until the whole ensemble is done
            res.save(path)
        return res

    with RunControl(total, f"simulate x{len(seeds)}", progress,
                    max_chunk=MAX_CHUNK_STEPS) as rc:

        def stop_the_others(exc: BaseException) -> None:
            # one run failed, or Ctrl-C: the others stop at their next chunk
            rc.interrupted = rc.interrupted or (
                "Ctrl-C" if isinstance(exc, (KeyboardInterrupt, OdepruneInterrupted))
                else "another run failed")

        try:
            results = map_parallel(lambda s: one(s, rc), seeds, max_workers, executor,
                                   on_error=stop_the_others, name="odeprune-sim")
        except (KeyboardInterrupt, OdepruneInterrupted) as exc:
            why = ("SIGTERM" if rc.interrupted == "SIGTERM"
                   or getattr(exc, "signum", None) == signal.SIGTERM else "Ctrl-C")
            msg = f"simulation interrupted ({why})"
            if checkpoint is not None:
                msg += (f"; checkpoints saved beside {str(checkpoint)!r}: resume with "
                        "resume=True (CLI: --resume)")
            raise OdepruneInterrupted(msg, None if checkpoint is None
                                      else str(checkpoint)) from None
    if checkpoint is not None:
        for s in seeds:
            p = _seed_path(checkpoint, s)
            if p.exists():
                p.unlink(missing_ok=True)
    meta = {k: v for k, v in results[0].metadata.items() if k not in ("seed", "steps",
                                                                      "wall_time_s")}
    meta["seeds"] = list(seeds)
    return SimulationEnsemble(runs=tuple(results), metadata=meta)
