"""`TermuxLink`: the device link for an agent that runs inside Termux (runas or ssh).

Two places on the phone, one device root for the pipeline (`~/.orch` in Termux's home):
- staged files (agent, models, host data sets) are pushed by adb to /data/local/tmp/orch/,
  world-readable, and reached from Termux through links `~/.orch/{agent,models,data}`
  (apps may read exact paths there, not list /data/local/tmp itself, nor write);
- run folders `~/.orch/runs/<key>/` are Termux's own: only Termux can write them, so the
  job goes there through the launcher, and events and result come back the same way.
The adb shell never touches Termux's folder (a stock phone's shell cannot).
"""

from __future__ import annotations

import posixpath

from orchestrator.devices.adb import Phone
from orchestrator.devices.address import DeviceAddress
from orchestrator.errors import DeviceError
from orchestrator.links import scripts
from orchestrator.links.adb import DEVICE_ROOT, AdbLink
from orchestrator.links.base import (
    AgentHandle,
    DeviceFacts,
    FileStat,
    HealthSample,
    OnceRead,
    TransferInfo,
)
from orchestrator.links.local import file_sha256
from orchestrator.links.shell import AgentControl, AgentShell
from orchestrator.links.termux_env import ORCH_DIR, PREFIX

STAGED = ("agent", "models", "data")  # folders under the root that live in the staging area
INCOMING = "incoming"  # staging folder for files on their way into a run folder
PYTHON = f"{PREFIX}/bin/python"


def staged_path(root: str, stage_root: str, device_path: str) -> str | None:
    """Where a path under root/{agent,models,data} really lives (under stage_root), or None
    for anything else (a run folder is Termux's own)."""
    for kind in STAGED:
        base = f"{root}/{kind}"
        if device_path == base or device_path.startswith(base + "/"):
            return stage_root + device_path[len(root):]
    return None


class TermuxLink:
    """A `DeviceLink` whose agent runs as the Termux app, reached through `shell`."""

    def __init__(self, phone: Phone | DeviceAddress | str, shell: AgentShell, *,
                 root: str = ORCH_DIR, stage_root: str = DEVICE_ROOT) -> None:
        self.stage = AdbLink(phone, root=stage_root)
        self.phone = self.stage.phone
        self.shell = shell
        self.root = root.rstrip("/")
        self.launcher = shell.launcher
        self.agent = AgentControl(shell, PYTHON)
        self._layout = False

    @property
    def serial(self) -> str:
        return self.phone.name

    def staged_path(self, device_path: str) -> str | None:
        return staged_path(self.root, self.stage.root, device_path)

    def ensure_layout(self) -> None:
        """~/.orch/runs, and the links to the staging area (once per link)."""
        if self._layout:
            return
        links = " ".join(
            f"[ \"$(readlink {scripts.q(f'{self.root}/{k}')})\" = "
            f"{scripts.q(f'{self.stage.root}/{k}')} ] || ln -sfn "
            f"{scripts.q(f'{self.stage.root}/{k}')} {scripts.q(f'{self.root}/{k}')};"
            for k in STAGED)
        self.agent.run(f"{scripts.mkdirs(self.root + '/runs')} && chmod 700 "
                       f"{scripts.q(self.root)} && {links} true", what="Termux folders")
        self._layout = True

    # ------------------------------------------------------------------ files

    def push(self, local_path: str, device_path: str, kind: str, *,
             sha256: str | None = None) -> TransferInfo:
        staged = self.staged_path(device_path)
        if staged is not None:
            self.ensure_layout()
            return self.stage.push(local_path, staged, kind, sha256=sha256)
        # A file for a run folder (job.json): staged, then copied in by Termux itself.
        digest = sha256 or file_sha256(local_path)
        if self.agent.sha256_of(device_path) == digest:
            return TransferInfo(device_path, 0, digest, skipped=True)
        tmp = f"{self.stage.root}/{INCOMING}/{digest[:16]}-{posixpath.basename(device_path)}"
        sent = self.stage.push(local_path, tmp, kind).bytes
        try:
            self.agent.run(f"cp {scripts.q(tmp)} {scripts.q(device_path)} && chmod 600 "
                           f"{scripts.q(device_path)}", what=f"copy {kind} into Termux")
        finally:
            self.stage.remove(tmp)
        return TransferInfo(device_path, sent, digest)

    def exists(self, device_path: str) -> bool:
        staged = self.staged_path(device_path)
        return self.stage.exists(staged) if staged else self.agent.exists(device_path)

    def sha256_of(self, device_path: str) -> str | None:
        staged = self.staged_path(device_path)
        return self.stage.sha256_of(staged) if staged else self.agent.sha256_of(device_path)

    def mkdirs(self, device_path: str) -> None:
        staged = self.staged_path(device_path)
        if staged is not None:
            self.stage.mkdirs(staged)
            return
        self.ensure_layout()
        self.agent.mkdirs(device_path)

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        """Only `orchestrator.egress` calls this: a run's events and result, via Termux."""
        return self.agent.read_once(device_path, offset, max_bytes, cap)

    def prune(self, folder: str, keep: list[str]) -> int:
        staged = self.staged_path(folder)
        return self.stage.prune(staged, keep) if staged else self.agent.prune(folder, keep)

    def stat(self, device_path: str) -> FileStat | None:
        staged = self.staged_path(device_path)
        return self.stage.stat(staged) if staged else self.agent.stat(device_path)

    def remove(self, device_path: str) -> None:
        staged = self.staged_path(device_path)
        if staged is not None:
            self.stage.remove(staged)
        else:
            self.agent.remove(device_path)

    def close(self) -> None:
        self.stage.close()

    # ------------------------------------------------------------------ the agent

    def start_agent(self, *, agent_dir: str, run_dir: str, resume: bool,
                    standby_s: float | None = None) -> AgentHandle:
        self.stage.close()
        if not self.agent.exists(PYTHON):
            raise DeviceError(f"Termux on {self.serial} has no Python.",
                              hint=f"Run `orch devices setup {self.serial}` (GitHub build), or "
                                   "in Termux: `pkg install python python-numpy python-pillow "
                                   "python-tflite-runtime`.")
        return self.agent.start_agent(agent_dir=agent_dir, run_dir=run_dir, resume=resume,
                                      standby_s=standby_s)

    def agent_alive(self, run_dir: str) -> bool:
        return self.agent.agent_alive(run_dir)

    def agent_exit_code(self, run_dir: str) -> int | None:
        return None  # neither run-as nor sshd keeps it; events say how the agent ended

    def stop_agent(self, run_dir: str) -> None:
        self.agent.stop_agent(run_dir)

    def staged_in_use(self) -> list[str]:
        """Staging paths live Termux agents use (their cwd and the paths their jobs name),
        for `orch devices clean`: the adb shell cannot read Termux's run folders."""
        r = scripts.q(self.root)
        names = scripts.q(self.root + '/[A-Za-z_]*/[^/"]*')
        rc, out = self.shell.run_rc(
            f"for d in {r}/runs/*; do test -d \"$d\" || continue; "
            "pid=$(cat \"$d/agent.pid\" 2>/dev/null) || continue; "
            "case \"$pid\" in ''|*[!0-9]*) continue;; esac; "
            "kill -0 \"$pid\" 2>/dev/null || continue; "
            "readlink -f /proc/$pid/cwd 2>/dev/null; "
            f"grep -o {names} \"$d/job.json\" 2>/dev/null; done; exit 0", what="runs in use")
        paths = [line.strip() for line in out.splitlines() if line.strip()] if rc == 0 else []
        return [staged_path(self.root, self.stage.root, p) or p for p in paths]

    # ------------------------------------------------------------------ facts

    def facts(self) -> DeviceFacts:
        # Asked before anything is built: a launcher that cannot enter Termux fails here.
        self.ensure_layout()
        facts = self.stage.facts()
        facts.launcher = self.launcher
        return facts

    def sample_health(self) -> HealthSample | None:
        return self.stage.sample_health()
