"""Compile an NNAPI model for one device and run images through it, one execution per image.

Executions use `ANeuralNetworksExecution_compute` where the runtime has it (API 29+), and
`startCompute` + `ANeuralNetworksEvent_wait` before. Per-image time on the hardware comes
from `getDuration`, available when the compilation targets exactly one device.
"""

from __future__ import annotations

import hashlib
import os
import time
from ctypes import byref, c_uint8, c_uint64, c_void_p

import numpy as np

from device_agent.nnapi.binding import Nnapi
from device_agent.nnapi.codes import (
    BYTE_SIZE_OF_CACHE_TOKEN,
    DURATION_IN_DRIVER,
    DURATION_ON_HARDWARE,
    NO_DURATION,
    PREFER_SUSTAINED_SPEED,
)
from device_agent.nnapi.devices import Device
from device_agent.nnapi.model import NnapiModel


def cache_token(plan_hash: str, device: str | None, fp16: bool) -> bytes:
    """The 32-byte compilation cache token: the plan hash, the device and the precision."""
    digest = hashlib.sha256(f"{plan_hash}:{device or ''}:{'fp16' if fp16 else 'fp32'}".encode())
    return digest.digest()[:BYTE_SIZE_OF_CACHE_TOKEN]


def compile_model(lib: Nnapi, model: NnapiModel, device: Device | None, *,
                  cache_dir: str | None = None, token: bytes | None = None) -> c_void_p:
    """Compile for `device` alone (None: the runtime's own choice, before API 29)."""
    comp = c_void_p()
    if device is not None:
        devs = (c_void_p * 1)(device.handle)
        lib.call("ANeuralNetworksCompilation_createForDevices", model.handle, devs, 1, byref(comp))
    else:
        lib.call("ANeuralNetworksCompilation_create", model.handle, byref(comp))
    try:
        # Feature extraction runs many images back to back.
        lib.call("ANeuralNetworksCompilation_setPreference", comp, PREFER_SUSTAINED_SPEED)
        if cache_dir and token and lib.has("ANeuralNetworksCompilation_setCaching"):
            os.makedirs(cache_dir, exist_ok=True)
            raw = (c_uint8 * BYTE_SIZE_OF_CACHE_TOKEN).from_buffer_copy(token)
            lib.call("ANeuralNetworksCompilation_setCaching", comp, os.fsencode(cache_dir), raw)
        lib.call("ANeuralNetworksCompilation_finish", comp)
    except BaseException:
        lib.free("ANeuralNetworksCompilation_free", comp)
        raise
    return comp


class NnapiRunner:
    """`run(images[N,S,S,3]) -> features[N,…]` through a compiled model; `close()` frees it."""

    def __init__(self, lib: Nnapi, model: NnapiModel, compilation: c_void_p, *,
                 input_shape: tuple[int, ...], output_shape: tuple[int, ...], timed: bool) -> None:
        self.lib = lib
        self.model = model
        self.compilation: c_void_p | None = compilation
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.timed = timed and lib.has("ANeuralNetworksExecution_setMeasureTiming",
                                       "ANeuralNetworksExecution_getDuration")
        self.uses_compute = lib.has("ANeuralNetworksExecution_compute")
        self.images = 0
        self.wall_s = 0.0
        self.hw_ns: list[int] = []
        self.driver_ns: list[int] = []

    def run(self, images: np.ndarray) -> np.ndarray:
        if self.compilation is None:
            raise RuntimeError("the NNAPI runner is closed")
        x = np.asarray(images, dtype=np.float32)
        if x.shape[1:] != self.input_shape[1:]:
            raise ValueError(f"images are {list(x.shape)}, the plan takes "
                             f"[N, {', '.join(map(str, self.input_shape[1:]))}]")
        out = np.empty((x.shape[0], *self.output_shape[1:]), dtype=np.float32)
        start = time.perf_counter()
        for i in range(x.shape[0]):
            self._run_one(np.ascontiguousarray(x[i:i + 1]), out[i:i + 1])
        self.wall_s += time.perf_counter() - start
        self.images += x.shape[0]
        return out

    def _run_one(self, x: np.ndarray, y: np.ndarray) -> None:
        lib = self.lib
        ex = c_void_p()
        lib.call("ANeuralNetworksExecution_create", self.compilation, byref(ex))
        try:
            lib.call("ANeuralNetworksExecution_setInput", ex, 0, None, x.ctypes.data, x.nbytes)
            lib.call("ANeuralNetworksExecution_setOutput", ex, 0, None, y.ctypes.data, y.nbytes)
            if self.timed:
                lib.call("ANeuralNetworksExecution_setMeasureTiming", ex, True)
            if self.uses_compute:
                lib.call("ANeuralNetworksExecution_compute", ex)
            else:
                event = c_void_p()
                lib.call("ANeuralNetworksExecution_startCompute", ex, byref(event))
                try:
                    lib.call("ANeuralNetworksEvent_wait", event)
                finally:
                    lib.free("ANeuralNetworksEvent_free", event)
            if self.timed:
                for code, sink in ((DURATION_ON_HARDWARE, self.hw_ns),
                                   (DURATION_IN_DRIVER, self.driver_ns)):
                    ns = c_uint64()
                    lib.call("ANeuralNetworksExecution_getDuration", ex, code, byref(ns))
                    if ns.value != NO_DURATION:
                        sink.append(ns.value)
        finally:
            lib.free("ANeuralNetworksExecution_free", ex)

    def timing(self) -> dict:
        """Mean ms per image so far: wall clock here, and as NNAPI measured it (None if not)."""
        def mean_ms(ns: list[int]) -> float | None:
            return round(sum(ns) / len(ns) / 1e6, 4) if ns else None

        wall = round(self.wall_s / self.images * 1e3, 4) if self.images else None
        return {"images": self.images, "ms_per_image_wall": wall,
                "ms_per_image_hw": mean_ms(self.hw_ns),
                "ms_per_image_driver": mean_ms(self.driver_ns)}

    def close(self) -> None:
        """Free the compilation, then the model, then the model's buffers."""
        if self.compilation is not None:
            self.lib.free("ANeuralNetworksCompilation_free", self.compilation)
            self.compilation = None
        self.model.free()

    def __enter__(self) -> NnapiRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
