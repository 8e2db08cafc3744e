"""JSON-lines progress events, on stdout and appended to events.jsonl, numbered across resumes."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, TextIO

from device_agent.errors import DiskFull
from device_agent.fsio import disk_errors


def clean(obj: Any) -> Any:
    """Make `obj` strict JSON: non-finite floats become null (the host stores null as NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return clean(obj.item())
    return obj


def last_seq(path: str) -> tuple[int, bool]:
    """The highest `seq` in an events file (0 if none), and whether the file ends mid-line.

    A line cut short by a kill -9 is ignored rather than trusted.
    """
    if not os.path.exists(path):
        return 0, False
    with open(path, "rb") as f:
        data = f.read()
    seq = 0
    for line in data.splitlines():
        try:
            seq = max(seq, int(json.loads(line)["seq"]))
        except (ValueError, KeyError, TypeError):
            continue
    return seq, bool(data) and not data.endswith(b"\n")


def repair(path: str) -> int:
    """Keep the valid prefix of an events file; move the rest to `events.discarded`.

    Two agents writing one file at once interleave their lines, and the host's egress guard
    refuses it from the first line whose seq does not go up. That line and everything after
    it are moved aside (the agent's own, never read by the host), so a resume goes on from
    the last checkpoint with a file the guard admits again. Returns the bytes moved aside.
    """
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        data = f.read()
    seq, pos = 0, 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # a line cut short at the end: EventLog ends it
        try:
            ev = json.loads(line)
        except ValueError:
            ev = None  # a line cut short by a kill -9, then ended: skipped by the host too
        if isinstance(ev, dict):
            s = ev.get("seq")
            if type(s) is not int or s <= seq:
                with disk_errors("event log"):
                    with open(path + ".discarded", "ab") as f:
                        f.write(data[pos:])
                    with open(path, "r+b") as f:
                        f.truncate(pos)
                return len(data) - pos
            seq = s
        pos += len(line)
    return 0


def repair_folder(run_dir: str) -> int:
    """`device_agent repair RUN_DIR`: run to its end before a resumed agent is launched, so
    the host reads a repaired events file from its start. Light (no numpy, no interpreter):
    a phone starts it in a moment. Refused (EXIT_LOCKED) while an agent lives there."""
    from device_agent import lock
    from device_agent.contract import EVENTS_FILE, EXIT_BAD_JOB, EXIT_OK
    from device_agent.errors import AgentError, RunLocked

    run_dir = os.path.abspath(run_dir)
    if not os.path.isdir(run_dir):
        sys.stderr.write("error: the run folder does not exist\n")
        return EXIT_BAD_JOB
    try:
        held = lock.acquire(run_dir)
    except RunLocked as e:
        sys.stderr.write(f"error: {e.message}\n")
        return e.exit_code
    try:
        moved = repair(os.path.join(run_dir, EVENTS_FILE))
    except AgentError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return e.exit_code
    finally:
        os.close(held)
    sys.stdout.write(json.dumps({"discarded_bytes": moved}) + "\n")
    return EXIT_OK


class EventLog:
    """Writes each event as one line (one write call) to the file, then to stdout, flushed."""

    def __init__(self, path: str, stdout: TextIO | None = None) -> None:
        self.path = path
        self.stdout = sys.stdout if stdout is None else stdout
        self.seq, torn = last_seq(path)
        with disk_errors("event log"):
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if torn:
                os.write(self._fd, b"\n")

    def emit(self, kind: str, best_effort: bool = False, **fields: Any) -> dict[str, Any]:
        """Record one event; with best_effort a failing disk does not raise (for error events)."""
        self.seq += 1
        event = clean({"seq": self.seq, "t": round(time.time(), 3), "kind": kind, **fields})
        line = json.dumps(event, allow_nan=False, separators=(",", ":")) + "\n"
        try:
            with disk_errors("event log"):
                os.write(self._fd, line.encode())
        except (OSError, DiskFull):
            if not best_effort:
                raise
        self._print(line)
        return event

    def _print(self, line: str) -> None:
        if self.stdout is None:
            return
        try:
            self.stdout.write(line)
            self.stdout.flush()
        except (OSError, ValueError):
            # The host's adb link went away; the file is the record, keep training.
            self.stdout = None  # type: ignore[assignment]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
