"""`AdbLink`: the device link to a phone over adb (adbutils), with the `direct` launcher (a
Python on the phone shell's PATH, as on the virtual phone or a rooted phone): the agent's
scripts are `orchestrator.launchers`' shared ones, run in the adb shell itself.

Every device command goes through `orchestrator.devices.adb.Phone`, which checks exit codes.
Hashes are computed on the phone, so skipping an unchanged file costs no bytes; sha256s of a
staged folder are fetched in one command the first time one of its files is asked about.
Paths outside `root` are never listed (a `device:` data set is only ever tested with `-d`).
"""

from __future__ import annotations

import posixpath
import re
import shlex

from orchestrator.devices.adb import Phone, adb_errors
from orchestrator.devices.address import DeviceAddress
from orchestrator.devices.facts import facts_from_props
from orchestrator.devices.health import sample_health
from orchestrator.devices.parsers import parse_getprop
from orchestrator.devices.sync import SyncFailed, SyncSession
from orchestrator.errors import DeviceCommandFailed, DeviceError
from orchestrator.links.base import (
    AgentHandle,
    DeviceFacts,
    FileStat,
    HealthSample,
    OnceRead,
    TransferInfo,
)
from orchestrator.links.direct import AdbShell
from orchestrator.links.local import file_sha256
from orchestrator.links.reader import ReaderSession, serve_script
from orchestrator.links.scripts import prune as prune_script
from orchestrator.links.shell import AgentControl, check_pruned

DEVICE_ROOT = "/data/local/tmp/orch"
_SHA_LINE = re.compile(r"^([0-9a-f]{64}) [ *]?(.+)$")
_DIR_MARK = "ORCH-DIR"
# Files are staged world-readable: apps (Termux via run-as) may read exact paths only.
STAGED_MODE = 0o644


def q(path: str) -> str:
    return shlex.quote(path)


def _hash_script(folder: str, *, recursive: bool = False) -> str:
    """Shell that prints the marker, then (when the folder exists) `d PATH` for each folder
    below it and a sha256sum line for each regular file (directly in it, or in its whole
    tree when `recursive`); symlinks are neither followed nor listed."""
    depth = "" if recursive else "-maxdepth 1 "
    subdirs = (f"find {q(folder)} -mindepth 1 -type d | sed 's/^/d /'; " if recursive
               else "")
    return (f"if test -d {q(folder)}; then echo {_DIR_MARK}; {subdirs}"
            f"find {q(folder)} {depth}-type f -exec sha256sum {{}} +; fi")


class AdbLink:
    """A `DeviceLink` to one phone over adb; the agent runs detached (`setsid nohup`)."""

    launcher = "direct"

    def __init__(self, phone: Phone | DeviceAddress | str, *, root: str = DEVICE_ROOT,
                 python: str | None = None) -> None:
        if isinstance(phone, str):
            phone = DeviceAddress.parse(phone)
        self.phone = phone if isinstance(phone, Phone) else Phone(phone)
        self.root = root.rstrip("/")
        self._python = python
        self._sha: dict[str, str | None] = {}  # device path → sha256 (None: absent)
        self._listed: set[str] = set()  # staged folders whose hashes are in _sha
        self._dirs: set[str] = set()  # folders known to exist (saves a mkdir per file)
        self._sync = SyncSession(self.phone.device)
        self._reader: ReaderSession | None = None  # the phone's egress reader, once started
        self._one_shot = False  # no reader session on this phone (no shell v2): per-read

    @property
    def serial(self) -> str:
        return self.phone.name

    def _under_root(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + "/")

    # ------------------------------------------------------------------ files

    def push(self, local_path: str, device_path: str, kind: str, *,
             sha256: str | None = None) -> TransferInfo:
        digest = sha256 or file_sha256(local_path)
        if self.sha256_of(device_path) == digest:
            return TransferInfo(device_path, 0, digest, skipped=True)
        folder = posixpath.dirname(device_path)
        if folder not in self._dirs:
            self.mkdirs(folder)
        # No temporary name is needed: an interrupted push leaves a file whose hash differs,
        # so the next run pushes it again.
        sent = self._send(local_path, device_path, kind)
        self._sha[device_path] = digest
        return TransferInfo(device_path, sent, digest)

    def _send(self, local_path: str, device_path: str, kind: str) -> int:
        """One file over the open sync session; a stale session is reopened once."""
        for attempt in (1, 2):
            try:
                with adb_errors(f"push {kind}", self.serial):
                    return self._sync.push(local_path, device_path, STAGED_MODE)
            except SyncFailed as e:
                raise DeviceCommandFailed(f"push {device_path}", 1, str(e),
                                          hint=f"Free space with `orch devices clean "
                                               f"{self.serial}` if the phone is full.") from None
            except DeviceError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """End the sync session and the egress reader."""
        self._sync.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def exists(self, device_path: str) -> bool:
        rc, _ = self.phone.run_rc(f"test -e {q(device_path)} || test -L {q(device_path)}",
                                  what="exists")
        return rc == 0

    def is_dir(self, device_path: str) -> bool:
        """`test -d`: the only question the host asks about a `device:` data set."""
        rc, _ = self.phone.run_rc(f"test -d {q(device_path)}")
        return rc == 0

    def sha256_of(self, device_path: str) -> str | None:
        folder = posixpath.dirname(device_path)
        if not self._under_root(device_path):
            return self._sha_one(device_path)
        if folder not in self._listed:
            self._hash_folder(folder)
        return self._sha.get(device_path)

    def _sha_one(self, device_path: str) -> str | None:
        rc, out = self.phone.run_rc(f"test -f {q(device_path)} && test ! -L {q(device_path)} "
                                    f"&& sha256sum {q(device_path)}")
        m = _SHA_LINE.match(out.strip()) if rc == 0 else None
        return m.group(1) if m else None

    def _hash_folder(self, folder: str) -> None:
        """One command hashes every regular file directly in a staged folder."""
        rc, out = self.phone.run_rc(f"test -d {q(folder)} || exit 0; {_hash_script(folder)}")
        if rc != 0:
            raise DeviceCommandFailed(f"sha256sum in {folder}", rc, out)
        self._take_hashes(folder, out)

    def _take_hashes(self, folder: str, out: str) -> None:
        """Remember what `_hash_script` printed: the folder (and the sub-folders it names)
        holds exactly the files listed; none at all if it is absent."""
        for key in [k for k in self._sha if posixpath.dirname(k) == folder]:
            del self._sha[key]
        if _DIR_MARK not in out:
            self._listed.add(folder)  # absent: nothing in it
            return
        for line in out.partition(_DIR_MARK)[2].splitlines():
            if line.startswith("d "):
                self._dirs.add(line[2:])
                self._listed.add(line[2:])
            m = _SHA_LINE.match(line.strip())
            if m:
                self._sha[m.group(2)] = m.group(1)
        self._dirs.add(folder)
        self._listed.add(folder)

    def mkdirs(self, device_path: str) -> None:
        """Make the folder (and those on the way) and learn what it already holds, in one
        round trip: a push into it then needs no hash query of its own."""
        rc, out = self.phone.run_rc(f"umask 022; mkdir -p {q(device_path)} && chmod 755 "
                                    f"{q(device_path)} && {_hash_script(device_path)}",
                                    what="mkdir")
        if rc != 0:
            raise DeviceCommandFailed(f"mkdir {device_path}", rc, out)
        path = device_path
        while path.startswith(self.root) and path not in self._dirs:
            self._dirs.add(path)
            path = posixpath.dirname(path)
        self._take_hashes(device_path, out)

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        """One bounded no-follow read by the phone's Python: only those bytes cross. The
        reader stays running between reads (links/reader.py); if it cannot be started
        or went away before answering, the read is a one-shot Python run instead."""
        reader = self._reader_session()
        if reader is not None:
            try:
                return reader.read_once(device_path, offset, max_bytes, cap)
            except (EOFError, OSError):  # the reader or the link went away
                self._reader = None  # started again at the next read
        return AgentControl(AdbShell(self.phone), self.python).read_once(
            device_path, offset, max_bytes, cap)

    def _reader_session(self) -> ReaderSession | None:
        if self._reader is None and not self._one_shot:
            with adb_errors("start the reader", self.serial):
                stream = self.phone.open_stream(serve_script(self._python))
            if stream is None:
                self._one_shot = True
            else:
                self._reader = ReaderSession(stream)
        return self._reader

    def prune(self, folder: str, keep: list[str]) -> int:
        """The prune script, then the hashes of what is left in the whole tree, in one round
        trip: staging the kept files then asks the phone nothing more."""
        self._listed = {f for f in self._listed if f != folder and not f.startswith(folder + "/")}
        rc, out = self.phone.run_rc(f"{{ {prune_script(folder, keep)}; }}; "
                                    f"{_hash_script(folder, recursive=True)}", what="prune")
        listing = out.partition(_DIR_MARK)
        if rc != 0:
            raise DeviceCommandFailed("prune", rc, out)
        removed = check_pruned(folder, keep, listing[0])
        for key in [k for k in self._sha if k.startswith(folder + "/")]:
            del self._sha[key]
        self._take_hashes(folder, listing[1] + listing[2] if listing[1] else "")
        return removed

    def stat(self, device_path: str) -> FileStat | None:
        return self.agent.stat(device_path)

    def remove(self, device_path: str) -> None:
        self.phone.run(f"rm -rf {q(device_path)}")
        for key in [k for k in self._sha if k == device_path or k.startswith(device_path + "/")]:
            del self._sha[key]
        gone = device_path + "/"
        self._listed = {f for f in self._listed if not (f + "/").startswith(gone)}
        self._dirs = {f for f in self._dirs if not (f + "/").startswith(gone)}

    # ------------------------------------------------------------------ the agent

    @property
    def python(self) -> str:
        """The phone's Python for the `direct` launcher: configured, else found on PATH."""
        if self._python is None:
            rc, out = self.phone.run_rc("command -v python3 || command -v python")
            if rc != 0 or not out.strip():
                raise DeviceError(f"No Python on {self.serial}'s shell PATH.",
                                  hint=f"Run `orch devices doctor {self.serial}` to see how "
                                       "to install one (Termux: `pkg install python`).")
            self._python = out.strip().splitlines()[-1]
        return self._python

    @property
    def agent(self) -> AgentControl:
        """The `direct` launcher: the agent's scripts run in the adb shell itself."""
        return AgentControl(AdbShell(self.phone), self._python or "")

    def start_agent(self, *, agent_dir: str, run_dir: str, resume: bool,
                    standby_s: float | None = None) -> AgentHandle:
        self._sync.close()  # staging is over
        return AgentControl(AdbShell(self.phone), self.python).start_agent(
            agent_dir=agent_dir, run_dir=run_dir, resume=resume, standby_s=standby_s)

    def agent_alive(self, run_dir: str) -> bool:
        return self.agent.agent_alive(run_dir)

    def agent_exit_code(self, run_dir: str) -> int | None:
        return None  # the phone's shell does not keep it; events say how the agent ended

    def stop_agent(self, run_dir: str, *, grace_s: float = 10.0) -> None:
        """SIGTERM the agent's process group (it checkpoints and exits), SIGKILL after grace."""
        self.agent.stop_agent(run_dir, grace_s=grace_s)

    # ------------------------------------------------------------------ facts

    def facts(self) -> DeviceFacts:
        out = self.phone.run("getprop; echo ====ORCH-NPROC====; nproc 2>/dev/null || true")
        props_text, _, nproc = out.partition("====ORCH-NPROC====")
        f = facts_from_props(parse_getprop(props_text))
        extra = {k: v for k, v in (("product", f.product), ("fingerprint", f.fingerprint)) if v}
        return DeviceFacts(serial=self.serial, model=f.model, manufacturer=f.manufacturer,
                           sdk=f.sdk, release=f.release, soc=f.soc, abi=f.abi,
                           launcher=self.launcher,
                           cpus=int(nproc.strip()) if nproc.strip().isdigit() else None,
                           extra=extra)

    def sample_health(self) -> HealthSample | None:
        h = sample_health(self.phone)
        if h.battery is None and h.temperature is None:
            return None
        return HealthSample(battery=h.battery, temperature=h.temperature)
