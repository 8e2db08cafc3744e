"""Images on the device: class folders, deterministic per-class sampling, decoding.

Preprocessing (the same as Keras's `tf.keras.utils.load_img(path, target_size=(S, S))`, which
the host uses): PIL decodes the whole file, converts it to RGB if it is not, and resizes the
whole image (no crop, aspect ratio not kept, EXIF orientation not applied) to S×S with
bilinear filtering; values stay 0…255 float32 (the frozen model scales them itself).

Sampling: each class folder's files (hidden ones aside) are listed and sorted by name,
permuted by a numpy Generator seeded with (seed, class index), and read in that order:
the first `train_per_class` images that decode are the training set, the next
`test_per_class` the test set. Files that do not decode (corrupt, or not images at all)
are skipped, counted, and replaced by the next ones in the order.

Nothing here lets a file name or a path out: errors give class names and counts only.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

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

    def as_dict(self) -> dict[str, object]:
        return {
            "train": sum(self.train), "test": sum(self.test),
            "skipped_corrupt": sum(self.corrupt),
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
    """RGB float32 [size, size, 3] in 0…255, or None when the file is not a readable image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                rgb = im if im.mode == "RGB" else im.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.BILINEAR)
                return np.asarray(rgb, dtype=np.float32)
    except Exception:  # any failure of a file to decode means: skip it and count it
        return None


@dataclass
class Sample:
    split: str  # "train" or "test"
    label: int
    pixels: np.ndarray


def iter_samples(
    listings: list[ClassListing], *, train: int, test: int, seed: int, size: int,
    counts: SampleCounts, decode: Callable[[str, int], np.ndarray | None] = decode_image,
) -> Iterator[Sample]:
    """Decode each class's sample in its seeded order, refilling from later files if some fail.

    Yields `train` then `test` samples per class, class by class; updates `counts` as it goes.
    Raises DataProblem (before that class's last sample) if too few of its files decode.
    """
    for k, listing in enumerate(listings):
        order = sample_order(len(listing.files), seed, k)
        counts.train.append(0)
        counts.test.append(0)
        counts.corrupt.append(0)
        pos = 0
        for split, want in (("train", train), ("test", test)):
            got = 0
            while got < want:
                if pos >= len(order):
                    bad = counts.corrupt[k]
                    raise DataProblem(
                        f"class {listing.name!r}: {bad} of its {len(order)} files could not be "
                        f"decoded, leaving {len(order) - bad} images; {train + test} needed "
                        f"({train} train + {test} test)", code="too_few_images",
                        args=(len(order) - bad, train + test, train, test))
                pixels = decode(listing.files[order[pos]], size)
                pos += 1
                if pixels is None:
                    counts.corrupt[k] += 1
                    continue
                got += 1
                getattr(counts, split)[k] += 1
                yield Sample(split, k, pixels)
