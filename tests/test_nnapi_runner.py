"""open_nnapi_runner through the simulated libneuralnetworks.so: features, timing, fallbacks.

The simulated library stands in for a phone's NNAPI driver (the one thing a build machine
cannot have); the plan, the ctypes binding, LiteRT and the trunks are the real ones.
"""

from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest
from nnapi.trunks import LiteRT, images, trunk_files

from device_agent.nnapi import open_nnapi_runner
from device_agent.nnapi.planfile import PLAN_NPZ
from device_agent.nnapi.runner import cache_token

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _open(trunk, plan=None, **kw):
    reference = LiteRT(trunk.frozen)
    return open_nnapi_runner(str(plan or trunk.plan), reference_fn=reference,
                             probe_images=images(2, seed=10), **kw)


def test_split_trunk_runs_on_the_accelerator_and_equals_litert(nnapi_env, split_trunk):
    """At layer B, NNAPI's features equal LiteRT CPU's to 1e-4; the record names the device."""
    runner, record = _open(split_trunk)
    x = images(5, seed=11)

    try:
        got = runner.run(x)
    finally:
        runner.close()

    np.testing.assert_allclose(got, LiteRT(split_trunk.frozen)(x), **TOL)
    assert record["used"] == "nnapi" and record["reason"] is None
    info = record["info"]
    assert (info["device"], info["type"], info["feature_level"]) == ("sim-npu", "ACCELERATOR", 7)
    assert info["simulated"] is True and info["fp16"] is False
    assert info["ms_per_image_hw"] > 0 and info["execution"] == "compute"
    assert info["guard"]["ok"] and info["guard"]["max_abs_diff"] <= 1e-4


def test_imagenet_weights_trunk_equals_litert(nnapi_env, shared_weights, tmp_path_factory):
    """With the shared ImageNet weights (real feature magnitudes) NNAPI equals LiteRT to 1e-4."""
    trunk = trunk_files("imagenet-split", tmp_path_factory.getbasetemp() / "trunks",
                        finetune_from="conv_pw_11", weights=str(shared_weights))
    runner, record = _open(trunk)
    x = images(3, seed=15)

    with runner:
        got = runner.run(x)

    want = LiteRT(trunk.frozen)(x)
    assert record["used"] == "nnapi" and want.max() > 1.0
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("which", ["plan", "plan_avg_pool"])
def test_pooled_trunk_equals_litert(nnapi_env, pooled_trunk, which):
    """Head-only (pooled by MEAN, or AVERAGE_POOL_2D + RESHAPE) equals LiteRT to 1e-4."""
    runner, record = _open(pooled_trunk, getattr(pooled_trunk, which))
    x = images(3, seed=12)

    with runner:
        got = runner.run(x)

    assert record["used"] == "nnapi"
    assert got.shape == (3, 256)
    np.testing.assert_allclose(got, LiteRT(pooled_trunk.frozen)(x), **TOL)


def test_fp16_relaxation_is_applied_and_checked_at_its_own_tolerance(nnapi_env, split_trunk):
    """fp16 changes the features measurably, within the fp16 bound of the guard."""
    runner, record = _open(split_trunk, fp16=True)
    x = images(2, seed=13)

    with runner:
        got = runner.run(x)

    diff = np.abs(got - LiteRT(split_trunk.frozen)(x)).max()
    guard = record["info"]["guard"]
    assert record["used"] == "nnapi" and record["info"]["fp16"] is True
    assert (guard["atol"], guard["rtol"]) == (1e-2, 1e-2)
    assert 1e-5 < diff < guard["bound"]


def test_compilation_is_cached_under_the_plan_token(nnapi_env, split_trunk, fake_lib, tmp_path):
    """setCaching gets the run's cache folder and a token from the plan hash; reuse hits it."""
    cache = tmp_path / "nnapi-cache"
    hits = ctypes.CDLL(str(fake_lib)).OrchFakeNnapi_cacheHits
    before = hits()

    for _ in range(2):
        runner, record = _open(split_trunk, cache_dir=str(cache))
        runner.close()

    token = cache_token(record["info"]["plan_hash"], "sim-npu", False)
    assert (cache / f"{token.hex()}.fakecache").is_file()
    assert record["info"]["caching"] is True
    assert hits() - before == 1


def test_android9_runtime_uses_start_compute(nnapi_env, split_trunk, fake_lib_api28):
    """Without API 29, executions go through startCompute + Event_wait; no device is claimed."""
    nnapi_env.setenv("ORCH_NNAPI_LIB", str(fake_lib_api28))
    runner, record = _open(split_trunk)
    x = images(2, seed=14)

    with runner:
        got = runner.run(x)

    np.testing.assert_allclose(got, LiteRT(split_trunk.frozen)(x), **TOL)
    info = record["info"]
    assert record["used"] == "nnapi" and info["execution"] == "startCompute"
    assert info["device"] is None and info["ms_per_image_hw"] is None
    assert "API 29" in info["device_choice"]


FALLBACKS = {
    "missing library": ({"ORCH_NNAPI_LIB": "/nonexistent/libneuralnetworks.so"}, {},
                        "NNAPI library unavailable"),
    "not an NNAPI library": ({"ORCH_NNAPI_LIB": "libm.so.6"}, {}, "not an NNAPI library"),
    "unsupported op": ({"FAKE_NNAPI_UNSUPPORTED": "DEPTHWISE_CONV_2D"}, {},
                       "no NNAPI device supports every op of the plan: sim-npu (ACCELERATOR) "
                       "lacks DEPTHWISE_CONV_2D"),
    "compile failure": ({"FAKE_NNAPI_FAIL": "compile"}, {},
                        "NNAPI compilation failed (sim-npu: "
                        "ANeuralNetworksCompilation_finish returned OP_FAILED"),
    "compute failure": ({"FAKE_NNAPI_FAIL": "compute"}, {},
                        "NNAPI execution on sim-npu failed: "
                        "ANeuralNetworksExecution_compute returned OP_FAILED"),
    "mismatch": ({"FAKE_NNAPI_CORRUPT": "0.01"}, {},
                 "NNAPI output on sim-npu differs from LiteRT CPU: max |diff| 0.01"),
    "reference only": ({"FAKE_NNAPI_DEVICES": "nnapi-reference"}, {},
                       "only NNAPI's CPU reference implementation (nnapi-reference) is present"),
    "reference named": ({}, {"device_name": "nnapi-reference"},
                        "nnapi-reference is NNAPI's CPU reference implementation"),
    "unknown device": ({}, {"device_name": "npu-x"},
                       "no NNAPI device named 'npu-x' (devices: sim-npu (ACCELERATOR), "
                       "nnapi-reference (CPU))"),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_each_failure_falls_back_to_cpu_with_its_reason(nnapi_env, split_trunk, case):
    """Every way NNAPI can be unusable ends in used=cpu, no runner, and a reason naming it."""
    env, kwargs, reason = FALLBACKS[case]
    for key, value in env.items():
        nnapi_env.setenv(key, value)

    runner, record = _open(split_trunk, **kwargs)

    assert runner is None
    assert record["used"] == "cpu"
    assert reason in record["reason"]


def test_mismatch_records_the_guard_figures(nnapi_env, split_trunk):
    """A corrupted output is measured: the difference and the bound it exceeded are kept."""
    nnapi_env.setenv("FAKE_NNAPI_CORRUPT", "0.01")

    _, record = _open(split_trunk)

    guard = record["info"]["guard"]
    assert guard["ok"] is False
    assert guard["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    assert guard["bound"] < 0.01


def test_unsupported_ops_are_listed_per_device(nnapi_env, split_trunk):
    """The record lists every device and which of the plan's ops it lacks."""
    nnapi_env.setenv("FAKE_NNAPI_UNSUPPORTED", "MUL,DEPTHWISE_CONV_2D")

    _, record = _open(split_trunk)

    devices = {d["name"]: d for d in record["info"]["devices"]}
    assert devices["sim-npu"]["unsupported"] == ["MUL", "DEPTHWISE_CONV_2D"]
    assert devices["nnapi-reference"]["unsupported"] == []


@pytest.mark.parametrize("env", [{"FAKE_NNAPI_DEVICES": "nnapi-reference"},
                                 {"FAKE_NNAPI_UNSUPPORTED": "DEPTHWISE_CONV_2D"}])
def test_reference_device_is_used_only_when_allowed(nnapi_env, split_trunk, env):
    """With allow_reference, NNAPI's CPU reference runs the plan (and says it is a CPU)."""
    for key, value in env.items():
        nnapi_env.setenv(key, value)

    runner, record = _open(split_trunk, allow_reference=True)
    runner.close()

    assert record["used"] == "nnapi"
    assert (record["info"]["device"], record["info"]["type"]) == ("nnapi-reference", "CPU")


def test_accelerator_is_preferred_and_a_named_device_is_obeyed(nnapi_env, split_trunk):
    """An ACCELERATOR beats a GPU by default; device_name picks the GPU."""
    nnapi_env.setenv("FAKE_NNAPI_DEVICES", "sim-gpu,sim-npu,nnapi-reference")

    runner, auto = _open(split_trunk)
    runner.close()
    runner, named = _open(split_trunk, device_name="sim-gpu")
    runner.close()

    assert (auto["info"]["device"], auto["info"]["type"]) == ("sim-npu", "ACCELERATOR")
    assert (named["info"]["device"], named["info"]["type"]) == ("sim-gpu", "GPU")


def test_a_damaged_plan_falls_back(nnapi_env, split_trunk, tmp_path):
    """Weights changed after export: the plan hash fails and NNAPI is not tried."""
    plan_dir = tmp_path / "plan"
    shutil.copytree(split_trunk.plan.parent, plan_dir, ignore=shutil.ignore_patterns("avg_pool"))
    with np.load(plan_dir / PLAN_NPZ) as z:
        tensors = {k: z[k] for k in z.files}
    tensors["conv1.bias"] = tensors["conv1.bias"] + 1
    np.savez(plan_dir / PLAN_NPZ, **tensors)

    runner, record = _open(split_trunk, plan=plan_dir / "nnapi_plan.json")

    assert runner is None and record["used"] == "cpu"
    assert record["reason"].startswith("NNAPI plan unusable") and "hash" in record["reason"]


def test_probe_images_of_another_size_fall_back(nnapi_env, split_trunk):
    """Probe images that do not fit the plan's input are a recorded fallback, not a crash."""
    runner, record = open_nnapi_runner(split_trunk.plan, reference_fn=LiteRT(split_trunk.frozen),
                                       probe_images=images(1, seed=1, size=64))

    assert runner is None and "probe images are [64, 64, 3]" in record["reason"]


def test_android9_runtime_cannot_choose_a_device(nnapi_env, split_trunk, fake_lib_api28):
    """Naming a device needs device enumeration (API 29): recorded fallback."""
    nnapi_env.setenv("ORCH_NNAPI_LIB", str(fake_lib_api28))

    runner, record = _open(split_trunk, device_name="sim-npu")

    assert runner is None and "needs Android 10 (API 29)" in record["reason"]


def test_reference_fn_errors_are_not_hidden(nnapi_env, split_trunk):
    """A failing LiteRT reference is the caller's problem and propagates."""
    def broken(images):
        raise RuntimeError("LiteRT broke")

    with pytest.raises(RuntimeError, match="LiteRT broke"):
        open_nnapi_runner(split_trunk.plan, reference_fn=broken, probe_images=images(1, seed=1))


def test_a_closed_runner_refuses_to_run(nnapi_env, split_trunk):
    """close() frees the NNAPI objects; running afterwards is an error, not a crash."""
    runner, _ = _open(split_trunk)
    runner.close()

    with pytest.raises(RuntimeError, match="closed"):
        runner.run(images(1, seed=1))
