"""`orch sim start --port N`: the phone listens on exactly that port (it used to bind it twice
and fail), and the adb server reaches it there."""

from __future__ import annotations

import os
import socket

import pytest
from sim_fixtures import ADB, _can_run_phones, free_port  # noqa: F401


def _free_even_port() -> int:
    """A free even port (adb scans odd ones as emulators; Linux hands out odd ones for 0)."""
    for p in range((free_port() | 1) + 1, 65535, 2):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise RuntimeError("no free even port")


def test_sim_starts_on_a_given_port(tmp_path):
    """A phone started with port=N is online at 127.0.0.1:N and answers getprop."""
    reason = _can_run_phones()
    if reason:
        pytest.skip(reason)
    from orchestrator.sim import manager

    os.environ.setdefault("ADBUTILS_ADB_PATH", ADB)
    port = _free_even_port()
    info = manager.start_phone(profile="pixel7", name="fixed-port", port=port, home=tmp_path,
                               tethered=True)
    try:
        assert info.port == port and info.serial == f"127.0.0.1:{port}"
        assert info.adb().prop.model == "Pixel 7"
    finally:
        manager.stop_phone("fixed-port", home=tmp_path)
