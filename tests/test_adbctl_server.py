"""The virtual phones' adb helper starts the local adb server itself when none runs.

adb refuses to start one when given `-H 127.0.0.1` ("cannot start server on remote host"),
so a fresh machine with no server used to fail every virtual-phone test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sim_fixtures import ADB, free_port

from orchestrator.settings import get_settings
from orchestrator.sim import adbctl


def test_adb_helper_starts_a_missing_local_server(monkeypatch):
    if not Path(ADB).exists():
        pytest.skip("Debian's adb is not installed")
    port = free_port()
    monkeypatch.setenv("ORCH_ADB_PORT", str(port))
    monkeypatch.setenv("ADBUTILS_ADB_PATH", ADB)
    get_settings.cache_clear()
    try:
        out = adbctl.adb("devices")
        assert "List of devices attached" in out, out
        assert "cannot" not in out.lower(), out
    finally:
        subprocess.run([ADB, "-P", str(port), "kill-server"], capture_output=True, timeout=30)
        get_settings.cache_clear()
