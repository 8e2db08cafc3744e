"""ctypes declarations of the NNAPI C functions the agent uses, loaded from libneuralnetworks.so.

NNAPI is a public platform library on Android (NDK API since 8.1, API 27); any process can
load it by soname. `ORCH_NNAPI_LIB` names another library instead (the simulated one on
build machines and virtual phones). Functions newer than the phone's runtime are simply
absent; `has()` tells which are there.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import (
    POINTER,
    c_bool,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

from device_agent.nnapi.codes import NnapiUnavailable, error_for

LIBRARY = "libneuralnetworks.so"
ENV_LIBRARY = "ORCH_NNAPI_LIB"


class OperandType(ctypes.Structure):
    """ANeuralNetworksOperandType."""

    _fields_ = [
        ("type", c_int32),
        ("dimensionCount", c_uint32),
        ("dimensions", POINTER(c_uint32)),
        ("scale", ctypes.c_float),
        ("zeroPoint", c_int32),
    ]


_H = c_void_p  # every NNAPI object is an opaque pointer
_IO = [_H, c_int32, POINTER(OperandType), c_void_p, c_size_t]

# name: (restype, argtypes, first API level that has it)
FUNCTIONS: dict[str, tuple[object, list, int]] = {
    "ANeuralNetworksModel_create": (c_int, [POINTER(_H)], 27),
    "ANeuralNetworksModel_free": (None, [_H], 27),
    "ANeuralNetworksModel_finish": (c_int, [_H], 27),
    "ANeuralNetworksModel_addOperand": (c_int, [_H, POINTER(OperandType)], 27),
    "ANeuralNetworksModel_setOperandValue": (c_int, [_H, c_int32, c_void_p, c_size_t], 27),
    "ANeuralNetworksModel_addOperation": (
        c_int, [_H, c_int32, c_uint32, POINTER(c_uint32), c_uint32, POINTER(c_uint32)], 27),
    "ANeuralNetworksModel_identifyInputsAndOutputs": (
        c_int, [_H, c_uint32, POINTER(c_uint32), c_uint32, POINTER(c_uint32)], 27),
    "ANeuralNetworksModel_relaxComputationFloat32toFloat16": (c_int, [_H, c_bool], 28),
    "ANeuralNetworksModel_getSupportedOperationsForDevices": (
        c_int, [_H, POINTER(_H), c_uint32, POINTER(c_bool)], 29),
    "ANeuralNetworks_getDeviceCount": (c_int, [POINTER(c_uint32)], 29),
    "ANeuralNetworks_getDevice": (c_int, [c_uint32, POINTER(_H)], 29),
    "ANeuralNetworksDevice_getName": (c_int, [_H, POINTER(c_char_p)], 29),
    "ANeuralNetworksDevice_getType": (c_int, [_H, POINTER(c_int32)], 29),
    "ANeuralNetworksDevice_getVersion": (c_int, [_H, POINTER(c_char_p)], 29),
    "ANeuralNetworksDevice_getFeatureLevel": (c_int, [_H, POINTER(c_int64)], 29),
    "ANeuralNetworksCompilation_create": (c_int, [_H, POINTER(_H)], 27),
    "ANeuralNetworksCompilation_createForDevices": (
        c_int, [_H, POINTER(_H), c_uint32, POINTER(_H)], 29),
    "ANeuralNetworksCompilation_setPreference": (c_int, [_H, c_int32], 27),
    "ANeuralNetworksCompilation_setCaching": (c_int, [_H, c_char_p, POINTER(c_uint8)], 29),
    "ANeuralNetworksCompilation_finish": (c_int, [_H], 27),
    "ANeuralNetworksCompilation_free": (None, [_H], 27),
    "ANeuralNetworksExecution_create": (c_int, [_H, POINTER(_H)], 27),
    "ANeuralNetworksExecution_free": (None, [_H], 27),
    "ANeuralNetworksExecution_setInput": (c_int, _IO, 27),
    "ANeuralNetworksExecution_setOutput": (c_int, _IO, 27),
    "ANeuralNetworksExecution_startCompute": (c_int, [_H, POINTER(_H)], 27),
    "ANeuralNetworksEvent_wait": (c_int, [_H], 27),
    "ANeuralNetworksEvent_free": (None, [_H], 27),
    "ANeuralNetworksExecution_compute": (c_int, [_H], 29),
    "ANeuralNetworksExecution_setMeasureTiming": (c_int, [_H, c_bool], 29),
    "ANeuralNetworksExecution_getDuration": (c_int, [_H, c_int32, POINTER(c_uint64)], 29),
    "ANeuralNetworks_getRuntimeFeatureLevel": (c_int64, [], 31),
}

# Device enumeration, per-device compilation, compute() and timing arrived together (API 29).
DEVICE_API = ("ANeuralNetworks_getDeviceCount", "ANeuralNetworks_getDevice",
              "ANeuralNetworksDevice_getName", "ANeuralNetworksDevice_getType",
              "ANeuralNetworksDevice_getFeatureLevel",
              "ANeuralNetworksModel_getSupportedOperationsForDevices",
              "ANeuralNetworksCompilation_createForDevices")
# Marker and diagnostics exported only by the simulated library (orchestrator/simnnapi).
SIMULATION_MARKER = "OrchFakeNnapi_isSimulated"
LAST_ERROR = "OrchFakeNnapi_lastError"


class Nnapi:
    """The loaded library: `call(name, *args)` raises the named NnapiError on a non-zero result."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.environ.get(ENV_LIBRARY) or LIBRARY
        try:
            self._lib = ctypes.CDLL(self.path)
        except OSError as exc:
            raise NnapiUnavailable(f"{self.path} cannot be loaded ({exc})") from exc
        self._fns: dict[str, object] = {}
        for name, (restype, argtypes, level) in FUNCTIONS.items():
            fn = getattr(self._lib, name, None)
            if fn is None:
                if level == 27:
                    raise NnapiUnavailable(f"{self.path} has no {name}: not an NNAPI library")
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            self._fns[name] = fn
        self.simulated = getattr(self._lib, SIMULATION_MARKER, None) is not None
        self._last_error = getattr(self._lib, LAST_ERROR, None)
        if self._last_error is not None:
            self._last_error.restype = c_char_p
            self._last_error.argtypes = []

    def has(self, *names: str) -> bool:
        return all(n in self._fns for n in names)

    @property
    def has_devices(self) -> bool:
        """Device enumeration and per-device compilation (API 29+)."""
        return self.has(*DEVICE_API)

    def runtime_feature_level(self) -> int | None:
        fn = self._fns.get("ANeuralNetworks_getRuntimeFeatureLevel")
        return int(fn()) if fn is not None else None  # type: ignore[operator]

    def call(self, name: str, *args: object) -> None:
        """Call an NNAPI function that returns a ResultCode; raise its named error if not 0."""
        fn = self._fns.get(name)
        if fn is None:
            raise NnapiUnavailable(f"{self.path} has no {name} (runtime too old)")
        rc = fn(*args)  # type: ignore[operator]
        if rc != 0:
            raise error_for(int(rc), name, self.last_error())

    def free(self, name: str, handle: c_void_p | None) -> None:
        """Call one of the void *_free functions (a NULL handle is ignored)."""
        if handle is not None and handle.value:
            self._fns[name](handle)  # type: ignore[operator]

    def last_error(self) -> str:
        """The simulated library's reason for its last failure ('' from a real NNAPI)."""
        if self._last_error is None:
            return ""
        text = self._last_error()
        return text.decode(errors="replace") if text else ""
