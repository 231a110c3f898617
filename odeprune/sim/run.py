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
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _io
from .._pool import map_parallel
from .._validate import check_array, check_mask, check_memory, check_save_at
from ..activations import Activation, get_activation
from ..errors import DivergenceError, OdepruneInterrupted
from ..grid import save_times
from ..ode.progress import want_progress
from ..ode.runcontrol import RunControl, interrupted_error
from ..options import OPTIONS, Control, Data, Dynamics, Ensemble, Network, gather
from ..state import OrderParams, broadcast_v_star
from .kernel import fields, make_sgd_params, sgd_steps
from .results import SimulationEnsemble, SimulationResult

__all__ = ["simulate", "default_save_at", "sgd_streams", "Run", "Setup", "MAX_CHUNK_STEPS"]

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
@dataclass(frozen=True, eq=False)
class Setup:
    """What every seed of a :func:`simulate` call shares, checked: the sizes, the learning rule
    (:class:`~odeprune.options.Dynamics`), the drawn network's options
    (:class:`~odeprune.options.Network`, ``v_star`` broadcast to ``(M,)``), the samples
    (:class:`~odeprune.options.Data`), the saved steps, and the explicit initial weights, the
    student's mask and the teacher's support (None: a draw, dense, dense)."""

    N: int
    K: int
    M: int
    dynamics: Dynamics
    network: Network
    data: Data
    steps_out: np.ndarray
    init: tuple | None = None
    mask: np.ndarray | None = None
    teacher_mask: np.ndarray | None = None

    @property
    def act(self) -> Activation:
        return get_activation(self.network.activation)

    @property
    def v_star(self) -> np.ndarray:
        return broadcast_v_star(self.network.v_star, self.M)


class Run:
    """One seed's run: weights, streams, outputs, checkpoint; advanced chunk by chunk by a
    driver (:meth:`advance`), which owns the run control."""

    def __init__(self, setup: Setup, seed: int, checkpoint=None):
        N, K, M = setup.N, setup.K, setup.M
        dyn, init, mask, teacher_mask = setup.dynamics, setup.init, setup.mask, setup.teacher_mask
        n_test, n_train = setup.data.n_test, setup.data.n_train
        act = setup.act
        self.N, self.K, self.M = N, K, M
        self.act = act
        self.seed = seed
        self.eta, self.eta_v, self.sigma = dyn.eta, dyn.second_layer_rate, dyn.sigma
        self.train_v = dyn.train_second_layer
        self.n_train = n_train
        self.steps_out = steps_out = setup.steps_out
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        if init is None:
            w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, setup.v_star, seed)
        else:
            w, w_star, v = init
            v_star = setup.v_star
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
        self.sgd = make_sgd_params(w_star, v_star, self.eta, self.eta_v, self.sigma, act.code,
                                   self.train_v, mask=self.mask if self.has_mask else None,
                                   weight_decay=dyn.weight_decay, l1=dyn.l1)
        if n_test > 0:
            self.X_test = test_rng.standard_normal((n_test, N))
            nu = np.empty((n_test, M))
            fields(self.X_test, np.ascontiguousarray(w_star, dtype=float), self.inv_sqrt_N, nu)
            self.y_test = act.g(nu) @ v_star
            self.lam_test = np.empty((n_test, K))
        else:
            self.X_test = None
        self.params = dict(N=N, K=K, M=M, eta=self.eta, eta_v=self.eta_v, sigma=self.sigma,
                           weight_decay=float(dyn.weight_decay), l1=float(dyn.l1),
                           activation=act.name, seed=seed, n_test=n_test,
                           train_second_layer=self.train_v, n_train=n_train,
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
            if rc.interrupted is not None:  # it came during the last chunk: stop as for any
                raise self.interrupted(rc.interrupted)  # other (the checkpoint is the end)
        except OdepruneInterrupted:  # (our own stop, which names its signal: not relabelled)
            raise
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
            # PCG64 states: 128-bit ints, JSON keeps them exact
            {"params": self.params, "rng": self.rng.bit_generator.state, "wall": self.wall,
             "noise_rng": self.noise_rng.bit_generator.state})

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


# ------------------------------------------------------------------------------ public entry
#: the option records of :func:`simulate` (``odeprune.options``), in the order :func:`gather`
#: answers them
RECORDS = (Dynamics, Control, Network, Data, Ensemble)


def simulate(N: int, K: int, M: int, eta: float | None, alpha_max: float, save_at=None, *,
             init=None, mask=None, teacher_mask=None, **options
             ) -> SimulationResult | SimulationEnsemble:
    r"""Online SGD of a two-layer student (K units) on a teacher (M units) at input dimension N.

    Parameters
    ----------
    N, K, M : int
        Input dimension, student and teacher hidden units (all >= 1).
    eta : float
        First-layer learning rate (> 0); the step is ``eta / sqrt(N)``. None when the learning
        rule is given whole (``dynamics=Dynamics(eta=...)``).
    alpha_max : float
        Final time; the run makes ``round(alpha_max * N)`` steps.
    save_at : array_like, optional
        Times at which to record ``Q, R, v, eg, eg_test``; rounded to whole steps; 0 and
        ``alpha_max`` are always added. Default: :func:`default_save_at` (0 and 40 log-spaced).
        Each saved time costs one pass over the test set (``n_test * N * K`` operations).
    init : tuple (w, w_star, v), optional
        Explicit initial weights, shapes (K, N), (M, N), (K,), instead of the seeded draw.
    mask : array_like of 0/1, shape (K, N), optional
        Train a sparse student: the initial first layer is multiplied by ``mask`` and so is
        every update (the mask of iterative magnitude pruning with rewinding).
    teacher_mask : array_like of 0/1, shape (M, N), optional
        A sparse teacher: its first-layer weights are zero off this support (every run; e.g.
        :func:`odeprune.teachers.teacher_support`). With ``init`` the given ``w_star`` is masked.
    **options
        The options of the records :class:`~odeprune.options.Dynamics`,
        :class:`~odeprune.options.Control`, :class:`~odeprune.options.Network`,
        :class:`~odeprune.options.Data` and :class:`~odeprune.options.Ensemble` (defaults and
        checks: the table :data:`odeprune.options.OPTIONS`), as flat keywords or each record
        whole (``network=Network(v_star=2.0, seed=3)``); any other keyword is a ``TypeError``:

    eta_v : float, optional
        Second-layer learning rate (>= 0); the step is ``eta_v / N``. Default ``eta``.
    sigma : float
        Output-noise standard deviation of the training labels (default 0).
    train_second_layer : bool
        ``False`` freezes ``v`` (as ``integrate(..., train_second_layer=False)``).
    weight_decay, l1 : float
        Regularisers of the first layer (``docs/theory.md`` §11): after every step
        ``w <- (1 - eta * weight_decay / N) w`` and the L1 proximal step
        ``w <- sign(w) max(|w| - eta * l1 / N, 0)``; the penalty ``(gamma/2)|w|^2 + lambda|w|_1``
        per weight, in units where it moves each weight by O(1) per unit of alpha.
        (``gradient_flow`` belongs to the ODE and is refused.)
    v_star : float or array_like, shape (M,)
        Teacher second layer (default 4, as in Acharyya et al. 2021).
    activation : str
        A name of the activation registry (:mod:`odeprune.activations`: "erf" (default),
        "linear", "relu").
    seed : int
        Seeds the initial weights (as :meth:`OrderParams.random`) and, through
        ``SeedSequence(seed).spawn(3)``, the SGD inputs, the label noise and the test set
        (default 0).
    n_test : int
        Size of the held-out test set for ``eg_test`` (default 10000; 0: skip, ``eg_test`` is
        NaN).
    n_train : int, optional
        Finite training set: the first ``n_train`` samples (inputs and label noise) are replayed
        in the same order on every pass (one pass is ``n_train / N`` in alpha). Default: a fresh
        sample every step. The paper's protocol is ``N=500, n_train=800_000, alpha_max=1600``.
    seeds : sequence of int, optional
        Several runs with these (distinct) seeds; returns a :class:`SimulationEnsemble`.
    n_runs : int, optional
        Several runs with seeds ``seed, seed + 1, ..., seed + n_runs - 1``.
    executor : concurrent.futures.Executor, optional
        Where to run several seeds; default a thread pool (the compiled loop releases the GIL)
        of ``max_workers`` threads (default: the available cores, at most one per seed;
        :func:`odeprune._pool.map_parallel`).
    max_workers : int, optional
        Threads of the default pool.
    progress : bool or None
        Progress bar on stderr (tqdm); ``None`` (default): when stderr is a terminal.
    checkpoint : path, optional
        Write the run's state there (atomically) after the first chunk, then every
        ``ODEPRUNE_CHECKPOINT_EVERY_S`` seconds (default 2), and on Ctrl-C / SIGTERM; removed
        when the run finishes. For several runs, one file per seed
        (``<stem>.seed<seed>.npz``).
    resume : bool
        Continue from ``checkpoint``; the result is bit-identical to an uninterrupted run.
    chunk_steps : int, optional
        At most this many SGD steps between two looks from Python (default: chunks of about
        0.25 s, at most :data:`MAX_CHUNK_STEPS`); the numbers do not depend on it.
    divergence_path : path, optional
        Where to save the last good state (an ``OrderParams``) if the weights diverge.

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
    kw = dict(options)
    if not (eta is None and "dynamics" in kw):  # (eta=None: the learning rule given whole)
        kw["eta"] = eta
    dyn, ctl, net, data, ens = gather("simulate", kw, RECORDS)
    setup = _setup((N, K, M), alpha_max, save_at, (dyn, net, data, ens),
                   dict(init=init, mask=mask, teacher_mask=teacher_mask))
    progress = want_progress(ctl.progress)
    try:
        if ens.seeds is None and ens.n_runs is None:
            return _drive_single(Run(setup, net.seed, ctl.checkpoint), progress, ctl)
        seeds = ens.seeds or [net.seed + i for i in range(ens.n_runs)]
        return _drive_ensemble(seeds, setup, progress, ctl, ens)
    except DivergenceError as exc:
        if ctl.divergence_path is None or exc.last_state is None:
            raise
        path = str(exc.last_state.save(ctl.divergence_path))
        raise DivergenceError(f"{exc}; last good state saved to {path!r}", alpha=exc.alpha,
                              last_state=exc.last_state, saved_to=path) from None


def _setup(sizes: tuple, alpha_max, save_at, records: tuple, weights: dict) -> Setup:
    """The checked :class:`Setup` of a :func:`simulate` call (``sizes``: ``N, K, M``;
    ``records``: its Dynamics, Network, Data, Ensemble; ``weights``: its ``init``, ``mask``,
    ``teacher_mask``): one line naming the first bad argument, before any work."""
    dyn, net, data, ens = records
    N, K, M = (OPTIONS[n].check(x) for n, x in zip("NKM", sizes, strict=True))
    alpha_max = OPTIONS["alpha_max"].check(alpha_max)
    if dyn.gradient_flow:
        raise ValueError("gradient_flow=True drops the eta^2 terms of the ODE; SGD at finite N "
                         "has them (use odeprune.integrate)")
    if dyn.eta * (dyn.weight_decay + dyn.l1) / N >= 1:
        raise ValueError(f"eta*(weight_decay + l1)/N = "
                         f"{(dyn.eta * (dyn.weight_decay + dyn.l1)) / N:g} per step must be "
                         "below 1 (the regulariser would flip or erase every weight in one step)")
    broadcast_v_star(net.v_star, M)
    init, mask, teacher_mask = weights["init"], weights["mask"], weights["teacher_mask"]
    if init is not None:
        if len(init) != 3:
            raise ValueError("init must be a tuple (w, w_star, v) of shapes (K, N), (M, N), (K,)")
        init = (_weights("w", init[0], (K, N)), _weights("w_star", init[1], (M, N)),
                _weights("v", init[2], (K,)))
    if mask is not None:
        mask = check_mask("mask", mask, (K, N), "(K, N)").astype(float)
    if teacher_mask is not None:
        teacher_mask = check_mask("teacher_mask", teacher_mask, (M, N), "(M, N)")
    steps_out = _save_steps(save_at, alpha_max, N)
    n_runs = len(ens.seeds) if ens.seeds is not None else ens.n_runs or 1
    check_memory(f"simulate with N={N}, K={K}, M={M}" + (f", {n_runs} runs" if n_runs > 1
                                                           else ""),
                 n_runs * _floats_per_run(N, K, M, data.n_test, steps_out.size,
                                          mask is not None),
                 "use a smaller N, K, n_test or fewer saved times (save_at)")
    if steps_out[-1] < 1:
        raise ValueError(f"alpha_max={alpha_max!r} is less than one step (1/N = {1 / N:g})")
    return Setup(N, K, M, dyn, net, data, steps_out, init, mask, teacher_mask)


def _max_chunk(ctl: Control) -> int:
    return MAX_CHUNK_STEPS if ctl.chunk_steps is None else min(MAX_CHUNK_STEPS, ctl.chunk_steps)


def _drive_single(run: Run, progress: bool, ctl: Control) -> SimulationResult:
    if ctl.resume:
        if not run.checkpoint.exists():
            raise ValueError(f"resume=True but checkpoint {str(run.checkpoint)!r} does not exist")
        run.load_checkpoint()
    N = run.N
    with RunControl(float(run.steps_out[-1]) / N, "simulate", progress, start=run.step / N,
                    max_chunk=_max_chunk(ctl)) as rc:
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


def _drive_ensemble(seeds, setup: Setup, progress: bool, ctl: Control, ens: Ensemble
                    ) -> SimulationEnsemble:
    lock = threading.Lock()
    N = setup.N
    checkpoint, resume = ctl.checkpoint, ctl.resume
    done_steps = {s: 0 for s in seeds}
    total = float(setup.steps_out[-1]) * len(seeds) / N

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
        run = Run(setup, seed, path)
        if resume and path is not None and path.exists():
            run.load_checkpoint()
        report(run.step, 0, 0.0)
        run.drive(rc, report)
        res = run.result()
        if path is not None:  # keep finished runs until the whole ensemble is done
            res.save(path)
        return res

    with RunControl(total, f"simulate x{len(seeds)}", progress,
                    max_chunk=_max_chunk(ctl)) as rc:
        try:  # one run failed, or Ctrl-C: the others stop at their next chunk (map_parallel)
            results = map_parallel(lambda s: one(s, rc), seeds, ens.max_workers, ens.executor,
                                   name="odeprune-sim")
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
