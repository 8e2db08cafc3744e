"""A long-lived adb shell (shell v2) with its stdin open: a program on the phone that
answers requests line by line over one connection, with no process start per request.

Shell v2 packets are (id u8, length u32 LE, data): 0 stdin, 1 stdout, 2 stderr, 3 exit
code, 4 close stdin. Only stdout is handed on; stderr is discarded, the exit packet ends the
stream.
"""

from __future__ import annotations

import socket

from adbutils._adb import AdbConnection

STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN = 0, 1, 2, 3, 4


class StreamEnded(EOFError):
    """The program on the phone exited (or the link closed) before the bytes asked for."""


class ShellStream:
    """One shell v2 stream: `write` to the program's stdin, read its stdout exactly."""

    def __init__(self, conn: AdbConnection) -> None:
        self._conn = conn
        self._buf = bytearray()
        self.exit_code: int | None = None

    def write(self, data: bytes) -> None:
        self._conn.conn.sendall(bytes([STDIN]) + len(data).to_bytes(4, "little") + data)

    def _fill(self) -> None:
        """Read packets until some stdout arrives; StreamEnded at the exit packet."""
        while True:
            if self.exit_code is not None:
                raise StreamEnded(f"the program exited with code {self.exit_code}")
            head = self._conn.read_exact(5)
            kind, length = head[0], int.from_bytes(head[1:5], "little")
            data = self._conn.read_exact(length) if length else b""
            if kind == STDOUT and data:
                self._buf += data
                return
            if kind == EXIT:
                self.exit_code = data[0] if data else 255

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def pending(self) -> bytes:
        """What arrived and was not read yet (taken)."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def read_line(self, limit: int) -> bytes | None:
        """Up to and without the next newline; None if none comes within `limit` bytes."""
        while True:
            at = self._buf.find(b"\n", 0, limit + 1)
            if at != -1:
                line = bytes(self._buf[:at])
                del self._buf[:at + 1]
                return line
            if len(self._buf) > limit:
                return None
            self._fill()

    def close(self) -> None:
        try:
            self._conn.conn.sendall(bytes([CLOSE_STDIN]) + (0).to_bytes(4, "little"))
        except OSError:
            pass
        finally:
            self._conn.conn.close()


def open_stream(conn: AdbConnection, serial: str, command: str) -> ShellStream:
    """Start `command` in `serial`'s shell over `conn` (a fresh server connection)."""
    conn.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.send_command(f"host:transport:{serial}")
    conn.check_okay()
    conn.send_command(f"shell,v2,raw:{command}")
    conn.check_okay()
    return ShellStream(conn)
