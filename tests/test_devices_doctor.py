"""Doctor checks and clean-up planning, as pure functions of gathered facts."""

from __future__ import annotations

from orchestrator.devices.clean import Entry, parse_du, plan_clean, staging_key
from orchestrator.devices.doctor import (
    CHECKS,
    MIN_FREE_BYTES,
    DoctorContext,
    parse_runtime,
    run_checks,
)
from orchestrator.devices.facts import DeviceFacts
from orchestrator.devices.health import HealthSample

ROOT = "/data/local/tmp/orch"
FACTS = DeviceFacts(model="Pixel 7", manufacturer="Google", sdk=34, release="14", soc="GS201",
                    abi="arm64-v8a", product="panther", fingerprint=None)
GOOD_RUNTIME = {"agent": "0.1.0", "python": "3.11.7", "numpy": "1.26.4", "pillow": "10.3.0",
                "interpreter": "ai_edge_litert"}


def ctx(**kw) -> DoctorContext:
    base = dict(serial="127.0.0.1:5600", facts=FACTS,
                health=HealthSample(battery=80.0, temperature=30.0, battery_temperature=29.0,
                                    thermal_status=0, plugged=False),
                free_bytes=4 * MIN_FREE_BYTES, python="/usr/bin/python3",
                runtime=dict(GOOD_RUNTIME))
    base.update(kw)
    return DoctorContext(**base)


def by_name(results):
    return {r.name: r for r in results}


def test_a_ready_phone_passes_every_check():
    """Python, numpy, Pillow, interpreter, agent, space, battery, temperature: all ✓."""
    results = run_checks(ctx())
    assert len(results) == len(CHECKS)
    assert all(r.ok for r in results), [r for r in results if not r.ok]


def test_no_python_fails_with_termux_fix_and_dependent_checks_fail_too():
    """Without a Python every runtime check fails, each with a fix."""
    r = by_name(run_checks(ctx(python=None, runtime={}, runtime_error="no python")))
    assert not r["python"].ok and "pkg install python" in r["python"].fix
    assert not r["numpy"].ok and not r["TFLite interpreter"].ok and not r["agent"].ok
    assert all(x.fix for x in r.values() if not x.ok)


def test_missing_modules_name_their_termux_packages():
    """numpy / Pillow / interpreter gaps each point at the Termux package that fills it."""
    probe = parse_runtime('{"python": "3.12.1", "numpy": null, "PIL": null, '
                          '"ai_edge_litert": null, "tflite_runtime": null}')
    r = by_name(run_checks(ctx(runtime=probe, runtime_error="ImportError: numpy")))
    assert "python-numpy" in r["numpy"].fix
    assert "python-pillow" in r["Pillow"].fix
    assert "python-tflite-runtime" in r["TFLite interpreter"].fix
    assert r["python"].ok


def test_old_python_space_battery_heat_and_sdk_gaps():
    """Python 3.8, too little space, a low unplugged battery, severe heat and SDK 26 fail."""
    hot = HealthSample(battery=9.0, temperature=47.0, battery_temperature=40.0,
                       thermal_status=3, plugged=False)
    r = by_name(run_checks(ctx(runtime={**GOOD_RUNTIME, "python": "3.8.10"},
                               free_bytes=MIN_FREE_BYTES // 2, health=hot,
                               facts=DeviceFacts(**{**FACTS.__dict__, "sdk": 26}))))
    failed = {n for n, x in r.items() if not x.ok}
    assert failed == {"python", "free space", "battery", "temperature", "NNAPI"}
    assert "orch devices clean" in r["free space"].fix


def test_plugged_in_low_battery_is_fine():
    """A low battery on the charger does not block a run."""
    low = HealthSample(battery=5.0, temperature=30.0, battery_temperature=30.0,
                       thermal_status=0, plugged=True)
    assert by_name(run_checks(ctx(health=low)))["battery"].ok


def test_runtime_from_agent_info_and_from_the_probe():
    """Pretty-printed `device_agent info` after a warning, and the bare probe, read alike."""
    info = ('warning: x\n{\n "agent_version": "0.1.0",\n "python": "3.11.7",\n'
            ' "numpy": "2.1.0",\n "pillow": "11.0",\n'
            ' "interpreter": {"name": "tflite_runtime", "version": "2.14"},\n'
            ' "delegates": {"nnapi": {"available": false, "reason": "no library"}}\n}\n')
    probe = '{"python": "3.12.1", "numpy": "2.0", "PIL": "10.1", "ai_edge_litert": null, ' \
            '"tflite_runtime": "2.14"}'
    a, b = parse_runtime(info), parse_runtime(probe)
    assert (a["agent"], a["interpreter"], a["pillow"], a["nnapi_available"]) == (
        "0.1.0", "tflite_runtime", "11.0", False)
    assert (b["agent"], b["interpreter"], b["pillow"]) == (None, "tflite_runtime", "10.1")
    assert parse_runtime("Traceback ...\nImportError: numpy\n") == {}


def test_clean_keeps_what_a_live_agent_uses():
    """Run folder, agent and model of a live run are kept; the rest goes, bytes summed."""
    entries = [Entry(f"{ROOT}/agent/a1", 100), Entry(f"{ROOT}/agent/a0", 90),
               Entry(f"{ROOT}/models/m1", 5000), Entry(f"{ROOT}/models/m0", 4000),
               Entry(f"{ROOT}/data/d0", 30000), Entry(f"{ROOT}/runs/r1", 700),
               Entry(f"{ROOT}/runs/r0", 600)]
    in_use = [f"{ROOT}/runs/r1", f"{ROOT}/agent/a1", f"{ROOT}/models/m1",
              "/sdcard/DCIM/catsdogs"]
    plan = plan_clean(ROOT, entries, in_use)
    assert {e.path for e in plan.keep} == {f"{ROOT}/runs/r1", f"{ROOT}/agent/a1",
                                           f"{ROOT}/models/m1"}
    assert plan.bytes_freed == 1024 * (90 + 4000 + 30000 + 600)


def test_staging_keys_and_du_lines():
    """Paths map to their <root>/<area>/<name> folder; du output parses with tabs or spaces."""
    assert staging_key(ROOT, f"{ROOT}/models/m1/frozen.tflite") == f"{ROOT}/models/m1"
    assert staging_key(ROOT, f"{ROOT}/models") is None
    assert staging_key(ROOT, "/sdcard/DCIM") is None
    assert parse_du(f"12\t{ROOT}/runs/r1\n8 {ROOT}/agent/a\nbad line\n") == [
        Entry(f"{ROOT}/runs/r1", 12), Entry(f"{ROOT}/agent/a", 8)]


def test_interpreter_check_shows_the_version_and_flags_one_too_old():
    """The interpreter line names the runtime's version; below orch's minimum it is ✗ with
    the upgrade command, from `device_agent info` and from the bare probe alike."""
    def line(text: str):
        return by_name(run_checks(ctx(runtime={**GOOD_RUNTIME, **parse_runtime(text)})))[
            "TFLite interpreter"]

    new = line('{"agent_version": "0.1.0", "interpreter": {"name": "tflite_runtime", '
               '"version": "2.20.0dev20250409"}}')
    old = line('{"agent_version": "0.1.0", "interpreter": {"name": "tflite_runtime", '
               '"version": "2.13.0"}}')
    probed = line('{"python": "3.12.1", "ai_edge_litert": null, "tflite_runtime": "2.11.0"}')

    assert new.ok and new.detail == "tflite_runtime 2.20.0dev20250409"
    assert not old.ok and "older than 2.14" in old.detail
    assert old.fix == "In Termux: `pkg upgrade python-tflite-runtime`."
    assert not probed.ok and "2.11.0" in probed.detail
