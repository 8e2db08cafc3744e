"""One agent per run folder: the live agent holds `agent.lock` (an flock, released by the
kernel however the agent ends) and writes its pid and run key in it.

A second agent started in the same folder (two hosts resuming one run) finds the lock held
and refuses before it touches anything: two writers would interleave events.jsonl and
overwrite each other's checkpoints.
"""

from __future__ import annotations

import fcntl
import json
import os

from device_agent.contract import LOCK_FILE, PID_FILE
from device_agent.errors import RunLocked


def _holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


def acquire(run_dir: str) -> int:
    """The locked file's descriptor (keep it open while the agent lives), else RunLocked."""
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held = _holder(fd)
        os.close(fd)
        pid = held.get("pid") if isinstance(held.get("pid"), int) else None
        raise RunLocked(f"the run folder is locked by a live agent (pid {pid}, run "
                        f"{held.get('run_key')}); follow it instead of starting another",
                        pid) from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(),
                             "run_key": os.path.basename(run_dir)}).encode())
    return fd


def restore_pid_file(run_dir: str, pid: int | None) -> None:
    """The launcher wrote the refused agent's pid: point agent.pid back at the live one."""
    if pid is None:
        return
    tmp = os.path.join(run_dir, PID_FILE + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(f"{pid}\n")
        os.replace(tmp, os.path.join(run_dir, PID_FILE))
    except OSError:
        pass
