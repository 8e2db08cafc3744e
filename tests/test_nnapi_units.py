"""Pure parts of the NNAPI binding (device choice, guard, codes, plan checks), the build of the
simulated library, the agent's import rules, and the agent's use of the runner."""

from __future__ import annotations

import ast
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nnapi.build import build_fake_nnapi
from nnapi.trunks import LiteRT, images

from device_agent.nnapi import nnapi_info
from device_agent.nnapi.codes import feature_level_number
from device_agent.nnapi.devices import Device, choose_devices
from device_agent.nnapi.guard import compare
from device_agent.nnapi.planfile import PlanError, validate
from device_agent.nnapi.runner import cache_token
from orchestrator.errors import BuildError

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env

REPO = Path(__file__).resolve().parents[1]
NNAPI_PACKAGE = REPO / "device_agent" / "nnapi"


def _dev(index: int, name: str, type_code: int, level: int = 1000007) -> Device:
    return Device(index, name, type_code, level, "v1")


NPU, GPU, REF = _dev(0, "npu", 4), _dev(1, "gpu", 3), _dev(2, "nnapi-reference", 2)


def test_choice_prefers_accelerators_then_newer_feature_levels():
    """ACCELERATOR before GPU; between equals, the higher feature level first; reference last."""
    old_npu = _dev(3, "old-npu", 4, level=30)

    chosen, reason = choose_devices([GPU, old_npu, REF, NPU], {}, device_name=None,
                                    allow_reference=True)

    assert reason is None
    assert [d.name for d in chosen] == ["npu", "old-npu", "gpu", "nnapi-reference"]


def test_choice_skips_devices_lacking_an_op_and_says_which():
    """A device lacking any plan op is no candidate; with none left, the reason lists them."""
    lacking = {0: ["MEAN"], 1: ["DEPTHWISE_CONV_2D", "PAD"]}

    chosen, reason = choose_devices([NPU, GPU, REF], lacking, device_name=None,
                                    allow_reference=False)

    assert chosen == []
    assert reason == ("no NNAPI device supports every op of the plan: npu (ACCELERATOR) lacks "
                      "MEAN; gpu (GPU) lacks DEPTHWISE_CONV_2D, PAD; nnapi-reference (CPU "
                      "reference) not considered without nnapi.allow_reference")


def test_choice_of_a_named_device():
    """A named device is used alone; the reference only with allow_reference."""
    assert choose_devices([NPU, GPU], {}, device_name="gpu", allow_reference=False) == ([GPU], None)
    assert choose_devices([REF], {}, device_name="nnapi-reference",
                          allow_reference=True) == ([REF], None)
    chosen, reason = choose_devices([REF], {}, device_name="nnapi-reference",
                                    allow_reference=False)
    assert chosen == [] and "allow_reference" in reason
    chosen, reason = choose_devices([NPU], {0: ["MUL"]}, device_name="npu",
                                    allow_reference=False)
    assert chosen == [] and reason == "npu (ACCELERATOR) does not support MUL"


def test_guard_bound_scales_with_the_largest_reference_feature():
    """|diff| ≤ atol + rtol·max|cpu|: 6e-4 passes for features up to 6, fails for features ≤ 1."""
    want = np.array([[0.0, 6.0, 3.0]])
    small = want / 6

    assert compare(want + 6e-4, want, fp16=False)["ok"]
    assert not compare(small + 6e-4, small, fp16=False)["ok"]
    assert compare(small + 6e-3, small, fp16=True)["ok"]
    assert compare(want, want, fp16=False)["bound"] == pytest.approx(1e-4 + 6e-4)


def test_guard_refuses_shape_mismatch_and_non_finite_values():
    """A wrong shape or a NaN never passes, and nothing non-JSON is recorded."""
    want = np.ones((2, 3))
    nan = want.copy()
    nan[0, 0] = np.nan

    wrong_shape = compare(np.ones((2, 4)), want, fp16=False)
    not_finite = compare(nan, want, fp16=True)

    assert not wrong_shape["ok"] and wrong_shape["shape"] == {"nnapi": [2, 4], "cpu": [2, 3]}
    assert not not_finite["ok"] and not_finite["finite"] is False
    assert not_finite["max_abs_diff"] is None


def test_feature_levels_and_cache_tokens():
    """Feature level codes map to 1…8; tokens are 32 bytes and differ per device and precision."""
    assert [feature_level_number(c) for c in (27, 29, 31, 1000006, 1000008)] == [1, 3, 5, 6, 8]
    tokens = {cache_token("abc", d, f) for d in ("npu", "gpu") for f in (False, True)}
    assert len(tokens) == 4 and all(len(t) == 32 for t in tokens)


@pytest.mark.parametrize("breakage, message", [
    (lambda s, t: s["operations"][0].update(type="SOFTMAX"), "unknown type 'SOFTMAX'"),
    (lambda s, t: t.pop("w"), "tensor 'w' missing"),
    (lambda s, t: t.update(w=np.zeros((2, 2), np.float64)), "expected float32[2, 2]"),
    (lambda s, t: s["operations"][0]["inputs"].append(9), "operand index out of range"),
])
def test_plan_structure_is_validated(breakage, message):
    """Unknown ops, missing or mistyped tensors, dangling indexes are PlanErrors."""
    spec = {"format": "orch-nnapi-plan", "version": 1,
            "operands": [{"type": "TENSOR_FLOAT32", "dims": [2, 2]},
                         {"type": "TENSOR_FLOAT32", "dims": [2, 2], "tensor": "w"},
                         {"type": "INT32", "value": 0},
                         {"type": "TENSOR_FLOAT32", "dims": [2, 2]}],
            "operations": [{"type": "ADD", "inputs": [0, 1, 2], "outputs": [3]}],
            "inputs": [0], "outputs": [3]}
    tensors = {"w": np.zeros((2, 2), np.float32)}
    validate(spec, tensors)
    breakage(spec, tensors)

    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(spec, tensors)


def test_library_build_is_cached_by_source_and_api_level(tmp_path):
    """A second build reuses the .so; the API-28 variant lacks the API-29 calls."""
    first = build_fake_nnapi(tmp_path)
    mtime = first.stat().st_mtime_ns

    again = build_fake_nnapi(tmp_path)
    legacy = ctypes.CDLL(str(build_fake_nnapi(tmp_path, api_level=28)))

    assert again == first and again.stat().st_mtime_ns == mtime
    assert hasattr(legacy, "ANeuralNetworksExecution_startCompute")
    assert not hasattr(legacy, "ANeuralNetworksExecution_compute")
    assert not hasattr(legacy, "ANeuralNetworks_getDeviceCount")


def test_no_c_compiler_is_a_clear_build_error(tmp_path, monkeypatch):
    """Without a compiler the build says so and how to get one."""
    monkeypatch.setenv("CC", "no-such-cc")

    with pytest.raises(BuildError) as err:
        build_fake_nnapi(tmp_path)

    assert "No C compiler ('no-such-cc')" in err.value.message
    assert "apt-get install gcc" in err.value.hint


def test_nnapi_info_lists_the_simulated_devices(nnapi_env):
    """`python -m device_agent info` sees the library, its devices, and that it is simulated."""
    info = nnapi_info()

    assert info["available"] is True and info["simulated"] is True
    assert [(d["name"], d["type"], d["feature_level"]) for d in info["devices"]] == [
        ("sim-npu", "ACCELERATOR", 7), ("nnapi-reference", "CPU", 7)]


def test_nnapi_info_without_library(monkeypatch):
    """No library: available False with the reason, no exception."""
    monkeypatch.setenv("ORCH_NNAPI_LIB", "/nonexistent/libneuralnetworks.so")

    info = nnapi_info()

    assert info["available"] is False and "cannot be loaded" in info["reason"]


BLOCKED = ("tensorflow", "keras", "typer", "sqlmodel", "fastapi", "orchestrator", "models",
           "ai_edge_litert", "tflite_runtime")
IMPORT_SCRIPT = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import device_agent.nnapi, device_agent.nnapi.check

for m in ("binding", "codes", "devices", "guard", "model", "planfile", "probe", "runner",
          "session"):
    __import__("device_agent.nnapi." + m)
print("ok")
"""


def test_the_binding_imports_nothing_from_the_host_or_an_interpreter():
    """device_agent.nnapi loads with TF, Keras, host packages and LiteRT all blocked."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_binding_is_python39_syntax():
    """Termux's Python may be 3.9: no match statements or newer grammar in the package."""
    for path in sorted(NNAPI_PACKAGE.glob("*.py")):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_the_agent_extracts_features_through_nnapi(nnapi_env, split_trunk, tmp_path):
    """The agent's trunk (delegate nnapi) runs through the simulated NNAPI and records it."""
    from device_agent import trunk

    job = {"delegate": {"requested": "nnapi", "nnapi_device": None, "fp16": False,
                        "allow_reference": False},
           "models": {"frozen": str(split_trunk.frozen), "nnapi_plan": str(split_trunk.plan)},
           "threads": 1}
    probes = list(images(2, seed=20))
    x = images(1, seed=21)[0]

    run = trunk.open_trunk(job, probe_images=lambda: probes, cache_dir=str(tmp_path))
    got = run(x)
    report = run.close()

    np.testing.assert_allclose(got, LiteRT(split_trunk.frozen)(x[None])[0], rtol=1e-4, atol=1e-4)
    assert (report["used"], report["reason"]) == ("nnapi", None)
    assert report["info"]["device"] == "sim-npu" and report["info"]["simulated"] is True
    assert report["info"]["ms_per_image_hw"] > 0
