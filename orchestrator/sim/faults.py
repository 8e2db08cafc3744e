"""Fault injection: what a phone's link and disk do wrong, set at start and changed at run time.

The run-time channel is a JSON file (`control.json` in the phone's state folder) that the
phone re-reads when it changes, so a test or `orch sim fault` can drop the link mid-run.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import SpecError, SpecProblem

CONTROL_FILE = "control.json"
APPLIED_FILE = "faults.json"  # what the running phone last applied


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Reset (TCP RST) each connection once it has carried this many bytes, both directions.
    drop_after_bytes: int | None = Field(None, ge=0)
    # Unix time: reset every connection open at that moment (once; later ones live).
    drop_at: float | None = None
    # Link speed cap in MB/s (10^6 bytes), each direction.
    throttle_mbps: float | None = Field(None, gt=0)
    # Capacity of the phone's storage in bytes: writes past it fail with ENOSPC.
    disk_size: int | None = Field(None, ge=0)
    # Refuse new connections, as an unplugged phone would.
    offline: bool = False


_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$")
_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """'64M' → 67108864 (K/M/G/T are powers of 1024); a plain number is bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 512K, 64M, 2G or bytes)")
    return int(float(m.group(1)) * 1024 ** _POW[m.group(2).lower()])


def parse_assignments(items: list[str], *, now: float | None = None) -> dict[str, Any]:
    """`--fault k=v` items → Faults fields; `drop_in=S` means drop_at = now + S."""
    out: dict[str, Any] = {}
    problems: list[SpecProblem] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            problems.append(SpecProblem(f"fault {item}", "expected KEY=VALUE"))
            continue
        try:
            if key in ("disk_size", "drop_after_bytes"):
                out[key] = parse_size(value)
            elif key == "drop_in":
                out["drop_at"] = (time.time() if now is None else now) + float(value)
            elif key == "offline":
                out[key] = value.strip().lower() in ("1", "true", "yes", "on")
            else:
                out[key] = value
        except ValueError as e:
            problems.append(SpecProblem(f"fault {key}", str(e)))
    if problems:
        raise _fault_error(problems)
    return out


def make_faults(base: Faults | None, changes: dict[str, Any]) -> Faults:
    """`base` with `changes` applied, validated; a bad key or value is a SpecError."""
    data = (base or Faults()).model_dump()
    data.update(changes)
    try:
        return Faults.model_validate(data)
    except ValidationError as e:
        raise _fault_error([SpecProblem("fault " + ".".join(map(str, err["loc"])), err["msg"])
                            for err in e.errors()]) from None


def _fault_error(problems: list[SpecProblem]) -> SpecError:
    err = SpecError(problems, source="--fault")
    err.hint = ("Faults are KEY=VALUE with KEY one of drop_after_bytes, drop_in, drop_at, "
                "throttle_mbps, disk_size, offline.")
    return err


def write_control(state_dir: Path, faults: Faults) -> None:
    """Replace the phone's control file atomically (the phone never sees half a file)."""
    tmp = state_dir / f".{CONTROL_FILE}.{os.getpid()}.tmp"
    tmp.write_text(faults.model_dump_json(indent=1))
    os.replace(tmp, state_dir / CONTROL_FILE)


def read_control(state_dir: Path, name: str = CONTROL_FILE) -> Faults | None:
    try:
        return Faults.model_validate(json.loads((state_dir / name).read_text()))
    except (OSError, ValueError):
        return None


class Throttle:
    """Paces one direction of the link to a byte rate; shared by all of a phone's connections."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._free_at = 0.0
        self._clock, self._sleep = clock, sleep  # injected, so tests need no real waiting

    def set_rate(self, mb_per_s: float | None) -> None:
        with self._lock:
            self._rate = mb_per_s * 1e6 if mb_per_s else None

    def pace(self, nbytes: int) -> None:
        """Sleep until `nbytes` more would have crossed a link of the set rate."""
        with self._lock:
            if self._rate is None:
                return
            now = self._clock()
            self._free_at = max(now, self._free_at) + nbytes / self._rate
            delay = self._free_at - now
        if delay > 0:
            self._sleep(delay)
