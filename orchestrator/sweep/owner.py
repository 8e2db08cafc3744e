"""Who drives a sweep: one host process at a time, named `HOST:PID`, with a heartbeat.

A driver on this host is alive while its process is; one on another host while its
heartbeat is recent (the database is all the hosts share).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.store.sweep_repo import SweepPublic

STALE_AFTER_S = 60.0


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")  # a zombie is dead


def driver_alive(sweep: SweepPublic, *, now: datetime | None = None) -> bool:
    """Is some other live process driving this sweep?"""
    if not sweep.owner or sweep.owner == me():
        return False
    host, _, pid = sweep.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    if sweep.heartbeat is None:
        return False
    beat = sweep.heartbeat if sweep.heartbeat.tzinfo else sweep.heartbeat.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - beat).total_seconds() < STALE_AFTER_S
