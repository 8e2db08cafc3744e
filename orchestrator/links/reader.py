"""The egress reader kept running on the phone while a run is followed: the same isolated
`python -I -S` and the same no-follow, bounded, printable-only read as one-shot reads
(`orchestrator.read_once`), started once and asked over one adb shell stream, so a poll
costs one round trip and no Python start.

What comes back is checked as strictly as a one-shot read's output: one header line of at
most `HEADER_MAX` bytes, then exactly the byte count it announces, never more than asked
for. A malformed answer ends the session and is handed on under `error`, so the guard
refuses and records it.
"""

from __future__ import annotations

import shlex

from orchestrator.devices.shell_stream import ShellStream, StreamEnded
from orchestrator.links import scripts
from orchestrator.links.base import HEADER_RE, OnceRead

HEADER_MAX = 64  # "ok SIZE COUNT" with 20-digit numbers fits


def serve_script(python: str | None) -> str:
    """The shell command that starts the reader in serve mode (`python`: None for the
    shell's python3 or python, looked up in the same round trip)."""
    exe = shlex.quote(python) if python else \
        '"$(command -v python3 || command -v python || echo python3)"'
    return f"exec {exe} -I -S -c {shlex.quote(scripts.READER)} --serve"


class ReaderSession:
    """Requests to one reader on the phone; not thread-safe (one link, one thread)."""

    def __init__(self, stream: ShellStream) -> None:
        self._stream: ShellStream | None = stream

    @property
    def open(self) -> bool:
        return self._stream is not None

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        """One bounded no-follow read of `device_path`, as `scripts.read_once` does it.
        Raises EOFError or OSError if the reader or the link went away before the whole
        answer came (a cut-off answer is dropped, as a one-shot read's is): the caller may
        then ask again another way."""
        stream = self._stream
        if stream is None:
            raise StreamEnded("the reader was closed")
        if "\n" in device_path:
            return OnceRead("error")
        try:
            stream.write(f"{int(offset)} {int(max_bytes)} {int(cap)} {device_path}\n"
                         .encode())
            head = stream.read_line(HEADER_MAX)
        except (EOFError, OSError):  # the reader or the link went away
            self.close()
            raise
        m = HEADER_RE.fullmatch(head) if head is not None else None
        if m is None:  # no header line: whatever came is kept as crossed
            self.close()
            return OnceRead("error", 0, head if head is not None else stream.pending())
        status, size = m.group(1).decode(), int(m.group(2) or 0)
        count = int(m.group(3)) if m.group(3) is not None else None
        if status != "ok":
            if count is not None:
                self.close()
                return OnceRead("error", size, head)
            return OnceRead(status, size)
        if count is None or count > max_bytes:
            self.close()
            return OnceRead("error", size, head)
        try:
            data = stream.read_exact(count)
        except (EOFError, OSError):  # the reader or the link went away
            self.close()
            raise
        return OnceRead("ok", size, data)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
