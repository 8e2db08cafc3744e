"""The ctypes binding against the simulated library: AOSP's validation as named errors, the
kernels of every plan op, and the freed-buffer check. (The simulated library stands in for a
phone's NNAPI driver; nothing else is mocked.)"""

from __future__ import annotations

import json
import subprocess
import sys
from ctypes import byref, c_uint32, c_uint64, c_void_p
from pathlib import Path

import numpy as np
import pytest
from nnapi.executor import run_plan

from device_agent.nnapi.binding import Nnapi, OperandType
from device_agent.nnapi.codes import NO_DURATION, BadData, BadState, NnapiError
from device_agent.nnapi.devices import list_devices
from device_agent.nnapi.model import NnapiModel
from device_agent.nnapi.planfile import read_plan, write_plan
from device_agent.nnapi.runner import NnapiRunner, compile_model

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env

REPO = Path(__file__).resolve().parents[1]


class PlanBuilder:
    """A hand-written plan: operands, operations, tensors."""

    def __init__(self, input_dims: list[int]) -> None:
        self.operands: list[dict] = [{"type": "TENSOR_FLOAT32", "dims": input_dims}]
        self.operations: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.current = 0

    def const(self, name: str, value: np.ndarray) -> int:
        kind = "TENSOR_INT32" if value.dtype == np.int32 else "TENSOR_FLOAT32"
        self.tensors[name] = value
        self.operands.append({"type": kind, "dims": list(value.shape), "tensor": name})
        return len(self.operands) - 1

    def i32(self, value: int) -> int:
        self.operands.append({"type": "INT32", "value": value})
        return len(self.operands) - 1

    def op(self, kind: str, inputs: list[int], dims: list[int]) -> int:
        self.operands.append({"type": "TENSOR_FLOAT32", "dims": dims})
        out = len(self.operands) - 1
        self.operations.append({"type": kind, "inputs": [self.current, *inputs],
                                "outputs": [out], "layer": kind.lower()})
        self.current = out
        return out

    def write(self, folder: Path) -> Path:
        dims = self.operands[self.current]["dims"]
        spec = {"input": {"shape": self.operands[0]["dims"], "dtype": "float32",
                          "range": [0, 255]},
                "output": {"shape": dims, "dtype": "float32"},
                "operands": self.operands, "operations": self.operations, "inputs": [0],
                "outputs": [self.current]}
        return write_plan(folder, spec, self.tensors)


def every_op_plan(folder: Path) -> Path:
    """PAD, DEPTHWISE (multiplier 2, asymmetric pads, stride 2×1), MUL/ADD with broadcast and
    RELU1, AVERAGE_POOL_2D with padding, CONV_2D 2×2 with RELU6, MEAN keep_dims, RESHAPE −1."""
    rng = np.random.default_rng(0)
    f = np.float32
    b = PlanBuilder([1, 5, 5, 2])
    i = b.i32
    b.op("PAD", [b.const("pad", np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32))],
         [1, 6, 7, 2])
    b.op("DEPTHWISE_CONV_2D", [b.const("dw.filter", rng.normal(0, 0.05, (1, 3, 3, 4)).astype(f)),
                               b.const("dw.bias", rng.normal(0, 0.1, 4).astype(f)),
                               i(1), i(0), i(0), i(1), i(2), i(1), i(2), i(1)], [1, 5, 3, 4])
    b.op("MUL", [b.const("mul", rng.normal(1, 0.5, 4).astype(f)), i(0)], [1, 5, 3, 4])
    b.op("ADD", [b.const("add", rng.normal(0, 1, (3, 1)).astype(f)), i(2)], [1, 5, 3, 4])
    b.op("AVERAGE_POOL_2D", [i(1), i(1), i(1), i(0), i(2), i(2), i(3), i(2), i(0)],
         [1, 3, 2, 4])
    b.op("CONV_2D", [b.const("conv.filter", rng.normal(0, 2, (3, 2, 2, 4)).astype(f)),
                     b.const("conv.bias", rng.normal(0, 1, 3).astype(f)),
                     i(0), i(1), i(1), i(0), i(1), i(1), i(3)], [1, 3, 2, 3])
    b.op("MEAN", [b.const("axes", np.array([2], np.int32)), i(1)], [1, 3, 1, 3])
    b.op("RESHAPE", [b.const("shape", np.array([1, -1], np.int32))], [1, 9])
    return b.write(folder)


def small_plan(folder: Path) -> Path:
    """input [1,8,8,16] → CONV_2D 3×3 (a 9216-byte filter, referenced not copied) → RELU6."""
    rng = np.random.default_rng(1)
    b = PlanBuilder([1, 8, 8, 16])
    b.op("CONV_2D", [b.const("conv.filter", rng.normal(0, 0.1, (16, 3, 3, 16)).astype(np.float32)),
                     b.const("conv.bias", np.zeros(16, np.float32)),
                     b.i32(1), b.i32(1), b.i32(1), b.i32(1), b.i32(1), b.i32(1), b.i32(3)],
         [1, 8, 8, 16])
    return b.write(folder)


def device(lib: Nnapi, name: str = "sim-npu"):
    return next(d for d in list_devices(lib) if d.name == name)


def runner_for(lib: Nnapi, plan_path: Path, name: str = "sim-npu") -> NnapiRunner:
    plan = read_plan(plan_path)
    model = NnapiModel(lib, plan)
    comp = compile_model(lib, model, device(lib, name))
    return NnapiRunner(lib, model, comp, input_shape=plan.input_shape,
                       output_shape=plan.output_shape, timed=True)


@pytest.mark.parametrize("name", ["sim-npu", "nnapi-reference"])
def test_every_plan_op_matches_the_numpy_executor(nnapi_env, tmp_path, name):
    """The library's kernels and the numpy executor agree on all eight plan ops."""
    path = every_op_plan(tmp_path)
    x = np.random.default_rng(2).uniform(-3, 3, (2, 5, 5, 2)).astype(np.float32)
    runner = runner_for(Nnapi(), path, name)

    with runner:
        got = runner.run(x)

    want = run_plan(read_plan(path), x)
    assert got.shape == want.shape == (2, 9)
    assert np.ptp(want) > 0.5  # activations clamp and vary: not a degenerate check
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_set_operand_value_after_finish_is_bad_state(nnapi_env, tmp_path):
    """A finished model is immutable (BAD_STATE), and the error names the call and why."""
    lib = Nnapi()
    model = NnapiModel(lib, read_plan(small_plan(tmp_path)))
    value = np.zeros(16, np.float32)

    with pytest.raises(BadState) as err:
        lib.call("ANeuralNetworksModel_setOperandValue", model.handle, 2, value.ctypes.data,
                 value.nbytes)

    model.free()
    assert err.value.code == 6 and err.value.code_name == "BAD_STATE"
    assert "ANeuralNetworksModel_setOperandValue returned BAD_STATE" in str(err.value)
    assert "already finished" in str(err.value)


def _raw_model(lib: Nnapi) -> c_void_p:
    handle = c_void_p()
    lib.call("ANeuralNetworksModel_create", byref(handle))
    return handle


def _add(lib: Nnapi, handle: c_void_p, code: int, dims: tuple[int, ...] = ()) -> None:
    arr = (c_uint32 * max(len(dims), 1))(*dims)
    otype = OperandType(code, len(dims), arr if dims else None, 0.0, 0)
    lib.call("ANeuralNetworksModel_addOperand", handle, byref(otype))


def test_finish_without_identified_inputs_and_outputs_is_bad_data(nnapi_env):
    """identifyInputsAndOutputs is required before finish."""
    lib = Nnapi()
    handle = _raw_model(lib)
    _add(lib, handle, 3, (1, 2))

    with pytest.raises(BadData, match="identifyInputsAndOutputs"):
        lib.call("ANeuralNetworksModel_finish", handle)
    lib.free("ANeuralNetworksModel_free", handle)


def test_operation_input_count_and_types_are_validated(nnapi_env):
    """CONV_2D with 9 inputs, or a FLOAT32 where INT32 belongs, is BAD_DATA at addOperation."""
    lib = Nnapi()
    handle = _raw_model(lib)
    for code, dims in [(3, (1, 4, 4, 1)), (3, (1, 1, 1, 1)), (3, (1,)), *[(1, ())] * 6,
                       (0, ()), (3, (1, 4, 4, 1))]:
        _add(lib, handle, code, dims)
    out = (c_uint32 * 1)(10)

    with pytest.raises(BadData, match="expects 10"):
        lib.call("ANeuralNetworksModel_addOperation", handle, 3, 9, (c_uint32 * 9)(*range(9)),
                 1, out)
    with pytest.raises(BadData, match="must be INT32"):
        lib.call("ANeuralNetworksModel_addOperation", handle, 3, 10,
                 (c_uint32 * 10)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), 1, out)
    lib.free("ANeuralNetworksModel_free", handle)


def test_operand_declarations_and_value_sizes_are_validated(nnapi_env):
    """A scalar with dimensions, or a value of the wrong byte size, is BAD_DATA."""
    lib = Nnapi()
    handle = _raw_model(lib)
    _add(lib, handle, 3, (2, 2))
    value = np.zeros(3, np.float32)

    with pytest.raises(BadData, match="scalar type with 1 dimensions"):
        _add(lib, handle, 1, (1,))
    with pytest.raises(BadData, match="needs 16 bytes, got 12"):
        lib.call("ANeuralNetworksModel_setOperandValue", handle, 0, value.ctypes.data,
                 value.nbytes)
    lib.free("ANeuralNetworksModel_free", handle)


def test_execution_buffers_and_single_use_are_enforced(nnapi_env, tmp_path):
    """setInput takes exactly the operand's bytes, once; an execution computes once."""
    lib = Nnapi()
    runner = runner_for(lib, small_plan(tmp_path))
    x = np.zeros((1, 8, 8, 16), np.float32)
    y = np.zeros((1, 8, 8, 16), np.float32)
    ex = c_void_p()
    lib.call("ANeuralNetworksExecution_create", runner.compilation, byref(ex))

    with pytest.raises(BadData, match="needs 4096 bytes, got 4092"):
        lib.call("ANeuralNetworksExecution_setInput", ex, 0, None, x.ctypes.data, x.nbytes - 4)
    lib.call("ANeuralNetworksExecution_setInput", ex, 0, None, x.ctypes.data, x.nbytes)
    with pytest.raises(BadState, match="already set"):
        lib.call("ANeuralNetworksExecution_setInput", ex, 0, None, x.ctypes.data, x.nbytes)
    with pytest.raises(BadData, match="output 0 not set"):
        lib.call("ANeuralNetworksExecution_compute", ex)
    lib.free("ANeuralNetworksExecution_free", ex)
    ex = c_void_p()
    lib.call("ANeuralNetworksExecution_create", runner.compilation, byref(ex))
    lib.call("ANeuralNetworksExecution_setInput", ex, 0, None, x.ctypes.data, x.nbytes)
    lib.call("ANeuralNetworksExecution_setOutput", ex, 0, None, y.ctypes.data, y.nbytes)
    lib.call("ANeuralNetworksExecution_compute", ex)
    with pytest.raises(BadState, match="not reusable"):
        lib.call("ANeuralNetworksExecution_compute", ex)
    lib.free("ANeuralNetworksExecution_free", ex)
    runner.close()


def test_timing_needs_one_device_and_a_finished_execution(nnapi_env, tmp_path):
    """setMeasureTiming on a runtime-chosen compilation is BAD_DATA; unmeasured reads UINT64_MAX."""
    lib = Nnapi()
    model = NnapiModel(lib, read_plan(small_plan(tmp_path)))
    comp = compile_model(lib, model, None)
    x = np.zeros((1, 8, 8, 16), np.float32)
    y = np.zeros_like(x)
    ex = c_void_p()
    lib.call("ANeuralNetworksExecution_create", comp, byref(ex))
    duration = c_uint64()

    with pytest.raises(BadData, match="exactly one device"):
        lib.call("ANeuralNetworksExecution_setMeasureTiming", ex, True)
    with pytest.raises(BadState, match="not finished"):
        lib.call("ANeuralNetworksExecution_getDuration", ex, 0, byref(duration))
    lib.call("ANeuralNetworksExecution_setInput", ex, 0, None, x.ctypes.data, x.nbytes)
    lib.call("ANeuralNetworksExecution_setOutput", ex, 0, None, y.ctypes.data, y.nbytes)
    lib.call("ANeuralNetworksExecution_compute", ex)
    lib.call("ANeuralNetworksExecution_getDuration", ex, 0, byref(duration))

    assert duration.value == NO_DURATION
    lib.free("ANeuralNetworksExecution_free", ex)
    lib.free("ANeuralNetworksCompilation_free", comp)
    model.free()


def test_compiling_for_a_device_without_an_op_fails(nnapi_env, tmp_path):
    """A device lacking one of the model's ops cannot compile it (BAD_DATA at finish)."""
    nnapi_env.setenv("FAKE_NNAPI_UNSUPPORTED", "CONV_2D")
    lib = Nnapi()
    model = NnapiModel(lib, read_plan(small_plan(tmp_path)))

    with pytest.raises(BadData, match="do not support every operation"):
        compile_model(lib, model, device(lib))
    model.free()


def test_a_declared_output_shape_that_is_wrong_is_rejected(nnapi_env, tmp_path):
    """The library infers each output shape and refuses a plan that declares another."""
    path = small_plan(tmp_path)
    spec = json.loads(path.read_text())
    spec["operands"][spec["outputs"][0]]["dims"] = [1, 7, 7, 16]
    spec["output"]["shape"] = [1, 7, 7, 16]
    plan = read_plan(write_plan(tmp_path / "bad", spec, read_plan(path).tensors))

    with pytest.raises(BadData, match="declared output shape differs"):
        NnapiModel(Nnapi(), plan)


FREED_BUFFER_SCRIPT = """
import gc, json, sys
import numpy as np
from device_agent.nnapi.binding import Nnapi
from device_agent.nnapi.codes import NnapiError
from device_agent.nnapi.devices import list_devices
from device_agent.nnapi.model import NnapiModel
from device_agent.nnapi.planfile import read_plan
from device_agent.nnapi.runner import NnapiRunner, compile_model


lib = Nnapi()
plan = read_plan(sys.argv[1])
filter_operand = next(i for i, o in enumerate(plan.spec["operands"])
                      if o.get("tensor") == "conv.filter")
model = NnapiModel(lib, plan)
shapes = dict(input_shape=plan.input_shape, output_shape=plan.output_shape)
del plan  # the model's own copies are now the only ones
npu = next(d for d in list_devices(lib) if d.name == "sim-npu")
runner = NnapiRunner(lib, model, compile_model(lib, model, npu), timed=True, **shapes)
x = np.ones((1, 8, 8, 16), np.float32)
out = {"first": float(runner.run(x).sum())}
if sys.argv[2] == "release":
    size = model._buffers.pop(filter_operand).nbytes  # drop the model's reference, as a bug would
    gc.collect()
    junk = [np.full(size // 4, 7.0, np.float32) for _ in range(64)]  # reuse of freed memory
    out["released_bytes"] = size
try:
    runner.run(x)
    out["second"] = "ok"
except NnapiError as exc:
    out["second"] = exc.code_name
    out["message"] = str(exc)
print(json.dumps(out))
"""


def _run_freed_buffer_script(plan: Path, mode: str, lib: Path) -> dict:
    env = {"ORCH_NNAPI_LIB": str(lib), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", FREED_BUFFER_SCRIPT, str(plan), mode],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_freed_operand_buffer_is_caught(fake_lib, tmp_path):
    """Dropping the only reference to a >128-byte operand value (which NNAPI does not copy)
    makes the next execution fail with BAD_DATA; keeping it, the execution succeeds.
    Run in a subprocess: reading freed memory must not endanger the test process."""
    plan = small_plan(tmp_path)

    kept = _run_freed_buffer_script(plan, "keep", fake_lib)
    freed = _run_freed_buffer_script(plan, "release", fake_lib)

    assert kept["second"] == "ok"
    assert freed["released_bytes"] == 16 * 3 * 3 * 16 * 4
    assert freed["second"] == "BAD_DATA"
    assert "changed after Model_finish" in freed["message"]


def test_named_errors_cover_every_result_code():
    """Every NNAPI ResultCode maps to its own exception; unknown codes stay readable."""
    from device_agent.nnapi.codes import ERRORS, error_for

    names = {code: cls.code_name for code, cls in ERRORS.items()}
    unknown = error_for(99, "ANeuralNetworksX")

    assert names[4] == "BAD_DATA" and names[9] == "UNAVAILABLE_DEVICE"
    assert sorted(names) == list(range(1, 15))
    assert isinstance(unknown, NnapiError) and "RESULT_99" in str(unknown)
