"""The equivalent Keras model of train.tflite: folded upper layers + head in stock layers.

What train.tflite is checked against (one step there = one Keras optimizer step here) and
what the benchmark fits on cached features. Inputs: features [B, h, w, c] and the dropout
mask [B, D]; output: logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.keras_net import UpperPlan, pointwise_to_keras


def build_folded_keras(
    plan: UpperPlan, batch_size: int, state: dict[str, np.ndarray] | None = None
) -> tuple[Any, list[tuple[str, Any]]]:
    """Return (model, [(parameter prefix, Keras layer)]) with weights from `state` or `plan`.

    The prefixes are those of train.tflite's state names (`<prefix>_kernel`, `_bias`).
    """
    import keras

    features = keras.Input(plan.feature_shape, batch_size=batch_size, name="features")
    mask = keras.Input((plan.head_kernel.shape[0],), batch_size=batch_size, name="mask")
    x, layers = features, []
    for layer in plan.layers:
        if layer.kind == "conv":  # conv1: Keras's own "same" 3×3 stride-2 convolution
            conv = keras.layers.Conv2D(layer.kernel.shape[3], 3, strides=layer.stride,
                                       padding="same", name=layer.name)
        elif layer.kind == "dw":
            if layer.stride == 2:
                x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
            conv = keras.layers.DepthwiseConv2D(
                3, strides=layer.stride, padding="same" if layer.stride == 1 else "valid",
                name=layer.name)
        else:
            conv = keras.layers.Conv2D(layer.kernel.shape[1], 1, name=layer.name)
        x = keras.layers.ReLU(6.0)(conv(x))
        layers.append((layer.name, conv))
    pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
    dense = keras.layers.Dense(plan.head_kernel.shape[1], name="head")
    logits = dense(keras.layers.Multiply()([pooled, mask]))
    layers.append(("head", dense))
    model = keras.Model([features, mask], logits, name="folded_upper")

    initial = {f"{layer.name}_{part}": value for layer in plan.layers
               for part, value in (("kernel", layer.kernel), ("bias", layer.bias))}
    initial.update(head_kernel=plan.head_kernel, head_bias=plan.head_bias)
    values = state if state is not None else initial
    for prefix, layer in layers:
        layer.set_weights([to_keras(prefix, values[f"{prefix}_kernel"]),
                           values[f"{prefix}_bias"]])
    return model, layers


def to_keras(prefix: str, kernel: np.ndarray) -> np.ndarray:
    """A kernel-shaped tensor of train.tflite's state (weights or slot) in Keras's layout."""
    return pointwise_to_keras(kernel) if prefix.startswith("conv_pw_") else kernel
