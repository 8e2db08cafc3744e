"""A cached .npy read a few rows at a time: the feature cache without mapping it into memory.

A memory-mapped cache becomes part of the agent's resident memory page by page as the epochs
read it: after one epoch the whole file is resident (method 2's 1,200 feature maps at
alpha 1.0 are 246 MB). Reading each batch's rows with plain reads into a fresh array keeps only
that batch in the process; the file's pages stay in the kernel's page cache, which it can
drop, and are not the agent's.

`NpyRows` answers what training and evaluation ask of the cache: `len`, `shape`, `dtype`,
one row (`x[i]`), a slice of rows (`x[a:b]`, one read) and rows by index (`x[idx]`, one
read per run of consecutive rows).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import numpy as np


class NpyRows:
    """Rows of a C-order .npy file (format 1.0 or 2.0), read on demand."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype.hasobject or not shape:
            raise ValueError("not a C-order array of rows")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = dtype
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        if os.path.getsize(path) < self.offset + self.shape[0] * self.row_bytes:
            raise ValueError("the file is shorter than its header says")  # a cut-short cache
        self.path = path

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def _read(self, f: BinaryIO, start: int, count: int, out: np.ndarray, at: int) -> None:
        want = count * self.row_bytes
        view = memoryview(out.reshape(-1).view(np.uint8))[at * self.row_bytes:][:want]
        f.seek(self.offset + start * self.row_bytes)
        got = 0
        while got < want:  # a raw read may return less than asked
            n = f.readinto(view[got:])
            if not n:
                raise OSError("the feature cache ended early")
            got += n

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The rows at the given indices, in that order (a new array)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((len(idx), *self.row_shape), dtype=self.dtype)
        if not len(idx):
            return out
        # One read per run of consecutive indices (a whole slice is one run).
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        with open(self.path, "rb", buffering=0) as f:
            for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(idx)], strict=True):
                self._read(f, int(idx[a]), int(b - a), out, int(a))
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            return self.rows(np.arange(len(self))[key])
        if isinstance(key, (int, np.integer)):
            return self.rows(np.asarray([key]))[0]
        return self.rows(np.asarray(key))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.rows(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)
