"""A virtual phone whose profile says `nnapi_lib: simulated`: the agent's NNAPI check runs on
it over adb, through the simulated libneuralnetworks.so at /system/lib64."""

from __future__ import annotations

import yaml
from nnapi.phone import check_on_phone
from sim_fixtures import virtual_phone  # noqa: F401

from orchestrator.sim.profile import PROFILES_DIR

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env


def test_virtual_phone_runs_the_plan_through_simulated_nnapi(virtual_phone, split_trunk,  # noqa: F811
                                                             tmp_path):
    """The phone exposes the simulated library; NNAPI on sim-npu equals LiteRT CPU there."""
    profile = yaml.safe_load((PROFILES_DIR / "galaxy_s23.yaml").read_text())
    profile.update(id="s23-nnapi", nnapi_lib="simulated")
    (tmp_path / "s23-nnapi.yaml").write_text(yaml.safe_dump(profile))
    phone = virtual_phone(str(tmp_path / "s23-nnapi.yaml"))

    result = check_on_phone(phone.adb(), split_trunk.dir, profile["python"],
                            root="/data/local/tmp/orch-nnapi")

    runtime = result["nnapi_runtime"]
    assert runtime["library"] == "/system/lib64/libneuralnetworks.so"
    assert runtime["simulated"] is True
    npu = next(e for e in result["nnapi"] if e["device"] == "sim-npu")
    assert (npu["used"], npu["type"], npu["simulated"]) == ("nnapi", "ACCELERATOR", True)
    assert npu["max_abs_diff"] <= 1e-4
