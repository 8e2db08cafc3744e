"""The frozen trunk (frozen.tflite) on the requested delegate, with an honest record of
which one ran and why: `{"requested", "used", "reason", "info"}`.

cpu / xnnpack → LiteRT's CPU path (XNNPACK when it takes the graph); gpu → a GPU delegate
plugin if one loads, else CPU; nnapi → `device_agent.nnapi.open_nnapi_runner`, else CPU.
A trunk with no frozen layer (fine-tuning from the first one) only scales the image: it runs
on LiteRT's plain CPU kernels, whatever was requested, and the record says why.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from device_agent import delegation, runtime
from device_agent.contract import DELEGATE_INFO, REASONS
from device_agent.errors import BadJob, redact
from device_agent.schema import conform, message

# GPU delegate plugins a phone may have (the TFLite GPU delegate, LiteRT's accelerator);
# ORCH_AGENT_GPU_DELEGATE names another one.
GPU_DELEGATE_LIBRARIES = ("libtensorflowlite_gpu_delegate.so", "libLiteRtGpuAccelerator.so",
                          "libLiteRtOpenClAccelerator.so")

TrunkFn = Callable[[np.ndarray], np.ndarray]
EMPTY_TRUNK_REASON = ("no frozen layers (fine-tuning from the first one): the trunk only "
                      "scales the image, so no delegate has anything to run")


class CpuTrunk:
    """frozen.tflite in the LiteRT interpreter: one image [S,S,3] → features (no batch dim)."""

    def __init__(self, path: str, *, threads: int, delegates: list[Any] | None = None,
                 explicit: str | None = None, default_delegates: bool = True) -> None:
        try:
            self.interpreter = runtime.make_interpreter(
                path, threads=threads, delegates=delegates, explicit=explicit,
                default_delegates=default_delegates)
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


def compact(value: Any, levels: int = 2) -> Any:
    """Diagnostics shaped for the host's egress guard: at most `levels` nested containers,
    short lists, deeper structure summarised as text (device lists become their names)."""
    if isinstance(value, dict):
        if levels <= 0:
            return _label(value)
        return {str(k): compact(v, levels - 1) for k, v in list(value.items())[:32]}
    if isinstance(value, (list, tuple)):
        if levels <= 0:
            return _label(value)
        return [compact(v, levels - 1) for v in list(value)[:16]]
    if isinstance(value, str):
        return redact(value)
    return value


def _label(value: Any) -> str:
    if isinstance(value, dict):
        flat = ", ".join(f"{k}={v}" for k, v in value.items()
                         if not isinstance(v, (dict, list)))
        return redact(str(value.get("name") or value.get("device") or flat))[:120]
    if isinstance(value, (list, tuple)):
        return redact(", ".join(_label(v) for v in value))[:200]
    return str(value)


# A fallback's reason text (kept in agent.log) → its catalogue code (sent to the host).
_REASON_CODES = (
    ("no frozen layers", "trunk_empty"),
    ("XNNPACK did not take", "xnnpack_declined"),
    ("the interpreter cannot show", "xnnpack_unknown"),
    ("no GPU delegate plugin", "gpu_no_plugin"), ("the GPU delegate refused", "gpu_refused"),
    ("the GPU delegate took no", "gpu_no_nodes"), ("no NNAPI plan", "nnapi_no_plan"),
    ("NNAPI binding unavailable", "nnapi_no_binding"),
    ("NNAPI library unavailable", "nnapi_unavailable"), ("NNAPI plan unusable", "nnapi_plan"),
    ("the NNAPI plan takes", "nnapi_plan"), ("NNAPI rejected", "nnapi_model"),
    ("choosing NNAPI device", "nnapi_api29"), ("only NNAPI's CPU reference", "nnapi_reference"),
    ("NNAPI compilation failed", "nnapi_compile"), ("NNAPI execution", "nnapi_execute"),
    ("NNAPI output", "nnapi_mismatch"), ("no NNAPI device", "nnapi_devices"),
    ("listing NNAPI devices", "nnapi_devices"), ("the NNAPI runtime reports no", "nnapi_devices"),
)


def reason_code(reason: str) -> dict[str, Any]:
    """The catalogue message (contract.REASONS) for a fallback reason."""
    code = next((c for prefix, c in _REASON_CODES if prefix in reason), None)
    return message(REASONS, code or "nnapi_other")


def _flat_info(info: dict[str, Any]) -> dict[str, Any]:
    """The record's facts in the contract's closed vocabulary (DELEGATE_INFO)."""
    flat = {**info, **(info.get("nnapi") or {})}
    if flat.get("library"):
        lib = os.path.basename(str(flat["library"]))
        flat["library"] = lib if lib in DELEGATE_INFO.fields["library"].choices else "other"
    return conform(DELEGATE_INFO, flat)


def _report(requested: str, used: str, reason: str | None, **info: Any) -> dict[str, Any]:
    if reason is not None:
        _log_reason(requested, reason)
    return {"requested": requested, "used": used,
            "reason": None if reason is None else reason_code(reason),
            "info": _flat_info(info)}


def _log_reason(requested: str, reason: str) -> None:
    """The full reason goes to agent.log (stderr) on the phone, never to the host."""
    import sys

    sys.stderr.write(f"delegate {requested}: {redact(reason)}\n")


class Trunk:
    """A frozen-trunk function (one image [S,S,3] → features) and its delegate record."""

    def __init__(self, fn: TrunkFn, report: dict[str, Any], close: Any = None,
                 final_info: Any = None, delegation: dict[str, Any] | None = None) -> None:
        self.fn, self.report = fn, report
        self._close, self._final_info = close, final_info
        # result.json's delegation.frozen: which delegate took how many nodes
        self.delegation = delegation or {"delegate": "none", "delegated_nodes": 0,
                                         "total_nodes": None}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.fn(image)

    def close(self) -> dict[str, Any]:
        """Free the accelerator; the delegate record, with timings measured over the run."""
        if self._final_info is not None:
            self.report["info"] = _flat_info({**self.report["info"], **self._final_info()})
            self._final_info = None
        if self._close is not None:
            close, self._close = self._close, None
            close()
        return self.report


def _cpu(path: str, requested: str, threads: int, reason: str | None,
         info: dict[str, Any] | None = None) -> Trunk:
    trunk = CpuTrunk(path, threads=threads)
    xnn = runtime.delegated(trunk.interpreter)
    used = "cpu"
    if requested == "xnnpack":
        if xnn:
            used = "xnnpack"
        elif reason is None:
            reason = "XNNPACK did not take the graph" if xnn is False else \
                "the interpreter cannot show whether XNNPACK ran"
    return Trunk(trunk, _report(requested, used, reason, xnnpack=xnn, threads=threads,
                                **(info or {})), delegation=trunk.interpreter.orch_delegation)


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


def _gpu(path: str, threads: int) -> Trunk:
    delegate, lib, tried = _gpu_delegate()
    if delegate is None:
        return _cpu(path, "gpu", threads, "no GPU delegate plugin could be loaded",
                    {"tried": tried})
    try:
        trunk = CpuTrunk(path, threads=threads, delegates=[delegate], explicit="gpu")
    except BadJob as e:
        return _cpu(path, "gpu", threads, f"the GPU delegate refused the model: {e.message}")
    if runtime.delegated(trunk.interpreter) is False:
        return _cpu(path, "gpu", threads, "the GPU delegate took no part of the graph")
    return Trunk(trunk, _report("gpu", "gpu", None, library=os.path.basename(lib or ""),
                                threads=threads), delegation=trunk.interpreter.orch_delegation)


def _nnapi(job: dict[str, Any], threads: int, probe_images: Callable[[], list[np.ndarray]],
           cache_dir: str) -> Trunk:
    path = job["models"]["frozen"]
    plan = job["models"].get("nnapi_plan")
    if not plan:
        return _cpu(path, "nnapi", threads, "no NNAPI plan")
    try:
        from device_agent.nnapi import open_nnapi_runner
    except ImportError:
        return _cpu(path, "nnapi", threads, "NNAPI binding unavailable")
    reference = CpuTrunk(path, threads=threads)
    probes = probe_images()
    size = reference.input_shape[1]
    batch = np.stack(probes) if probes else np.zeros((0, size, size, 3), np.float32)
    dl = job["delegate"]
    runner, rep = open_nnapi_runner(
        plan, reference_fn=lambda images: np.stack([reference(im) for im in images]),
        probe_images=batch, device_name=dl.get("nnapi_device"), fp16=bool(dl.get("fp16")),
        allow_reference=bool(dl.get("allow_reference")), cache_dir=cache_dir)
    info = dict(rep.get("info") or {})
    if runner is None or rep.get("used") != "nnapi":
        if runner is not None:
            runner.close()
        reason = rep.get("reason") or "NNAPI could not run the frozen trunk"
        return _cpu(path, "nnapi", threads, reason, {"nnapi": info} if info else None)
    shape = reference.output_shape

    def run(image: np.ndarray) -> np.ndarray:
        return np.asarray(runner.run(image[None]), dtype=np.float32).reshape(shape)

    def final_info() -> dict[str, Any]:
        return {k: v for k, v in runner.timing().items() if k != "images"}

    total = sum(delegation.node_counts(path))  # the NNAPI plan runs the whole trunk
    return Trunk(run, _report("nnapi", "nnapi", rep.get("reason"), **info),
                 close=runner.close, final_info=final_info,
                 delegation={"delegate": "nnapi", "delegated_nodes": total,
                             "total_nodes": total})


def _scaling_only(path: str, requested: str, threads: int) -> Trunk:
    """The trunk of a build with nothing frozen: plain CPU kernels, no delegate claimed."""
    trunk = CpuTrunk(path, threads=threads, default_delegates=False)
    return Trunk(trunk, _report(requested, "cpu", EMPTY_TRUNK_REASON, frozen_layers=0,
                                threads=threads),
                 delegation=trunk.interpreter.orch_delegation)


def open_trunk(job: dict[str, Any], *, probe_images: Callable[[], list[np.ndarray]],
               cache_dir: str, empty: bool = False) -> Trunk:
    """The frozen trunk for the job's delegate, with its record for events and result.

    `empty`: the build freezes no layer (its features are the scaled image itself).
    """
    requested = job["delegate"]["requested"]
    threads = int(job["threads"])
    path = job["models"]["frozen"]
    if empty:
        return _scaling_only(path, requested, threads)
    if requested == "gpu":
        return _gpu(path, threads)
    if requested == "nnapi":
        return _nnapi(job, threads, probe_images, cache_dir)
    return _cpu(path, requested, threads, None)
