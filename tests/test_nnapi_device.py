"""NNAPI on a real phone: every NNAPI device must compute LiteRT CPU's features (tier 2).

Needs ORCH_TEST_DEVICE=SERIAL (skipped otherwise) and a Python with numpy and a TFLite
interpreter on the phone: ORCH_TEST_DEVICE_PYTHON is the command that starts it, e.g.
`/data/local/tmp/python/bin/python3` (rooted / direct) or
`run-as com.termux files/usr/bin/python3` (Termux's GitHub build).
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

import pytest

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env

REPO = Path(__file__).resolve().parents[1]
ROOT = "/data/local/tmp/orch-nnapi-test"

pytestmark = pytest.mark.device


def _push_tree(device, local: Path, remote: str) -> None:
    for path in sorted(local.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        dest = posixpath.join(remote, path.relative_to(local).as_posix())
        device.shell2(f"mkdir -p {posixpath.dirname(dest)}")
        device.sync.push(str(path), dest)


def test_nnapi_features_equal_litert_cpu_on_the_phone(split_trunk):
    """On the attached phone, each NNAPI device that takes the plan agrees with LiteRT CPU."""
    import adbutils

    os.environ.setdefault("ADBUTILS_ADB_PATH", "/usr/bin/adb")
    device = adbutils.adb.device(serial=os.environ["ORCH_TEST_DEVICE"])
    python = os.environ.get("ORCH_TEST_DEVICE_PYTHON", "python3")
    device.shell2(f"rm -rf {ROOT} && mkdir -p {ROOT}/model")
    _push_tree(device, REPO / "device_agent", f"{ROOT}/device_agent")
    for name in ("frozen.tflite", "nnapi_plan.json", "nnapi_plan.npz"):
        device.sync.push(str(split_trunk.dir / name), f"{ROOT}/model/{name}")
    device.shell2(f"chmod -R a+rX {ROOT}")

    out = device.shell2(f"cd {ROOT} && PYTHONPATH={ROOT} {python} -m device_agent.nnapi.check "
                        f"{ROOT}/model --images 4 --reps 2", timeout=600)

    assert out.returncode == 0, out.output[-2000:]
    result = json.loads(out.output[out.output.index("{"):])
    assert result["nnapi_runtime"]["available"], result["nnapi_runtime"]
    assert not result["nnapi_runtime"]["simulated"]
    used = [e for e in result["nnapi"] if e["used"] == "nnapi"]
    if not used:
        pytest.skip("no NNAPI device on this phone takes the plan: "
                    + "; ".join(f"{e['device']}: {e['reason']}" for e in result["nnapi"]))
    for entry in used:
        assert entry["max_abs_diff"] <= 1e-4 + 1e-4 * 6, entry
