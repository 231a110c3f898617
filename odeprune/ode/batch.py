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
from dataclasses import dataclass, field

import numba
import numpy as np

from .._pool import map_parallel, worker_count
from .._validate import check_save_at, check_workers
from ..errors import DivergenceError
from ..results import LearningCurve
from ..sparse import SparseOrderParams
from ..state import OrderParams
from .dynamics import DEFAULT_ATOL, DEFAULT_RTOL, default_save_at, integrate
from .progress import progress_bar, want_progress

__all__ = ["integrate_batch", "BatchResult"]

BACKENDS = ("numba", "jax")


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


def integrate_batch(states: Sequence[OrderParams], eta, alpha_max: float, save_at=None,
                    eta_v=None, sigma=0.0, rtol: float = DEFAULT_RTOL,
                    atol: float = DEFAULT_ATOL, activation: str | None = None,
                    train_second_layer: bool = True, gradient_flow: bool = False,
                    backend: str = "numba", executor: cf.Executor | None = None,
                    n_workers: int | None = None, errors: str = "raise", method: str = "auto",
                    solver: str = "dopri5", max_steps: int | None = None,
                    chunk_size: int | None = None, progress: bool | None = None
                    ) -> BatchResult:
    r"""Integrate the order-parameter ODEs for a batch of initial states and hyper-parameters.

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
    eta_v : float or array_like, shape (B,), optional
        Second-layer learning rate; default ``eta`` (member by member).
    sigma : float or array_like, shape (B,)
        Output-noise level, shared or per member.
    rtol, atol, activation, train_second_layer, gradient_flow :
        As :func:`odeprune.integrate` (each state's own activation is used; ``activation`` may
        only repeat it).
    backend : {"numba", "jax"}
        ``"numba"``: threads over cores (default); ``"jax"``: one jitted ``vmap``.
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
    method : str
        numba backend: the integrator of :func:`odeprune.integrate` (``odeprune.options``;
        default ``"auto"``).
    solver : {"dopri5", "tsit5"}
        jax backend: the diffrax solver.
    max_steps : int, optional
        Bound on the steps of each member (jax: of each lockstep group).
    chunk_size : int, optional
        jax backend: members per ``vmap`` call (default: the whole batch). Members of one call
        advance in lockstep, so group runs of similar stiffness.
    progress : bool or None
        numba backend: one bar over the members (curves done) on stderr; ``None`` (default):
        when stderr is a terminal. The members themselves run without bars.

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
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; expected one of {list(BACKENDS)}")
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors={errors!r} must be 'raise' or 'keep'")
    if executor is not None and backend != "numba":
        raise ValueError("executor= is for the numba backend; the jax backend vmaps in-process")
    check_workers("n_workers", n_workers)
    B = len(states)
    eta_b = _per_member("eta", eta, B, allow_zero=False)
    eta_v_b = eta_b.copy() if eta_v is None else _per_member("eta_v", eta_v, B, allow_zero=True)
    sigma_b = _per_member("sigma", sigma, B, allow_zero=True)
    alpha_max = float(alpha_max)
    if not (math.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max={alpha_max!r} must be > 0 and finite")
    t_out = default_save_at(alpha_max) if save_at is None else check_save_at(save_at, alpha_max)

    common = dict(alpha_max=alpha_max, save_at=t_out, rtol=rtol, atol=atol,
                  activation=activation, train_second_layer=train_second_layer,
                  gradient_flow=gradient_flow)
    meta: dict = dict(backend=backend, K=K, M=M, batch_size=B)
    if backend == "numba":
        with progress_bar(want_progress(progress), B, "integrate_batch", unit="curve") as bar:
            args = [(states[j], float(eta_b[j]), float(eta_v_b[j]), float(sigma_b[j]), common,
                     method, max_steps) for j in range(B)]
            results = _numba_batch(args, executor, n_workers, meta, bar)
    else:
        from . import jax_backend as _jax_backend

        extra = {} if max_steps is None else {"max_steps": int(max_steps)}
        results = _jax_backend.integrate_batch(states, eta=eta_b, eta_v=eta_v_b, sigma=sigma_b,
                                               solver=solver, chunk_size=chunk_size, **common,
                                               **extra)
        meta.update(solver=solver, chunk_size=chunk_size)

    curves = [r if isinstance(r, LearningCurve) else None for r in results]
    errs = [r if isinstance(r, BaseException) else None for r in results]
    if errors == "raise":
        for j, e in enumerate(errs):
            if e is not None:
                raise DivergenceError(f"batch member {j}: {e}", alpha=e.alpha,
                                      last_state=e.last_state, saved_to=e.saved_to) from e
    return BatchResult(curves=curves, errors=errs, alpha=t_out, eta=eta_b, eta_v=eta_v_b,
                       sigma=sigma_b, metadata=meta)


def _one(state, eta, eta_v, sigma, common, method, max_steps):
    """One member with the numba backend; a divergence is returned, not raised."""
    extra = {} if max_steps is None else {"max_steps": int(max_steps)}
    threads = None
    if threading.current_thread() is not threading.main_thread():
        # members already run in parallel: the serial I4 sum in each (parallelism across
        # members), and one numba thread should a member thread anyway (numba's count is per
        # thread; the numbers are the same for any count)
        numba.set_num_threads(1)
        threads = False
    try:
        return integrate(state, eta=eta, eta_v=eta_v, sigma=sigma, method=method,
                         backend="numba", progress=False, threads=threads, **common, **extra)
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
