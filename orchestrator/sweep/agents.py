"""Asking one phone's agent to stop (used by cancel, from the CLI or the driver)."""

from __future__ import annotations

from orchestrator.runner.adb_link import AdbLink


def stop_agent(phone: str, run_dir: str) -> None:
    """SIGTERM the run's agent on `phone` (a serial or SERIAL@HOST:PORT); DeviceError if the
    phone cannot be reached."""
    link = AdbLink(phone)
    try:
        link.stop_agent(run_dir)
    finally:
        link.close()
