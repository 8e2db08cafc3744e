"""Start, list, stop and steer virtual phones (host side).

Each phone has a state folder `<ORCH_HOME>/sim/<name>/`: phone.json (what was asked),
state.json (port, pid, serial, written by the running phone), control.json (run-time
faults), phone.log, storage/ (its /data and /sdcard) and system/ (its /system).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import runtimes
from orchestrator.errors import DataError, DeviceError, DeviceOffline, NotFound
from orchestrator.sim import adbctl
from orchestrator.sim.faults import (
    APPLIED_FILE,
    Faults,
    make_faults,
    read_control,
    write_control,
)
from orchestrator.sim.profile import load_profile

if TYPE_CHECKING:
    from adbutils import AdbDevice

    from orchestrator.sim.arm64_root import Progress

CONFIG_FILE = "phone.json"
STATE_FILE = "state.json"
LOG_FILE = "phone.log"
GALLERY = "DCIM/catsdogs"  # under /sdcard
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}

# Daemons started by this process, so a long-lived caller (a test session) can reap them,
# and the write ends of the pipes that tie a phone's life to this process.
_children: dict[str, subprocess.Popen[bytes]] = {}
_tethers: dict[str, int] = {}


@dataclass(frozen=True)
class SimPhone:
    name: str
    profile: str
    model: str
    port: int
    serial: str
    pid: int
    state_dir: Path
    running: bool
    started_at: float | None = None

    @property
    def root(self) -> Path:
        """The phone's storage on the host: `data/` is its /data, `sdcard/` its /sdcard."""
        return self.state_dir / "storage"

    def host_path(self, phone_path: str) -> Path:
        """Where a /data or /sdcard path of the phone lives on the host."""
        rel = os.path.normpath("/" + phone_path.lstrip("/")).lstrip("/")
        for prefix, sub in (("sdcard", "sdcard"), ("storage/emulated/0", "sdcard"),
                            ("storage/self/primary", "sdcard"), ("data", "data")):
            if rel == prefix or rel.startswith(prefix + "/"):
                return self.root / sub / rel[len(prefix):].lstrip("/")
        raise ValueError(f"{phone_path} is not in the phone's storage (/data, /sdcard)")

    def adb(self, timeout: float = 60.0) -> AdbDevice:
        """The phone through the adb server, as adbutils sees any phone; every socket read
        is bounded by `timeout` seconds (adbutils' sync has none by default)."""
        from adbutils import AdbClient

        from orchestrator.settings import get_settings

        s = get_settings()
        client = AdbClient(host=s.adb_host, port=s.adb_port, socket_timeout=timeout)
        return client.device(serial=self.serial)

    def to_public(self) -> dict[str, Any]:
        return {"name": self.name, "profile": self.profile, "model": self.model,
                "serial": self.serial, "port": self.port, "pid": self.pid,
                "running": self.running, "storage": str(self.root),
                "state_dir": str(self.state_dir), "started_at": self.started_at}


def sim_home(home: Path | None = None) -> Path:
    if home is None:
        from orchestrator.settings import get_settings

        home = get_settings().home
    return Path(home) / "sim"


def _require_privileges() -> None:
    if os.geteuid() != 0:
        raise DeviceError("A virtual phone needs root: it gives its shell a private mount "
                          "namespace (unshare -m) with its storage bound at /data and /sdcard.",
                          hint="Run `orch sim` as root (e.g. in a container or CI job).")
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        raise DeviceError("`unshare` and `mount` (util-linux) are needed for virtual phones.",
                          hint="Install util-linux.")


def _alive(pid: int, state_dir: Path) -> bool:
    """Is `pid` this phone's daemon (and not a zombie or a reused pid)?"""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if raw[raw.rfind(")") + 2:].split()[0] in ("Z", "X"):
        return False
    return b"orchestrator.sim.daemon" in cmdline and str(state_dir).encode() in cmdline


def _read_phone(state_dir: Path) -> SimPhone | None:
    try:
        state = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return SimPhone(name=state["name"], profile=state["profile"], model=state["model"],
                    port=state["port"], serial=state["serial"], pid=state["pid"],
                    state_dir=state_dir, running=_alive(state["pid"], state_dir),
                    started_at=state.get("started_at"))


def list_phones(*, home: Path | None = None) -> list[SimPhone]:
    """Every phone with a state folder, running or not, by name."""
    root = sim_home(home)
    if not root.is_dir():
        return []
    phones = (_read_phone(d) for d in sorted(root.iterdir()) if d.is_dir())
    return [p for p in phones if p is not None]


def virtual_phone_names() -> dict[str, str]:
    """Running virtual phones by name (`orch sim start --name pixel7` → `--device pixel7`)."""
    try:
        return {p.name: p.serial for p in list_phones() if p.running}
    except Exception:  # noqa: BLE001 - a broken sim folder must not break resolution
        return {}


def get_phone(name: str, *, home: Path | None = None) -> SimPhone:
    phone = _read_phone(sim_home(home) / name)
    if phone is None:
        raise NotFound(f"No virtual phone named {name!r}.", hint="See `orch sim list`.")
    return phone


def copy_gallery(photos: Path, storage: Path) -> int:
    """Copy a class-folder image set into the phone's /sdcard/DCIM/catsdogs; image count."""
    classes = sorted(d for d in photos.iterdir() if d.is_dir()) if photos.is_dir() else []
    if not classes:
        raise DataError(f"{photos} has no class folders (e.g. cat/, dog/).",
                        hint="Give --photos a folder with one subfolder of images per class.")
    count = 0
    for cls in classes:
        dest = storage / "sdcard" / GALLERY / cls.name
        dest.mkdir(parents=True, exist_ok=True)
        for img in sorted(cls.iterdir()):
            if img.is_file() and img.suffix.lower() in _IMAGE_SUFFIXES:
                shutil.copyfile(img, dest / img.name)
                count += 1
    return count


def start_phone(*, profile: str | Path = "pixel7", name: str | None = None, port: int = 0,
                photos: Path | None = None, faults: dict[str, Any] | None = None,
                home: Path | None = None, connect: bool = True, tethered: bool = False,
                timeout: float = 20.0, progress: Progress | None = None) -> SimPhone:
    """Start a phone in the background and (by default) connect the adb server to it.

    A `tethered` phone stops by itself when this process ends, however it ends (tests use
    this so a killed test run leaves no phone behind). An arm64 phone's root is built first
    when it is not cached yet (minutes; `progress` hears how it goes).
    """
    _require_privileges()
    prof, prof_file = load_profile(profile)
    arm64_root = _prepare_arm64(prof.nnapi_lib, progress) if prof.arch == "arm64" else None
    if prof.arch != "arm64":
        # A runtime of its own is built here (once, cached), not within the phone's start-up
        # timeout, and a failure to build it is one line to the user.
        runtimes.python_for(prof.runtime)
    name = name or prof.id
    if not _NAME.match(name):
        raise DeviceError(f"Bad phone name {name!r}.", hint="Use letters, digits, '.', '_', '-'.")
    if port and (port % 2 or port < 1024):
        raise DeviceError(f"Port {port} is odd or privileged.",
                          hint="Use an even port ≥ 5586 (adb scans odd ones as emulators).")
    state_dir = sim_home(home) / name
    current = _read_phone(state_dir)
    if current is not None and current.running:
        raise DeviceError(f"Virtual phone {name!r} already runs on {current.serial}.",
                          hint=f"Stop it first: `orch sim stop {name}`.")
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    start_faults = make_faults(prof.faults, faults or {})
    (state_dir / CONFIG_FILE).write_text(json.dumps({
        "name": name, "profile": prof.model_dump(mode="json"), "profile_file": str(prof_file),
        "port": port, "faults": start_faults.model_dump(mode="json"),
        "arm64_root": str(arm64_root) if arm64_root else None}, indent=1))
    write_control(state_dir, start_faults)
    if photos is not None:
        copy_gallery(Path(photos), state_dir / "storage")
    tether = os.pipe() if tethered else None
    try:
        proc = _launch(state_dir, tether[0] if tether else None)
    finally:
        if tether:
            os.close(tether[0])
    if tether:
        _tethers[str(state_dir)] = tether[1]
    _children[str(state_dir)] = proc
    phone = _wait_ready(state_dir, proc, timeout)
    if connect:
        try:
            adbctl.connect(phone.serial, timeout=timeout)
        except DeviceError:
            stop_phone(name, home=home, disconnect=True)
            raise
    return phone


def _prepare_arm64(nnapi_lib: str | None, progress: Progress | None) -> Path:
    """The cached arm64 root (built when missing) and, before the daemon needs it, the
    aarch64 build of the simulated NNAPI library."""
    from orchestrator import simnnapi
    from orchestrator.settings import get_settings
    from orchestrator.sim import arm64_root

    root = arm64_root.ensure(progress=progress)
    if nnapi_lib == simnnapi.SIMULATED:
        simnnapi.build_library(get_settings().cache_dir / "simnnapi", arch="arm64")
    return root


def _launch(state_dir: Path, tether: int | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The daemon must import this package even when orch runs from a bare checkout.
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
    cmd = ["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGTERM",
           "--propagation", "private",
           sys.executable, "-m", "orchestrator.sim.daemon", str(state_dir)]
    if tether is not None:
        cmd += ["--tether-fd", str(tether)]
    with open(state_dir / LOG_FILE, "ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env,
                                pass_fds=() if tether is None else (tether,))


def _log_tail(state_dir: Path, lines: int = 3) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _wait_ready(state_dir: Path, proc: subprocess.Popen[bytes], timeout: float) -> SimPhone:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phone = _read_phone(state_dir)
        if phone is not None and phone.running:
            return phone
        if proc.poll() is not None:
            raise DeviceError(f"The virtual phone did not start: {_log_tail(state_dir)}",
                              hint=f"Full log: {state_dir / LOG_FILE}")
        time.sleep(0.05)
    _terminate(proc)
    tether = _tethers.pop(str(state_dir), None)
    if tether is not None:
        os.close(tether)
    raise DeviceError(f"The virtual phone did not start in {timeout:.0f} s: "
                      f"{_log_tail(state_dir)}", hint=f"Full log: {state_dir / LOG_FILE}")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_phone(name: str, *, home: Path | None = None, disconnect: bool = True,
               timeout: float = 10.0) -> SimPhone:
    """Disconnect the adb server from the phone, then stop it (its processes die with it)."""
    phone = get_phone(name, home=home)
    if disconnect:
        adbctl.disconnect(phone.serial)
    if phone.running:
        try:
            os.kill(phone.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _alive(phone.pid, phone.state_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(phone.pid, phone.state_dir):
            os.kill(phone.pid, signal.SIGKILL)
    tether = _tethers.pop(str(phone.state_dir), None)
    if tether is not None:
        os.close(tether)
    proc = _children.pop(str(phone.state_dir), None)
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _terminate(proc)
    (phone.state_dir / STATE_FILE).unlink(missing_ok=True)
    return phone


def stop_all(*, home: Path | None = None) -> list[SimPhone]:
    return [stop_phone(p.name, home=home) for p in list_phones(home=home) if p.running]


def set_faults(name: str, changes: dict[str, Any], *, clear: bool = False,
               home: Path | None = None, timeout: float = 5.0) -> Faults:
    """Change a running phone's faults and wait until it has applied them; the new set."""
    phone = get_phone(name, home=home)
    if not phone.running:
        raise DeviceOffline(f"Virtual phone {name!r} is not running.",
                            hint=f"Start it: `orch sim start --name {name}`.")
    faults = make_faults(None if clear else read_control(phone.state_dir), changes)
    write_control(phone.state_dir, faults)
    deadline = time.monotonic() + timeout
    while read_control(phone.state_dir, APPLIED_FILE) != faults:
        if time.monotonic() > deadline:
            raise DeviceError(f"Virtual phone {name!r} did not apply the faults in "
                              f"{timeout:.0f} s.", hint=f"See {phone.state_dir / LOG_FILE}.")
        time.sleep(0.05)
    return faults
