"""The device link: everything the run pipeline needs from wherever the agent runs.

The pipeline never touches a phone (or the local device folder) except through this
interface, so `LocalLink` (this host) and an adb link are interchangeable. Device paths are
POSIX strings under `root`. Reading a file back is `read_once`, and only the egress guard
(`orchestrator.egress`) may call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Ledger kinds of pushed files (Transfer.kind).
PushKind = str  # "agent" | "model" | "images" | "job"


@dataclass(frozen=True)
class TransferInfo:
    """What one push did: bytes sent (0 when skipped) and the content hash on the device."""

    device_path: str
    bytes: int
    sha256: str
    skipped: bool = False


@dataclass(frozen=True)
class FileStat:
    """Metadata of a device file. `real_path` is the path with every symlink resolved."""

    size: int
    is_file: bool
    is_symlink: bool
    real_path: str


@dataclass(frozen=True)
class OnceRead:
    """One bounded, no-follow read (`orchestrator.read_once`): status ok | none | link |
    other | big | binary | error, the file's size, and the bytes that crossed."""

    status: str
    size: int = 0
    data: bytes = b""


HEADER_RE = re.compile(rb"(ok|none|link|other|big|binary|error)(?: (\d{1,20}))?(?: (\d{1,20}))?")


def parse_once(out: bytes, max_bytes: int) -> OnceRead:
    """The reader's output: its header line, then the bytes it read. Anything else that came
    back (a malformed header, more bytes than asked) is kept as crossed, under `error`."""
    head, nl, data = out.partition(b"\n")
    m = HEADER_RE.fullmatch(head) if nl else None
    if m is None:
        return OnceRead("error", 0, out)
    status = m.group(1).decode()
    size = int(m.group(2) or 0)
    if status == "ok" and (int(m.group(3) or -1) != len(data) or len(data) > max_bytes):
        return OnceRead("error", size, out)
    if status != "ok" and data:
        return OnceRead("error", size, out)
    return OnceRead(status, size, data)


@dataclass(frozen=True)
class HealthSample:
    battery: float | None = None  # percent
    temperature: float | None = None  # °C


@dataclass
class DeviceFacts:
    """What the store keeps about a device (`repo.upsert_device` fields)."""

    serial: str
    model: str | None = None
    manufacturer: str | None = None
    sdk: int | None = None
    release: str | None = None
    soc: str | None = None
    abi: str | None = None
    launcher: str | None = None
    cpus: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def store_fields(self) -> dict[str, Any]:
        return {"model": self.model, "manufacturer": self.manufacturer, "sdk": self.sdk,
                "release": self.release, "soc": self.soc, "abi": self.abi,
                "launcher": self.launcher, "facts": {"cpus": self.cpus, **self.extra}}


@dataclass
class AgentHandle:
    """A launched agent. `pid` is on the device; `exit_code` is known only to some links."""

    run_dir: str
    pid: int | None = None
    exit_code: int | None = None


@runtime_checkable
class DeviceLink(Protocol):
    """Where the agent runs: `LocalLink`, `AdbLink` or `TermuxLink` (this package)."""

    root: str  # device-side base folder (`/data/local/tmp/orch` on a phone)
    launcher: str  # recorded with every run: local | direct | runas | ssh

    def push(self, local_path: str, device_path: str, kind: PushKind, *,
             sha256: str | None = None) -> TransferInfo:
        """Copy one host file to the device, skipped when the device copy has the same hash
        (`sha256`: the file's, when the caller has it already)."""
        ...

    def exists(self, device_path: str) -> bool: ...

    def sha256_of(self, device_path: str) -> str | None:
        """The device file's sha256 computed on the device (its content never comes back)."""
        ...

    def mkdirs(self, device_path: str) -> None: ...

    def start_agent(self, *, agent_dir: str, run_dir: str, resume: bool,
                    standby_s: float | None = None) -> AgentHandle:
        """Launch the agent (`links.scripts.agent_argv`: `run RUN_DIR [--resume]
        [--standby S]`, Python started isolated) detached from the host (`standby_s`: warm,
        waiting that long for job.json)."""
        ...

    def agent_alive(self, run_dir: str) -> bool: ...

    def agent_exit_code(self, run_dir: str) -> int | None:
        """The agent's exit code when the link can know it, else None."""
        ...

    def stop_agent(self, run_dir: str) -> None: ...

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        """At most `max_bytes` from `offset` of a regular file no bigger than `cap`, in one
        read that follows no symlink. Only `orchestrator.egress` may call this."""
        ...

    def stat(self, device_path: str) -> FileStat | None: ...

    def prune(self, folder: str, keep: list[str]) -> int:
        """Remove every entry of a staged folder that is not one of `keep` (relative paths of
        pushed files) or a folder of one; returns how many went. Raises DeviceError if any
        other entry, or a symlink, is left."""
        ...

    def remove(self, device_path: str) -> None: ...

    def facts(self) -> DeviceFacts: ...

    def sample_health(self) -> HealthSample | None: ...
