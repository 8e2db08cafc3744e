"""Several virtual phones at once, and `orch sim` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sim_fixtures import ADB, virtual_phone  # noqa: F401

from orchestrator.sim import manager

REPO = Path(__file__).resolve().parents[1]


def test_four_phones_at_once_are_separate(virtual_phone):  # noqa: F811
    """Four phones run side by side on their own even ports; each answers with its own
    profile, and a file written on one is invisible to the others."""
    profiles = ["pixel7", "galaxy_s23", "nokia23", "pixel7"]
    phones = [virtual_phone(p, name=f"farm{i}") for i, p in enumerate(profiles)]
    assert len({p.port for p in phones}) == 4 and all(p.port % 2 == 0 for p in phones)
    models: dict[int, str] = {}

    def work(i: int) -> None:
        dev = phones[i].adb()
        dev.shell(f"echo phone{i} > /sdcard/whoami.txt")
        model = dev.shell("getprop ro.product.model")
        models[i] = model + "|" + dev.shell("cat /sdcard/whoami.txt")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert models == {0: "Pixel 7|phone0", 1: "SM-S911B|phone1", 2: "Nokia 2.3|phone2",
                      3: "Pixel 7|phone3"}
    serials = {p.adb().shell("getprop ro.serialno") for p in phones}
    assert len(serials) == 4  # same profile, different phones


def orch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_start_getprop_list_stop(isolated_home, tmp_path):
    """`orch sim start --profile pixel7 --name pixel7` makes `adb -s SERIAL shell getprop
    ro.product.model` print Pixel 7; list shows it; stop disconnects and stops it."""
    photos = tmp_path / "photos"
    for cls in ("cat", "dog"):
        (photos / cls).mkdir(parents=True)
        (photos / cls / f"{cls}.1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    if os.geteuid() != 0:
        pytest.skip("virtual phones need root")
    try:
        r = orch("sim", "start", "--profile", "pixel7", "--name", "pixel7", "--photos",
                 str(photos), "--format", "json")
        assert r.returncode == 0, r.stderr
        started = json.loads(r.stdout)
        out = subprocess.run([ADB, "-s", started["serial"], "shell", "getprop",
                              "ro.product.model"], capture_output=True, text=True, timeout=30)
        assert out.stdout == "Pixel 7\n"
        gallery = subprocess.run([ADB, "-s", started["serial"], "shell",
                                  "ls /sdcard/DCIM/catsdogs/*"], capture_output=True, text=True)
        assert gallery.stdout.split() == ["/sdcard/DCIM/catsdogs/cat:", "cat.1.jpg",
                                          "/sdcard/DCIM/catsdogs/dog:", "dog.1.jpg"]
        listed = json.loads(orch("sim", "list", "--format", "json").stdout)
        assert [(p["name"], p["serial"], p["running"]) for p in listed] == [
            ("pixel7", started["serial"], True)]
        again = orch("sim", "start", "--name", "pixel7")
        assert again.returncode == 5 and "already runs" in again.stderr
        r = orch("sim", "stop", "pixel7")
        assert r.returncode == 0, r.stderr
        devices = subprocess.run([ADB, "devices"], capture_output=True, text=True).stdout
        assert started["serial"] not in devices
        assert json.loads(orch("sim", "list", "--format", "json").stdout) == []
    finally:
        manager.stop_all(home=isolated_home)


def test_cli_errors_are_one_line(isolated_home):
    """A bad profile or fault is one line with a hint and a named exit code."""
    r = orch("sim", "start", "--profile", "no-such-phone")
    assert r.returncode == 9 and r.stderr.count("\n") == 1 and "pixel7" in r.stderr
    r = orch("sim", "start", "--fault", "warp=9")
    assert r.returncode == 2 and "drop_after_bytes" in r.stderr and "Traceback" not in r.stderr
    r = orch("sim", "stop", "ghost")
    assert r.returncode == 9 and "orch sim list" in r.stderr
