"""The paper spec over adb on virtual phones, frozen layers through NNAPI.

The virtual Pixel 7 ships the simulated libneuralnetworks.so (reference C kernels on the host
CPU: a phone's NNAPI driver cannot exist here, so this is the one simulated part). Its runs
must say `nnapi` was used and name the simulated device; they must reach the same accuracy as
the same run with `delegate: cpu`; a phone without the library must fall back to cpu and say why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import REPO, orch
from sim_fixtures import virtual_phone  # noqa: F401

from orchestrator.datasets.synth import synthesize

# Builds and the simulated NNAPI libraries are shared across the session.
pytestmark = pytest.mark.usefixtures("home")
PAPER = REPO / "experiments" / "paper_table1.yaml"
SMALL = ["--set", "model.alpha=0.25", "--set", "model.input_size=96",
         "--set", "model.weights=none", "--set", "data.train_per_class=6",
         "--set", "data.test_per_class=6", "--set", "training.head_epochs=2",
         "--set", "training.finetune_epochs=1", "--variant", "method2"]


def run_json(serial: str, *extra: str) -> dict:
    r = orch("run", str(PAPER), "--device", serial, *SMALL, *extra, "--format", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    synthesize(root, per_class=12, size=96, names=["cat", "dog"])
    return root


def test_pixel7_uses_simulated_nnapi_with_the_accuracy_of_cpu(virtual_phone, photos):  # noqa: F811
    """delegate nnapi on a virtual Pixel 7: used nnapi on `sim-npu`, same result as cpu."""
    phone = virtual_phone("pixel7", name="pixel7-nnapi", photos=photos)

    nnapi = run_json(phone.serial)
    cpu = run_json(phone.serial, "--set", "delegate=cpu")

    run_n, run_c = nnapi["runs"][0], cpu["runs"][0]
    assert (run_n["delegate_requested"], run_n["delegate_used"]) == ("nnapi", "nnapi")
    info = run_n["delegate_info"]
    assert info["device"] == "sim-npu" and info["simulated"] is True, info
    # The agent's own NNAPI-vs-CPU check stays on the phone: had it failed, `used` would be
    # cpu with the reason nnapi_mismatch (the accuracy comparison below checks the outcome).
    assert (run_c["delegate_requested"], run_c["delegate_used"]) == ("cpu", "cpu")
    assert run_n["accuracy"] == pytest.approx(run_c["accuracy"], abs=1e-9)
    losses = [[e["test_loss"] for e in r["result"]["epochs"]] for r in (run_n, run_c)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)
    table = {(c["delegate_requested"], c["delegate_used"]) for c in cpu["compare"]}
    assert ("cpu", "cpu") in table  # compare shows the delegate used


def test_phone_without_nnapi_falls_back_to_cpu_and_says_why(virtual_phone, photos):  # noqa: F811
    """The Android 10 profile has no NNAPI library: the run uses cpu and records the reason."""
    phone = virtual_phone("nokia23", name="nokia-nonnapi", photos=photos)

    run = run_json(phone.serial)["runs"][0]

    assert (run["delegate_requested"], run["delegate_used"]) == ("nnapi", "cpu")
    assert run["delegate_reason"], run
    assert run["status"] == "finished"
