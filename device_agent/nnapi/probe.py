"""What NNAPI this runtime offers (library, devices), for `python -m device_agent info`."""

from __future__ import annotations

from device_agent.nnapi.binding import Nnapi
from device_agent.nnapi.codes import NnapiError, NnapiUnavailable
from device_agent.nnapi.devices import list_devices


def nnapi_info() -> dict:
    """{available, library, simulated, runtime_feature_level, devices | reason}; never raises."""
    try:
        lib = Nnapi()
    except NnapiUnavailable as exc:
        return {"available": False, "reason": str(exc)}
    info: dict = {"available": True, "library": lib.path, "simulated": lib.simulated,
                  "runtime_feature_level": lib.runtime_feature_level()}
    if not lib.has_devices:
        info.update(devices=None, reason="no device list before Android 10 (API 29)")
        return info
    try:
        devices = list_devices(lib)
    except NnapiError as exc:
        info.update(available=False, reason=f"listing devices failed: {exc}")
        return info
    info["devices"] = [d.describe() for d in devices]
    info["simulated"] = lib.simulated or any(d.name.startswith("sim-") for d in devices)
    return info
