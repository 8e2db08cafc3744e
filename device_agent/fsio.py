"""Atomic file writes (temp file, fsync, rename) that turn a full disk into DiskFull."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from device_agent.errors import DiskFull


@contextlib.contextmanager
def disk_errors(what: str) -> Iterator[None]:
    """Re-raise ENOSPC/EDQUOT as DiskFull naming `what` (never a file of the data set)."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the phone's storage is full while writing the {what}") from e
        raise


@contextlib.contextmanager
def atomic_open(path: str, what: str) -> Iterator[BinaryIO]:
    """Open `path + '.tmp'` for binary writing; on success fsync and rename it over `path`."""
    tmp = path + ".tmp"
    with disk_errors(what):
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise


def write_json_atomic(path: str, obj: Any, what: str) -> None:
    data = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False).encode()
    with atomic_open(path, what) as f:
        f.write(data)


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
