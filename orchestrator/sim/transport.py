"""One TCP connection from the adb server: the handshake, stream table and packet I/O.

A reader thread (the caller of `serve`) turns packets into stream events; services write
from their own threads through `send`, serialised by a lock. Faults that belong to the
link (drop after N bytes, throttle) are applied here.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
from collections.abc import Callable
from typing import Protocol

from orchestrator.sim.faults import Faults, Throttle
from orchestrator.sim.protocol import (
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_VERSION,
    A_WRTE,
    HEADER_SIZE,
    MAX_PAYLOAD,
    ProtocolError,
    header,
    service_name,
    unpack_header,
)
from orchestrator.sim.stream import Stream

# A service runs in its own thread with its stream and closes the stream when done.
Handler = Callable[[Stream], None]


class Host(Protocol):
    """What a connection needs from the phone it belongs to."""

    banner: bytes
    throttle_in: Throttle
    throttle_out: Throttle

    def faults(self) -> Faults: ...

    def resolve(self, service: str) -> Handler | None: ...

    def log(self, message: str) -> None: ...


class LinkDropped(OSError):
    """The connection was dropped on purpose (fault injection)."""


class Link:
    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, phone: Host) -> None:
        self.id = next(self._ids)
        self._sock = sock
        self._phone = phone
        self._wlock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._slock = threading.Lock()
        self._next_local = itertools.count(1)
        self._max_payload = MAX_PAYLOAD
        self._checksum = False
        self._bytes = 0
        self._drop_after = phone.faults().drop_after_bytes
        self._dead = threading.Event()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- packet output, from any thread
    def send(self, command: int, arg0: int, arg1: int,
             payload: bytes | memoryview = b"") -> None:
        if self._dead.is_set():
            raise LinkDropped("connection closed")
        size = len(payload)
        self._phone.throttle_out.pace(HEADER_SIZE + size)
        head = header(command, arg0, arg1, size,
                      sum(payload) & 0xFFFFFFFF if self._checksum and size else 0)
        with self._wlock:
            self._count(HEADER_SIZE + size)
            try:
                if size:  # header and payload in one syscall, without joining them
                    _sendmsg_all(self._sock, [head, payload])
                else:
                    self._sock.sendall(head)
            except OSError:
                self._kill()
                raise

    def forget(self, local_id: int) -> None:
        with self._slock:
            self._streams.pop(local_id, None)

    def drop(self, reason: str) -> None:
        """Reset the connection (RST, as a pulled cable looks to a waiting reader)."""
        if self._dead.is_set():
            return
        self._phone.log(f"link {self.id}: dropped ({reason})")
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._kill(reset=True)

    @property
    def alive(self) -> bool:
        return not self._dead.is_set()

    # -- the reader loop
    def serve(self) -> None:
        try:
            while True:
                head = unpack_header(self._recv_exact(HEADER_SIZE), max_payload=1 << 20)
                payload = self._recv_exact(head.length) if head.length else b""
                self._count(HEADER_SIZE + head.length)
                self._phone.throttle_in.pace(HEADER_SIZE + head.length)
                self._dispatch(head.command, head.arg0, head.arg1, payload)
        except (OSError, EOFError, ProtocolError) as e:
            if not self._dead.is_set():
                self._phone.log(f"link {self.id}: closed ({e.__class__.__name__}: {e})")
        finally:
            self._kill()

    def _dispatch(self, command: int, arg0: int, arg1: int, payload: bytes) -> None:
        if command == A_CNXN:
            self._max_payload = min(arg1, MAX_PAYLOAD) if arg1 else MAX_PAYLOAD
            self._checksum = arg0 < A_VERSION
            self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self._phone.banner)
        elif command == A_OPEN:
            self._open(arg0, service_name(payload))
        elif command == A_WRTE:
            stream = self._stream(arg1)
            if stream is not None:
                stream.deliver(payload)
        elif command == A_OKAY:
            stream = self._stream(arg1)
            if stream is not None:
                stream.acked()
        elif command == A_CLSE:
            stream = self._stream(arg1)
            if stream is not None:
                stream.remote_closed()
        # Anything else (AUTH, SYNC, STLS) is not something this phone asks for: ignore.

    def _open(self, remote_id: int, service: str) -> None:
        handler = self._phone.resolve(service)
        if handler is None:
            self._phone.log(f"link {self.id}: refused service {service!r}")
            self.send(A_CLSE, 0, remote_id)
            return
        local_id = next(self._next_local)
        stream = Stream(self, local_id, remote_id, self._max_payload, service)
        with self._slock:
            self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=self._run, args=(handler, stream), daemon=True,
                         name=f"svc-{self.id}-{local_id}").start()

    def _run(self, handler: Handler, stream: Stream) -> None:
        try:
            handler(stream)
        except Exception as e:  # a broken service must not take the phone down
            if not stream.closed:
                self._phone.log(f"service {stream.service!r} failed: {e!r}")
        finally:
            stream.close()

    def _stream(self, local_id: int) -> Stream | None:
        with self._slock:
            return self._streams.get(local_id)

    def _count(self, n: int) -> None:
        self._bytes += n
        if self._drop_after is not None and self._bytes >= self._drop_after:
            self.drop(f"after {self._bytes} bytes")
            raise LinkDropped("dropped by fault injection")

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got, socket.MSG_WAITALL)
            if k == 0:
                raise EOFError("host closed the connection")
            got += k
        return bytes(buf) if n <= HEADER_SIZE else buf  # type: ignore[return-value]

    def _kill(self, *, reset: bool = False) -> None:
        if self._dead.is_set():
            return
        self._dead.set()
        try:
            # SHUT_RD wakes our blocked reader without a FIN, so close() can send an RST.
            self._sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._slock:
            streams = list(self._streams.values())
            self._streams.clear()
        for s in streams:
            s.remote_closed()


def _sendmsg_all(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]
