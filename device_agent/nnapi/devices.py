"""NNAPI devices: list them, ask which plan ops each supports, and choose one to compile for.

`nnapi-reference` is NNAPI's CPU reference implementation: correct but slower than
LiteRT's own CPU path, so it is only a candidate when the job allows it.
"""

from __future__ import annotations

from ctypes import byref, c_bool, c_char_p, c_int32, c_int64, c_uint32, c_void_p
from dataclasses import dataclass

from device_agent.nnapi.binding import Nnapi
from device_agent.nnapi.codes import DEVICE_TYPES, feature_level_number

REFERENCE_DEVICE = "nnapi-reference"
# Preference among devices that support every op: dedicated accelerators first.
_TYPE_RANK = {"ACCELERATOR": 0, "GPU": 1, "OTHER": 2, "CPU": 3, "UNKNOWN": 4}


@dataclass
class Device:
    index: int
    name: str
    type_code: int
    feature_level_code: int | None
    version: str
    handle: c_void_p | None = None

    @property
    def type_name(self) -> str:
        return DEVICE_TYPES.get(self.type_code, f"TYPE_{self.type_code}")

    @property
    def feature_level(self) -> int | None:
        code = self.feature_level_code
        return feature_level_number(code) if code is not None else None

    @property
    def is_reference(self) -> bool:
        return self.name == REFERENCE_DEVICE

    def describe(self) -> dict:
        return {"name": self.name, "type": self.type_name, "feature_level": self.feature_level,
                "version": self.version}


def _text(raw: bytes | None) -> str:
    return raw.decode(errors="replace") if raw else ""


def list_devices(lib: Nnapi) -> list[Device]:
    """Every device the NNAPI runtime reports (needs API 29)."""
    count = c_uint32()
    lib.call("ANeuralNetworks_getDeviceCount", byref(count))
    devices = []
    for i in range(count.value):
        handle = c_void_p()
        lib.call("ANeuralNetworks_getDevice", i, byref(handle))
        name, version = c_char_p(), c_char_p()
        dtype, level = c_int32(), c_int64()
        lib.call("ANeuralNetworksDevice_getName", handle, byref(name))
        lib.call("ANeuralNetworksDevice_getType", handle, byref(dtype))
        lib.call("ANeuralNetworksDevice_getFeatureLevel", handle, byref(level))
        if lib.has("ANeuralNetworksDevice_getVersion"):
            lib.call("ANeuralNetworksDevice_getVersion", handle, byref(version))
        devices.append(Device(i, _text(name.value), dtype.value, level.value,
                              _text(version.value), handle))
    return devices


def unsupported_ops(lib: Nnapi, model_handle: c_void_p, device: Device,
                    op_types: list[str]) -> list[str]:
    """Names of the plan's op types this device cannot run (empty when it runs them all)."""
    flags = (c_bool * max(len(op_types), 1))()
    devs = (c_void_p * 1)(device.handle)
    lib.call("ANeuralNetworksModel_getSupportedOperationsForDevices", model_handle, devs, 1, flags)
    missing: list[str] = []
    for i, t in enumerate(op_types):
        if not flags[i] and t not in missing:
            missing.append(t)
    return missing


def _label(d: Device) -> str:
    return f"{d.name} ({d.type_name})"


def choose_devices(
    devices: list[Device], unsupported: dict[int, list[str]], *, device_name: str | None,
    allow_reference: bool,
) -> tuple[list[Device], str | None]:
    """Devices to try, best first, each supporting every op; or no device and the reason.

    `unsupported` maps a device index to the op types it lacks.
    """
    if not devices:
        return [], "the NNAPI runtime reports no devices"
    if device_name is not None:
        named = [d for d in devices if d.name == device_name]
        if not named:
            listed = ", ".join(_label(d) for d in devices)
            return [], f"no NNAPI device named {device_name!r} (devices: {listed})"
        d = named[0]
        if d.is_reference and not allow_reference:
            return [], (f"{d.name} is NNAPI's CPU reference implementation, slower than LiteRT's "
                        "CPU path; set nnapi.allow_reference to use it")
        if unsupported.get(d.index):
            return [], f"{_label(d)} does not support {', '.join(unsupported[d.index])}"
        return [d], None
    pool = [d for d in devices if allow_reference or not d.is_reference]
    if not pool:
        return [], (f"only NNAPI's CPU reference implementation ({REFERENCE_DEVICE}) is present, "
                    "slower than LiteRT's CPU path; set nnapi.allow_reference to use it")
    able = [d for d in pool if not unsupported.get(d.index)]
    if not able:
        lacks = "; ".join(f"{_label(d)} lacks {', '.join(unsupported[d.index])}" for d in pool)
        skipped = [d for d in devices if d not in pool]
        note = (f"; {skipped[0].name} (CPU reference) not considered without "
                "nnapi.allow_reference") if skipped else ""
        return [], f"no NNAPI device supports every op of the plan: {lacks}{note}"
    able.sort(key=lambda d: (d.is_reference, _TYPE_RANK.get(d.type_name, 9),
                             -(d.feature_level_code or 0), d.index))
    return able, None
