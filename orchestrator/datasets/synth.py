"""A deterministic, learnable but not trivial class-folder image set (JPEGs) for demos/tests.

Each class is a shape (circle, square, triangle, cross, star, ring), solid or striped for
classes 7–12, drawn at a random position, scale, rotation and colour on a random gradient
background with clutter and pixel noise; half of the images also hold a small distractor
shape of another class. Colour carries no class information: only shape (and texture) does.
Every image is a pure function of (seed, class index, image index).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "cross", "star", "ring")
TEXTURES = ("", "striped")
MAX_CLASSES = len(SHAPES) * len(TEXTURES)


@dataclass(frozen=True)
class SynthSummary:
    root: Path
    classes: list[str]
    per_class: int
    size: int
    seed: int

    @property
    def files(self) -> int:
        return len(self.classes) * self.per_class


def default_names(classes: int) -> list[str]:
    """circle, square, …, then striped-circle, … (folder names, one per class)."""
    return [f"{TEXTURES[i // len(SHAPES)]}-{SHAPES[i % len(SHAPES)]}".lstrip("-")
            for i in range(classes)]


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(x) for x in rng.integers(0, 256, 3))
    return r, g, b


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple]:
    if shape == "square":
        pts = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        pts = [(x * 0.75, y * 0.75) for x, y in pts]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "cross":
        a, b = 1.0, 0.33
        pts = [(b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b), (-b, -a), (b, -a),
               (b, -b), (a, -b), (a, b), (b, b)]
    else:  # star
        pts = [((1.0 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5 - math.pi / 2),
                (1.0 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5 - math.pi / 2))
               for i in range(10)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _draw_shape(img: Image.Image, rng: np.random.Generator, class_index: int, *,
                scale: tuple[float, float]) -> None:
    size = img.size[0]
    shape = SHAPES[class_index % len(SHAPES)]
    striped = class_index // len(SHAPES) == 1
    r = size * float(rng.uniform(*scale)) / 2
    cx, cy = (float(v) for v in rng.uniform(r, size - r, 2))
    angle = float(rng.uniform(0, 2 * math.pi))
    color = _color(rng)
    mask = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(mask)
    if shape in ("circle", "ring"):
        ax = r * float(rng.uniform(0.8, 1.2))
        box = (cx - ax, cy - r, cx + ax, cy + r)
        if shape == "circle":
            d.ellipse(box, fill=255)
        else:
            d.ellipse(box, outline=255, width=max(2, int(r * 0.3)))
    else:
        d.polygon(_polygon(shape, cx, cy, r, angle), fill=255)
    if striped:  # keep every other band of the shape
        period = max(4, int(r / 3))
        bands = Image.new("L", img.size, 0)
        bd = ImageDraw.Draw(bands)
        for x0 in range(-size, 2 * size, period):
            bd.polygon([(x0, 0), (x0 + period // 2, 0), (x0 + period // 2 + size, size),
                        (x0 + size, size)], fill=255)
        mask = Image.fromarray(np.minimum(np.asarray(mask), np.asarray(bands)))
    img.paste(Image.new("RGB", img.size, color), (0, 0), mask)


def synth_image(seed: int, class_index: int, index: int, *, size: int = 160,
                num_classes: int = 2, distractors: Sequence[int] | None = None) -> Image.Image:
    """One image of class `class_index` (a pure function of its arguments). Distractor
    shapes come from the other classes of `distractors` when given, else of
    `range(num_classes)`."""
    rng = np.random.default_rng([seed, class_index, index])
    # Background: a gradient between two random colours, plus clutter strokes.
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    ramp = t[None, :] if rng.random() < 0.5 else t[:, None]
    c0, c1 = (np.array(_color(rng), np.float32) for _ in range(2))
    bg = c0 + (c1 - c0) * ramp[..., None]
    img = Image.fromarray(np.broadcast_to(bg, (size, size, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
        d.line((x0, y0, x1, y1), fill=_color(rng), width=int(rng.integers(1, 4)))
    if distractors is not None:
        pool = [c for c in distractors if c != class_index]
        if pool and rng.random() < 0.5:  # a small distractor of another class
            _draw_shape(img, rng, pool[int(rng.integers(0, len(pool)))], scale=(0.12, 0.22))
    elif num_classes > 1 and rng.random() < 0.5:  # a small distractor of another class
        other = (class_index + int(rng.integers(1, num_classes))) % num_classes
        _draw_shape(img, rng, other, scale=(0.12, 0.22))
    _draw_shape(img, rng, class_index, scale=(0.3, 0.7))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2))))
    noisy = np.asarray(img, np.float32) + rng.normal(0.0, 12.0, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def synthesize(out: Path | str, *, classes: int = 2, per_class: int, size: int = 160,
               seed: int = 0, names: list[str] | None = None,
               class_ids: Sequence[int] | None = None) -> SynthSummary:
    """Write `out/<class>/<class>.<i>.jpg` for every class; returns what was written.
    `class_ids` picks which kinds (indices into `default_names(MAX_CLASSES)`) the classes
    are, e.g. [0, 6]: circles, solid or striped; by default the first `classes` kinds.

    Raises ValueError for arguments no set can have (the CLI turns it into one line).
    """
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be 2 … {MAX_CLASSES}, got {classes}")
    if per_class < 1:
        raise ValueError(f"per-class must be ≥ 1, got {per_class}")
    if size < 32:
        raise ValueError(f"size must be ≥ 32, got {size}")
    names = list(names) if names else default_names(classes)
    if len(names) != classes or len(set(names)) != classes:
        raise ValueError(f"expected {classes} distinct class names, got {names}")
    if class_ids is not None and (len(class_ids) != classes or len(set(class_ids)) != classes
                                  or not all(0 <= c < MAX_CLASSES for c in class_ids)):
        raise ValueError(f"expected {classes} distinct kinds in 0 … {MAX_CLASSES - 1}, "
                         f"got {list(class_ids)}")
    root = Path(out)
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = (synth_image(seed, k, i, size=size, num_classes=classes) if class_ids is None
                   else synth_image(seed, class_ids[k], i, size=size, distractors=class_ids))
            img.save(folder / f"{name}.{i + 1}.jpg", quality=90)
    return SynthSummary(root, names, per_class, size, seed)
