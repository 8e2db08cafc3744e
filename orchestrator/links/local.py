"""`LocalLink`: the "device" is this host. Files live in `<ORCH_HOME>/local-device/`
(mirroring `/data/local/tmp/orch/` on a phone) and the agent is a detached subprocess of this
host's Python, run from the staged agent bundle exactly as a phone would run it."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import signal
import socket
import stat as stat_mod
import subprocess
import sys
import time
from pathlib import Path

from device_agent import contract
from orchestrator.links.base import (
    AgentHandle,
    DeviceFacts,
    FileStat,
    HealthSample,
    OnceRead,
    TransferInfo,
    parse_once,
)
from orchestrator.links.scripts import agent_argv
from orchestrator.read_once import read_once


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


class LocalLink:
    """A `DeviceLink` whose device is this host (`orch run --device local`)."""

    launcher = "local"

    def __init__(self, root: str | Path, *, python: str = sys.executable) -> None:
        self.root = str(Path(root).resolve())
        self.python = python
        Path(self.root).mkdir(parents=True, exist_ok=True)
        self._procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ files

    def push(self, local_path: str, device_path: str, kind: str, *,
             sha256: str | None = None) -> TransferInfo:
        digest = sha256 or file_sha256(local_path)
        if self.sha256_of(device_path) == digest:
            return TransferInfo(device_path, 0, digest, skipped=True)
        dst = Path(device_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Copy then rename, so the agent never sees a half-written file.
        tmp = dst.with_name(f".{dst.name}.part")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, dst)
        return TransferInfo(device_path, dst.stat().st_size, digest)

    def exists(self, device_path: str) -> bool:
        return os.path.lexists(device_path)

    def sha256_of(self, device_path: str) -> str | None:
        p = Path(device_path)
        if not p.is_file() or p.is_symlink():
            return None
        return file_sha256(p)

    def mkdirs(self, device_path: str) -> None:
        Path(device_path).mkdir(parents=True, exist_ok=True)

    def prune(self, folder: str, keep: list[str]) -> int:
        root = Path(folder)
        if not root.is_dir() or root.is_symlink():
            return 0
        wanted = set(keep) | {str(Path(p).parent) for p in keep}
        wanted |= {str(parent) for p in keep for parent in Path(p).parents}
        removed = 0
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for name in filenames + dirnames:
                path = Path(dirpath) / name
                rel = path.relative_to(root).as_posix()
                if rel in wanted and not path.is_symlink():
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
        return removed

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        header, data = read_once(device_path, offset, max_bytes, cap)
        return parse_once(header.encode() + b"\n" + data, max_bytes)

    def stat(self, device_path: str) -> FileStat | None:
        try:
            st = os.lstat(device_path)
        except OSError:
            return None
        return FileStat(size=st.st_size, is_file=stat_mod.S_ISREG(st.st_mode),
                        is_symlink=stat_mod.S_ISLNK(st.st_mode),
                        real_path=os.path.realpath(device_path))

    def remove(self, device_path: str) -> None:
        p = Path(device_path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif os.path.lexists(p):
            p.unlink()

    # ------------------------------------------------------------------ the agent

    def start_agent(self, *, agent_dir: str, run_dir: str, resume: bool,
                    standby_s: float | None = None) -> AgentHandle:
        # The staged bundle, not the repository, is what runs, started isolated: as on a phone.
        cmd = agent_argv(self.python, agent_dir, run_dir, resume, standby_s=standby_s)
        env = dict(os.environ)
        log = open(Path(run_dir) / contract.LOG_FILE, "ab")
        try:
            if resume:  # the events file is repaired before the host reads it again
                subprocess.run(agent_argv(self.python, agent_dir, run_dir, False,
                                          command="repair"),
                               cwd=agent_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, timeout=120)
            proc = subprocess.Popen(cmd, cwd=agent_dir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()
        self._procs[run_dir] = proc
        (Path(run_dir) / contract.PID_FILE).write_text(f"{proc.pid}\n")
        return AgentHandle(run_dir=run_dir, pid=proc.pid)

    def _pid(self, run_dir: str) -> int | None:
        try:
            return int((Path(run_dir) / contract.PID_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def agent_alive(self, run_dir: str) -> bool:
        proc = self._procs.get(run_dir)
        if proc is not None and proc.poll() is None:
            return True
        # An agent launched by an earlier host process (or the live agent that refused the
        # one this link started, which points the pid file back at itself): the pid file's
        # pid, if it still runs this job.
        pid = self._pid(run_dir)
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return run_dir.encode() in cmdline and state != "Z"

    def agent_exit_code(self, run_dir: str) -> int | None:
        proc = self._procs.get(run_dir)
        return None if proc is None else proc.poll()

    def stop_agent(self, run_dir: str) -> None:
        proc = self._procs.get(run_dir)
        pid = proc.pid if proc is not None and proc.poll() is None else self._pid(run_dir)
        if pid is None or not self.agent_alive(run_dir):
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.agent_alive(run_dir):
                    return
                time.sleep(0.05)

    # ------------------------------------------------------------------ facts

    def facts(self) -> DeviceFacts:
        return DeviceFacts(
            serial=f"local:{socket.gethostname()}", model="local", abi=platform.machine(),
            release=platform.release(), soc=cpu_model(), launcher=self.launcher,
            cpus=os.cpu_count(), extra={"python": platform.python_version(),
                                        "system": platform.system()},
        )

    def sample_health(self) -> HealthSample | None:
        battery = temperature = None
        for cap in sorted(Path("/sys/class/power_supply").glob("*/capacity")):
            try:
                battery = float(cap.read_text().strip())
                break
            except (OSError, ValueError):
                continue
        zone = Path("/sys/class/thermal/thermal_zone0/temp")
        try:
            temperature = float(zone.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            pass
        if battery is None and temperature is None:
            return None
        return HealthSample(battery=battery, temperature=temperature)
