"""The local adb server as a virtual phone's owner uses it: connect and disconnect by the
text adb prints (`adb connect` exits 0 even when it fails), and wait for `device`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from orchestrator.errors import DeviceError, DeviceOffline


def adb_path() -> str:
    path = os.environ.get("ADBUTILS_ADB_PATH") or shutil.which("adb")
    if not path:
        raise DeviceError("The adb command is not installed.",
                          hint="Install Debian's `adb` package or set ADBUTILS_ADB_PATH.")
    return path


def _server() -> tuple[str, int]:
    from orchestrator.settings import get_settings

    s = get_settings()
    return s.adb_host, s.adb_port


def adb(*args: str, timeout: float = 30) -> str:
    """Run the adb CLI against the configured server; its stdout+stderr.

    The server is started first when none answers: with `-H 127.0.0.1` adb itself refuses
    to ("cannot start server on remote host")."""
    from orchestrator.devices.adb import ensure_server
    from orchestrator.devices.address import AdbServer

    host, port = _server()
    ensure_server(AdbServer(host, port))
    try:
        r = subprocess.run([adb_path(), "-H", host, "-P", str(port), *args], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DeviceOffline(f"`adb {' '.join(args)}` did not answer in {timeout:.0f} s.",
                            hint="Restart the adb server: `adb kill-server`.") from None
    return (r.stdout + r.stderr).strip()


def connected(output: str) -> bool:
    """Did `adb connect` succeed? ('connected to X' / 'already connected to X')."""
    low = output.lower()
    return "connected to" in low and not any(w in low for w in ("failed", "unable", "cannot"))


def connect(serial: str, *, timeout: float = 15) -> None:
    """`adb connect` and wait until the phone is in state `device`."""
    out = adb("connect", serial, timeout=timeout)
    if "already connected" in out and state(serial) != "device":
        # The server still holds a dead link it keeps retrying: drop it, ask afresh.
        adb("disconnect", serial, timeout=timeout)
        out = adb("connect", serial, timeout=timeout)
    if not connected(out):
        raise DeviceOffline(f"adb could not connect to {serial}: {out or 'no answer'}.",
                            hint="Check that the phone runs: `orch sim list`.")
    wait_state(serial, "device", timeout=timeout)


def disconnect(serial: str) -> None:
    """`adb disconnect`; a phone the server does not know is fine."""
    adb("disconnect", serial, timeout=15)


def state(serial: str) -> str:
    """`device`, `offline`, … or `absent` when the server does not list it."""
    for line in adb("devices").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == serial:
            return parts[1]
    return "absent"


def wait_state(serial: str, want: str, *, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    now = state(serial)
    while now != want:
        if time.monotonic() > deadline:
            raise DeviceOffline(f"{serial} is {now}, not {want}, after {timeout:.0f} s.",
                                hint="See the phone's log under ORCH_HOME/sim/NAME/phone.log.")
        time.sleep(0.1)
        now = state(serial)
