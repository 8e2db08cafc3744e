"""NNAPI constants (from the NDK's NeuralNetworks.h / NeuralNetworksTypes.h) and named errors.

Every NNAPI call returns a ResultCode; `check()` turns a non-zero one into the NnapiError
subclass of that name, so callers and fallback reasons speak of BAD_DATA, not of 4.
"""

from __future__ import annotations

# OperandCode
FLOAT32 = 0
INT32 = 1
UINT32 = 2
TENSOR_FLOAT32 = 3
TENSOR_INT32 = 4
OPERAND_CODES = {"FLOAT32": FLOAT32, "INT32": INT32, "UINT32": UINT32,
                 "TENSOR_FLOAT32": TENSOR_FLOAT32, "TENSOR_INT32": TENSOR_INT32}

# OperationCode (the subset plans use)
OPERATION_CODES = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4,
                   "MUL": 18, "RESHAPE": 22, "MEAN": 31, "PAD": 32}

# FuseCode
FUSE_CODES = {"NONE": 0, "RELU": 1, "RELU1": 2, "RELU6": 3}

# DeviceTypeCode (ANEURALNETWORKS_DEVICE_UNKNOWN = 0)
DEVICE_TYPES = {0: "UNKNOWN", 1: "OTHER", 2: "CPU", 3: "GPU", 4: "ACCELERATOR"}

# PreferenceCode
PREFER_LOW_POWER = 0
PREFER_FAST_SINGLE_ANSWER = 1
PREFER_SUSTAINED_SPEED = 2

# DurationCode; a duration that was not measured reads as UINT64_MAX.
DURATION_ON_HARDWARE = 0
DURATION_IN_DRIVER = 1
NO_DURATION = 2**64 - 1

BYTE_SIZE_OF_CACHE_TOKEN = 32
# Operand values up to this size are copied by setOperandValue; larger ones are referenced.
MAX_SIZE_OF_IMMEDIATELY_COPIED_VALUES = 128

# Feature levels: 27…31 (Android 8.1…12), then 1000006, 1000007, 1000008 (levels 6, 7, 8).
_FEATURE_LEVELS = {27: 1, 28: 2, 29: 3, 30: 4, 31: 5, 1000006: 6, 1000007: 7, 1000008: 8}


def feature_level_number(code: int) -> int | None:
    """NNAPI feature level 1…8 for a getFeatureLevel value (None when unknown)."""
    if code in _FEATURE_LEVELS:
        return _FEATURE_LEVELS[code]
    return code - 1000000 if code > 1000000 else None


class NnapiError(Exception):
    """A failed NNAPI call: `code` (ResultCode), `code_name`, `call`, the library's `detail`."""

    code = -1
    code_name = "UNKNOWN"

    def __init__(self, call: str, detail: str = "", code: int | None = None) -> None:
        if code is not None:
            self.code = code
            if type(self) is NnapiError:
                self.code_name = f"RESULT_{code}"
        self.call = call
        self.detail = detail
        text = f"{call} returned {self.code_name}"
        super().__init__(f"{text}: {detail}" if detail else text)


class OutOfMemory(NnapiError):
    code, code_name = 1, "OUT_OF_MEMORY"


class Incomplete(NnapiError):
    code, code_name = 2, "INCOMPLETE"


class UnexpectedNull(NnapiError):
    code, code_name = 3, "UNEXPECTED_NULL"


class BadData(NnapiError):
    code, code_name = 4, "BAD_DATA"


class OpFailed(NnapiError):
    code, code_name = 5, "OP_FAILED"


class BadState(NnapiError):
    code, code_name = 6, "BAD_STATE"


class Unmappable(NnapiError):
    code, code_name = 7, "UNMAPPABLE"


class OutputInsufficientSize(NnapiError):
    code, code_name = 8, "OUTPUT_INSUFFICIENT_SIZE"


class UnavailableDevice(NnapiError):
    code, code_name = 9, "UNAVAILABLE_DEVICE"


class MissedDeadlineTransient(NnapiError):
    code, code_name = 10, "MISSED_DEADLINE_TRANSIENT"


class MissedDeadlinePersistent(NnapiError):
    code, code_name = 11, "MISSED_DEADLINE_PERSISTENT"


class ResourceExhaustedTransient(NnapiError):
    code, code_name = 12, "RESOURCE_EXHAUSTED_TRANSIENT"


class ResourceExhaustedPersistent(NnapiError):
    code, code_name = 13, "RESOURCE_EXHAUSTED_PERSISTENT"


class DeadObject(NnapiError):
    code, code_name = 14, "DEAD_OBJECT"


ERRORS = {cls.code: cls for cls in (
    OutOfMemory, Incomplete, UnexpectedNull, BadData, OpFailed, BadState, Unmappable,
    OutputInsufficientSize, UnavailableDevice, MissedDeadlineTransient, MissedDeadlinePersistent,
    ResourceExhaustedTransient, ResourceExhaustedPersistent, DeadObject)}


def error_for(code: int, call: str, detail: str = "") -> NnapiError:
    """The named error for a non-zero ResultCode."""
    cls = ERRORS.get(code)
    return cls(call, detail) if cls else NnapiError(call, detail, code=code)


class NnapiUnavailable(Exception):
    """The NNAPI library (or a call this runtime lacks) cannot be used at all."""
