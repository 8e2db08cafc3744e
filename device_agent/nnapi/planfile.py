"""The NNAPI plan of a frozen trunk: nnapi_plan.json (the op list) + nnapi_plan.npz (tensors).

The host writes it beside frozen.tflite (models/nnapi_plan.py); the agent reads it and
replays it through NNAPI call for call. Format version 1:

    {"format": "orch-nnapi-plan", "version": 1,
     "input":  {"shape": [1, S, S, 3], "dtype": "float32", "range": [0, 255]},
     "output": {"shape": [1, h, w, c] or [1, D], "dtype": "float32"},
     "operands": [{"type": "TENSOR_FLOAT32", "dims": [1, S, S, 3]},             variable
                  {"type": "TENSOR_FLOAT32", "dims": [8, 3, 3, 3],
                   "tensor": "conv1.filter"},                                  npz constant
                  {"type": "INT32", "value": 1}, …],                           scalar constant
     "operations": [{"type": "CONV_2D", "inputs": [0, 1, 2, …], "outputs": [7],
                     "layer": "conv1"}, …],
     "inputs": [0], "outputs": [k],
     "hash": sha256 over this JSON without "hash" and every tensor (see plan_hash)}

Operations use NNAPI's own input lists (e.g. CONV_2D with explicit padding: input, filter
[Cout, kh, kw, Cin], bias, pad left/right/top/bottom, stride w/h, fuse code).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_agent.nnapi.codes import OPERAND_CODES, OPERATION_CODES

PLAN_JSON = "nnapi_plan.json"
PLAN_NPZ = "nnapi_plan.npz"
FORMAT = "orch-nnapi-plan"
VERSION = 1
TENSOR_DTYPES = {"TENSOR_FLOAT32": np.dtype("<f4"), "TENSOR_INT32": np.dtype("<i4")}
SCALAR_TYPES = ("FLOAT32", "INT32", "UINT32")


class PlanError(Exception):
    """The plan files are missing, malformed, or do not match their hash."""


@dataclass
class Plan:
    spec: dict
    tensors: dict[str, np.ndarray]

    @property
    def hash(self) -> str:
        return str(self.spec["hash"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["input"]["shape"])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["output"]["shape"])

    def op_types(self) -> list[str]:
        return [op["type"] for op in self.spec["operations"]]


def _canonical(spec: dict) -> bytes:
    body = {k: v for k, v in spec.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def plan_hash(spec: dict, tensors: dict[str, np.ndarray]) -> str:
    """sha256 of the plan JSON (minus its hash) and of every tensor's name, dtype, shape, bytes."""
    h = hashlib.sha256(_canonical(spec))
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{list(a.shape)}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def validate(spec: dict, tensors: dict[str, np.ndarray]) -> None:
    """Raise PlanError unless every operand, tensor and operation is well formed."""
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise PlanError(f"not an {FORMAT} v{VERSION} file")
    operands = spec.get("operands")
    operations = spec.get("operations")
    if not isinstance(operands, list) or not isinstance(operations, list):
        raise PlanError("operands and operations must be lists")
    for i, o in enumerate(operands):
        t = o.get("type")
        if t not in OPERAND_CODES:
            raise PlanError(f"operand {i}: unknown type {t!r}")
        if t in SCALAR_TYPES:
            if "value" in o and not isinstance(o["value"], (int, float)):
                raise PlanError(f"operand {i}: scalar value must be a number")
            continue
        if not all(isinstance(d, int) and d > 0 for d in o.get("dims", [])) or not o.get("dims"):
            raise PlanError(f"operand {i}: dims must be positive integers")
        name = o.get("tensor")
        if name is None:
            continue
        a = tensors.get(name)
        if a is None:
            raise PlanError(f"operand {i}: tensor {name!r} missing from {PLAN_NPZ}")
        if a.dtype != TENSOR_DTYPES[t] or list(a.shape) != o["dims"]:
            raise PlanError(f"operand {i}: tensor {name!r} is {a.dtype}{list(a.shape)}, "
                            f"expected {TENSOR_DTYPES[t]}{o['dims']}")
    n = len(operands)
    for k, op in enumerate(operations):
        if op.get("type") not in OPERATION_CODES:
            raise PlanError(f"operation {k}: unknown type {op.get('type')!r}")
        if not all(isinstance(i, int) and 0 <= i < n for i in op["inputs"] + op["outputs"]):
            raise PlanError(f"operation {k}: operand index out of range")
    for key in ("inputs", "outputs"):
        if not spec.get(key) or not all(isinstance(i, int) and 0 <= i < n for i in spec[key]):
            raise PlanError(f"{key}: operand indexes missing or out of range")


def write_plan(out_dir: str | Path, spec: dict, tensors: dict[str, np.ndarray]) -> Path:
    """Validate, hash and write both files into out_dir; return the JSON's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    spec = dict(spec, format=FORMAT, version=VERSION)
    validate(spec, tensors)
    spec["hash"] = plan_hash(spec, tensors)
    npz_tmp = out / (PLAN_NPZ + ".tmp.npz")
    np.savez(npz_tmp, **tensors)
    os.replace(npz_tmp, out / PLAN_NPZ)
    json_tmp = out / (PLAN_JSON + ".tmp")
    json_tmp.write_text(json.dumps(spec, indent=1) + "\n")
    os.replace(json_tmp, out / PLAN_JSON)
    return out / PLAN_JSON


def read_plan(path: str | Path) -> Plan:
    """Read a plan (its JSON path or its folder), check its structure and hash."""
    p = Path(path)
    json_path = p / PLAN_JSON if p.is_dir() else p
    npz_path = json_path.with_name(PLAN_NPZ)
    try:
        spec = json.loads(json_path.read_text())
        with np.load(npz_path, allow_pickle=False) as z:
            tensors = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise PlanError(f"cannot read the plan at {json_path.parent}: {exc}") from exc
    if not isinstance(spec, dict):
        raise PlanError(f"{json_path.name} is not a JSON object")
    validate(spec, tensors)
    if spec.get("hash") != plan_hash(spec, tensors):
        raise PlanError("content does not match its hash (damaged or edited)")
    return Plan(spec=spec, tensors=tensors)
