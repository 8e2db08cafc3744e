"""NNAPI on a real phone: every NNAPI device must compute LiteRT CPU's features (tier 2).

Needs ORCH_TEST_DEVICE=SERIAL (skipped otherwise) and a Python with numpy and a TFLite
interpreter on the phone: ORCH_TEST_DEVICE_PYTHON is the command that starts it, e.g.
`/data/local/tmp/python/bin/python3` (rooted / direct) or
`run-as com.termux files/usr/bin/python3` (Termux's GitHub build).
"""

from __future__ import annotations

import os

import pytest
from nnapi.phone import check_on_phone

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env
pytestmark = pytest.mark.device


def test_nnapi_features_equal_litert_cpu_on_the_phone(split_trunk):
    """On the attached phone, each NNAPI device that takes the plan agrees with LiteRT CPU."""
    import adbutils

    os.environ.setdefault("ADBUTILS_ADB_PATH", "/usr/bin/adb")
    device = adbutils.adb.device(serial=os.environ["ORCH_TEST_DEVICE"])
    python = os.environ.get("ORCH_TEST_DEVICE_PYTHON", "python3")

    result = check_on_phone(device, split_trunk.dir, python, root="/data/local/tmp/orch-nnapi")

    assert result["nnapi_runtime"]["available"], result["nnapi_runtime"]
    assert not result["nnapi_runtime"]["simulated"]
    used = [e for e in result["nnapi"] if e["used"] == "nnapi"]
    if not used:
        pytest.skip("no NNAPI device on this phone takes the plan: "
                    + "; ".join(f"{e['device']}: {e['reason']}" for e in result["nnapi"]))
    for entry in used:
        assert entry["max_abs_diff"] <= 1e-4 + 1e-4 * 6, entry
