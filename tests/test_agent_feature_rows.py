"""The feature cache read in batches of rows: the same values as the whole array, and only
the rows asked for in the agent's memory."""

from __future__ import annotations

import numpy as np
import pytest

from device_agent.feature_rows import NpyRows


def _rss_file_kb() -> int:
    """Resident file-backed pages of this process (what a memory-mapped cache adds), in KB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def test_rows_slices_and_indices_equal_the_array(tmp_path):
    """Ints, negative ints, slices (with steps), shuffled and repeated indices, np.asarray:
    each gives what the same index of the saved array gives."""
    x = np.random.default_rng(0).random((37, 3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rows = NpyRows(str(tmp_path / "x.npy"))
    assert len(rows) == 37 and rows.shape == x.shape and rows.dtype == x.dtype
    order = np.random.default_rng(1).permutation(37)
    for key in (0, 36, -1, np.int64(5), slice(4, 8), slice(30, 50), slice(None, None, 3),
                slice(8, 4), order[:4], order, np.array([3, 3, 2]), [1, 2, 3], np.array([], int)):
        np.testing.assert_array_equal(rows[key], x[key])
    np.testing.assert_array_equal(np.asarray(rows), x)
    with pytest.raises(IndexError):
        rows[np.array([37])]


def test_a_cut_short_or_foreign_file_is_refused(tmp_path):
    """A cache file shorter than its header says (a kill while it was written) is a
    ValueError, which load_cached reads as: no cache."""
    x = np.zeros((10, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-8])
    with pytest.raises(ValueError):
        NpyRows(str(tmp_path / "short.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not an npy file")
    with pytest.raises(ValueError):
        NpyRows(str(tmp_path / "junk.npy"))


def test_reading_every_batch_keeps_the_file_out_of_the_process(tmp_path):
    """An epoch's worth of batch reads over a 64 MB cache leaves almost none of it resident
    in the process, where reading the same rows from a memory map makes all of it resident."""
    n, row = 256, (64, 1024)  # 256 KB a row
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (n, *row)})
        for i in range(n):
            f.write(np.full(row, i, dtype="<f4").tobytes())
    order = np.random.default_rng(0).permutation(n)

    def epoch(x) -> float:
        return sum(float(np.asarray(x[order[i:i + 4]])[:, 0, 0].sum()) for i in range(0, n, 4))

    before = _rss_file_kb()
    rows = NpyRows(str(path))
    assert epoch(rows) == sum(range(n))
    grew_rows = _rss_file_kb() - before
    mapped = np.load(path, mmap_mode="r")
    assert epoch(mapped) == sum(range(n))
    grew_mmap = _rss_file_kb() - before
    del mapped
    assert grew_mmap > 48 * 1024, grew_mmap  # the map's pages: most of the 64 MB
    assert grew_rows < 4 * 1024, grew_rows
