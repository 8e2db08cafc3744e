"""Where MobileNet V1 weights come from: ImageNet (Keras download), none, or an HDF5 file.

`fingerprint` needs no TensorFlow, so the build cache can be checked before importing it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from models.errors import BuildError

KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
IMAGENET_SIZES = (128, 160, 192, 224)
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}

_file_hashes: dict[tuple[str, int, int], str] = {}


def imagenet_file_name(alpha: float, input_size: int) -> str:
    """Keras's file for this width; the net is fully convolutional, so other sizes use 224."""
    rows = input_size if input_size in IMAGENET_SIZES else 224
    return f"mobilenet_{_ALPHA_TEXT[alpha]}_{rows}_tf_no_top.h5"


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_hashes:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _file_hashes[key] = h.hexdigest()
    return _file_hashes[key]


def fingerprint(weights: str, alpha: float, input_size: int) -> str:
    """A content identity of the weights: Keras's ImageNet files never change."""
    if weights == "none":
        return "none"
    if weights == "imagenet":
        return f"imagenet:{imagenet_file_name(alpha, input_size)}"
    path = Path(weights)
    if not path.is_file():
        raise BuildError(f"weights file {path} does not exist.",
                         hint="Pass imagenet, none, or the path of a Keras HDF5 weights file.")
    return f"sha256:{file_sha256(path)}"


def fetch_imagenet(alpha: float, input_size: int) -> Path:
    """Download (or reuse Keras's cached copy of) the ImageNet weights."""
    import keras

    name = imagenet_file_name(alpha, input_size)
    try:
        return Path(keras.utils.get_file(name, KERAS_BASE_URL + name, cache_subdir="models"))
    except Exception as e:  # offline: URLError, HTTPError, OSError, … all mean the same here
        raise BuildError(
            f"cannot download the ImageNet weights {name} ({type(e).__name__}).",
            hint="Without network, pass a Keras HDF5 file: --set model.weights=PATH "
            "(e.g. ../shared/data/weights/mobilenet_2_5_224_tf_no_top.h5 for alpha 0.25), "
            "or --set model.weights=none.",
        ) from None


def _short(name: str) -> str:
    """'conv1_bn/gamma:0' → 'gamma'."""
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def load_h5_by_name(model: Any, path: Path, *, alpha: float) -> None:
    """Set every weighted layer of `model` from the layer of the same name in `path`."""
    import h5py
    import numpy as np

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise BuildError(f"weights file {path} is not an HDF5 file.",
                         hint="Pass a Keras .h5 weights file (legacy layout), imagenet or none."
                         ) from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in model.layers:
            if not layer.weights:
                continue
            if layer.name not in root:
                raise BuildError(
                    f"weights file {path} has no layer {layer.name!r}; expected a MobileNet V1 "
                    "file with layers conv1, conv1_bn, conv_dw_1 … conv_pw_13_bn.",
                    hint="Pass a Keras MobileNet V1 weights file, imagenet or none.")
            group = root[layer.name]
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in group.attrs.get("weight_names", [])]
            # Within a layer, weights pair up by position, as in Keras's own HDF5 loader
            # (Keras 2 called the depthwise kernel `depthwise_kernel`, Keras 3 `kernel`).
            stored = [np.asarray(group[n]) for n in names]
            values = []
            for i, w in enumerate(layer.weights):
                arr = stored[i] if i < len(stored) else None
                if arr is None or tuple(arr.shape) != tuple(w.shape):
                    got = None if arr is None else tuple(arr.shape)
                    raise BuildError(
                        f"weights file {path} does not match MobileNet V1 alpha {alpha}: layer "
                        f"{layer.name} {_short(w.name)} has shape {got} in the file, expected "
                        f"{tuple(w.shape)}{_alpha_guess(layer.name, arr)}.",
                        hint="Use the file made for this alpha, or set model.alpha to match.")
                values.append(arr)
            layer.set_weights(values)


def _alpha_guess(layer: str, arr: Any) -> str:
    """For the first conv, say which alpha the file was made for (32·alpha filters)."""
    if layer != "conv1" or arr is None or arr.ndim != 4:
        return ""
    return f" (the file looks like alpha {arr.shape[3] / 32:g})"
