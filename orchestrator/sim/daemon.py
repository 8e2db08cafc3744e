"""The virtual phone process: `python -m orchestrator.sim.daemon STATE_DIR`.

Started by `orchestrator.sim.manager` under `unshare --mount --pid --fork`, so it is PID 1
of its own namespaces: it builds the phone's root, chroots into it, listens for the adb
server, and keeps the phone alive (sensors, control file, orphan reaping) until SIGTERM.
Everything it needs is imported before the chroot: the repository is not visible after.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from orchestrator.sim import apps, sensors
from orchestrator.sim.faults import APPLIED_FILE, CONTROL_FILE, Faults
from orchestrator.sim.phone import Phone
from orchestrator.sim.procs import LoadMeter
from orchestrator.sim.profile import Profile
from orchestrator.sim.sandbox import build_root, enter_root, prepare_storage
from orchestrator.sim.system import SIM_ETC, python_dirs, write_storage_python, write_system
from orchestrator.sim.transport import Link

CONFIG_FILE = "phone.json"  # written by the manager: name, profile, port, faults
STATE_FILE = "state.json"  # written here once the phone listens
FIRST_PORT = 5586  # even and above the emulator range 5555–5585 that adb scans
PORT_TRIES = 200
SENSOR_PERIOD = 1.0
CONTROL_PERIOD = 0.2


def listen(port: int) -> socket.socket:
    """Listen on 127.0.0.1:port, or on the first free even port from 5586 when port is 0."""
    candidates = [port] if port else range(FIRST_PORT, FIRST_PORT + 2 * PORT_TRIES, 2)
    last: OSError | None = None
    for p in candidates:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            s.listen(16)
            return s
        except OSError as e:
            s.close()
            last = e
    raise OSError(f"no free port from {candidates[0]}: {last}")


class DirWriter:
    """Writes files under the phone's state folder through a descriptor kept from before
    the chroot, atomically (write, then rename)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_DIRECTORY | os.O_RDONLY)

    def write(self, rel: str, text: str) -> None:
        tmp = f"{rel}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.fd)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, rel, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def key(self, rel: str) -> tuple[int, int, int] | None:
        """Identity of a file's current version (a rename gives a new inode), or None."""
        try:
            st = os.stat(rel, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def read(self, rel: str) -> tuple[tuple[int, int, int], bytes] | None:
        try:
            fd = os.open(rel, os.O_RDONLY, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
            return (st.st_ino, st.st_mtime_ns, st.st_size), data
        finally:
            os.close(fd)


class Daemon:
    def __init__(self, state_dir: Path) -> None:
        config = json.loads((state_dir / CONFIG_FILE).read_text())
        self.state_dir = state_dir
        self.name: str = config["name"]
        self.profile = Profile.model_validate(config["profile"])
        self.profile_file = Path(config["profile_file"]) if config.get("profile_file") else None
        self.port: int = int(config.get("port") or 0)
        self.arm64_root = Path(config["arm64_root"]) if config.get("arm64_root") else None
        self.phone = Phone(name=self.name, profile=self.profile,
                           faults=Faults.model_validate(config.get("faults") or {}))
        self.stop = threading.Event()
        self.sensor_state = sensors.initial_state(self.profile)
        self._control_key: tuple[int, int, int] | None = None
        self._drop_done: float | None = None
        self._listener: socket.socket | None = None
        self._written: dict[str, str] = {}

    # -- start
    def start(self) -> None:
        # As PID 1 of its namespace, the daemon only gets the signals it handles.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop.set())
        host_pid = int(os.readlink("/proc/self"))  # the host's /proc is still mounted here
        storage = self.state_dir / "storage"
        prepare_storage(storage)
        write_storage_python(storage, self.profile)
        write_system(self.state_dir / "system", profile=self.profile, props=self.phone.props,
                     profile_file=self.profile_file)
        apps.prepare(storage, self.state_dir / "system", self.profile)
        self.files = DirWriter(self.state_dir)
        self._write_sensors()
        # Listen first: applying the start-time faults only re-opens a listener it closed.
        self._listener = listen(self.port)
        self.port = self._listener.getsockname()[1]
        self._apply_control(force=True)
        build_root(self.state_dir / "rootfs", system=self.state_dir / "system",
                   storage=storage, python_dirs=python_dirs(self.profile)[0],
                   arm64_root=self.arm64_root)
        enter_root(self.state_dir / "rootfs")
        apps.boot(self.phone)
        if self.phone.faults().offline:  # unplugged from the start: keep the port, refuse
            self._listener.close()
            self._listener = None
        state = {"name": self.name, "port": self.port, "serial": f"127.0.0.1:{self.port}",
                 "pid": host_pid, "profile": self.profile.id, "model": self.profile.model,
                 "storage": str(storage), "started_at": time.time()}
        self.files.write(STATE_FILE, json.dumps(state, indent=1))
        self.phone.log(f"listening on 127.0.0.1:{self.port} as {self.profile.model}")

    # -- run
    def run(self) -> None:
        threading.Thread(target=self._accept_loop, daemon=True, name="accept").start()
        threading.Thread(target=self._monitor_loop, daemon=True, name="monitor").start()
        while not self.stop.wait(0.5):
            pass
        self.shutdown()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            listener = self._listener
            if listener is None:  # offline: nobody answers the port
                time.sleep(CONTROL_PERIOD)
                continue
            listener.settimeout(CONTROL_PERIOD)
            try:
                sock, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            sock.settimeout(None)
            link = Link(sock, self.phone)
            self.phone.add_link(link)
            threading.Thread(target=self._serve, args=(link,), daemon=True,
                             name=f"link-{link.id}").start()

    def _serve(self, link: Link) -> None:
        self.phone.log(f"link {link.id}: connected")
        try:
            link.serve()
        finally:
            self.phone.remove_link(link)

    def _monitor_loop(self) -> None:
        meter = LoadMeter()
        last = time.monotonic()
        meter.sample(1.0)
        while not self.stop.wait(CONTROL_PERIOD):
            self._apply_control()
            now = time.monotonic()
            if now - last >= SENSOR_PERIOD:
                busy = meter.sample(now - last)
                self.sensor_state = sensors.step(self.profile, self.sensor_state, now - last,
                                                 busy)
                last = now
                self._write_sensors()
                self.phone.procs.reap_orphans()

    def _write_sensors(self) -> None:
        s = self.sensor_state
        for name, text in (("battery.txt", sensors.render_battery(self.profile, s)),
                           ("thermalservice.txt", sensors.render_thermal(self.profile, s))):
            if self._written.get(name) != text:
                self.files.write(f"system/{SIM_ETC}/{name}", text)
                self._written[name] = text

    def _apply_control(self, *, force: bool = False) -> None:
        unchanged = not force and self.files.key(CONTROL_FILE) == self._control_key
        got = None if unchanged else self.files.read(CONTROL_FILE)
        if got is not None and (force or got[0] != self._control_key):
            self._control_key = got[0]
            try:
                faults = Faults.model_validate_json(got[1])
            except ValueError as e:
                self.phone.log(f"control file ignored: {e}")
            else:
                self._set_faults(faults)
        elif got is None and force:  # no control file: the start-time faults
            self._set_faults(self.phone.faults())
        f = self.phone.faults()
        if f.drop_at is not None and f.drop_at != self._drop_done and time.time() >= f.drop_at:
            self._drop_done = f.drop_at
            self.phone.drop_links("drop_at")

    def _set_faults(self, faults: Faults) -> None:
        was_offline = self.phone.faults().offline
        self.phone.set_faults(faults)
        size = "" if faults.disk_size is None else str(faults.disk_size)
        self.files.write(f"system/{SIM_ETC}/disk_size", size + "\n")
        if faults.offline and not was_offline and self._listener is not None:
            self._listener.close()
            self._listener = None
            self.phone.drop_links("offline")
        elif not faults.offline and self._listener is None and self.port:
            try:
                self._listener = listen(self.port)
            except OSError as e:
                self.phone.log(f"cannot listen again: {e}")
        self.files.write(APPLIED_FILE, faults.model_dump_json())
        self.phone.log(f"faults: {faults.model_dump(exclude_defaults=True)}")

    # -- stop
    def shutdown(self) -> None:
        self.phone.log("stopping")
        if self._listener is not None:
            self._listener.close()
        self.phone.drop_links("phone stopped")
        self.phone.procs.terminate_all(signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.05)
            except ChildProcessError:
                break
        self.phone.procs.terminate_all(signal.SIGKILL)


def watch_tether(fd: int, stop: threading.Event) -> None:
    """Stop when the process holding the pipe's other end ends (EOF on our end)."""
    def wait() -> None:
        while os.read(fd, 1):
            pass
        stop.set()

    threading.Thread(target=wait, daemon=True, name="tether").start()


def main(argv: list[str]) -> int:
    tether = None
    if len(argv) == 3 and argv[1] == "--tether-fd":
        tether = int(argv[2])
    elif len(argv) != 1:
        sys.stderr.write("usage: python -m orchestrator.sim.daemon STATE_DIR [--tether-fd N]\n")
        return 2
    daemon = Daemon(Path(argv[0]).resolve())
    try:
        daemon.start()
    except Exception as e:  # the manager shows this line to the user
        sys.stderr.write(f"phone failed to start: {e}\n")
        return 1
    if tether is not None:
        watch_tether(tether, daemon.stop)
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
