"""Images on the device: class folders, deterministic per-class sampling, decoding.

Decoding (device_agent.decode): `exact` is Keras's `tf.keras.utils.load_img(path,
target_size=(S, S))`, which the host uses: PIL decodes the whole file, converts it to RGB and
resizes the whole image (no crop, aspect ratio not kept) to S×S with bilinear filtering;
`fast` lets a JPEG's DCT scale it down first. Values stay 0…255 float32 (the frozen model
scales them itself). EXIF orientation is applied unless the job says `ignore`.

Sampling: each class folder's files (hidden ones aside) are listed and sorted by name,
permuted by a numpy Generator seeded with (seed, class index), and read in that order:
the first `train_per_class` images that decode are the training set, the next
`test_per_class` the test set. Files that are skipped (corrupt or not images at all, in a
format other than JPEG/PNG, or larger than the pixel budget) are counted by reason and
replaced by the next ones in the order. With several decode workers the files are decoded
ahead, in that order, and taken in that order: the sample is the same as with one.

Nothing here lets a file name or a path out: errors give class names and counts only.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from device_agent import decode as decoding
from device_agent.decode_pool import DecodePool
from device_agent.errors import DataProblem


@dataclass
class ClassListing:
    name: str
    files: list[str]  # full paths, sorted by name


@dataclass
class SampleCounts:
    """What sampling found per class (numbers only: this goes into result.json)."""

    classes: list[str]
    train: list[int] = field(default_factory=list)
    test: list[int] = field(default_factory=list)
    corrupt: list[int] = field(default_factory=list)
    too_large: list[int] = field(default_factory=list)
    unsupported: list[int] = field(default_factory=list)

    def skipped(self, k: int) -> int:
        return self.corrupt[k] + self.too_large[k] + self.unsupported[k]

    def as_dict(self) -> dict[str, object]:
        return {
            "train": sum(self.train), "test": sum(self.test),
            "skipped_corrupt": sum(self.corrupt),
            "skipped_too_large": sum(self.too_large),
            "skipped_unsupported": sum(self.unsupported),
            "per_class_train": {c: self.train[i] for i, c in enumerate(self.classes)},
            "per_class_test": {c: self.test[i] for i, c in enumerate(self.classes)},
        }


def list_classes(root: str, classes: list[str]) -> list[ClassListing]:
    """List every class folder under `root`; a missing root, folder or empty class is an error.

    The messages name no path: the host knows the data source it gave, the phone's paths stay.
    """
    if not os.path.isdir(root):
        raise DataProblem("the data folder does not exist on the device", code="data_missing")
    missing = [c for c in classes if not os.path.isdir(os.path.join(root, c))]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataProblem(f"the data folder has no class folder {names}", code="data_missing")
    out = []
    for c in classes:
        with os.scandir(os.path.join(root, c)) as it:
            files = sorted(e.path for e in it if not e.name.startswith(".") and e.is_file())
        out.append(ClassListing(c, files))
    empty = [x.name for x in out if not x.files]
    if empty:
        names = ", ".join(repr(c) for c in empty)
        raise DataProblem(f"the class folder {names} holds no files", code="data_empty")
    return out


def check_enough(listings: list[ClassListing], train: int, test: int) -> None:
    """Every class must hold train + test images before any decoding or training starts."""
    need = train + test
    short = [f"class {x.name!r} has {len(x.files)} images" for x in listings
             if len(x.files) < need]
    if short:
        fewest = min(len(x.files) for x in listings)
        raise DataProblem(f"{'; '.join(short)}; {need} needed per class "
                          f"({train} train + {test} test)", code="too_few_images",
                          args=(fewest, need, train, test))


def sample_order(n: int, seed: int, class_index: int) -> np.ndarray:
    """The order in which a class's sorted files are read (a permutation of range(n))."""
    return np.random.default_rng([seed, class_index]).permutation(n)


def decode_image(path: str, size: int) -> np.ndarray | None:
    """The `exact` decode without orientation (Keras's load_img), or None when skipped."""
    out = decoding.decode_photo(path, size, mode=decoding.EXACT, orient=decoding.IGNORE)
    return None if isinstance(out, str) else out


@dataclass
class Sample:
    split: str  # "train" or "test"
    label: int
    pixels: np.ndarray


_SKIP_FIELD = {None: "corrupt", decoding.CORRUPT: "corrupt", decoding.TOO_LARGE: "too_large",
               decoding.UNSUPPORTED: "unsupported"}


def _too_few(listing: ClassListing, counts: SampleCounts, k: int, train: int,
             test: int) -> DataProblem:
    n, bad = len(listing.files), counts.skipped(k)
    if counts.too_large[k] or counts.unsupported[k]:
        why = ", ".join(f"{x} {label}" for x, label in (
            (counts.corrupt[k], "corrupt"), (counts.too_large[k], "too large"),
            (counts.unsupported[k], "in unsupported formats")) if x)
        what = f"were skipped ({why})"
    else:
        what = "could not be decoded"
    return DataProblem(
        f"class {listing.name!r}: {bad} of its {n} files {what}, leaving {n - bad} images; "
        f"{train + test} needed ({train} train + {test} test)", code="too_few_images",
        args=(n - bad, train + test, train, test))


def iter_samples(
    listings: list[ClassListing], *, train: int, test: int, seed: int, size: int,
    counts: SampleCounts,
    decode: Callable[[str, int], np.ndarray | str | None] = decode_image,
    pool: DecodePool | None = None,
) -> Iterator[Sample]:
    """Decode each class's sample in its seeded order, refilling from later files if some fail.

    Yields `train` then `test` samples per class, class by class; updates `counts` as it goes.
    `decode` answers pixels, None (corrupt) or one of decode.SKIPS; a `pool` runs it ahead on
    its workers (no more files than the classes still need). Raises DataProblem (before that
    class's last sample) if too few of its files decode.
    """
    pool = pool or DecodePool(decode, 1)
    need = train + test
    orders = [sample_order(len(x.files), seed, k) for k, x in enumerate(listings)]
    for name in ("train", "test", "corrupt", "too_large", "unsupported"):
        getattr(counts, name).extend([0] * len(listings))
    got = [0] * len(listings)
    pos = [0] * len(listings)
    flying: list[deque[Future]] = [deque() for _ in listings]

    def top_up(first: int) -> None:
        # Keep up to pool.ahead decodes going, this class's files first, then the next ones'.
        # The class being read may always have one decode going, even with the window full.
        for j in range(first, len(listings)):
            while ((sum(map(len, flying)) < pool.ahead or (j == first and not flying[j]))
                   and got[j] + len(flying[j]) < need and pos[j] < len(orders[j])):
                flying[j].append(pool.submit(listings[j].files[orders[j][pos[j]]], size))
                pos[j] += 1
            if sum(map(len, flying)) >= pool.ahead:
                return

    try:
        for k, listing in enumerate(listings):
            for split, want in (("train", train), ("test", test)):
                done = 0
                while done < want:
                    top_up(k)
                    if not flying[k]:
                        raise _too_few(listing, counts, k, train, test)
                    pixels = flying[k].popleft().result()
                    if pixels is None or isinstance(pixels, str):
                        field_ = getattr(counts, _SKIP_FIELD.get(pixels, "corrupt"))
                        field_[k] += 1
                        continue
                    done += 1
                    got[k] += 1
                    getattr(counts, split)[k] += 1
                    yield Sample(split, k, pixels)
    finally:
        for q in flying:
            for f in q:
                f.cancel()
