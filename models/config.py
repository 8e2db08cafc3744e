"""What a model build is: `ModelConfig`, everything that decides the bytes of the two models,
and its content hash (the build cache's key). No TensorFlow is imported here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from models.errors import BuildError
from models.layers import ALPHA_CHOICES, ALPHAS, LAYER_CHOICES, SPLIT_LAYERS
from models.weights import fingerprint

BUILD_VERSION = 1  # bump when the artifacts change in a way the source digest cannot see


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the bytes of the two models (learning rates are inputs)."""

    arch: str = "mobilenet_v1"
    alpha: float = 1.0
    input_size: int = 160
    weights: str = "imagenet"  # "imagenet", "none" or a path to a Keras HDF5 weights file
    finetune_from: str | None = None  # Keras layer name; None = head only (method 1)
    num_classes: int = 2
    dropout: float = 0.2
    batch_size: int = 4
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # SGD only

    def validate(self) -> None:
        """Raise BuildError naming what is expected for a value no build can take."""
        checks = [
            (self.arch == "mobilenet_v1", f"arch {self.arch!r} is unknown; expected mobilenet_v1"),
            (self.alpha in ALPHAS, f"alpha {self.alpha} is not a MobileNet V1 width; expected "
                                   f"{ALPHA_CHOICES}"),
            (self.input_size >= 32, f"input size {self.input_size} is too small; expected 32 or "
                                    "more (128–224 for ImageNet weights)"),
            (self.finetune_from is None or self.finetune_from in SPLIT_LAYERS,
             f"unknown layer {self.finetune_from!r}; expected None (head only) or a MobileNet "
             f"V1 layer {LAYER_CHOICES}"),
            (self.num_classes >= 2, f"num_classes {self.num_classes}: expected 2 or more"),
            (0.0 <= self.dropout < 1.0, f"dropout {self.dropout}: expected 0 ≤ rate < 1"),
            (self.batch_size >= 1, f"batch size {self.batch_size}: expected 1 or more"),
            (self.optimizer in ("adam", "sgd"),
             f"optimizer {self.optimizer!r} is unknown; expected adam or sgd"),
            (0.0 <= self.momentum < 1.0, f"momentum {self.momentum}: expected 0 ≤ m < 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise BuildError(message + ".")

    def hash(self) -> str:
        """Content hash: weights by content, build code by source digest."""
        self.validate()
        key = {
            "arch": self.arch, "alpha": self.alpha, "input_size": self.input_size,
            "weights": fingerprint(self.weights, self.alpha, self.input_size),
            "finetune_from": self.finetune_from, "num_classes": self.num_classes,
            "dropout": self.dropout, "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "momentum": self.momentum if self.optimizer == "sgd" else None,
            "code": code_version(),
        }
        blob = json.dumps(key, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def code_version() -> str:
    """BUILD_VERSION plus a digest of the build code, so a code change is a cache miss."""
    h = hashlib.sha256(str(BUILD_VERSION).encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:12]
