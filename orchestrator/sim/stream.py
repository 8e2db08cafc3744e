"""One adb stream (OPEN … CLSE) as the service serving it sees it: reads, writes, close.

Flow control both ways: a host WRTE is acknowledged (OKAY) at once while less than
RECV_WINDOW bytes wait for the service, else when the service takes it, so a slow service
slows the host without every packet waiting for a thread switch; the next WRTE to the host
waits for the host's OKAY.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Protocol

from orchestrator.sim.protocol import A_CLSE, A_OKAY, A_WRTE

RECV_WINDOW = 1 << 20


class StreamClosed(Exception):
    """The stream (or its whole connection) closed while a service was using it."""


class PacketSink(Protocol):
    def send(self, command: int, arg0: int, arg1: int,
             payload: bytes | memoryview = b"") -> None: ...

    def forget(self, local_id: int) -> None: ...


class Stream:
    def __init__(self, link: PacketSink, local_id: int, remote_id: int, max_payload: int,
                 service: str) -> None:
        self.local_id = local_id
        self.remote_id = remote_id
        self.max_payload = max_payload
        self.service = service
        self._link = link
        self._inbox: queue.SimpleQueue[tuple[bytes, bool] | None] = queue.SimpleQueue()
        self._queued = 0  # bytes delivered and not yet taken by the service
        self._qlock = threading.Lock()
        self._cur: bytes = b""  # the packet being read, from _pos on
        self._pos = 0
        self._may_send = threading.Event()
        self._may_send.set()
        self._closed = threading.Event()
        self._wlock = threading.Lock()
        self._close_lock = threading.Lock()
        self._on_close: list[Callable[[], None]] = []

    # -- called by the connection's reader thread
    def deliver(self, data: bytes) -> None:
        with self._qlock:
            early = self._queued < RECV_WINDOW
            self._queued += len(data)
        if early and not self._closed.is_set():
            self._link.send(A_OKAY, self.local_id, self.remote_id)
        self._inbox.put((data, early))

    def acked(self) -> None:
        self._may_send.set()

    def remote_closed(self) -> None:
        """The host closed the stream, or the connection died."""
        self._shut(send_clse=False)

    # -- used by the service
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` once when the stream closes, whichever side closes it."""
        with self._close_lock:
            if not self._closed.is_set():
                self._on_close.append(callback)
                return
        callback()

    def recv(self) -> bytes:
        """The next bytes from the host; b"" once the stream is closed."""
        if self._pos < len(self._cur):
            data = self._cur[self._pos:]
            self._cur, self._pos = b"", 0
            return data
        return self._next() or b""

    def read_exact(self, n: int) -> bytes:
        """Exactly n bytes; EOFError when the stream ends first."""
        avail = len(self._cur) - self._pos
        if avail >= n:  # the common case: inside the current packet, one copy
            data = self._cur[self._pos:self._pos + n]
            self._pos += n
            return data
        parts = [self._cur[self._pos:]]
        need = n - avail
        self._cur, self._pos = b"", 0
        while need:
            item = self._next()
            if item is None:
                raise EOFError(f"stream ended {need} bytes short")
            if len(item) > need:
                parts.append(item[:need])
                self._cur, self._pos = item, need
                need = 0
            else:
                parts.append(item)
                need -= len(item)
        return b"".join(parts)

    def _next(self) -> bytes | None:
        """The next packet from the host, acknowledged so it may send another; None at end."""
        item = self._inbox.get()
        if item is None:
            self._inbox.put(None)  # stay at end for later readers
            return None
        data, acked = item
        with self._qlock:
            self._queued -= len(data)
        if not acked and not self._closed.is_set():
            self._link.send(A_OKAY, self.local_id, self.remote_id)
        return data

    def write(self, data: bytes | bytearray) -> None:
        """Send data as WRTE packets of at most max_payload, each after the host's OKAY."""
        view = memoryview(data)
        with self._wlock:
            for off in range(0, len(view), self.max_payload):
                self._may_send.wait()
                if self._closed.is_set():
                    raise StreamClosed(self.service)
                self._may_send.clear()
                self._link.send(A_WRTE, self.local_id, self.remote_id,
                                view[off:off + self.max_payload])

    def close(self) -> None:
        """Close from the phone's side (CLSE); idempotent."""
        self._shut(send_clse=True)

    def _shut(self, *, send_clse: bool) -> None:
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            callbacks, self._on_close = self._on_close, []
        self._may_send.set()  # wake a writer waiting for an OKAY that will never come
        self._inbox.put(None)
        self._link.forget(self.local_id)
        if send_clse:
            try:
                self._link.send(A_CLSE, self.local_id, self.remote_id)
            except OSError:
                pass  # the connection is gone: nothing to tell
        for cb in callbacks:
            cb()
