"""What a launcher is: a shell in the agent's world, and the agent control built on it.

A launcher answers one question: how does the host run a command where the agent runs?
- `direct`: the adb shell itself (a Python on its PATH: virtual phones, rooted phones);
- `runas`: `run-as com.termux` from the adb shell (Termux's debuggable GitHub builds);
- `ssh`: Termux's sshd through `adb forward` (any Termux build).
`AgentControl` starts, watches, stops and reads the agent through any of them with the same
scripts, so the rest of the pipeline does not care which one a phone uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import DeviceCommandFailed, DeviceError
from orchestrator.links import scripts
from orchestrator.links.base import AgentHandle, FileStat, OnceRead, parse_once

LAUNCHERS = ("direct", "runas", "ssh")
_SHA_LINE = re.compile(r"^([0-9a-f]{64}) [ *]?(.+)$")


class AgentShell(Protocol):
    """A POSIX shell where the agent runs; its scripts are `links.scripts`."""

    launcher: str  # direct | runas | ssh: recorded with every run and transfer
    name: str  # the phone, for messages

    def run_rc(self, script: str, *, timeout: float | None = None,
               what: str | None = None) -> tuple[int, str]:
        """(exit code, stdout + stderr) of `script`."""
        ...

    def read_bytes(self, script: str, *, what: str) -> tuple[int, bytes]:
        """(exit code, stdout as bytes) of `script`: for file contents (egress reads)."""
        ...

    def close(self) -> None: ...


@dataclass
class AgentControl:
    """The agent's life and its run folder's files, through one shell."""

    shell: AgentShell
    python: str

    def run(self, script: str, *, what: str, timeout: float | None = None) -> str:
        rc, out = self.shell.run_rc(script, timeout=timeout, what=what)
        if rc != 0:
            raise DeviceCommandFailed(what, rc, out)
        return out

    def start_agent(self, *, agent_dir: str, run_dir: str, resume: bool,
                    standby_s: float | None = None) -> AgentHandle:
        out = self.run(scripts.start(python=self.python, agent_dir=agent_dir, run_dir=run_dir,
                                     resume=resume, standby_s=standby_s), what="start agent")
        pid = out.strip().splitlines()[-1] if out.strip() else ""
        return AgentHandle(run_dir=run_dir, pid=int(pid) if pid.isdigit() else None)

    def agent_alive(self, run_dir: str) -> bool:
        rc, _ = self.shell.run_rc(scripts.alive(run_dir), what="agent check")
        return rc == 0

    def stop_agent(self, run_dir: str, *, grace_s: float = 10.0) -> None:
        self.shell.run_rc(scripts.stop(run_dir, grace_s), timeout=grace_s + 30,
                          what="stop agent")

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        """One bounded read that follows no symlink, by the phone's own Python started
        isolated (`orchestrator.read_once`); every launcher reads the same way."""
        rc, data = self.shell.read_bytes(
            scripts.read_once(self.python, device_path, offset, max_bytes, cap), what="read")
        if rc != 0:
            return OnceRead("error", 0, data)
        return parse_once(data, max_bytes)

    def prune(self, folder: str, keep: list[str]) -> int:
        """Remove what orch did not push from a staged folder; how many entries went."""
        out = self.run(scripts.prune(folder, keep), what="prune")
        return check_pruned(folder, keep, out)

    def stat(self, device_path: str) -> FileStat | None:
        rc, out = self.shell.run_rc(scripts.stat(device_path), what="stat")
        if rc != 0:
            raise DeviceCommandFailed(f"stat {device_path}", rc, out)
        kind, _, rest = out.strip().partition(" ")
        if kind == "none":
            return None
        size, _, real = rest.partition(" ")
        return FileStat(size=int(size) if size.isdigit() else 0, is_file=kind == "file",
                        is_symlink=kind == "link", real_path=real or device_path)

    def exists(self, device_path: str) -> bool:
        return self.shell.run_rc(scripts.exists(device_path), what="exists")[0] == 0

    def sha256_of(self, device_path: str) -> str | None:
        rc, out = self.shell.run_rc(scripts.sha256(device_path), what="sha256sum")
        m = _SHA_LINE.match(out.strip()) if rc == 0 else None
        return m.group(1) if m else None

    def mkdirs(self, device_path: str) -> None:
        self.run(scripts.mkdirs(device_path), what="mkdir")

    def remove(self, device_path: str) -> None:
        self.run(f"rm -rf {scripts.q(device_path)}", what="rm")


def check_pruned(folder: str, keep: list[str], out: str) -> int:
    """Entries removed, from the prune script's output; a DeviceError when anything but the
    pushed files (and their folders) is left, or any of them is a symlink."""
    lines = out.strip().splitlines()
    last = lines[-1].split() if lines else []
    dirs = {d for p in keep for d in _parents(p)}
    if len(last) != 3 or last[0] != "left" or not last[1].isdigit() \
            or int(last[1]) > len(set(keep) | dirs) or last[2] != "0":
        raise DeviceError(f"The staged folder {folder} holds files orch did not push and they "
                          "could not be removed, so the agent is not started.",
                          hint="Remove the folder (`orch devices clean DEV`) and run again.")
    return sum(1 for line in lines if line == "removed")


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def unknown_launcher(name: str) -> DeviceError:
    return DeviceError(f"Unknown launcher {name!r}.",
                       hint=f"Use one of {', '.join(LAUNCHERS)}.")
