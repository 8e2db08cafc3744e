"""`open_nnapi_runner`: the agent's one way into NNAPI. It never raises because NNAPI is unusable.

Each step can end in a recorded fallback to LiteRT's CPU path, with the reason:
plan → library → model → device choice → compilation → probe run → correctness guard.
Only errors of `reference_fn` itself (LiteRT CPU, the fallback) propagate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from device_agent.nnapi.binding import Nnapi
from device_agent.nnapi.codes import NnapiError, NnapiUnavailable
from device_agent.nnapi.devices import Device, choose_devices, list_devices, unsupported_ops
from device_agent.nnapi.guard import compare
from device_agent.nnapi.model import NnapiModel
from device_agent.nnapi.planfile import PlanError, read_plan
from device_agent.nnapi.runner import NnapiRunner, cache_token, compile_model


class _Fallback(Exception):
    """NNAPI cannot be used; the message is the recorded reason."""


class _ReferenceFailed(Exception):
    """reference_fn raised: a CPU-path problem, re-raised to the caller."""


def _blank_info(fp16: bool) -> dict:
    return {"device": None, "type": None, "feature_level": None, "fp16": bool(fp16),
            "simulated": False, "ms_per_image_hw": None, "ms_per_image_driver": None,
            "ms_per_image_wall": None, "library": None, "runtime_feature_level": None,
            "execution": None, "devices": [], "plan_hash": None, "caching": False,
            "guard": None}


def open_nnapi_runner(plan_path, *, reference_fn: Callable[[np.ndarray], np.ndarray],
                      probe_images: np.ndarray, device_name: str | None = None,
                      fp16: bool = False, allow_reference: bool = False,
                      cache_dir: str | None = None):
    """Return (runner, record): a checked NNAPI runner, or (None, record) with used="cpu".

    record = {"used": "nnapi"|"cpu", "reason": str|None, "info": {device, type,
    feature_level, fp16, simulated, ms_per_image_hw, …}}. `probe_images` (float32
    [N,S,S,3], RGB 0…255) go through NNAPI and through `reference_fn` (LiteRT CPU on the same
    frozen.tflite); NNAPI is used only if the two agree (see guard.py for the tolerance).
    """
    info = _blank_info(fp16)
    held: dict = {}
    try:
        runner = _open(plan_path, reference_fn, probe_images, device_name, fp16,
                       allow_reference, cache_dir, info, held)
        return runner, {"used": "nnapi", "reason": None, "info": info}
    except _Fallback as fb:
        _release(held)
        return None, {"used": "cpu", "reason": str(fb), "info": info}
    except _ReferenceFailed as ref:
        _release(held)
        raise ref.__cause__ from None  # type: ignore[misc]
    except Exception as exc:  # a bug or an odd runtime must not stop the run: record it
        _release(held)
        reason = f"unexpected {type(exc).__name__} while setting up NNAPI: {exc}"
        return None, {"used": "cpu", "reason": reason, "info": info}


def _release(held: dict) -> None:
    runner = held.pop("runner", None)
    if runner is not None:
        runner.close()
        return
    lib, comp, model = held.get("lib"), held.pop("comp", None), held.pop("model", None)
    if comp is not None:
        lib.free("ANeuralNetworksCompilation_free", comp)
    if model is not None:
        model.free()


def _open(plan_path, reference_fn, probe_images, device_name, fp16, allow_reference, cache_dir,
          info: dict, held: dict) -> NnapiRunner:
    try:
        plan = read_plan(plan_path)
    except PlanError as exc:
        raise _Fallback(f"NNAPI plan unusable: {exc}") from exc
    info["plan_hash"] = plan.hash
    probes = np.asarray(probe_images, dtype=np.float32)
    if probes.ndim != 4 or probes.shape[1:] != plan.input_shape[1:]:
        raise _Fallback(f"the NNAPI plan takes images {list(plan.input_shape[1:])}, the probe "
                        f"images are {list(probes.shape[1:])}")
    if probes.shape[0] == 0:
        raise _Fallback("no probe images to check NNAPI against LiteRT's CPU")

    try:
        lib = Nnapi()
    except NnapiUnavailable as exc:
        raise _Fallback(f"NNAPI library unavailable: {exc}") from exc
    held["lib"] = lib
    info.update(library=lib.path, simulated=lib.simulated,
                runtime_feature_level=lib.runtime_feature_level())
    try:
        held["model"] = model = NnapiModel(lib, plan, fp16=fp16)
    except (NnapiError, NnapiUnavailable) as exc:
        raise _Fallback(f"NNAPI rejected the plan's model: {exc}") from exc

    candidates = _candidates(lib, model, device_name, allow_reference, info)
    device = _compile_first(lib, model, candidates, plan.hash, fp16, cache_dir, info, held)
    runner = NnapiRunner(lib, model, held.pop("comp"), input_shape=plan.input_shape,
                         output_shape=plan.output_shape, timed=device is not None)
    held["runner"] = runner
    label = device.name if device is not None else "the runtime's choice"
    try:
        got = runner.run(probes)
    except NnapiError as exc:
        raise _Fallback(f"NNAPI execution on {label} failed: {exc}") from exc
    try:
        want = reference_fn(probes)
    except Exception as exc:
        raise _ReferenceFailed() from exc
    check = compare(got, want, fp16=fp16)
    info["guard"] = dict(check, probes=int(probes.shape[0]))
    if not check["ok"]:
        if check["max_abs_diff"] is None:
            what = "shapes or finiteness differ"
        else:
            what = (f"max |diff| {check['max_abs_diff']:.3g} > {check['bound']:.3g} "
                    f"(atol {check['atol']:g} + rtol {check['rtol']:g} x max|cpu|)")
        raise _Fallback(f"NNAPI output on {label} differs from LiteRT CPU: {what}")
    # Only now, with NNAPI checked and in use, does the record name the device.
    if device is not None:
        info.update(device=device.name, type=device.type_name,
                    feature_level=device.feature_level, version=device.version,
                    simulated=lib.simulated or device.name.startswith("sim-"))
    timing = {k: v for k, v in runner.timing().items() if k != "images"}
    info.update(timing, execution="compute" if runner.uses_compute else "startCompute",
                caching=bool(cache_dir) and lib.has("ANeuralNetworksCompilation_setCaching"))
    held.pop("runner")
    return runner


def _candidates(lib: Nnapi, model: NnapiModel, device_name: str | None, allow_reference: bool,
                info: dict) -> list[Device | None]:
    """Devices to compile for, best first; [None] (the runtime's choice) before API 29."""
    if not lib.has_devices:
        if device_name is not None:
            raise _Fallback(f"choosing NNAPI device {device_name!r} needs Android 10 (API 29); "
                            "this runtime cannot list devices")
        info["device_choice"] = "runtime (no device list before API 29)"
        return [None]  # the runtime picks, and may pick its CPU fallback
    try:
        devices = list_devices(lib)
    except NnapiError as exc:
        raise _Fallback(f"listing NNAPI devices failed: {exc}") from exc
    lacking = {}
    for d in devices:
        try:
            lacking[d.index] = unsupported_ops(lib, model.handle, d, model.op_types)
        except NnapiError as exc:  # one broken driver must not hide the others
            lacking[d.index] = [f"(support query failed: {exc.code_name})"]
    info["devices"] = [dict(d.describe(), unsupported=lacking[d.index]) for d in devices]
    chosen, reason = choose_devices(devices, lacking, device_name=device_name,
                                    allow_reference=allow_reference)
    if reason:
        raise _Fallback(reason)
    return list(chosen)


def _compile_first(lib: Nnapi, model: NnapiModel, candidates: list[Device | None],
                   plan_hash: str, fp16: bool, cache_dir: str | None, info: dict,
                   held: dict) -> Device | None:
    """Compile for the first candidate that compiles (into held["comp"]); return it."""
    failures = []
    for device in candidates:
        name = device.name if device is not None else None
        token = cache_token(plan_hash, name, fp16)
        try:
            held["comp"] = compile_model(lib, model, device, cache_dir=cache_dir, token=token)
        except NnapiError as exc:
            failures.append(f"{name or 'the runtime'}: {exc}")
            continue
        if failures:
            info["compile_failures"] = failures
        return device
    raise _Fallback(f"NNAPI compilation failed ({'; '.join(failures)})")
