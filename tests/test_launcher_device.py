"""On a real phone (marked `device`; ORCH_TEST_DEVICE=SERIAL, the default adb server): the
doctor answers for the phone's launcher with a fix for every gap, and run-as behaves as
Termux's build says it should (enters a debuggable one, refuses the others)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.device
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def serial() -> str:
    return os.environ["ORCH_TEST_DEVICE"]


def test_doctor_answers_every_check_with_a_fix_for_each_gap(serial):
    """`orch devices doctor --format json`: a launcher, checks, and a fix for every ✗."""
    r = subprocess.run([sys.executable, "-m", "orchestrator", "devices", "doctor", serial,
                        "--format", "json"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    verdict = json.loads(r.stdout)
    assert r.returncode in (0, 5), r.stderr
    assert verdict["launcher"] in ("direct", "runas", "ssh") and verdict["checks"]
    assert all(c["fix"] for c in verdict["checks"] if not c["ok"])
    assert (r.returncode == 0) == verdict["ok"]


def test_run_as_matches_the_termux_build(serial):
    """A debuggable (GitHub) Termux is entered as its uid; any other build is refused."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.address import DeviceAddress
    from orchestrator.launchers.termux_facts import read_termux_facts

    phone = Phone(DeviceAddress.parse(serial))
    facts = read_termux_facts(phone)
    if not facts.installed or facts.package is None:
        pytest.skip("Termux is not installed on this phone")
    rc, out = phone.run_rc("run-as com.termux id -u")
    if facts.package.debuggable:
        assert rc == 0 and int(out.strip()) == facts.package.uid
    else:
        assert rc == 1 and "not debuggable" in out
