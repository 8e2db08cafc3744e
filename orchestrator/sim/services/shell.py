"""`shell:` (v1, raw bytes), `shell,v2,…:` (framed stdout/stderr/exit) and `exec:`.

The command runs as `/bin/sh -c` in the phone's sandbox, in its own process group. When
the host hangs up first, the group gets SIGHUP, as under adbd: what should outlive the
session must be started with `nohup`/`setsid` and its output redirected (a background
job that keeps the output pipe open keeps the session open, also as on a phone).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
from typing import TYPE_CHECKING

from orchestrator.sim.stream import Stream, StreamClosed
from orchestrator.sim.transport import Handler

if TYPE_CHECKING:
    from orchestrator.sim.phone import Phone

# shell v2 packet ids
STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN, WINDOW_SIZE = range(6)
V2_HEADER = struct.Struct("<BI")


def factory(phone: Phone, args: list[str], rest: str) -> Handler | None:
    v2 = "v2" in args
    pty = "pty" in args or ("raw" not in args and not rest)
    term = next((a.partition("=")[2] for a in args if a.startswith("TERM=")), None)
    return lambda stream: Session(phone, stream, rest, v2=v2, pty=pty, term=term).run()


def exec_factory(phone: Phone, args: list[str], rest: str) -> Handler | None:
    """`exec:CMD` (adb exec-out): raw v1 without a terminal."""
    if not rest:
        return None
    return lambda stream: Session(phone, stream, rest, v2=False, pty=False, term=None).run()


class Session:
    def __init__(self, phone: Phone, stream: Stream, command: str, *, v2: bool, pty: bool,
                 term: str | None) -> None:
        self.phone = phone
        self.stream = stream
        self.command = command
        self.v2 = v2
        self.pty = pty
        self.term = term
        self._master: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._done = threading.Event()

    def run(self) -> None:
        try:
            proc = self._spawn()
        except OSError as e:
            self._emit(STDERR, f"/system/bin/sh: {e.strerror}\n".encode())
            self._finish(127)
            return
        self._proc = proc
        self.stream.on_close(self._hangup)
        readers = self._output_fds()
        pumps = [threading.Thread(target=self._pump_out, args=(fd, kind), daemon=True)
                 for fd, kind in readers]
        feeder = threading.Thread(target=self._pump_in, daemon=True)
        for t in [*pumps, feeder]:
            t.start()
        for t in pumps:
            t.join()
        code = proc.wait()
        self._done.set()
        self._finish(128 - code if code < 0 else code)  # killed by signal N → 128+N
        feeder.join(timeout=5)  # it ends with the stream; only then may its fd close
        if self._master is not None:
            os.close(self._master)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()

    # -- process
    def _spawn(self) -> subprocess.Popen[bytes]:
        env = self.phone.environment(term=self.term)
        # No command: a shell reading commands from the host (interactive on a terminal).
        shell = ["/bin/sh", "-c", self.command] if self.command else ["/bin/sh"]
        if not self.pty:
            argv = shell
            err = subprocess.PIPE if self.v2 else subprocess.STDOUT
            return self.phone.spawn(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, start_new_session=True)
        master, slave = os.openpty()
        try:
            # setsid -c: a session of its own with the terminal as its controlling tty,
            # so ^C and hang-up reach it as on a phone.
            argv = ["setsid", "-c", *shell]
            proc = self.phone.spawn(argv, env=env, stdin=slave, stdout=slave, stderr=slave)
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._master = master
        return proc

    def _output_fds(self) -> list[tuple[int, int]]:
        if self._master is not None:
            return [(self._master, STDOUT)]
        assert self._proc is not None and self._proc.stdout is not None
        fds = [(self._proc.stdout.fileno(), STDOUT)]
        if self._proc.stderr is not None:
            fds.append((self._proc.stderr.fileno(), STDERR))
        return fds

    def _hangup(self) -> None:
        """The stream closed: if the command still runs, hang up on its process group."""
        proc = self._proc
        if proc is None or self._done.is_set() or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGHUP)
        except OSError:
            pass

    # -- data
    def _pump_out(self, fd: int, kind: int) -> None:
        limit = self.stream.max_payload - (V2_HEADER.size if self.v2 else 0)
        while True:
            try:
                data = os.read(fd, limit)
            except OSError as e:
                if e.errno in (errno.EIO, errno.EBADF):  # terminal closed / we hung up
                    break
                raise
            if not data:
                break
            if not self._emit(kind, data):
                break

    def _pump_in(self) -> None:
        proc = self._proc
        assert proc is not None
        sink = self._master if self._master is not None else (
            proc.stdin.fileno() if proc.stdin is not None else None)
        try:
            if self.v2:
                self._pump_in_v2(sink)
            else:
                while data := self.stream.recv():
                    self._feed(sink, data)
        except (EOFError, StreamClosed):
            pass
        finally:
            if self._master is None and proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

    def _pump_in_v2(self, sink: int | None) -> None:
        while True:
            kind, length = V2_HEADER.unpack(self.stream.read_exact(V2_HEADER.size))
            data = self.stream.read_exact(length) if length else b""
            if kind == STDIN:
                self._feed(sink, data)
            elif kind == CLOSE_STDIN:
                if self._master is None and self._proc and self._proc.stdin:
                    self._proc.stdin.close()
                    sink = None
            elif kind == WINDOW_SIZE and self._master is not None:
                self._resize(data)

    def _feed(self, fd: int | None, data: bytes) -> None:
        if fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            pass  # the command stopped reading: drop its input, as a closed pipe would

    def _resize(self, data: bytes) -> None:
        # "ROWSxCOLS,XPIXELSxYPIXELS"
        try:
            cells, _, pixels = data.decode().strip("\0").partition(",")
            rows, cols = (int(v) for v in cells.split("x"))
            xp, yp = (int(v) for v in pixels.split("x")) if pixels else (0, 0)
        except ValueError:
            return
        assert self._master is not None
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xp, yp))

    def _emit(self, kind: int, data: bytes) -> bool:
        """Send output to the host; False once the host has gone."""
        try:
            if self.v2:
                self.stream.write(V2_HEADER.pack(kind, len(data)) + data)
            else:
                self.stream.write(data)
            return True
        except (StreamClosed, OSError):
            return False

    def _finish(self, code: int) -> None:
        if self.v2:
            self._emit(EXIT, bytes([code & 0xFF]))
        self.stream.close()
