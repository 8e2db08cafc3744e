"""The one door to adb: clients per server, device listing, and shell commands whose exit
code is checked (adbutils' `shell()` never fails, so it is never used alone).

adb and socket failures become `DeviceOffline`; a non-zero exit becomes
`DeviceCommandFailed` with the command's output.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import adbutils
from adbutils import AdbClient, AdbConnection, AdbDevice
from adbutils.errors import AdbError

from orchestrator.devices.address import AdbServer, DeviceAddress
from orchestrator.devices.shell_stream import ShellStream, open_stream
from orchestrator.errors import DeviceCommandFailed, DeviceError, DeviceOffline

DEFAULT_TIMEOUT = 60.0


def default_server() -> AdbServer:
    """The adb server from settings (ORCH_ADB_HOST / ORCH_ADB_PORT)."""
    from orchestrator.settings import get_settings

    s = get_settings()
    return AdbServer(s.adb_host, s.adb_port)


def _is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def _answers(server: AdbServer) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_server(server: AdbServer) -> None:
    """Start a local adb server on `server.port` if none answers (adbutils would only start
    one on the default port). A remote server must already run: that is its owner's job."""
    if _answers(server):
        return
    if not _is_local(server.host):
        raise DeviceOffline(f"No adb server answers at {server}.",
                            hint="Start it there with `adb -a -P PORT nodaemon server`.")
    adb = adbutils.adb_path()
    r = subprocess.run([adb, "-P", str(server.port), "start-server"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise DeviceOffline(f"Cannot start the adb server on port {server.port}: "
                            f"{(r.stderr or r.stdout).strip()}",
                            hint="Check ADBUTILS_ADB_PATH and that the port is free.")


def client(server: AdbServer | None = None) -> AdbClient:
    server = server or default_server()
    ensure_server(server)
    return AdbClient(host=server.host, port=server.port, socket_timeout=DEFAULT_TIMEOUT)


@contextmanager
def adb_errors(what: str, serial: str) -> Iterator[None]:
    """Turn adbutils / socket failures into DeviceOffline naming the phone."""
    try:
        yield
    except DeviceError:
        raise
    except (AdbError, OSError, EOFError) as e:
        detail = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise DeviceOffline(f"Device {serial} did not answer ({what}): {detail}.",
                            hint="Re-plug it or run `adb reconnect`.") from None


@dataclass(frozen=True)
class Attached:
    """A phone as its adb server lists it (`adb devices -l`)."""

    address: DeviceAddress
    state: str  # device | offline | unauthorized | …
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def model(self) -> str | None:
        """The model from the listing (adb writes spaces as '_')."""
        m = self.tags.get("model")
        return m.replace("_", " ") if m else None


def list_attached(server: AdbServer | None = None) -> list[Attached]:
    """Every phone the server knows, in every state, sorted by serial."""
    remote = server
    server = server or default_server()
    with adb_errors("list devices", str(server)):
        infos = client(server).list(extended=True)
    out = [Attached(DeviceAddress(i.serial, remote), i.state, dict(i.tags)) for i in infos]
    return sorted(out, key=lambda a: a.name)


class Phone:
    """One attached phone: shell with checked exit codes, and the sync service."""

    def __init__(self, address: DeviceAddress, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self._client = client(address.server)
        self._device: AdbDevice = self._client.device(serial=address.serial)
        self._v2: bool | None = None

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def device(self) -> AdbDevice:
        return self._device

    def state(self) -> str:
        """`device` when usable; `offline`/`unauthorized`/`absent` otherwise."""
        try:
            return self._device.get_state()
        except (AdbError, OSError, EOFError):
            return "absent"

    def shell_v2(self) -> bool:
        if self._v2 is None:
            with adb_errors("features", self.name):
                self._v2 = "shell_v2" in self._device.get_features().split(",")
        return self._v2

    def run(self, command: str, *, timeout: float | None = None, check: bool = True,
            hint: str | None = None, what: str | None = None) -> str:
        """Run `command` in the phone's shell; its exit code is checked unless check=False."""
        rc, out = self.run_rc(command, timeout=timeout, what=what)
        if check and rc != 0:
            raise DeviceCommandFailed(command, rc, out, hint=hint)
        return out

    def run_rc(self, command: str, *, timeout: float | None = None,
               what: str | None = None) -> tuple[int, str]:
        """(exit code, stdout+stderr) of `command` in the phone's shell; `what` names it in
        errors (default: its first word)."""
        what = what or (command.split() or ["shell"])[0]
        with adb_errors(what, self.name):
            rc, _, output = self.exec_raw(command, timeout=timeout)
        return rc, output.decode("utf-8", errors="replace")

    def exec_raw(self, command: str, *, timeout: float | None = None
                 ) -> tuple[int, bytes, bytes]:
        """(exit code, stdout, stdout+stderr) of `command`, over ONE adb connection that is
        closed at once: adbutils' shell2 adds a server-version query and a 10 ms close delay
        to every call, which a follow loop polling a few times a second feels."""
        v2 = self.shell_v2()
        conn = self._client.make_connection(timeout=timeout or self.timeout)
        try:
            conn.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.send_command(f"host:transport:{self.address.serial}")
            conn.check_okay()
            if v2:
                conn.send_command(f"shell,v2:{command}")
                conn.check_okay()
                return _read_shell_v2(conn)
            # Without shell v2 the exit code rides on an appended echo; the subshell keeps an
            # `exit N` in the command from skipping it.
            conn.send_command(f"shell:( {command} ); echo {_EXIT_MARK.decode()}$?")
            conn.check_okay()
            raw = conn.read_until_close(encoding=None)
            assert isinstance(raw, bytes)
            at = raw.rfind(_EXIT_MARK)
            if at == -1:
                raise AdbError("shell output has no exit code: the link closed early")
            out = raw[:at]
            return int(raw[at + len(_EXIT_MARK):].strip() or b"255"), out, out
        finally:
            conn.conn.close()  # the socket: AdbConnection.close() lingers 10 ms

    def open_stream(self, command: str, *, timeout: float | None = None) -> ShellStream | None:
        """`command` started in the phone's shell with its stdin kept open (shell v2), for a
        program that answers requests over one connection; None without shell v2."""
        if not self.shell_v2():
            return None
        conn = self._client.make_connection(timeout=timeout or self.timeout)
        try:
            return open_stream(conn, self.address.serial, command)
        except BaseException:
            conn.conn.close()
            raise

    def getprop(self) -> str:
        return self.run("getprop")


_EXIT_MARK = b"X4EXIT:"


def _read_shell_v2(conn: AdbConnection) -> tuple[int, bytes, bytes]:
    """Shell v2 packets (id u8, length u32 LE): 1 stdout, 2 stderr, 3 exit code."""
    stdout, output = bytearray(), bytearray()
    while True:
        head = conn.read_exact(5)
        kind, length = head[0], int.from_bytes(head[1:5], "little")
        data = conn.read_exact(length) if length else b""
        if kind == 1:
            stdout += data
            output += data
        elif kind == 2:
            output += data
        elif kind == 3:
            return (data[0] if data else 255), bytes(stdout), bytes(output)


def quote(path: str) -> str:
    return shlex.quote(path)
