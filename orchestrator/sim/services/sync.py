"""`sync:`: the file protocol behind push, pull, ls and stat (v1 plus stat_v2 / ls_v2).

Requests are `ID + u32 length + path`, many per stream until QUIT or close. Paths are the
phone's own (the daemon runs inside the phone's root), and every write is checked by the
phone's storage policy, so `..` or a symlink cannot carry a push outside its storage.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from typing import TYPE_CHECKING

from orchestrator.sim.stream import Stream
from orchestrator.sim.transport import Handler

if TYPE_CHECKING:
    from orchestrator.sim.phone import Phone

SYNC_DATA_MAX = 64 * 1024  # the adb client refuses larger DATA chunks
WRITE_BATCH = 1 << 20
MAX_PATH = 1024

REQ = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen
# id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # … + namelen


class SyncFail(Exception):
    """Reported to the host as FAIL + message; ends the sync stream as adbd does."""


def factory(phone: Phone, args: list[str], rest: str) -> Handler | None:
    return lambda stream: SyncSession(phone, stream).run()


class SyncSession:
    def __init__(self, phone: Phone, stream: Stream) -> None:
        self.phone = phone
        self.stream = stream

    def run(self) -> None:
        self.phone.act_as_shell()  # as adbd: the shell user on a stock phone
        handlers = {b"STAT": self.stat_v1, b"LST2": self.stat_v2, b"STA2": self.stat_v2,
                    b"LIST": self.list_v1, b"LIS2": self.list_v2, b"SEND": self.send,
                    b"RECV": self.recv}
        try:
            while True:
                rid, length = REQ.unpack(self.stream.read_exact(REQ.size))
                if rid == b"QUIT":
                    return
                if length > MAX_PATH:
                    raise SyncFail(f"path too long: {length}")
                path = self.stream.read_exact(length).decode("utf-8", errors="surrogateescape")
                handler = handlers.get(rid)
                if handler is None:
                    raise SyncFail(f"unknown command {rid!r}")
                handler(rid, path)
        except SyncFail as e:
            self._fail(str(e))
        except EOFError:
            pass

    # -- stat / list
    def stat_v1(self, rid: bytes, path: str) -> None:
        try:
            st = os.lstat(path)  # adbd's v1 STAT is an lstat
            reply = STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF,
                                 int(st.st_mtime) & 0xFFFFFFFF)
        except OSError:
            reply = STAT_V1.pack(b"STAT", 0, 0, 0)
        self.stream.write(reply)

    def stat_v2(self, rid: bytes, path: str) -> None:
        try:
            st = os.lstat(path) if rid == b"LST2" else os.stat(path)
            reply = _stat2(STAT_V2, rid, 0, st)
        except OSError as e:
            reply = STAT_V2.pack(rid, e.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.stream.write(reply)

    def list_v1(self, rid: bytes, path: str) -> None:
        out = bytearray()
        for name, st in _entries(path):
            raw = name.encode("utf-8", errors="surrogateescape")
            out += DENT_V1.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF,
                                int(st.st_mtime) & 0xFFFFFFFF, len(raw)) + raw
            self._flush(out)
        out += DENT_V1.pack(b"DONE", 0, 0, 0, 0)
        self.stream.write(bytes(out))

    def list_v2(self, rid: bytes, path: str) -> None:
        out = bytearray()
        for name, st in _entries(path):
            raw = name.encode("utf-8", errors="surrogateescape")
            out += _stat2(DENT_V2, b"DNT2", 0, st, len(raw)) + raw
            self._flush(out)
        out += DENT_V2.pack(b"DONE", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.stream.write(bytes(out))

    def _flush(self, out: bytearray) -> None:
        if len(out) >= self.stream.max_payload // 2:
            self.stream.write(bytes(out))
            out.clear()

    # -- push
    def send(self, rid: bytes, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"  # 0100644 when the host sends no mode
        try:
            mode = int(mode_text)
        except ValueError:
            raise SyncFail(f"bad mode in {spec!r}") from None
        try:
            if stat.S_ISLNK(mode):
                self._receive_symlink(path)
            else:
                self._receive_file(path, mode)
        except _Refused as e:
            self._drain()
            raise SyncFail(str(e)) from None
        self.stream.write(b"OKAY" + bytes(4))

    def _receive_file(self, path: str, mode: int) -> None:
        storage = self.phone.storage
        try:
            storage.check_writable(path)
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            os.makedirs(os.path.dirname(path) or "/", mode=0o775, exist_ok=True)
            storage.remove_for_replace(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise _Refused(f"couldn't create file: {e.strerror}") from None
        ok = False
        batch: list[bytes] = []  # adbutils sends 4 KiB chunks: write them in batches
        batched = 0
        try:
            while True:
                kind, size = REQ.unpack(self.stream.read_exact(REQ.size))
                if kind not in (b"DATA", b"DONE"):
                    raise SyncFail(f"expected DATA or DONE, got {kind!r}")
                data = self.stream.read_exact(size) if kind == b"DATA" else b""
                try:
                    if data:
                        storage.charge(len(data))
                        batch.append(data)
                        batched += len(data)
                    if batched >= WRITE_BATCH or (kind == b"DONE" and batch):
                        _writev_all(fd, batch)
                        batch, batched = [], 0
                except OSError as e:
                    raise _Refused(f"write failed: {e.strerror}") from None
                if kind == b"DONE":
                    os.fchmod(fd, stat.S_IMODE(mode))
                    os.utime(fd, (size, size))
                    ok = True
                    return
        finally:
            os.close(fd)
            if not ok:
                _unlink_quietly(path)

    def _receive_symlink(self, path: str) -> None:
        target = bytearray()
        while True:
            kind, size = REQ.unpack(self.stream.read_exact(REQ.size))
            if kind == b"DONE":
                break
            target += self.stream.read_exact(size)
        try:
            self.phone.storage.check_writable(path)
            os.makedirs(os.path.dirname(path) or "/", mode=0o775, exist_ok=True)
            _unlink_quietly(path)
            os.symlink(bytes(target).rstrip(b"\0").decode(errors="surrogateescape"), path)
        except OSError as e:
            raise _Refused(f"symlink failed: {e.strerror}") from None

    def _drain(self) -> None:
        """After a failed push, read the rest of it, so the host sees the FAIL (adbd does)."""
        while True:
            kind, size = REQ.unpack(self.stream.read_exact(REQ.size))
            if kind != b"DATA":
                return
            self.stream.read_exact(size)

    # -- pull
    def recv(self, rid: bytes, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise SyncFail(f"open failed: {e.strerror}") from None
        try:
            parts: list[bytes] = []  # DATA chunks of 64 KiB, several to a WRTE packet
            filled = 0
            while True:
                try:
                    chunk = os.read(fd, SYNC_DATA_MAX)
                except OSError as e:
                    raise SyncFail(f"read failed: {e.strerror}") from None
                if not chunk:
                    parts.append(b"DONE" + bytes(4))
                    self.stream.write(b"".join(parts))
                    return
                if filled and filled + 8 + len(chunk) > self.stream.max_payload:
                    self.stream.write(b"".join(parts))
                    parts, filled = [], 0
                parts += [b"DATA", struct.pack("<I", len(chunk)), chunk]
                filled += 8 + len(chunk)
        finally:
            os.close(fd)

    def _fail(self, message: str) -> None:
        raw = message.encode()
        self.stream.write(b"FAIL" + struct.pack("<I", len(raw)) + raw)


class _Refused(Exception):
    pass


def _stat2(fmt: struct.Struct, rid: bytes, err: int, st: os.stat_result, *extra: int) -> bytes:
    return fmt.pack(rid, err, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid,
                    st.st_gid, st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime),
                    *extra)


def _entries(path: str) -> list[tuple[str, os.stat_result]]:
    """Entries of a directory, with `.` and `..` as readdir gives them; [] if unreadable."""
    try:
        out = [(".", os.lstat(path)), ("..", os.lstat(os.path.join(path, "..")))]
        with os.scandir(path) as it:
            for entry in it:
                try:
                    out.append((entry.name, entry.stat(follow_symlinks=False)))
                except OSError:
                    continue
        return out
    except OSError:
        return []


def _writev_all(fd: int, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts]
    while views:
        done = os.writev(fd, views)
        while views and done >= len(views[0]):
            done -= len(views[0])
            views.pop(0)
        if views and done:
            views[0] = views[0][done:]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
