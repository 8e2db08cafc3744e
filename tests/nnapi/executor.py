"""A plan (device_agent/nnapi/planfile.py) run in numpy float32: the reference the NNAPI
plan's export and the simulated NNAPI library are checked against."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from device_agent.nnapi.planfile import Plan


def _activate(x: np.ndarray, fuse: int) -> np.ndarray:
    if fuse == 1:
        return np.maximum(x, 0)
    if fuse == 2:
        return np.clip(x, -1, 1)
    if fuse == 3:
        return np.clip(x, 0, 6)
    return x


def _windows(x: np.ndarray, pads: list[int], strides: list[int], k: tuple[int, int],
             out_hw: tuple[int, int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """(ky, kx, strided input slice) per filter tap, on the zero-padded input."""
    left, right, top, bottom = pads
    sw, sh = strides
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho, wo = out_hw
    for ky in range(k[0]):
        for kx in range(k[1]):
            yield ky, kx, xp[:, ky:ky + sh * (ho - 1) + 1:sh, kx:kx + sw * (wo - 1) + 1:sw, :]


def _conv(x, filt, bias, pads, strides, fuse, out_shape, mult=None) -> np.ndarray:
    n = x.shape[0]
    ho, wo, cout = out_shape[1:]
    y = np.broadcast_to(bias.astype(np.float32), (n, ho, wo, cout)).copy()
    for ky, kx, xs in _windows(x, pads, strides, filt.shape[1:3], (ho, wo)):
        if mult is None:  # CONV_2D: filter [Cout, kh, kw, Cin]
            y += xs @ filt[:, ky, kx, :].T
        else:  # DEPTHWISE_CONV_2D: filter [1, kh, kw, C·m]
            y += (xs if mult == 1 else np.repeat(xs, mult, axis=3)) * filt[0, ky, kx, :]
    return _activate(y, fuse)


def _avg_pool(x, pads, strides, size, fuse, out_shape) -> np.ndarray:
    ho, wo = out_shape[1:3]
    ones = np.ones((1, *x.shape[1:3], 1), np.float32)
    total = np.zeros((x.shape[0], ho, wo, x.shape[3]), np.float32)
    count = np.zeros((1, ho, wo, 1), np.float32)
    taps = (size[1], size[0])
    for (_, _, xs), (_, _, cs) in zip(_windows(x, pads, strides, taps, (ho, wo)),
                                      _windows(ones, pads, strides, taps, (ho, wo)), strict=True):
        total += xs
        count += cs
    return _activate(total / count, fuse)  # padding is not counted, as in NNAPI


def run_plan(plan: Plan | tuple[dict, dict[str, np.ndarray]], images: np.ndarray) -> np.ndarray:
    """Execute a plan on images [N, S, S, 3] with numpy float32; returns [N, …] features.

    The plan's batch dimension is 1; here every operation runs on all N images at once.
    """
    spec, tensors = (plan.spec, plan.tensors) if isinstance(plan, Plan) else plan
    x = np.asarray(images, dtype=np.float32)
    n = x.shape[0]
    values: dict[int, np.ndarray | int | float] = {}
    for i, o in enumerate(spec["operands"]):
        if "tensor" in o:
            values[i] = tensors[o["tensor"]]
        elif "value" in o:
            values[i] = o["value"]
    values[spec["inputs"][0]] = x
    for op in spec["operations"]:
        a = [values.get(i) for i in op["inputs"]]
        shape = [n, *spec["operands"][op["outputs"][0]]["dims"][1:]]
        kind = op["type"]
        if kind in ("ADD", "MUL"):
            y = _activate(a[0] + a[1] if kind == "ADD" else a[0] * a[1], a[2])
        elif kind == "CONV_2D":
            y = _conv(a[0], a[1], a[2], a[3:7], a[7:9], a[9], shape)
        elif kind == "DEPTHWISE_CONV_2D":
            y = _conv(a[0], a[1], a[2], a[3:7], a[7:9], a[10], shape, mult=a[9])
        elif kind == "AVERAGE_POOL_2D":
            y = _avg_pool(a[0], a[1:5], a[5:7], a[7:9], a[9], shape)
        elif kind == "MEAN":
            y = a[0].mean(axis=tuple(int(v) for v in a[1]), keepdims=bool(a[2]))
        elif kind == "PAD":
            y = np.pad(a[0], [tuple(int(v) for v in row) for row in a[1]])
        elif kind == "RESHAPE":
            y = a[0].reshape(shape)
        else:
            raise ValueError(f"operation {kind} is not in the numpy executor")
        values[op["outputs"][0]] = np.asarray(y, dtype=np.float32)
    return values[spec["outputs"][0]]  # type: ignore[return-value]
