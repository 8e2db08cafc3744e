"""Pushing many files over ONE adb sync session, as the adb CLI does.

adbutils opens a new sync stream per request (plus a server-version query and a 10 ms
close delay per connection) and sends 4 KiB chunks: ~60 ms per small file. A staged data
set is hundreds of small JPEGs, so the session stays open across pushes (SEND … DONE →
OKAY per file, QUIT at the end), with 64 KiB DATA chunks and TCP_NODELAY.
"""

from __future__ import annotations

import socket
import stat
import struct
import time
from pathlib import Path

from adbutils import AdbConnection, AdbDevice
from adbutils.errors import AdbError

CHUNK = 64 * 1024  # the largest DATA payload adbd accepts
_HDR = struct.Struct("<4sI")


class SyncFailed(Exception):
    """The phone refused a push (FAIL + its message), e.g. no space or a bad path."""


class SyncSession:
    """A reusable `sync:` stream to one phone. Not thread-safe: one link, one thread."""

    def __init__(self, device: AdbDevice) -> None:
        self._device = device
        self._conn: AdbConnection | None = None

    def _open(self) -> AdbConnection:
        if self._conn is None:
            conn = self._device.open_transport(timeout=120)
            conn.send_command("sync:")
            conn.check_okay()
            # `conn` is the connection's socket: adbutils has no sendall or TCP_NODELAY.
            conn.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def push(self, local_path: str | Path, device_path: str, mode: int = 0o644) -> int:
        """Send one file; returns its size. Raises SyncFailed when the phone refuses it."""
        conn = self._open()
        sock = conn.conn
        target = f"{device_path},{stat.S_IFREG | mode}".encode()
        try:
            sock.sendall(_HDR.pack(b"SEND", len(target)) + target)
            sent = 0
            with open(local_path, "rb") as f:
                while chunk := f.read(CHUNK):
                    sock.sendall(_HDR.pack(b"DATA", len(chunk)) + chunk)
                    sent += len(chunk)
            sock.sendall(_HDR.pack(b"DONE", int(time.time())))
            rid, length = _HDR.unpack(conn.read_exact(_HDR.size))
        except BaseException:
            self.close(quit=False)
            raise
        if rid == b"OKAY":
            return sent
        message = conn.read_exact(length).decode(errors="replace") if length else ""
        self.close(quit=False)  # adbd ends the stream after a FAIL
        if rid == b"FAIL":
            raise SyncFailed(message or "push refused")
        raise AdbError(f"unexpected sync reply {rid!r}")

    def close(self, *, quit: bool = True) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if quit:
                conn.conn.sendall(_HDR.pack(b"QUIT", 0))
            conn.conn.close()
        except OSError:
            pass
