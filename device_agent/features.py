"""Decode the sampled images and run the frozen trunk ONCE per image; cache the features.

Decoding runs ahead on its own threads (decode_pool) for the job's `fast` path, so the trunk
starts on the first decoded image while the next ones decode on the other cores.

cache/ (agent-private, never leaves the phone) holds train_x.npy / test_x.npy (float32
features, read a batch of rows at a time: feature_rows), train_y.npy / test_y.npy
(labels), and manifest.json, written last, which makes the cache valid for the job that made
it (its digest), with the counts, the delegate record and the decode/feature timings. For
method 2's head phase, train_pooled.npy / test_pooled.npy hold the upper layers' pooled
output (`embed`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from device_agent import data, decode_pool, trunk
from device_agent.contract import stage_step
from device_agent.errors import BadJob, Cancelled
from device_agent.events import EventLog
from device_agent.feature_rows import NpyRows
from device_agent.fsio import atomic_open, disk_errors, read_json, write_json_atomic
from device_agent.job import job_digest

MANIFEST = "manifest.json"


@dataclass
class Features:
    train_x: NpyRows
    train_y: np.ndarray
    test_x: NpyRows
    test_y: np.ndarray
    counts: dict[str, Any]
    delegate: dict[str, Any]
    timing: dict[str, float]  # decode, features (seconds, as spent when they were computed)
    delegation: dict[str, Any] | None = None  # the frozen trunk's: delegate, nodes taken


def cache_key(job: dict[str, Any], meta: dict[str, Any]) -> str:
    """What the cached features depend on: the trunk, the sample, the delegate."""
    return job_digest({"model": meta.get("hash"), "frozen": job["models"]["frozen"],
                       "data": job["data"], "delegate": job["delegate"]})


class _NpyStream:
    """Writes a float32 .npy of known shape row by row (regular writes: ENOSPC is an OSError)."""

    def __init__(self, f: BinaryIO, shape: tuple[int, ...]) -> None:
        self.f, self.row_shape, self.rows = f, shape[1:], 0
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(f, header)

    def write(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape:
            raise BadJob(f"frozen.tflite gives features of shape {list(row.shape)}, meta.json "
                         f"says {list(self.row_shape)}")
        self.f.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
        self.rows += 1


def load_cached(cache_dir: str, key: str) -> Features | None:
    """The cached features of this job, or None when there are none (or another job's)."""
    path = os.path.join(cache_dir, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        man = read_json(path)
    except ValueError:
        return None
    if man.get("key") != key:
        return None

    def arr(name: str) -> NpyRows:
        return NpyRows(os.path.join(cache_dir, name))

    try:
        return Features(arr("train_x.npy"), np.load(os.path.join(cache_dir, "train_y.npy")),
                        arr("test_x.npy"), np.load(os.path.join(cache_dir, "test_y.npy")),
                        man["counts"], man["delegate"], man["timing"], man.get("delegation"))
    except (OSError, ValueError, KeyError):  # a cache cut short (kill during its removal)
        return None


def extract(job: dict[str, Any], meta: dict[str, Any], cache_dir: str, events: EventLog,
            should_stop: Callable[[], bool]) -> Features:
    """Sample, decode and run the trunk on every image once; write the cache; return it."""
    d = job["data"]
    listings = data.list_classes(d["root"], d["classes"])
    data.check_enough(listings, d["train_per_class"], d["test_per_class"])
    size = int(meta["input_size"])
    os.makedirs(cache_dir, exist_ok=True)
    for name in os.listdir(cache_dir):  # whatever was cached before belongs to other features
        path = os.path.join(cache_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)

    def probe_images(n: int = 2) -> list[np.ndarray]:
        # A few of the run's own images, for the NNAPI runner to check itself against the CPU.
        counts = data.SampleCounts(list(d["classes"]))
        it = data.iter_samples(listings[:1], train=n, test=0, seed=d["seed"], size=size,
                               counts=counts, pool=_pool(d, size, workers=1))
        with contextlib.suppress(Exception):
            return [s.pixels for s in it]
        return []

    run_trunk = trunk.open_trunk(job, probe_images=probe_images, cache_dir=cache_dir,
                                 empty=nothing_frozen(meta))
    events.emit("delegate", **run_trunk.report)
    try:
        return _extract(job, meta, cache_dir, events, should_stop, listings, run_trunk)
    finally:
        run_trunk.close()


def nothing_frozen(meta: dict[str, Any]) -> bool:
    """Whether the build freezes no layer: its features are the (scaled) image itself.

    Then the cache holds S×S×3 floats per image (300 KB at 160), never leaving the phone.
    """
    size = int(meta["input_size"])
    return [int(d) for d in meta["feature_shape"]] == [size, size, 3]


def _pool(d: dict[str, Any], size: int, workers: int | None = None) -> decode_pool.DecodePool:
    """The decode pool of the job's data section (its decode path, orientation, budget)."""
    return decode_pool.photo_pool(size, mode=d["decode"], orient=d["orientation"],
                                  max_pixels=d["max_pixels"], workers=workers)


def _extract(job: dict[str, Any], meta: dict[str, Any], cache_dir: str, events: EventLog,
             should_stop: Callable[[], bool], listings: list[data.ClassListing],
             run_trunk: trunk.Trunk) -> Features:
    d = job["data"]
    size = int(meta["input_size"])
    k = len(d["classes"])
    n_train, n_test = k * d["train_per_class"], k * d["test_per_class"]
    fshape = tuple(int(x) for x in meta["feature_shape"])
    counts = data.SampleCounts(list(d["classes"]))
    labels: dict[str, list[int]] = {"train": [], "test": []}
    timing = {"decode": 0.0, "features": 0.0}
    total, done, last = n_train + n_test, 0, 0
    events.emit("stage", stage="features", done=0, total=total)
    with contextlib.ExitStack() as stack:
        out = {
            "train": _NpyStream(stack.enter_context(atomic_open(
                os.path.join(cache_dir, "train_x.npy"), "feature cache")), (n_train, *fshape)),
            "test": _NpyStream(stack.enter_context(atomic_open(
                os.path.join(cache_dir, "test_x.npy"), "feature cache")), (n_test, *fshape)),
        }
        pool = stack.enter_context(_pool(d, size))
        samples = data.iter_samples(listings, train=d["train_per_class"],
                                    test=d["test_per_class"], seed=d["seed"], size=size,
                                    counts=counts, pool=pool)
        stack.callback(samples.close)  # closed before the pool: pending decodes are dropped
        while True:
            t0 = time.perf_counter()  # waiting for the next decoded image: decode time
            s = next(samples, None)
            timing["decode"] += time.perf_counter() - t0
            if s is None:
                break
            if should_stop():
                raise Cancelled("cancelled while extracting features")
            t0 = time.perf_counter()
            feat = run_trunk(s.pixels)
            timing["features"] += time.perf_counter() - t0
            with disk_errors("feature cache"):
                out[s.split].write(feat)
            labels[s.split].append(s.label)
            done += 1
            step = stage_step(done, total)
            if step > last:  # progress on the contract's grid: sixteenths of the total
                last = step
                events.emit("stage", stage="features", done=step, total=total)
    for split in ("train", "test"):
        with atomic_open(os.path.join(cache_dir, f"{split}_y.npy"), "feature cache") as f:
            np.save(f, np.asarray(labels[split], dtype=np.int32))
    summary = counts.as_dict()
    delegate = run_trunk.close()  # the record now holds timings over every image
    write_json_atomic(os.path.join(cache_dir, MANIFEST),
                      {"key": cache_key(job, meta), "counts": summary, "delegate": delegate,
                       "timing": timing, "delegation": run_trunk.delegation}, "feature cache")
    cached = load_cached(cache_dir, cache_key(job, meta))
    assert cached is not None
    return cached


def embed_cached(cache_dir: str, name: str, fn: Callable[[np.ndarray], np.ndarray],
                 x: NpyRows | np.ndarray, batch: int) -> np.ndarray:
    """The upper layers' pooled output for every row of x, computed once and cached.

    Valid for a whole head phase: the upper layers are frozen while only the head trains.
    """
    from device_agent.training import predict

    path = os.path.join(cache_dir, f"{name}_pooled.npy")
    if os.path.isfile(path):
        return np.load(path)
    pooled = predict(fn, x, batch).astype(np.float32)
    with atomic_open(path, "embedding cache") as f:
        np.save(f, pooled)
    return pooled
