"""odeprune._pool: one pool helper. Answers come back in the items' order for every worker count
and executor; the first failure (or Ctrl-C while the caller waits) asks the running items to stop
and is re-raised; worker counts follow one rule (booleans refused) in every entry point that takes
one."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import odeprune
from odeprune._pool import (
    available_cores,
    map_parallel,
    stop_if_asked,
    stop_requested,
    worker_count,
)
from odeprune._validate import check_workers
from odeprune.errors import OdepruneInterrupted
from tests.conftest import (
    ctrl_c_after,
    ctrl_c_to_the_main_thread,
    long_simulation,
    stopped_by_ctrl_c,
)


def _slow_square(x):
    time.sleep(0.002 * (5 - x % 5))  # later items tend to finish first
    return x * x


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_answers_in_item_order_for_any_worker_count(workers):
    items = list(range(12))
    done = []
    got = map_parallel(_slow_square, items, workers, on_done=lambda: done.append(1))
    assert got == [x * x for x in items]
    assert len(done) == len(items)


def test_given_executor_is_used_and_left_open():
    names = []

    def where(x):
        names.append(threading.current_thread().name)
        return -x

    with ThreadPoolExecutor(2, thread_name_prefix="given") as ex:
        assert map_parallel(where, range(5), executor=ex) == [0, -1, -2, -3, -4]
        assert ex.submit(lambda: 7).result() == 7  # still open
    assert names and all(n.startswith("given") for n in names)


def test_one_worker_runs_in_this_thread():
    main = threading.current_thread()
    assert map_parallel(lambda x: threading.current_thread() is main, [0, 1], 1) == [True, True]


@pytest.mark.parametrize("workers", [1, 3])
def test_first_failure_is_reraised(workers):
    def fn(x):
        if x == 2:
            raise ValueError(f"bad item {x}")
        return x

    with pytest.raises(ValueError, match="bad item 2"):
        map_parallel(fn, range(6), workers)


def _until_asked_to_stop(seconds=30.0):
    t0 = time.monotonic()
    while stop_requested() is None and time.monotonic() - t0 < seconds:
        time.sleep(0.005)
    return stop_requested()


def _one_item_fails_while(work):
    """Two items on a pool of two: item 1 runs ``work()``, item 0 fails once item 1 has
    started; the failure is raised."""
    started = threading.Event()

    def fn(x):
        if x == 0:
            started.wait(30)
            raise ValueError("item 0 failed")
        started.set()
        return work()

    with pytest.raises(ValueError, match="item 0 failed"):
        map_parallel(fn, range(2), 2)


def test_a_failure_asks_the_running_items_to_stop():
    """The other items used to run to their end before the failure was raised."""
    seen = []
    _one_item_fails_while(lambda: seen.append(_until_asked_to_stop()))
    assert seen == ["another item failed"]
    assert stop_requested() is None  # outside the pool (and after it) nothing is asked


def test_a_loop_outside_a_run_stops_where_it_asks():
    """A pool item's loop that no run control watches (a figure's pruning of one seed, mask
    after mask: ``figure edges`` took 5-17 s to stop) asks between two pieces."""
    stop_if_asked("nothing")  # outside a pool: never asked
    seen = []

    def loop():
        try:
            for _ in range(6000):
                stop_if_asked("the loop")
                time.sleep(0.005)
        except OdepruneInterrupted as exc:
            seen.append(str(exc))
            raise

    _one_item_fails_while(loop)
    assert seen == ["the loop interrupted (another item failed)"]


def test_ctrl_c_while_the_caller_waits_asks_the_items_to_stop(ctrl_c_raises):
    """A signal is handled in the main thread, which waits for the items: the items of a
    thread pool never saw it and ran to their end (minutes of a figure's simulations)."""
    seen = []

    def fn(x):
        if x == 0:
            ctrl_c_to_the_main_thread()
        seen.append(_until_asked_to_stop())
        return x

    with pytest.raises(KeyboardInterrupt):
        map_parallel(fn, range(2), 2)
    assert seen == ["Ctrl-C", "Ctrl-C"]


def test_nested_pools_stop_with_the_outer_one(ctrl_c_raises):
    seen = []

    def inner(x):
        seen.append(_until_asked_to_stop())

    def outer(x):
        if x == 0:
            ctrl_c_to_the_main_thread()
        map_parallel(inner, range(2), 2)

    with pytest.raises(KeyboardInterrupt):
        map_parallel(outer, range(2), 2)
    assert seen == ["Ctrl-C"] * 4


def test_simulations_in_a_pool_stop_within_a_chunk_of_ctrl_c(ctrl_c_raises):
    """The figures run their seeds' simulations on a thread pool (``figures._common``):
    Ctrl-C now stops each run at its next chunk (they would take minutes to finish)."""
    ended = []
    with ctrl_c_after(1.0), pytest.raises(KeyboardInterrupt):
        map_parallel(lambda seed: long_simulation(seed, ended), [0, 1], 2)
    assert len(ended) == 2 and stopped_by_ctrl_c(ended)


def test_worker_count_rule():
    assert worker_count(None, 1000) == available_cores()
    assert worker_count(4, 2) == 2 and worker_count(2, 10) == 2 and worker_count(None, 0) == 1
    try:
        expected = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        expected = os.cpu_count()
    assert available_cores() == expected
    assert check_workers("w", None) is None and check_workers("w", np.int64(3)) == 3


@pytest.mark.parametrize("bad", [True, False, 0, -1, 1.5, "2"])
def test_check_workers_refuses_non_counts(bad):
    with pytest.raises(ValueError, match=r"must be a positive integer \(or None"):
        check_workers("workers", bad)


def test_every_entry_point_refuses_a_boolean_worker_count():
    s = odeprune.OrderParams.random(50, 2, 1, v_star=1.0, seed=0)
    with pytest.raises(ValueError, match="n_workers=True"):
        odeprune.integrate_batch([s, s], eta=0.5, alpha_max=1.0, n_workers=True)
    with pytest.raises(ValueError, match="max_workers=True"):
        odeprune.simulate(N=20, K=2, M=1, eta=0.5, alpha_max=0.5, seeds=[0, 1],
                          max_workers=True)
    from odeprune import teachers

    with pytest.raises(ValueError, match="workers=True"):
        teachers.convergence_finite(2, 1, 0.5, N=20, seeds=[0, 1], alpha_max=0.5, alpha_T=0.2,
                                    workers=True)


def test_ensemble_and_batch_do_not_depend_on_the_worker_count():
    ens = [odeprune.simulate(N=40, K=2, M=1, eta=0.5, alpha_max=2.0, seeds=[3, 4, 5], n_test=0,
                             max_workers=w) for w in (1, 3)]
    for a, b in zip(ens[0].runs, ens[1].runs, strict=True):
        np.testing.assert_array_equal(a.eg, b.eg)
        np.testing.assert_array_equal(a.w, b.w)
    states = [odeprune.OrderParams.random(60, 3, 2, v_star=2.0, seed=s) for s in range(3)]
    b1, b3 = (odeprune.integrate_batch(states, eta=0.5, alpha_max=5.0, n_workers=w)
              for w in (1, 3))
    np.testing.assert_array_equal(b1.eg, b3.eg)
    assert b1.metadata["n_workers"] == 1 and b3.metadata["n_workers"] == 3


def test_the_items_threads_do_not_keep_signals_blocked():
    """Signals are held while the main thread starts the pool's threads, which inherit that;
    a process started from an item would then have ignored SIGTERM."""
    blocked = map_parallel(lambda x: signal.pthread_sigmask(signal.SIG_BLOCK, set()), range(2), 2)
    assert all(signal.SIGTERM not in b and signal.SIGINT not in b for b in blocked)
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
