"""One adb stream (OPEN … CLSE) as the service serving it sees it: reads, writes, close.

Flow control both ways: a host WRTE is acknowledged (OKAY) when the service takes it, so
a slow service slows the host; the next WRTE to the host waits for the host's OKAY.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Protocol

from orchestrator.sim.protocol import A_CLSE, A_OKAY, A_WRTE


class StreamClosed(Exception):
    """The stream (or its whole connection) closed while a service was using it."""


class PacketSink(Protocol):
    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None: ...

    def forget(self, local_id: int) -> None: ...


class Stream:
    def __init__(self, link: PacketSink, local_id: int, remote_id: int, max_payload: int,
                 service: str) -> None:
        self.local_id = local_id
        self.remote_id = remote_id
        self.max_payload = max_payload
        self.service = service
        self._link = link
        self._inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._buf = bytearray()
        self._may_send = threading.Event()
        self._may_send.set()
        self._closed = threading.Event()
        self._wlock = threading.Lock()
        self._close_lock = threading.Lock()
        self._on_close: list[Callable[[], None]] = []

    # -- called by the connection's reader thread
    def deliver(self, data: bytes) -> None:
        self._inbox.put(data)

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
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            return data
        item = self._inbox.get()
        if item is None:
            self._inbox.put(None)  # stay at end for later readers
            return b""
        if not self._closed.is_set():
            self._link.send(A_OKAY, self.local_id, self.remote_id)
        return item

    def read_exact(self, n: int) -> bytes:
        """Exactly n bytes; EOFError when the stream ends first."""
        while len(self._buf) < n:
            item = self._inbox.get()
            if item is None:
                self._inbox.put(None)
                raise EOFError(f"stream ended {n - len(self._buf)} bytes short")
            if not self._closed.is_set():
                self._link.send(A_OKAY, self.local_id, self.remote_id)
            self._buf += item
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def write(self, data: bytes) -> None:
        """Send data as WRTE packets of at most max_payload, each after the host's OKAY."""
        view = memoryview(data)
        with self._wlock:
            for off in range(0, len(view), self.max_payload):
                self._may_send.wait()
                if self._closed.is_set():
                    raise StreamClosed(self.service)
                self._may_send.clear()
                self._link.send(A_WRTE, self.local_id, self.remote_id,
                                bytes(view[off:off + self.max_payload]))

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
