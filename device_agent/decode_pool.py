"""Decoding photos on several cores within a memory budget, ahead of the feature pass.

Threads suffice: Pillow releases the GIL while it decodes and resizes, so N threads decode
on N cores while the main thread runs the frozen trunk on the images already decoded. The
worker count comes from the cores this process may use and from the memory budget (how many
typical camera photos fit in it at once); a `MemoryGate` holds every decode to the budget,
so a rare large image waits until it can decode alone instead of piling up memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from device_agent import decode

DECODE_BUDGET_BYTES = 160 * 1024 * 1024  # decoded pixels in memory at once, all workers
MAX_WORKERS = 8
AHEAD_PER_WORKER = 4  # decodes queued or finished ahead of the trunk, per worker


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(size: int, mode: str, *, cpus: int | None = None,
                 budget: int = DECODE_BUDGET_BYTES) -> int:
    """Decode threads: one per usable core, no more than the budget holds 12 MP photos."""
    fit = max(1, budget // decode.camera_bytes(size, mode))
    return max(1, min(cpus or usable_cpus(), fit, MAX_WORKERS))


class MemoryGate:
    """A byte budget shared by the decode threads: `hold(n)` waits until n more bytes fit.

    One decode may always run alone, even one larger than the whole budget (it passed the
    job's max_pixels, so it is bounded too); it only waits for the others to finish.
    """

    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self._cv = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int) -> Iterator[None]:
        with self._cv:
            self._cv.wait_for(lambda: self.used == 0 or self.used + n <= self.budget)
            self.used += n
        try:
            yield
        finally:
            with self._cv:
                self.used -= n
                self._cv.notify_all()


class DecodePool:
    """`submit(path, size)` → a Future of decode.decode_photo's answer, run on the workers.

    With one worker the decode runs in the caller's thread, at submit: no thread, nothing
    decoded ahead (the job's `exact` path, as the agent always ran).
    """

    def __init__(self, decode_fn: Callable[..., np.ndarray | str | None], workers: int,
                 *, budget: int = DECODE_BUDGET_BYTES) -> None:
        self.workers = max(1, workers)
        self.ahead = self.workers * AHEAD_PER_WORKER if self.workers > 1 else 1
        self.gate = MemoryGate(budget)
        self._fn = decode_fn
        self._ex = (ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
                    if self.workers > 1 else None)

    def submit(self, path: str, size: int) -> Future:
        if self._ex is not None:
            return self._ex.submit(self._fn, path, size)
        fut: Future = Future()
        fut.set_result(self._fn(path, size))
        return fut

    def close(self) -> None:
        """Drop decodes not started yet and wait for the running ones (cancel, errors)."""
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def photo_pool(size: int, *, mode: str, orient: str, max_pixels: int,
               workers: int | None = None, budget: int = DECODE_BUDGET_BYTES) -> DecodePool:
    """The pool a job's `data` section asks for: `fast` on every core the budget allows,
    `exact` one image at a time in the feature pass's own thread."""
    n = workers if workers is not None else (
        worker_count(size, mode, budget=budget) if mode == decode.FAST else 1)
    pool: DecodePool

    def fn(path: str, sz: int) -> np.ndarray | str:
        return decode.decode_photo(path, sz, mode=mode, orient=orient, max_pixels=max_pixels,
                                   reserve=pool.gate.hold)

    pool = DecodePool(fn, n, budget=budget)
    return pool
