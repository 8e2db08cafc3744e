"""`python -m device_agent info`: what this runtime has (the host's `devices doctor` reads it)."""

from __future__ import annotations

import platform
import sys
from typing import Any

from device_agent import runtime, trunk


def _nnapi() -> dict[str, Any]:
    """Whether libneuralnetworks.so loads, and the devices it lists (Android 10+)."""
    try:
        from device_agent.nnapi.binding import Nnapi
        from device_agent.nnapi.codes import NnapiUnavailable
        from device_agent.nnapi.devices import list_devices
    except ImportError:
        return {"available": False, "reason": "NNAPI binding unavailable"}
    try:
        lib = Nnapi()
    except NnapiUnavailable as e:
        return {"available": False, "reason": f"NNAPI library unavailable: {e}"}
    out: dict[str, Any] = {"available": True, "library": lib.path, "simulated": lib.simulated,
                           "runtime_feature_level": lib.runtime_feature_level()}
    if lib.has_devices:
        try:
            out["devices"] = [d.describe() for d in list_devices(lib)]
        except Exception as e:  # a driver that fails to list must not break `info`
            out["devices_error"] = f"{type(e).__name__}: {e}"
    return out


def _gpu() -> dict[str, Any]:
    if runtime.INTERPRETER_NAME is None:
        return {"available": False, "reason": "no interpreter"}
    delegate, lib, tried = trunk._gpu_delegate()
    if delegate is None:
        return {"available": False, "reason": "no GPU delegate plugin could be loaded",
                "tried": tried}
    return {"available": True, "library": lib}


def info() -> dict[str, Any]:
    """Python, numpy, Pillow, the interpreter, and the delegates this runtime can offer."""
    try:
        import PIL

        pillow: str | None = PIL.__version__
    except ImportError:
        pillow = None
    versions = runtime.versions()
    interp = runtime.INTERPRETER_NAME
    return {
        "agent_version": versions["agent"],
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "numpy": versions["numpy"],
        "pillow": pillow,
        "interpreter": {"name": interp, "version": versions["interpreter_version"]},
        "delegates": {
            "cpu": {"available": interp is not None},
            "xnnpack": {"available": interp is not None},
            "gpu": _gpu(),
            "nnapi": _nnapi(),
        },
        "byteorder": sys.byteorder,
    }
