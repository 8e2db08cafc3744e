"""Public image sets, downloaded and laid out as class folders (`OUT/<class>/*.jpg`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import DataError

# TensorFlow's public "cats_and_dogs_filtered" (1,000 train + 500 validation images per class).
CATS_AND_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
# Archive folder → class folder; train and validation are merged (the agent samples its own).
CATS_AND_DOGS_LAYOUT = {"cats": "cat", "dogs": "dog"}
DATASETS = ("cats-and-dogs",)
CHUNK = 1 << 20
OFFLINE_HINT = "It needs network access; offline, `orch data synth OUT` makes a demo set."


@dataclass(frozen=True)
class FetchSummary:
    name: str
    root: Path
    per_class: dict[str, int]
    downloaded_bytes: int  # 0 when the folders were already there


def _count(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


def download(url: str, dest: Path, *, timeout: float = 30.0,
             progress: Callable[[int, int | None], None] | None = None) -> int:
    """Stream `url` into `dest` (via a .part file); bytes written. DataError when unreachable."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            total = resp.headers.get("Content-Length")
            size = int(total) if total and total.isdigit() else None
            done = 0
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, size)
        os.replace(part, dest)
        return done
    except (urllib.error.URLError, OSError, ValueError) as e:
        with contextlib.suppress(OSError):
            part.unlink()
        reason = getattr(e, "reason", None) or e
        raise DataError(f"Could not download {url}: {reason}.", hint=OFFLINE_HINT) from None


def extract_cats_and_dogs(archive: Path, out: Path) -> dict[str, int]:
    """Copy the archive's cats/dogs JPEGs (train + validation) into out/cat and out/dog."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError("The downloaded cats-and-dogs archive is not a zip file.",
                        hint="Run `orch data fetch` again.") from None
    counts = dict.fromkeys(CATS_AND_DOGS_LAYOUT.values(), 0)
    with zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            # cats_and_dogs_filtered/<train|validation>/<cats|dogs>/<name>.jpg
            if info.is_dir() or len(parts) != 4 or parts[1] not in ("train", "validation"):
                continue
            cls = CATS_AND_DOGS_LAYOUT.get(parts[2])
            name = parts[3]
            if cls is None or not name.lower().endswith((".jpg", ".jpeg")) or \
                    name.startswith("."):
                continue
            target = out / cls / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            counts[cls] += 1
    if not all(counts.values()):
        raise DataError("The cats-and-dogs archive holds no cats/ and dogs/ folders.",
                        hint="The URL may point at another archive.")
    return counts


def fetch(name: str, out: Path | str, *, url: str | None = None, timeout: float = 30.0,
          progress: Callable[[int, int | None], None] | None = None) -> FetchSummary:
    """Download the public set `name` into `out` as class folders (skipped if already there)."""
    if name not in DATASETS:
        raise DataError(f"Unknown data set {name!r}.", hint=f"Known: {', '.join(DATASETS)}.")
    root = Path(out)
    present = {c: _count(root / c) for c in CATS_AND_DOGS_LAYOUT.values()}
    if all(present.values()):
        return FetchSummary(name, root, present, 0)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / ".cats_and_dogs_filtered.zip"
    try:
        size = download(url or CATS_AND_DOGS_URL, archive, timeout=timeout, progress=progress)
        counts = extract_cats_and_dogs(archive, root)
    finally:
        with contextlib.suppress(OSError):
            archive.unlink()
    return FetchSummary(name, root, counts, size)
