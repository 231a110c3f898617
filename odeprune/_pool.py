"""One way to run independent items in parallel, used by every parallel entry point
(``integrate_batch``, ``simulate(seeds=...)``, the sweep, the sparse-teacher experiments, the
figures' seed grids).

- :func:`available_cores`: the cores this process may run on (CPU affinity where the OS reports
  it), the default worker count everywhere.
- :func:`worker_count`: how many workers ``n`` items get (``workers`` checked by
  :func:`odeprune._validate.check_workers`: a positive integer or None, booleans refused).
- :func:`map_parallel`: ``[fn(x) for x in items]`` on a thread pool of that size (the compiled
  kernels release the GIL), on an executor the caller gives, or in this thread for one worker.
  The answers come back in the items' order, so a result never depends on the worker count,
  bit for bit.
- :class:`Items`, :func:`stop_requested`, :func:`stop_if_asked`: a pool's items and the stop
  request they share; whether the items running in this thread were asked to stop (the caller
  was interrupted, or another item failed). Every run's control looks at it between two
  chunks, and the long loops outside a run between two pieces, so that a pool stops within a
  piece of work instead of running its items to the end.
- :func:`thread_pool`, :func:`process_pool`, :func:`stop_pool`: the pools themselves, for a
  driver that submits its own work (the sweep's batches).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ._validate import check_workers
from .errors import OdepruneInterrupted

__all__ = ["available_cores", "worker_count", "map_parallel", "Items", "stop_requested",
           "stop_if_asked", "thread_pool", "process_pool", "stop_pool"]


class _Stop:
    """The stop request shared by the items of one :func:`map_parallel` call, and by the items of
    the pools nested in them (``outer``)."""

    def __init__(self, outer: _Stop | None):
        self.why: str | None = None
        self.outer = outer

    def reason(self) -> str | None:
        token = self
        while token is not None:
            if token.why is not None:
                return token.why
            token = token.outer
        return None


#: the stop request of the items running in each thread (``stop``; unset outside a pool)
_ITEMS = threading.local()


def stop_if_asked(what: str) -> None:
    """Raise :class:`~odeprune.errors.OdepruneInterrupted` when the items running in this thread
    were asked to stop (:func:`stop_requested`): the check between two pieces of an item's work
    that no run control watches (a figure's pruning of one seed, mask after mask)."""
    why = stop_requested()
    if why is not None:
        raise OdepruneInterrupted(f"{what} interrupted ({why})")


def stop_requested() -> str | None:
    """Why the items of the pool running in this thread were asked to stop: ``"Ctrl-C"``,
    ``"SIGTERM"`` or ``"another item failed"``; None when they were not (or outside a pool).

    A signal is handled in the main thread only: while the caller of :func:`map_parallel`
    waits there for the items, their runs never see it. When the wait ends with an exception
    (Ctrl-C, SIGTERM, a failed item) the running items are asked to stop here, and the run
    control (:class:`odeprune.ode.runcontrol.RunControl`) reports it as their interruption."""
    token = getattr(_ITEMS, "stop", None)
    return None if token is None else token.reason()


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM wait (blocked in this thread, delivered at the end) in the main
    thread. (Threads started meanwhile inherit the block and lift it, :func:`_unblock_signals`:
    a process started with it would ignore SIGTERM.)"""
    if threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _unblock_signals() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _why(exc: BaseException) -> str:
    why = getattr(exc, "why", None)  # the command line's stop exception names its signal
    if isinstance(why, str):
        return why
    return "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "another item failed"


class Items:
    """The items a caller hands to ``executor``, and the stop request they share: the one way
    every driver of a pool submits its items and asks the running ones to stop
    (:func:`map_parallel`, the sweep).

    On a thread pool the items' runs see :meth:`ask_to_stop` through :func:`stop_requested`
    (their run control looks at it between two chunks), and Ctrl-C / SIGTERM are held while
    the items are handed over (a signal inside ``submit`` interrupted the start of a worker
    thread, whose item then ran without the pool knowing it). On another executor (processes,
    machines) a stop request cannot reach the items: they are handed over as they are."""

    def __init__(self, executor: cf.Executor):
        self.executor = executor
        self.threads = isinstance(executor, cf.ThreadPoolExecutor)
        self.stop = _Stop(getattr(_ITEMS, "stop", None))
        #: every item handed over, in order (also those of a submission cut short by a signal)
        self.futures: list[cf.Future] = []

    def submit_all(self, fn: Callable, arguments: Iterable[tuple]) -> list[cf.Future]:
        """``executor.submit(fn, *args)`` for each ``args``; returns :attr:`futures`."""
        with _signals_held() if self.threads else contextlib.nullcontext():
            for args in arguments:
                self.futures.append(self.executor.submit(self._run, fn, *args) if self.threads
                                    else self.executor.submit(fn, *args))
        return self.futures

    def _run(self, fn: Callable, *args):
        _unblock_signals()  # the thread was started while the main thread held them
        before, _ITEMS.stop = getattr(_ITEMS, "stop", None), self.stop
        try:
            return fn(*args)
        finally:
            _ITEMS.stop = before

    def ask_to_stop(self, exc: BaseException) -> None:
        """For ``exc`` (Ctrl-C, SIGTERM, a failed item): cancel the queued items and ask the
        running ones to stop (they stop at their next chunk; the caller may wait for them)."""
        self.stop.why = _why(exc)
        for fut in self.futures:
            fut.cancel()


def available_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def worker_count(workers: Any, n_items: int, name: str = "workers") -> int:
    """Workers for ``n_items`` independent items: ``workers`` (default: :func:`available_cores`),
    at most one per item, at least one."""
    workers = check_workers(name, workers)
    return max(1, min(int(n_items), workers or available_cores()))


def thread_pool(workers: int, name: str = "odeprune") -> cf.ThreadPoolExecutor:
    """A thread pool of ``workers`` threads named ``name-...`` (the caller shuts it down)."""
    return cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


def process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A process pool of ``workers`` processes started with ``spawn`` (no forked numba or
    thread state; the caller shuts it down, or :func:`stop_pool`)."""
    return cf.ProcessPoolExecutor(max_workers=workers,
                                  mp_context=multiprocessing.get_context("spawn"))


def stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what is queued and kill the running workers of a process pool, at once.

    SIGKILL, not SIGTERM: a worker inside ``integrate`` or ``simulate`` takes SIGTERM as a
    request to stop that one run (their run control), and would go on with the rest of its
    work; a caller that kills its pool writes nothing from the workers (only the driver does)."""
    kill = getattr(pool, "kill_workers", None)  # Python >= 3.14
    if kill is not None:
        kill()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()
    for proc in processes:
        proc.join(timeout=2)


def map_parallel(fn: Callable, items: Iterable, workers: Any = None,
                 executor: cf.Executor | None = None, *, on_done: Callable[[], Any] | None = None,
                 name: str = "odeprune") -> list:
    """``[fn(x) for x in items]``, in the items' order, run in parallel.

    Parameters
    ----------
    fn : callable
        One item's work (thread-safe; a compiled kernel that releases the GIL runs in parallel).
    items : iterable
    workers : int or None
        Threads of the pool made here (default :func:`available_cores`, at most one per item);
        one worker runs the items in this thread, one after the other.
    executor : concurrent.futures.Executor, optional
        Run on it instead (not shut down here).
    on_done : callable, optional
        Called (in this thread) after each item finishes (a progress bar's ``update(1)``).
    name : str
        Prefix of the pool's thread names.

    The first failure (an item's exception, or Ctrl-C / SIGTERM while this thread waits) asks
    the running items to stop (:func:`stop_requested`, in threads: this function's pool or a
    thread pool given as ``executor``), cancels the queued ones, waits for the running ones
    and is raised.
    """
    items = list(items)
    own = executor is None
    if own:
        n = worker_count(workers, len(items))
        if n == 1:  # in this thread (its runs see a signal, or the stop of a pool around it)
            out = []
            for x in items:
                out.append(fn(x))
                if on_done is not None:
                    on_done()
            return out
        executor = thread_pool(n, name)
    pool = Items(executor)
    try:
        try:
            futures = pool.submit_all(fn, ((x,) for x in items))
            for fut in cf.as_completed(futures):
                fut.result()  # the first failure, as soon as it happens
                if on_done is not None:
                    on_done()
        except BaseException as exc:
            pool.ask_to_stop(exc)
            cf.wait(pool.futures)
            raise
        return [fut.result() for fut in futures]
    finally:
        if own:
            executor.shutdown(wait=True)
