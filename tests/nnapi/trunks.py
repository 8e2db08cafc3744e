"""Tiny frozen trunks for NNAPI tests: the product's Keras trunk, its frozen.tflite and plans.

MobileNet V1 alpha 0.25, input 96, built by models/keras_net.py and converted by
models/convert.py exactly as a build does. With random weights the BatchNorm statistics are
drawn at random too (seeded): Keras's default statistics with random kernels shrink the
features to ~1e-15, where every comparison would pass. Each trunk is built once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 96
_CACHE: dict[str, TrunkFiles] = {}


@dataclass(frozen=True)
class TrunkFiles:
    dir: Path
    frozen: Path  # frozen.tflite
    plan: Path  # nnapi_plan.json (MEAN for global pooling)
    plan_avg_pool: Path  # the same trunk with AVERAGE_POOL_2D + RESHAPE for global pooling
    keras: Any  # the Keras trunk


def randomize_batchnorm(model: Any, seed: int) -> None:
    """Seeded BatchNorm statistics that keep activations in ReLU6's working range."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(1.0, 2.5, c), rng.normal(0.3, 0.3, c),
                               rng.normal(0.0, 0.2, c), rng.uniform(0.5, 2.0, c)])


def keras_trunk(finetune_from: str | None, *, weights: str = "none", size: int = SIZE,
                seed: int = 0) -> Any:
    """The product's frozen trunk (image 0…255 → features at the split, pooled if None)."""
    from models import keras_net
    from models.config import ModelConfig

    config = ModelConfig(alpha=0.25, input_size=size, weights=weights,
                         finetune_from=finetune_from)
    model = keras_net.build_keras_model(config)
    if weights == "none":
        randomize_batchnorm(model, seed)
    return keras_net.build_frozen_keras(config, model)


def trunk_files(name: str, root: Path, *, finetune_from: str | None,
                weights: str = "none") -> TrunkFiles:
    """frozen.tflite + both plans of a trunk under root/name, built on first use."""
    if name not in _CACHE:
        from models.convert import convert_frozen
        from models.nnapi_plan import export_plan

        trunk = keras_trunk(finetune_from, weights=weights)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "frozen.tflite").write_bytes(convert_frozen(trunk))
        plan = export_plan(trunk, folder)
        avg = export_plan(trunk, folder / "avg_pool", pool="avg_pool")
        _CACHE[name] = TrunkFiles(folder, folder / "frozen.tflite", plan, avg, trunk)
    return _CACHE[name]


class LiteRT:
    """LiteRT's CPU path on frozen.tflite, one image per invoke: the agent's reference_fn."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for image in np.asarray(images, dtype=np.float32):
            self.interpreter.set_tensor(self.input, image[None])
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.output)[0].copy())
        return np.stack(out)


def images(n: int, seed: int, size: int = SIZE) -> np.ndarray:
    """n random RGB images, float32 0…255 (frozen.tflite's input)."""
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)
