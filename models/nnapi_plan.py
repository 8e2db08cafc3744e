"""Export the frozen trunk as an NNAPI plan (tests/nnapi/executor.py runs one in numpy).

The plan replays the Keras trunk in NNAPI's terms (file format: device_agent/nnapi/planfile.py):
- input scaling x/127.5 − 1 (the Rescaling layer) as MUL + ADD. It is not folded into the
  first convolution: that convolution zero-pads the *scaled* image, and a padded raw 0
  would become −1 after folding;
- Conv2D / DepthwiseConv2D with explicit padding: Keras 'same' is TensorFlow's SAME, and a
  ZeroPadding2D in front (MobileNet's (0,1),(0,1) before stride-2 layers) is merged in;
  NNAPI's implicit SAME would differ from that for odd sizes. BatchNorm is folded into
  weight and bias (in float64), ReLU/ReLU6 fused;
- GlobalAveragePooling2D as MEAN (or AVERAGE_POOL_2D + RESHAPE), Reshape/Flatten as RESHAPE,
  Dropout dropped (inference).
An empty trunk (fine-tuning from conv1, the paper's A, freezes no layer) is the input scaling
alone, MUL + ADD; a trunk with no layer at all becomes one RESHAPE to its own shape, since an
NNAPI model needs an operation and may not hand its input back as its output. The agent runs
neither through NNAPI (device_agent/trunk.py: nothing for a delegate to do).
NNAPI layouts: conv filter [Cout, kh, kw, Cin] = Keras kernel.transpose(3, 0, 1, 2);
depthwise filter [1, kh, kw, C·m] = Keras kernel [kh, kw, C, m] reshaped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device_agent.nnapi.planfile import write_plan
from models.errors import BuildError

POOL_MODES = ("mean", "avg_pool")
_FUSABLE = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "AVERAGE_POOL_2D")


@dataclass
class _Node:
    """One NNAPI operation (or MUL+ADD pair) waiting for a BatchNorm to fold or a ReLU to fuse."""

    kind: str  # CONV_2D, DEPTHWISE_CONV_2D, AFFINE (MUL + ADD), AVERAGE_POOL_2D, MEAN, PAD, RESHAPE
    layer: str
    out_shape: list[int]
    params: dict = field(default_factory=dict)
    fuse: str = "NONE"


def _flatten(model) -> Iterator:
    """Layers of a chain-shaped Keras model in order, nested models expanded."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flatten(layer)
            continue
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(getattr(layer, "input", None), (list, tuple)):
            raise BuildError(f"layer {layer.name} has several inputs; the NNAPI plan exporter "
                             "handles chain-shaped trunks (MobileNet V1) only")
        yield layer


def _np(variable) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _activation_name(layer) -> str:
    """NNAPI fuse code name of a ReLU/Activation layer, or of a layer's own activation."""
    import keras

    if isinstance(layer, keras.layers.ReLU):
        if layer.negative_slope or layer.threshold:
            raise BuildError(f"{layer.name}: leaky or thresholded ReLU has no NNAPI fuse code")
        if layer.max_value is None:
            return "RELU"
        if float(layer.max_value) == 6.0:
            return "RELU6"
        raise BuildError(f"{layer.name}: ReLU capped at {layer.max_value} has no NNAPI fuse code")
    name = getattr(layer.activation, "__name__", str(layer.activation))
    codes = {"linear": "NONE", "relu": "RELU", "relu6": "RELU6"}
    if name not in codes:
        raise BuildError(f"{layer.name}: activation {name!r} has no NNAPI fuse code")
    return codes[name]


class _Walker:
    """Turns Keras layers into _Nodes, tracking the NHWC shape (batch 1) and pending padding."""

    def __init__(self, input_shape: list[int], pool: str) -> None:
        self.shape = input_shape
        self.pool = pool
        self.nodes: list[_Node] = []
        self.pad = [0, 0, 0, 0]  # top, bottom, left, right from ZeroPadding2D layers

    def add(self, layer) -> None:
        import keras

        L = keras.layers
        if isinstance(layer, L.ZeroPadding2D):
            (t, b), (left, r) = layer.padding
            self.pad = [self.pad[0] + t, self.pad[1] + b, self.pad[2] + left, self.pad[3] + r]
            return
        if isinstance(layer, (L.Dropout, L.SpatialDropout2D)):
            return
        if isinstance(layer, (L.DepthwiseConv2D, L.Conv2D)):
            self._conv(layer)
            return
        self._flush_pad()
        if isinstance(layer, L.Rescaling):
            scale = np.atleast_1d(np.asarray(layer.scale, np.float64))
            offset = np.atleast_1d(np.asarray(layer.offset, np.float64))
            self.nodes.append(_Node("AFFINE", layer.name, list(self.shape),
                                    {"mul": scale, "add": offset}))
        elif isinstance(layer, L.BatchNormalization):
            self._batch_norm(layer)
        elif isinstance(layer, (L.ReLU, L.Activation)):
            self._fuse(layer, _activation_name(layer))
        elif isinstance(layer, L.GlobalAveragePooling2D):
            self._global_pool(layer)
        elif isinstance(layer, (L.Reshape, L.Flatten)):
            target = ([int(np.prod(self.shape[1:]))] if isinstance(layer, L.Flatten)
                      else [int(d) for d in layer.target_shape])
            self.shape = [1, *target]
            self.nodes.append(_Node("RESHAPE", layer.name, list(self.shape)))
        else:
            raise BuildError(f"layer {layer.name} ({type(layer).__name__}) has no NNAPI "
                             "equivalent in the plan exporter")

    def _flush_pad(self) -> None:
        if any(self.pad):
            t, b, left, r = self.pad
            self.shape = [1, self.shape[1] + t + b, self.shape[2] + left + r, self.shape[3]]
            self.nodes.append(_Node("PAD", "zero_padding", list(self.shape),
                                    {"paddings": [[0, 0], [t, b], [left, r], [0, 0]]}))
            self.pad = [0, 0, 0, 0]

    def _conv(self, layer) -> None:
        import keras

        if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1):
            raise BuildError(f"{layer.name}: only NHWC convolutions without dilation are exported")
        if getattr(layer, "groups", 1) != 1:
            raise BuildError(f"{layer.name}: grouped convolution has no NNAPI equivalent here")
        kernel = _np(layer.kernel)
        kh, kw = kernel.shape[:2]
        sh, sw = (int(s) for s in layer.strides)
        t, b, left, r = self.pad
        self.pad = [0, 0, 0, 0]
        h, w = self.shape[1] + t + b, self.shape[2] + left + r
        if layer.padding == "same":
            (st, sb), (sl, sr) = _same_padding(h, kh, sh), _same_padding(w, kw, sw)
            t, b, left, r = t + st, b + sb, left + sl, r + sr
            h, w = h + st + sb, w + sl + sr
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kind, mult = "DEPTHWISE_CONV_2D", int(layer.depth_multiplier)
            filt = kernel.reshape(kh, kw, -1)[None]  # [1, kh, kw, C·m]
        else:
            kind, mult = "CONV_2D", 1
            filt = kernel.transpose(3, 0, 1, 2)  # [Cout, kh, kw, Cin]
        cout = filt.shape[0] if kind == "CONV_2D" else filt.shape[3]
        bias = _np(layer.bias) if layer.use_bias else np.zeros(cout)
        self.shape = [1, (h - kh) // sh + 1, (w - kw) // sw + 1, cout]
        node = _Node(kind, layer.name, list(self.shape),
                     {"filter": filt, "bias": bias, "pads": [left, r, t, b],
                      "strides": [sw, sh], "mult": mult})
        self.nodes.append(node)
        fuse = _activation_name(layer)
        if fuse != "NONE":
            node.fuse = fuse

    def _batch_norm(self, layer) -> None:
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        if axis not in (-1, len(self.shape) - 1):
            raise BuildError(f"{layer.name}: BatchNorm over axis {axis} is not channels-last")
        gamma = _np(layer.gamma) if layer.scale else 1.0
        beta = _np(layer.beta) if layer.center else 0.0
        s = gamma / np.sqrt(_np(layer.moving_variance) + layer.epsilon)
        shift = beta - _np(layer.moving_mean) * s
        last = self.nodes[-1] if self.nodes else None
        convs = ("CONV_2D", "DEPTHWISE_CONV_2D")
        if last is not None and last.kind in convs and last.fuse == "NONE":
            p = last.params
            scale = s.reshape(-1, 1, 1, 1) if last.kind == "CONV_2D" else s  # per output channel
            p["filter"] = p["filter"] * scale
            p["bias"] = p["bias"] * s + shift
            last.layer = f"{last.layer}+{layer.name}"
            return
        self.nodes.append(_Node("AFFINE", layer.name, list(self.shape),
                                {"mul": np.broadcast_to(s, (self.shape[-1],)),
                                 "add": np.broadcast_to(shift, (self.shape[-1],))}))

    def _fuse(self, layer, code: str) -> None:
        if code == "NONE":
            return
        last = self.nodes[-1] if self.nodes else None
        if last is None or last.kind not in (*_FUSABLE, "AFFINE") or last.fuse != "NONE":
            raise BuildError(f"{layer.name}: a {code} that follows no fusable operation")
        last.fuse = code
        last.layer = f"{last.layer}+{layer.name}"

    def _global_pool(self, layer) -> None:
        if layer.data_format != "channels_last":
            raise BuildError(f"{layer.name}: only channels-last pooling is exported")
        _, h, w, c = self.shape
        keep = bool(layer.keepdims)
        if self.pool == "mean":
            self.shape = [1, 1, 1, c] if keep else [1, c]
            self.nodes.append(_Node("MEAN", layer.name, list(self.shape), {"keep": keep}))
            return
        self.shape = [1, 1, 1, c]
        self.nodes.append(_Node("AVERAGE_POOL_2D", layer.name, list(self.shape),
                                {"pads": [0, 0, 0, 0], "strides": [1, 1], "size": [w, h]}))
        if not keep:
            self.shape = [1, c]
            self.nodes.append(_Node("RESHAPE", layer.name, list(self.shape)))


class _Emitter:
    """Turns _Nodes into NNAPI operands, operations and named tensors."""

    def __init__(self, input_shape: list[int]) -> None:
        self.operands: list[dict] = [{"type": "TENSOR_FLOAT32", "dims": list(input_shape)}]
        self.operations: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self._scalars: dict[int, int] = {}
        self.current = 0

    def _operand(self, entry: dict) -> int:
        self.operands.append(entry)
        return len(self.operands) - 1

    def int32(self, value: int) -> int:
        if value not in self._scalars:  # NNAPI lets operations share constant operands
            self._scalars[value] = self._operand({"type": "INT32", "value": int(value)})
        return self._scalars[value]

    def tensor(self, name: str, array: np.ndarray, *, dtype=np.float32) -> int:
        kind = "TENSOR_INT32" if np.dtype(dtype) == np.int32 else "TENSOR_FLOAT32"
        value = np.ascontiguousarray(array, dtype=dtype)
        self.tensors[name] = value
        return self._operand({"type": kind, "dims": list(value.shape), "tensor": name})

    def op(self, kind: str, inputs: list[int], shape: list[int], layer: str) -> None:
        out = self._operand({"type": "TENSOR_FLOAT32", "dims": list(shape)})
        self.operations.append({"type": kind, "inputs": [self.current, *inputs],
                                "outputs": [out], "layer": layer})
        self.current = out

    def emit(self, n: _Node) -> None:
        p, fuse = n.params, self.int32(_FUSE[n.fuse])
        name = n.layer.split("+")[0]  # tensors are named after the Keras layer that owns them
        if n.kind == "AFFINE":
            self.op("MUL", [self.tensor(f"{name}.mul", p["mul"]), self.int32(0)],
                    n.out_shape, n.layer)
            self.op("ADD", [self.tensor(f"{name}.add", p["add"]), fuse], n.out_shape, n.layer)
        elif n.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            extra = [self.int32(p["mult"])] if n.kind == "DEPTHWISE_CONV_2D" else []
            scalars = [self.int32(v) for v in (*p["pads"], *p["strides"])]
            self.op(n.kind, [self.tensor(f"{name}.filter", p["filter"]),
                             self.tensor(f"{name}.bias", p["bias"]), *scalars, *extra, fuse],
                    n.out_shape, n.layer)
        elif n.kind == "AVERAGE_POOL_2D":
            scalars = [self.int32(v) for v in (*p["pads"], *p["strides"], *p["size"])]
            self.op(n.kind, [*scalars, fuse], n.out_shape, n.layer)
        elif n.kind == "MEAN":
            axes = self.tensor(f"{name}.axes", np.array([1, 2]), dtype=np.int32)
            self.op("MEAN", [axes, self.int32(int(p["keep"]))], n.out_shape, n.layer)
        elif n.kind == "PAD":
            pads = self.tensor(f"{name}{len(self.operations)}.paddings",
                               np.array(p["paddings"]), dtype=np.int32)
            self.op("PAD", [pads], n.out_shape, n.layer)
        elif n.kind == "RESHAPE":
            shape = self.tensor(f"{name}{len(self.operations)}.shape",
                                np.array(n.out_shape), dtype=np.int32)
            self.op("RESHAPE", [shape], n.out_shape, n.layer)


_FUSE = {"NONE": 0, "RELU": 1, "RELU1": 2, "RELU6": 3}


def plan_from_keras(model, *, pool: str = "mean") -> tuple[dict, dict[str, np.ndarray]]:
    """The plan (JSON-ready dict, without hash) and its tensors for a chain-shaped Keras trunk.

    `model` takes [None, S, S, 3] RGB 0…255 (its first layer is the Rescaling), like
    frozen.tflite. `pool` picks MEAN or AVERAGE_POOL_2D (+ RESHAPE) for global pooling.
    """
    if pool not in POOL_MODES:
        raise ValueError(f"pool must be one of {POOL_MODES}, got {pool!r}")
    in_shape = [1, *(int(d) for d in model.input_shape[1:])]
    if len(in_shape) != 4 or in_shape[3] != 3:
        raise BuildError(f"the trunk must take [N, S, S, 3] images, it takes {model.input_shape}")
    walker = _Walker(in_shape, pool)
    for layer in _flatten(model):
        walker.add(layer)
    walker._flush_pad()
    if not walker.nodes:  # the identity: one operation, as NNAPI wants
        walker.nodes.append(_Node("RESHAPE", "identity", list(in_shape)))
    out_shape = [1, *(int(d) for d in model.output_shape[1:])]
    if walker.shape != out_shape:
        raise BuildError(f"plan output {walker.shape} differs from the model's {out_shape}")
    emitter = _Emitter(in_shape)
    for node in walker.nodes:
        emitter.emit(node)
    spec = {
        "source": {"model": model.name, "pool": pool},
        "input": {"shape": in_shape, "dtype": "float32", "range": [0, 255]},
        "output": {"shape": out_shape, "dtype": "float32"},
        "operands": emitter.operands,
        "operations": emitter.operations,
        "inputs": [0],
        "outputs": [emitter.current],
    }
    return spec, emitter.tensors


def export_plan(model, out_dir: str | Path, *, pool: str = "mean") -> Path:
    """Write nnapi_plan.json + nnapi_plan.npz for the trunk into out_dir; return the JSON path."""
    spec, tensors = plan_from_keras(model, pool=pool)
    return write_plan(out_dir, spec, tensors)
