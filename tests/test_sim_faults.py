"""Injected faults on a virtual phone: dropped links, a slow link, an unplugged phone.

adbutils must raise (never hang) when the link drops; the phone keeps its processes and
takes the adb server's reconnection, as a real phone does after a cable glitch.
"""

from __future__ import annotations

import os
import time

import pytest
from adbutils.errors import AdbError
from sim_fixtures import virtual_phone  # noqa: F401

from orchestrator.errors import DeviceOffline
from orchestrator.sim import adbctl

# What a dropped link may surface as in adbutils: its own errors or the socket's.
LINK_ERRORS = (AdbError, OSError, EOFError)


def wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def back_online(phone, timeout: float = 15.0) -> None:
    """Wait for state `device`: the adb server reconnects by itself, or `adb connect` does."""
    deadline = time.monotonic() + timeout
    while adbctl.state(phone.serial) != "device":
        try:
            phone.reconnect(timeout=5)
        except DeviceOffline:
            assert time.monotonic() < deadline, "the phone did not come back"
            time.sleep(0.2)


@pytest.fixture
def payload(tmp_path):
    path = tmp_path / "16m.bin"
    path.write_bytes(os.urandom(16 * 1024 * 1024))
    return path


def test_drop_after_bytes_fails_a_push_then_the_phone_takes_a_reconnect(virtual_phone, payload):  # noqa: F811
    """A link that drops after 2 MB makes a 16 MB push raise quickly; with the fault
    cleared the adb server reconnects and the same push succeeds."""
    phone = virtual_phone("pixel7", faults={"drop_after_bytes": 2_000_000})
    dev = phone.adb(timeout=20)
    start = time.monotonic()
    with pytest.raises(LINK_ERRORS):
        dev.sync.push(payload, "/sdcard/big.bin")
    assert time.monotonic() - start < 10
    assert "dropped (after" in phone.log()
    phone.set_faults(clear=True)
    back_online(phone)
    assert dev.sync.push(payload, "/sdcard/big.bin") == payload.stat().st_size


def test_drop_mid_command_raises_and_processes_survive(virtual_phone):  # noqa: F811
    """Dropping the link while a command runs makes shell2 raise at once; a background job
    started with setsid nohup keeps running, and the phone is usable again."""
    phone = virtual_phone("galaxy_s23")
    dev = phone.adb(timeout=30)
    dev.shell("setsid nohup sh -c 'while :; do echo beat >> /data/local/tmp/beat; "
              "sleep 0.1; done' > /dev/null 2>&1 < /dev/null &")
    phone.set_faults(drop_in=1)
    start = time.monotonic()
    with pytest.raises(LINK_ERRORS):
        dev.shell2("sleep 20; echo never", v2=True)
    assert time.monotonic() - start < 10
    back_online(phone)
    beats = phone.host_path("/data/local/tmp/beat")
    before = beats.read_text().count("beat")
    wait_for(lambda: beats.read_text().count("beat") > before)  # still beating after the drop
    assert dev.shell2("getprop ro.product.model", v2=True).output == "SM-S911B\n"


def test_throttle_slows_the_link(virtual_phone, tmp_path):  # noqa: F811
    """A 2 MB/s cap makes a 4 MB push take at least ~2 s; lifting it makes it at least twice
    as fast (margins wide enough for a loaded machine)."""
    phone = virtual_phone("pixel7", faults={"throttle_mbps": 2})
    src = tmp_path / "4m.bin"
    src.write_bytes(os.urandom(4_000_000))
    dev = phone.adb()
    start = time.monotonic()
    dev.sync.push(src, "/data/local/tmp/4m.bin")
    slow = time.monotonic() - start
    phone.set_faults(clear=True)
    start = time.monotonic()
    dev.sync.push(src, "/data/local/tmp/4m.bin")
    fast = time.monotonic() - start
    assert slow >= 4_000_000 / 2e6 * 0.95
    assert fast < slow / 2


def test_offline_phone_refuses_adb_connect(virtual_phone):  # noqa: F811
    """An unplugged phone drops its link and refuses connections: `adb connect` fails by
    its text (exit 0 notwithstanding); plugged back in, it connects again."""
    phone = virtual_phone("nokia23")
    phone.set_faults(offline=True)
    wait_for(lambda: adbctl.state(phone.serial) != "device")
    with pytest.raises(DeviceOffline, match="could not connect"):
        adbctl.connect(phone.serial, timeout=5)
    phone.set_faults(offline=False)
    back_online(phone)
    assert phone.adb().shell("getprop ro.product.model") == "Nokia 2.3"
