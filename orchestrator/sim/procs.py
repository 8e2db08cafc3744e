"""The phone's processes: spawning with a reaper-safe registry, reaping orphans, and how
busy they keep the CPU (the load that drains the simulated battery and heats the SoC).

The phone daemon is PID 1 of its own PID namespace, so every orphan (`setsid nohup … &`)
becomes its child: it reaps those, but never a child a Popen object is waiting for.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Any


class ProcessTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: set[int] = set()

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:  # a child that exits at once must not be reaped as an orphan
            proc = subprocess.Popen(argv, close_fds=True, cwd="/", **kwargs)
            self._owned.add(proc.pid)
        threading.Thread(target=self._disown_when_done, args=(proc,), daemon=True).start()
        return proc

    def _disown_when_done(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        with self._lock:
            self._owned.discard(proc.pid)

    def reap_orphans(self) -> int:
        """Reap exited children nobody waits for; returns how many."""
        reaped = 0
        me = os.getpid()
        with self._lock:
            for pid, ppid, state in _processes():
                if ppid == me and state == "Z" and pid not in self._owned:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                        reaped += 1
                    except ChildProcessError:
                        pass
        return reaped

    def terminate_all(self, sig: int) -> None:
        """Signal every process of the phone but the daemon (kill(-1) in its namespace)."""
        try:
            os.kill(-1, sig)
        except ProcessLookupError:
            pass


class LoadMeter:
    """Busy cores of the phone's processes between two samples.

    CPU time is summed over the live processes, with the time of their reaped children
    (cutime/cstime) and the daemon's own reaped children, so a process that ends between
    two samples still counts: its time has moved into its parent's totals.
    """

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self._last: int | None = None

    def sample(self, dt: float) -> float:
        total = _phone_cpu_ticks()
        last, self._last = self._last, total
        if last is None or dt <= 0:
            return 0.0
        return max(total - last, 0) / self._tick / dt


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces or ')': split after its last ')'.
    return raw[raw.rfind(")") + 2:].split()


def _processes() -> list[tuple[int, int, str]]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (f := _stat_fields(pid)):
            out.append((int(pid), int(f[1]), f[0]))
    return out


def _phone_cpu_ticks() -> int:
    me = str(os.getpid())
    total = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (f := _stat_fields(pid)):
            # utime + stime (+ cutime + cstime): for the daemon, only its reaped children
            total += int(f[13]) + int(f[14]) + (0 if pid == me else int(f[11]) + int(f[12]))
    return total
