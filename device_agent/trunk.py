"""The frozen trunk (frozen.tflite) on the requested delegate, with an honest record of
which one ran and why: `{"requested", "used", "reason", "info"}`.

cpu / xnnpack → LiteRT's CPU path (XNNPACK when it takes the graph); gpu → a GPU delegate
plugin if one loads, else CPU; nnapi → `device_agent.nnapi.open_nnapi_runner`, else CPU.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from device_agent import runtime
from device_agent.errors import BadJob

# GPU delegate plugins a phone may have (the TFLite GPU delegate, LiteRT's accelerator);
# ORCH_AGENT_GPU_DELEGATE names another one.
GPU_DELEGATE_LIBRARIES = ("libtensorflowlite_gpu_delegate.so", "libLiteRtGpuAccelerator.so",
                          "libLiteRtOpenClAccelerator.so")

TrunkFn = Callable[[np.ndarray], np.ndarray]


class CpuTrunk:
    """frozen.tflite in the LiteRT interpreter: one image [S,S,3] → features (no batch dim)."""

    def __init__(self, path: str, *, threads: int, delegates: list[Any] | None = None) -> None:
        try:
            self.interpreter = runtime.make_interpreter(path, threads=threads,
                                                        delegates=delegates)
        except (ValueError, RuntimeError) as e:
            raise BadJob(f"frozen.tflite cannot be loaded: {e}") from e
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise BadJob("frozen.tflite must have one input and one output")
        self._in, self._out = inp[0]["index"], out[0]["index"]
        self.input_shape = tuple(int(d) for d in inp[0]["shape"])
        self.output_shape = tuple(int(d) for d in out[0]["shape"])[1:]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in, image.reshape(self.input_shape).astype(np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out).reshape(self.output_shape).copy()


def _report(requested: str, used: str, reason: str | None, **info: Any) -> dict[str, Any]:
    return {"requested": requested, "used": used, "reason": reason, "info": info}


def _cpu(path: str, requested: str, threads: int, reason: str | None,
         info: dict[str, Any] | None = None) -> tuple[TrunkFn, dict[str, Any]]:
    trunk = CpuTrunk(path, threads=threads)
    xnn = runtime.delegated(trunk.interpreter)
    used = "cpu"
    if requested == "xnnpack":
        if xnn:
            used = "xnnpack"
        elif reason is None:
            reason = "XNNPACK did not take the graph" if xnn is False else \
                "the interpreter cannot show whether XNNPACK ran"
    return trunk, _report(requested, used, reason, xnnpack=xnn, threads=threads,
                          **(info or {}))


def _gpu_delegate() -> tuple[Any | None, str | None, list[str]]:
    """Load the first GPU delegate plugin that loads: (delegate, library, names tried)."""
    tfl = runtime.require()
    names = list(GPU_DELEGATE_LIBRARIES)
    extra = os.environ.get("ORCH_AGENT_GPU_DELEGATE")
    if extra:
        names.insert(0, extra)
    tried = []
    for lib in names:
        tried.append(os.path.basename(lib))
        try:
            # dlopen first: load_delegate's own failure leaves a half-built object that
            # prints a traceback to stderr when it is collected.
            ctypes.CDLL(lib)
            return tfl.load_delegate(lib), lib, tried
        except (ValueError, OSError, RuntimeError):
            continue
    return None, None, tried


def _gpu(path: str, threads: int) -> tuple[TrunkFn, dict[str, Any]]:
    delegate, lib, tried = _gpu_delegate()
    if delegate is None:
        return _cpu(path, "gpu", threads, "no GPU delegate plugin could be loaded",
                    {"tried": tried})
    try:
        trunk = CpuTrunk(path, threads=threads, delegates=[delegate])
    except BadJob as e:
        return _cpu(path, "gpu", threads, f"the GPU delegate refused the model: {e.message}")
    if runtime.delegated(trunk.interpreter) is False:
        return _cpu(path, "gpu", threads, "the GPU delegate took no part of the graph")
    return trunk, _report("gpu", "gpu", None, library=os.path.basename(lib or ""),
                          threads=threads)


def _nnapi(job: dict[str, Any], threads: int, probe_images: Callable[[], list[np.ndarray]],
           cache_dir: str) -> tuple[TrunkFn, dict[str, Any]]:
    path = job["models"]["frozen"]
    plan = job["models"].get("nnapi_plan")
    if not plan:
        return _cpu(path, "nnapi", threads, "no NNAPI plan")
    try:
        from device_agent.nnapi import open_nnapi_runner
    except ImportError:
        return _cpu(path, "nnapi", threads, "NNAPI binding unavailable")
    reference = CpuTrunk(path, threads=threads)
    dl = job["delegate"]
    runner, rep = open_nnapi_runner(
        plan, reference_fn=reference, probe_images=probe_images(),
        device_name=dl.get("nnapi_device"), fp16=bool(dl.get("fp16")),
        allow_reference=bool(dl.get("allow_reference")), cache_dir=cache_dir)
    info = dict(rep.get("info") or {})
    if runner is None or rep.get("used") != "nnapi":
        reason = rep.get("reason") or "NNAPI could not run the frozen trunk"
        return _cpu(path, "nnapi", threads, reason, {"nnapi": info} if info else None)
    shape = reference.output_shape

    def run(image: np.ndarray) -> np.ndarray:
        return np.asarray(runner(image), dtype=np.float32).reshape(shape)

    return run, _report("nnapi", "nnapi", rep.get("reason"), **info)


def open_trunk(job: dict[str, Any], *, probe_images: Callable[[], list[np.ndarray]],
               cache_dir: str) -> tuple[TrunkFn, dict[str, Any]]:
    """The frozen trunk for the job's delegate, and the delegate record for events/result."""
    requested = job["delegate"]["requested"]
    threads = int(job["threads"])
    path = job["models"]["frozen"]
    if requested == "gpu":
        return _gpu(path, threads)
    if requested == "nnapi":
        return _nnapi(job, threads, probe_images, cache_dir)
    return _cpu(path, requested, threads, None)
