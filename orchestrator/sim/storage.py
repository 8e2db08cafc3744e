"""The phone's storage as its sync service sees it: where a push may land, and how full it is."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable

# One walker for the phone's `df` script (stdlib only, copied into the phone) and for sync.
from orchestrator.sim.phone_df import USAGE_ROOTS, tree_bytes

# Real paths inside the phone's root; /sdcard resolves to /storage/emulated/0.
WRITABLE_ROOTS = ("/data", "/storage/emulated")


class Storage:
    def __init__(self, *, writable: tuple[str, ...] = WRITABLE_ROOTS,
                 usage: tuple[str, ...] = USAGE_ROOTS, ttl: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._writable = writable
        self._usage = usage
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._capacity: int | None = None
        self._walked: int | None = None
        self._walked_at = 0.0
        self._pending = 0

    @property
    def capacity(self) -> int | None:
        return self._capacity

    def set_capacity(self, size: int | None) -> None:
        with self._lock:
            self._capacity = size
            self._walked = None

    def check_writable(self, path: str) -> None:
        """PermissionError unless `path`, with `..` and symlinks resolved, is in storage."""
        real = os.path.realpath(path)
        if not any(real == r or real.startswith(r + "/") for r in self._writable):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    def remove_for_replace(self, path: str) -> None:
        """Unlink the file a push replaces (adbd does), crediting its bytes."""
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            return
        os.unlink(path)
        with self._lock:
            self._pending -= size

    def used(self) -> int:
        with self._lock:
            return self._used_locked()

    def charge(self, nbytes: int) -> None:
        """Account for nbytes about to be written; OSError(ENOSPC) if they do not fit."""
        with self._lock:
            if self._capacity is None:
                return
            if self._used_locked() + nbytes > self._capacity:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._pending += nbytes

    def _used_locked(self) -> int:
        now = self._clock()
        if self._walked is None or now - self._walked_at > self._ttl:
            self._walked, self._walked_at, self._pending = tree_bytes(self._usage), now, 0
        return self._walked + self._pending
