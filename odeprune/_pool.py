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
- :func:`thread_pool`, :func:`process_pool`, :func:`stop_pool`: the pools themselves, for a
  driver that submits its own work (the sweep's batches).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable
from typing import Any

from ._validate import check_workers

__all__ = ["available_cores", "worker_count", "map_parallel", "thread_pool", "process_pool",
           "stop_pool"]


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
                 on_error: Callable[[BaseException], Any] | None = None,
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
    on_error : callable, optional
        Called with the first failure before the others are waited for (e.g. to ask the
        running items to stop); the failure is then re-raised.
    name : str
        Prefix of the pool's thread names.
    """
    items = list(items)
    own = executor is None
    if own:
        n = worker_count(workers, len(items))
        if n == 1:
            out = []
            try:
                for x in items:
                    out.append(fn(x))
                    if on_done is not None:
                        on_done()
            except BaseException as exc:
                if on_error is not None:
                    on_error(exc)
                raise
            return out
        executor = thread_pool(n, name)
    try:
        futures = [executor.submit(fn, x) for x in items]
        try:
            for fut in cf.as_completed(futures):
                fut.result()  # the first failure, as soon as it happens
                if on_done is not None:
                    on_done()
        except BaseException as exc:
            if on_error is not None:
                on_error(exc)
            for fut in futures:
                fut.cancel()
            cf.wait(futures)
            raise
        return [fut.result() for fut in futures]
    finally:
        if own:
            executor.shutdown(wait=True)
