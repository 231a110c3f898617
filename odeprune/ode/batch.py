r"""Many learning curves at once: ``integrate_batch(states, eta=..., alpha_max=...)``.

The way a researcher runs 100 seeds or a learning-rate sweep: a list of initial
:class:`~odeprune.state.OrderParams` (same ``K`` and ``M``), with ``eta``, ``eta_v`` and ``sigma``
either shared or given per member. Two backends:

- ``"numba"`` (default): every member is one :func:`odeprune.integrate` call, spread over a
  thread pool with one worker per available core (:func:`odeprune._pool.map_parallel`). The compiled
  Dormand-Prince driver releases the GIL (``nogil=True``), so the threads run in parallel; the
  numbers are bit-for-bit those of sequential ``integrate`` calls. Any
  :class:`concurrent.futures.Executor` can be passed instead (a process pool, or
  ``dask.distributed``'s ``Client.get_executor()`` on a cluster).
- ``"jax"``: one jitted ``vmap`` over the batch (:func:`odeprune.ode.jax_backend.integrate_batch`).
  diffrax's adaptive loop then runs in lockstep: every member pays the step count of the slowest,
  so batch similar runs together (``chunk_size=`` splits a batch into groups). Needs the optional
  extra: ``pip install -e ".[jax]"``.

The equations are those of :func:`odeprune.integrate` (Goldt et al. 2019, supplementary S3-S4).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace

import numba
import numpy as np

from .._pool import map_parallel, worker_count
from .._validate import check_save_at, check_workers
from ..errors import DivergenceError
from ..options import OPTIONS, Control, Dynamics, Solver, gather
from ..results import LearningCurve
from ..sparse import SparseOrderParams
from ..state import OrderParams
from .dynamics import default_save_at, integrate
from .progress import progress_bar, want_progress

__all__ = ["integrate_batch", "BatchResult"]


@dataclass(frozen=True, eq=False)
class BatchResult:
    """Learning curves of a batch, one per member, with stacked arrays for analysis.

    Attributes
    ----------
    curves : list of LearningCurve or None
        ``None`` where the member diverged (only with ``errors="keep"``).
    errors : list of DivergenceError or None
        The failure of each member, ``None`` where it succeeded.
    alpha : ndarray, shape (n,)
        Saved times, shared by all members.
    eta, eta_v, sigma : ndarray, shape (B,)
        Hyper-parameters per member.

    Notes
    -----
    ``eg``, ``Q``, ``R`` and ``v`` stack the members along a leading axis of length ``B``
    (shapes ``(B, n)``, ``(B, n, K, K)``, ``(B, n, K, M)``, ``(B, n, K)``); a failed member's
    rows are NaN.
    """

    curves: list
    errors: list
    alpha: np.ndarray
    eta: np.ndarray
    eta_v: np.ndarray
    sigma: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.curves)

    def __iter__(self) -> Iterator[LearningCurve | None]:
        return iter(self.curves)

    def __getitem__(self, index: int) -> LearningCurve | None:
        return self.curves[index]

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask (B,): which members reached ``alpha_max``."""
        return np.array([c is not None for c in self.curves])

    def _stack(self, name: str) -> np.ndarray:
        ref = next((c for c in self.curves if c is not None), None)
        if ref is None:
            raise ValueError("every member of the batch diverged; see .errors")
        shape = getattr(ref, name).shape
        return np.stack([getattr(c, name) if c is not None else np.full(shape, np.nan)
                         for c in self.curves])

    @property
    def eg(self) -> np.ndarray:
        """Generalisation error, shape (B, n)."""
        return self._stack("eg")

    @property
    def Q(self) -> np.ndarray:
        return self._stack("Q")

    @property
    def R(self) -> np.ndarray:
        return self._stack("R")

    @property
    def v(self) -> np.ndarray:
        return self._stack("v")

    def __repr__(self) -> str:
        n_fail = sum(e is not None for e in self.errors)
        return (f"BatchResult({len(self)} curves, alpha=[{self.alpha[0]:g}..{self.alpha[-1]:g}] "
                f"({self.alpha.size} points), {n_fail} diverged, "
                f"backend={self.metadata.get('backend')!r})")


def _per_member(name: str, value, B: int, allow_zero: bool) -> np.ndarray:
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a real number or an array of them") from None
    if arr.ndim == 0:
        arr = np.full(B, float(arr))
    elif arr.shape != (B,):
        raise ValueError(f"{name} must be a scalar or have one entry per state (length {B}), "
                         f"got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{j}]={arr[j]!r} must be {'>= 0' if allow_zero else '> 0'} "
                         "and finite")
    return arr


def _rates(eta, options: dict, B: int):
    """The per-member learning rates ``(eta, eta_v, sigma)`` (arrays of shape (B,)) and the
    learning rule's other options (shared): from the keywords, or from one ``dynamics=``."""
    dyn = options.pop("dynamics", None)
    flags = {f.name: options.pop(f.name) for f in fields(Dynamics) if f.name in options}
    if dyn is not None:
        if not isinstance(dyn, Dynamics):
            raise ValueError(f"dynamics={dyn!r} must be an odeprune.options.Dynamics")
        clash = sorted(flags) + (["eta"] if eta is not None else [])
        if clash:
            raise ValueError(f"{clash} given beside dynamics=: set them in the record "
                             "(dataclasses.replace(dynamics, ...))")
        eta, flags = dyn.eta, dyn.as_dict()
        flags.pop("eta")
    if eta is None:
        raise TypeError("integrate_batch() missing required argument: 'eta'")
    eta_v, sigma = flags.pop("eta_v", None), flags.pop("sigma", OPTIONS["sigma"].default)
    eta_b = _per_member("eta", eta, B, allow_zero=False)
    eta_v_b = eta_b.copy() if eta_v is None else _per_member("eta_v", eta_v, B, allow_zero=True)
    sigma_b = _per_member("sigma", sigma, B, allow_zero=True)
    return eta_b, eta_v_b, sigma_b, flags


def integrate_batch(states: Sequence[OrderParams], eta=None, alpha_max: float | None = None,
                    save_at=None, *, activation: str | None = None,
                    executor: cf.Executor | None = None, n_workers: int | None = None,
                    errors: str = "raise", chunk_size: int | None = None,
                    **options) -> BatchResult:
    r"""Integrate the order-parameter ODEs for a batch of initial states and hyper-parameters.

    ``integrate_batch(states, eta, alpha_max, save_at=None, **options)``: the options of
    :func:`odeprune.integrate` (flat keywords or whole records of :mod:`odeprune.options`),
    with ``eta``, ``eta_v`` and ``sigma`` shared or given per member.

    Parameters
    ----------
    states : sequence of OrderParams or SparseOrderParams, length B
        Initial states; all must have the same ``K`` and ``M`` (``T`` and ``v_star`` may differ).
        Masked networks (:class:`~odeprune.sparse.SparseOrderParams`) need the numba backend.
    eta : float or array_like, shape (B,)
        First-layer learning rate, shared or one per member (a learning-rate sweep).
    alpha_max : float
        Final time, shared.
    save_at : array_like, optional
        Saving times, shared (default: :func:`odeprune.ode.dynamics.default_save_at`).
    activation : str, optional
        Each state's own activation is used; ``activation`` may only repeat it.
    executor : concurrent.futures.Executor, optional
        numba backend only: where to run the members (default: a thread pool with ``n_workers``
        threads, created and shut down here).
    n_workers : int, optional
        Threads of the default pool (default: every available core); ``1`` runs sequentially in
        the calling thread.
    errors : {"raise", "keep"}
        ``"raise"`` (default) raises the first member's :class:`~odeprune.errors.DivergenceError`
        (with the member index in the message) once all members are done; ``"keep"`` returns
        the others and records the failures in ``BatchResult.errors``.
    chunk_size : int, optional
        jax backend: members per ``vmap`` call (default: the whole batch). Members of one call
        advance in lockstep, so group runs of similar stiffness.

    Other Parameters
    ----------------
    eta_v : float or array_like, shape (B,), optional
        Second-layer learning rate; default ``eta`` (member by member).
    sigma : float or array_like, shape (B,)
        Output-noise level, shared or per member (default 0).
    train_second_layer, gradient_flow, weight_decay :
        The rest of the learning rule (:class:`odeprune.options.Dynamics`), shared; as
        :func:`odeprune.integrate` (``weight_decay``: numba backend). ``dynamics=`` gives the
        whole rule instead (then shared by every member, and no ``eta`` argument).
    method, rtol, atol, dt, max_steps, backend, threads :
        :class:`odeprune.options.Solver` (``solver=``), as :func:`odeprune.integrate`.
        ``backend``: ``"numba"`` (default; threads over cores) or ``"jax"`` (one jitted
        ``vmap``). ``method``: numba backend (default ``"auto"``). ``max_steps``: bound on the
        steps of each member (jax: of each lockstep group; default there
        :data:`odeprune.ode.jax_backend.DEFAULT_MAX_STEPS`). ``threads``: with the default pool
        each member sums serially (the members run in parallel).
    solver : {"dopri5", "tsit5"}
        A string (not a record): the jax backend's diffrax solver.
    progress : bool or None
        numba backend: one bar over the members (curves done) on stderr; ``None`` (default):
        when stderr is a terminal. The members themselves run without bars. (The other
        options of :class:`odeprune.options.Control` are per run and not available here.)

    Returns
    -------
    BatchResult
        ``.curves`` (list of LearningCurve), stacked ``.eg`` (B, n), ``.Q``, ``.R``, ``.v``.

    Raises
    ------
    ValueError
        Empty batch, a member that is not an OrderParams, mixed ``K`` or ``M``, or a
        hyper-parameter array whose length is not ``B``.
    DivergenceError
        With ``errors="raise"``, when a member diverged.

    Notes
    -----
    Goldt et al. (2019), supplementary S3-S4. With the numba backend each curve equals, bit for
    bit, ``integrate(states[j], eta=eta[j], ...)``.
    """
    states = list(states) if not isinstance(states, (OrderParams, SparseOrderParams)) \
        else [states]
    if not states:
        raise ValueError("states is empty: give at least one OrderParams")
    for j, s in enumerate(states):
        if not isinstance(s, (OrderParams, SparseOrderParams)):
            raise ValueError(f"states[{j}] must be an OrderParams or SparseOrderParams, got "
                             f"{type(s).__name__}")
    jax_solver = options.pop("solver") if isinstance(options.get("solver"), str) else "dopri5"
    max_steps_given = "max_steps" in options or "solver" in options
    B = len(states)
    eta_b, eta_v_b, sigma_b, flags = _rates(eta, options, B)
    solver, ctl = gather("integrate_batch", options, (Solver, Control))
    per_run = sorted(k for k, v in ctl.as_dict().items()
                     if k != "progress" and v != OPTIONS[k].default)
    if per_run:
        raise ValueError(f"{per_run} are options of one run (integrate), not of a batch")
    backend = solver.backend
    if backend == "jax":
        if any(isinstance(s, SparseOrderParams) for s in states):
            raise ValueError("masked networks (SparseOrderParams) are not available with "
                             "backend='jax'; use backend='numba'")
        acts = {s.activation for s in states}
        if len(acts) > 1:
            raise ValueError(f"backend='jax' needs one activation for the whole batch, got "
                             f"{sorted(acts)}")
        activation = states[0].check_activation(activation)
    K, M = states[0].K, states[0].M
    for j, s in enumerate(states):
        if (s.K, s.M) != (K, M):
            raise ValueError(f"all states must have the same K and M: states[0] has (K={K}, "
                             f"M={M}), states[{j}] has (K={s.K}, M={s.M}); integrate them in "
                             "separate batches")
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors={errors!r} must be 'raise' or 'keep'")
    if executor is not None and backend != "numba":
        raise ValueError("executor= is for the numba backend; the jax backend vmaps in-process")
    check_workers("n_workers", n_workers)
    if alpha_max is None:
        raise TypeError("integrate_batch() missing required argument: 'alpha_max'")
    alpha_max = float(alpha_max)
    if not (math.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max={alpha_max!r} must be > 0 and finite")
    t_out = default_save_at(alpha_max) if save_at is None else check_save_at(save_at, alpha_max)
    members = [Dynamics(eta=float(eta_b[j]), eta_v=float(eta_v_b[j]), sigma=float(sigma_b[j]),
                        **flags) for j in range(B)]

    meta: dict = dict(backend=backend, K=K, M=M, batch_size=B)
    if backend == "numba":
        common = dict(alpha_max=alpha_max, save_at=t_out, activation=activation)
        with progress_bar(want_progress(ctl.progress), B, "integrate_batch",
                          unit="curve") as bar:
            args = [(states[j], members[j], solver, common) for j in range(B)]
            results = _numba_batch(args, executor, n_workers, meta, bar)
    else:
        from . import jax_backend as _jax_backend

        run = _jax_backend.JaxRun(
            alpha_max, t_out, solver.rtol, solver.atol, jax_solver,
            int(solver.max_steps) if max_steps_given else _jax_backend.DEFAULT_MAX_STEPS)
        results = _jax_backend.integrate_batch(states, members, run, activation, chunk_size)
        meta.update(solver=jax_solver, chunk_size=chunk_size)

    curves = [r if isinstance(r, LearningCurve) else None for r in results]
    errs = [r if isinstance(r, BaseException) else None for r in results]
    if errors == "raise":
        for j, e in enumerate(errs):
            if e is not None:
                raise DivergenceError(f"batch member {j}: {e}", alpha=e.alpha,
                                      last_state=e.last_state, saved_to=e.saved_to) from e
    return BatchResult(curves=curves, errors=errs, alpha=t_out, eta=eta_b, eta_v=eta_v_b,
                       sigma=sigma_b, metadata=meta)


def _one(state, dynamics: Dynamics, solver: Solver, common: dict):
    """One member with the numba backend; a divergence is returned, not raised."""
    if threading.current_thread() is not threading.main_thread():
        # members already run in parallel: the serial I4 sum in each (parallelism across
        # members), and one numba thread should a member thread anyway (numba's count is per
        # thread; the numbers are the same for any count)
        numba.set_num_threads(1)
        solver = replace(solver, threads=False)
    try:
        return integrate(state, dynamics=dynamics, solver=solver, progress=False, **common)
    except DivergenceError as exc:
        return exc


def _member(args):
    return _one(*args)


def _numba_batch(args, executor, n_workers, meta, bar):
    """The members ``args`` (tuples of :func:`_one`'s arguments), in order, on
    :func:`odeprune._pool.map_parallel`: a thread pool of ``n_workers``, or ``executor``."""
    if executor is None:
        meta["n_workers"] = worker_count(n_workers, len(args), "n_workers")
    else:
        meta["executor"] = type(executor).__name__
    return map_parallel(_member, args, meta.get("n_workers"), executor,
                        on_done=lambda: bar.update(1))
