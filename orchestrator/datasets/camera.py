"""Camera-like photos for tests and benchmarks: 12 MP JPEGs as a phone's gallery holds them.

Each photo is one of synth.py's scenes (a shape of its class on clutter), scaled up to the
sensor's 4000×3000, with sensor-like grain so that it compresses like a real photo (3–5 MB
at quality 92, 4:2:0). About a third are portrait or upside-down shots stored the way phones
store them: the pixels as the sensor read them, plus an EXIF Orientation tag saying how to
turn them upright (6 and 8: portrait, 3: upside down). Every photo is a pure function of
(seed, class index, image index), written offline in a fraction of a second each.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

from orchestrator.datasets.synth import MAX_CLASSES, SynthSummary, default_names, synth_image

WIDTH, HEIGHT = 4000, 3000
QUALITY = 92
SCENE = 480  # the scene is drawn at this size, then scaled to the sensor (the model sees less)
GRAIN = 7.0  # sensor noise, grey levels (standard deviation)
_TILE = (800, 600)
# (EXIF orientation, share of the photos): mostly upright, portrait both ways, some upside down
ORIENTATIONS = ((1, 0.65), (6, 0.2), (8, 0.1), (3, 0.05))
# How the sensor's pixels relate to the upright scene, per tag: stored = scene.transpose(…).
_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
           8: Image.Transpose.ROTATE_270}


def orientation_of(seed: int, class_index: int, index: int) -> int:
    """The EXIF orientation tag of one photo (1 = stored upright)."""
    r = np.random.default_rng([seed, class_index, index, 1]).random()
    edge = 0.0
    for tag, share in ORIENTATIONS:
        edge += share
        if r < edge:
            return tag
    return 1


def _grain_tiles(seed: int) -> list[Image.Image]:
    rng = np.random.default_rng([seed, 0x6A1])
    w, h = _TILE
    return [Image.fromarray(np.clip(rng.normal(128, GRAIN, (h, w)), 0, 255).astype(np.uint8))
            for _ in range(3)]


def _grain(tiles: list[Image.Image], size: tuple[int, int], rng: np.random.Generator
           ) -> Image.Image:
    """RGB noise centred on 128: the tiles laid at a random offset per channel."""
    bands = []
    tw, th = _TILE
    for tile in tiles:
        band = Image.new("L", size)
        ox, oy = int(rng.integers(0, tw)), int(rng.integers(0, th))
        for y in range(-oy, size[1], th):
            for x in range(-ox, size[0], tw):
                band.paste(tile, (x, y))
        bands.append(band)
    return Image.merge("RGB", bands)


def camera_photo(seed: int, class_index: int, index: int, *, num_classes: int = 2,
                 tiles: list[Image.Image] | None = None) -> tuple[Image.Image, int]:
    """(the stored pixels, the EXIF orientation tag) of one photo."""
    tag = orientation_of(seed, class_index, index)
    rng = np.random.default_rng([seed, class_index, index, 2])
    scene = synth_image(seed, class_index, index, size=SCENE, num_classes=num_classes)
    upright = (WIDTH, HEIGHT) if tag in (1, 3) else (HEIGHT, WIDTH)
    img = scene.resize(upright, Image.BILINEAR)
    img = ImageChops.add(img, _grain(tiles or _grain_tiles(seed), upright, rng), 1.0, -128)
    if tag in _STORED:
        img = img.transpose(_STORED[tag])
    return img, tag


def exif_bytes(tag: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "orch"  # Make
    exif[0x0110] = "synthetic camera"  # Model
    exif[0x0112] = tag  # Orientation
    return exif.tobytes()


def synthesize_camera(out: Path | str, *, classes: int = 2, per_class: int, seed: int = 0,
                      names: list[str] | None = None, workers: int | None = None
                      ) -> SynthSummary:
    """Write `out/<class>/<class>.<i>.jpg` camera photos for every class (files already there
    with the right name are kept, so an interrupted set can be completed).

    Raises ValueError for arguments no set can have (the CLI turns it into one line).
    """
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be 2 … {MAX_CLASSES}, got {classes}")
    if per_class < 1:
        raise ValueError(f"per-class must be ≥ 1, got {per_class}")
    names = list(names) if names else default_names(classes)
    if len(names) != classes or len(set(names)) != classes:
        raise ValueError(f"expected {classes} distinct class names, got {names}")
    root = Path(out)
    tiles = _grain_tiles(seed)
    jobs = []
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        jobs += [(k, i, root / name / f"{name}.{i + 1}.jpg") for i in range(per_class)]

    def write(job: tuple[int, int, Path]) -> None:
        k, i, path = job
        if path.is_file():
            return
        img, tag = camera_photo(seed, k, i, num_classes=classes, tiles=tiles)
        tmp = path.with_name(f".{path.name}.part")
        img.save(tmp, "JPEG", quality=QUALITY, exif=exif_bytes(tag))
        os.replace(tmp, path)

    with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as ex:
        list(ex.map(write, jobs))  # Pillow draws, scales and encodes without the GIL
    return SynthSummary(root, names, per_class, WIDTH, seed)
