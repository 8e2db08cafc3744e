"""Replay a plan as an ANeuralNetworksModel, owning every buffer NNAPI was given.

NNAPI copies operand values of at most 128 bytes; larger ones it only references, and reads
them again when it compiles or runs the model. So the model keeps a private copy of each
value (nobody else can free or change it) until `free()`, after the NNAPI model is gone.
"""

from __future__ import annotations

from ctypes import byref, c_uint32, c_void_p

import numpy as np

from device_agent.nnapi.binding import Nnapi, OperandType
from device_agent.nnapi.codes import (
    OPERAND_CODES,
    OPERATION_CODES,
    NnapiError,
    NnapiUnavailable,
)
from device_agent.nnapi.planfile import TENSOR_DTYPES, Plan

_SCALAR_DTYPES = {"FLOAT32": np.dtype("<f4"), "INT32": np.dtype("<i4"), "UINT32": np.dtype("<u4")}


def _indexes(values: list[int]) -> tuple[int, object]:
    return len(values), (c_uint32 * max(len(values), 1))(*values)


def _constant(operand: dict, tensors: dict[str, np.ndarray]) -> np.ndarray | None:
    """A private copy of an operand's value, or None for a variable."""
    if "tensor" in operand:
        return np.array(tensors[operand["tensor"]], dtype=TENSOR_DTYPES[operand["type"]], copy=True)
    if "value" in operand:
        return np.array([operand["value"]], dtype=_SCALAR_DTYPES[operand["type"]])
    return None


class NnapiModel:
    """A finished NNAPI model built from a plan; `handle` is the ANeuralNetworksModel*."""

    def __init__(self, lib: Nnapi, plan: Plan, *, fp16: bool = False) -> None:
        self.lib = lib
        self.handle: c_void_p | None = c_void_p()
        self._buffers: dict[int, np.ndarray] = {}
        self.op_types = plan.op_types()
        lib.call("ANeuralNetworksModel_create", byref(self.handle))
        try:
            self._build(plan, fp16)
        except BaseException:
            self.free()
            raise

    def _build(self, plan: Plan, fp16: bool) -> None:
        lib, spec = self.lib, plan.spec
        for i, operand in enumerate(spec["operands"]):
            dims = operand.get("dims", []) if operand["type"].startswith("TENSOR") else []
            count, dim_array = _indexes(dims)
            otype = OperandType(OPERAND_CODES[operand["type"]], count,
                                dim_array if dims else None, 0.0, 0)
            lib.call("ANeuralNetworksModel_addOperand", self.handle, byref(otype))
            value = _constant(operand, plan.tensors)
            if value is not None:
                self._buffers[i] = value
                lib.call("ANeuralNetworksModel_setOperandValue", self.handle, i,
                         value.ctypes.data, value.nbytes)
        for k, op in enumerate(spec["operations"]):
            n_in, ins = _indexes(op["inputs"])
            n_out, outs = _indexes(op["outputs"])
            try:
                lib.call("ANeuralNetworksModel_addOperation", self.handle,
                         OPERATION_CODES[op["type"]], n_in, ins, n_out, outs)
            except NnapiError as exc:
                where = f"{exc.call} (operation {k}: {op['type']} {op.get('layer', '')})".strip()
                raise type(exc)(where, exc.detail) from exc
        n_in, ins = _indexes(spec["inputs"])
        n_out, outs = _indexes(spec["outputs"])
        lib.call("ANeuralNetworksModel_identifyInputsAndOutputs", self.handle, n_in, ins, n_out,
                 outs)
        if fp16:
            if not lib.has("ANeuralNetworksModel_relaxComputationFloat32toFloat16"):
                raise NnapiUnavailable("fp16 relaxation needs NNAPI of Android 9 (API 28)")
            lib.call("ANeuralNetworksModel_relaxComputationFloat32toFloat16", self.handle, True)
        lib.call("ANeuralNetworksModel_finish", self.handle)

    def free(self) -> None:
        """Free the NNAPI model, then (never before) the buffers it referenced."""
        if self.handle is not None:
            self.lib.free("ANeuralNetworksModel_free", self.handle)
            self.handle = None
        self._buffers.clear()
