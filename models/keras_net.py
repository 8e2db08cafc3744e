"""The Keras side: MobileNet V1 + head, the frozen trunk, and the folded upper layers.

`build_keras_model` is the reference every artifact is checked against (and what a Keras
user would train); `build_frozen_keras` is the frozen trunk as a Keras model (the source of
frozen.tflite and of the NNAPI plan); `upper_plan` lifts the layers above the split out of
it with BatchNorm folded into kernel and bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import BuildError
from models.layers import ALPHA_CHOICES, ALPHAS, FIRST_LAYER, SPLIT_LAYERS
from models.weights import fetch_imagenet, load_h5_by_name

if TYPE_CHECKING:
    from models.config import ModelConfig

STRIDE_2_BLOCKS = (2, 4, 6, 12)
BN_EPSILON = 1e-3  # Keras MobileNet's BatchNormalization default
HEAD_POOL, HEAD_DROPOUT, HEAD_DENSE = "head_pool", "head_dropout", "head_dense"
SCALE = "scale"  # the input scaling 0…255 → −1…1: all that is frozen when conv1 trains
INIT_SEED = 0  # random init (weights none, the head) is the same in every build


@dataclass(frozen=True)
class UpperLayer:
    """One convolution above the split, BatchNorm folded in, followed by ReLU6."""

    name: str  # conv1 / conv_dw_N / conv_pw_N
    kind: str  # "conv" (conv1, full 3×3), "dw" (depthwise 3×3) or "pw" (pointwise 1×1)
    stride: int
    kernel: np.ndarray  # conv: [3, 3, 3, C] and dw: [3, 3, C, 1] (as Keras);
    #                     pw: [1, Cout, Cin] (see models.grads)
    bias: np.ndarray


@dataclass(frozen=True)
class UpperPlan:
    feature_shape: tuple[int, ...]  # frozen output per image: [h, w, c], or [D] head-only
    layers: tuple[UpperLayer, ...]
    head_kernel: np.ndarray  # [D, K]
    head_bias: np.ndarray


def block_of(layer: str) -> int:
    return int(layer.rsplit("_", 1)[1])


def feature_layer_name(finetune_from: str | None) -> str:
    """The Keras layer whose output is the frozen trunk's output."""
    if finetune_from is None:
        return HEAD_POOL
    if finetune_from == FIRST_LAYER:
        return SCALE
    n = block_of(finetune_from)
    if finetune_from.startswith("conv_pw_"):
        return f"conv_dw_{n}_relu"
    return "conv1_relu" if n == 1 else f"conv_pw_{n - 1}_relu"


def build_keras_model(config: ModelConfig) -> Any:
    """Image (float32 RGB 0…255) → class probabilities, BatchNorm in inference mode."""
    import keras

    if config.alpha not in ALPHAS:
        raise BuildError(f"alpha {config.alpha} is not a MobileNet V1 width; "
                         f"expected {ALPHA_CHOICES}.")
    if config.input_size < 32:
        raise BuildError(f"input size {config.input_size} is too small for MobileNet V1; "
                         "expected 32 or more (128–224 for ImageNet weights).")
    keras.utils.set_random_seed(INIT_SEED)
    image = keras.Input((config.input_size, config.input_size, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=SCALE)(image)
    try:
        base = keras.applications.MobileNet(
            input_tensor=scaled, alpha=config.alpha, include_top=False, weights=None)
    except ValueError as e:
        raise BuildError(f"Keras cannot build MobileNet V1 with alpha {config.alpha} at "
                         f"{config.input_size}×{config.input_size}: {e}") from None
    x = keras.layers.GlobalAveragePooling2D(name=HEAD_POOL)(base.output)
    x = keras.layers.Dropout(config.dropout, name=HEAD_DROPOUT)(x)
    out = keras.layers.Dense(config.num_classes, activation="softmax", name=HEAD_DENSE)(x)
    model = keras.Model(image, out, name="mobilenet_v1_head")
    if config.weights != "none":
        path = (fetch_imagenet(config.alpha, config.input_size)
                if config.weights == "imagenet" else config.weights)
        load_h5_by_name(base, path, alpha=config.alpha)
    else:
        calibrate_batchnorm(model, config.input_size)
    for layer in model.layers:  # the trunk's BatchNorm stays in inference mode
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


def calibrate_batchnorm(model: Any, input_size: int, *, samples: int = 16) -> None:
    """Random init only: set every BatchNorm's statistics from a fixed batch of smooth noise.

    Keras's default statistics (mean 0, variance 1) with random kernels shrink the features to
    ~1e-15 by the last block, where nothing can be learned. Calibrated on noise (never on the
    user's images), each layer's activations keep unit scale: `weights: none` is then an honest
    random-features baseline.
    """
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(INIT_SEED)
    low = rng.uniform(0.0, 255.0, (samples, 8, 8, 3)).astype(np.float32)
    images = tf.image.resize(low, (input_size, input_size), method="bicubic")
    images = tf.clip_by_value(images, 0.0, 255.0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            x = keras.Model(model.input, layer.input)(images, training=False).numpy()
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))])


def build_frozen_keras(config: ModelConfig, model: Any | None = None) -> Any:
    """The frozen trunk: image (0…255) → features at the split (the pooled vector if None)."""
    import keras

    model = model if model is not None else build_keras_model(config)
    out = model.get_layer(feature_layer_name(config.finetune_from)).output
    return keras.Model(model.input, out, name="frozen_trunk")


def _fold(model: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    kernel = model.get_layer(name).get_weights()[0]
    gamma, beta, mean, var = model.get_layer(f"{name}_bn").get_weights()
    scale = gamma / np.sqrt(var + BN_EPSILON)
    if name == FIRST_LAYER:
        folded = kernel * scale[None, None, None, :]
    elif name.startswith("conv_dw_"):
        folded = kernel * scale[None, None, :, None]
    else:
        folded = keras_to_pointwise(kernel) * scale[None, :, None]
    return folded.astype(np.float32), (beta - mean * scale).astype(np.float32)


def keras_to_pointwise(kernel: np.ndarray) -> np.ndarray:
    """Keras's 1×1 Conv2D kernel [1, 1, Cin, Cout] → the training graph's [1, Cout, Cin]."""
    return np.ascontiguousarray(kernel[0, 0].T[None])


def pointwise_to_keras(kernel: np.ndarray) -> np.ndarray:
    """The training graph's [1, Cout, Cin] → Keras's 1×1 Conv2D kernel [1, 1, Cin, Cout]."""
    return np.ascontiguousarray(kernel[0].T[None, None])


def upper_plan(config: ModelConfig, model: Any) -> UpperPlan:
    """The layers from the split up, as folded arrays, with the head's initial weights."""
    layers = []
    if config.finetune_from is not None:
        start = SPLIT_LAYERS.index(config.finetune_from)
        for name in SPLIT_LAYERS[start:]:
            kernel, bias = _fold(model, name)
            layers.append(UpperLayer(name, *_kind_stride(name), kernel, bias))
    feature = model.get_layer(feature_layer_name(config.finetune_from)).output
    head_kernel, head_bias = model.get_layer(HEAD_DENSE).get_weights()
    return UpperPlan(tuple(int(d) for d in feature.shape[1:]), tuple(layers),
                     head_kernel.astype(np.float32), head_bias.astype(np.float32))


def _kind_stride(name: str) -> tuple[str, int]:
    if name == FIRST_LAYER:
        return "conv", 2
    if name.startswith("conv_dw_"):
        return "dw", 2 if block_of(name) in STRIDE_2_BLOCKS else 1
    return "pw", 1


def count_params(model: Any, names: list[str] | None = None) -> int:
    """Parameters (BatchNorm statistics included) of the named layers, or of all layers."""
    layers = model.layers if names is None else [model.get_layer(n) for n in names]
    return int(sum(np.prod(w.shape) for layer in layers for w in layer.weights))
