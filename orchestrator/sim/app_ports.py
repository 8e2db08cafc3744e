"""Ports that apps on a virtual phone serve: the phone shares the host's network, so an app
server (Termux's sshd) binds a free host port and publishes it under the phone's port number,
and the phone's `tcp:PORT` service (what `adb forward` opens) connects there."""

from __future__ import annotations

from pathlib import Path

from orchestrator.links.termux_env import PREFIX

PORTS = "var/run/orch-sim-ports"  # under Termux's $PREFIX: one file per phone port


def published_port(port: int) -> int | None:
    """Inside the phone: the host port published for the phone's `port`, if any."""
    try:
        text = Path(PREFIX, PORTS, str(port)).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
