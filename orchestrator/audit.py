"""The privacy verdict of a run, computed from its transfer ledger alone (pure; no I/O).

The privacy contract lets only the run's aggregate outputs come back from the phone: its
events and result files (kinds `metrics`, `events`, `result`), as the egress guard admits
them. Any other pull, whatever its size, breaks the contract (fail). A refused read whose
bytes had already crossed is not a pass either: those bytes were destroyed on the host, and
the verdict says how many (refused). With the run's information bound, the verdict also
states the most information its admitted data could hold. The dashboard and
`orch audit RUN` share this code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Literal, Protocol

from pydantic import BaseModel

# Kinds that may be pulled from the phone: aggregate metrics only.
ALLOWED_PULL_KINDS = frozenset({"metrics", "events", "result"})
# Directions that move no bytes off the phone.
# (`discarded`: event lines written by two agents at once, dropped on the phone unread;
# `removed`: files orch did not push, removed from a staged folder before a launch.)
INBOUND_DIRECTIONS = frozenset({"push", "refused", "skipped", "discarded", "removed"})
# A pulled file named like a photo fails the verdict even if its kind claims otherwise.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".heic", ".heif"})

Verdict = Literal["pass", "refused", "fail", "empty"]


class BoundEntry(Protocol):
    """What the verdict reads of a run's information bound (BoundPublic has it)."""

    bytes: int
    numbers: int
    choices: int


class LedgerEntry(Protocol):
    """What the verdict reads of a ledger row (TransferPublic has it)."""

    direction: str
    kind: str
    device_path: str
    bytes: int
    reason: str | None


class KindTotal(BaseModel):
    kind: str
    files: int
    bytes: int


class RefusedRead(BaseModel):
    device_path: str
    kind: str
    reason: str | None = None


class Violation(BaseModel):
    device_path: str
    kind: str
    direction: str
    bytes: int
    why: str


class AuditVerdict(BaseModel):
    # pass | refused (bytes crossed and were refused) | fail | empty (nothing recorded)
    verdict: Verdict
    headline: str  # e.g. "only schema data crossed: 0 image bytes left the device"
    bytes_pushed: int
    bytes_pulled: int
    pushed_by_kind: list[KindTotal]
    pulled_by_kind: list[KindTotal]
    refused: list[RefusedRead]
    skipped: int  # pushes skipped because the phone already had the same bytes
    violations: list[Violation]
    leaked_bytes: int  # bytes of pulls that broke the contract
    refused_bytes: int = 0  # bytes that crossed in reads the guard refused
    bound_bytes: int | None = None  # the most information the admitted data could hold
    bound_numbers: int | None = None
    bound_choices: int | None = None
    bound_line: str | None = None  # "at most 1.1 KiB of information could have left …"

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"


def _totals(entries: list[LedgerEntry]) -> list[KindTotal]:
    by_kind: dict[str, KindTotal] = {}
    for e in entries:
        t = by_kind.setdefault(e.kind, KindTotal(kind=e.kind, files=0, bytes=0))
        t.files += 1
        t.bytes += max(0, int(e.bytes or 0))
    return sorted(by_kind.values(), key=lambda t: (-t.bytes, t.kind))


def _violation(e: LedgerEntry) -> str | None:
    """Why this row breaks the contract, or None if it does not."""
    if e.direction in INBOUND_DIRECTIONS:
        return None
    if e.direction != "pull":
        return f"unknown direction {e.direction!r}: cannot vouch for it"
    if e.kind not in ALLOWED_PULL_KINDS:
        return f"pulled a {e.kind!r} file; only metrics, events and result may leave the phone"
    if PurePosixPath(e.device_path).suffix.lower() in IMAGE_SUFFIXES:
        return "pulled a file named like an image"
    return None


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - the loop always returns


def kib(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.1f} KiB"


def bound_line(bound: BoundEntry) -> str:
    return (f"at most {kib(bound.bytes)} of information could have left the device "
            f"({bound.numbers} numbers at their admitted precision, {bound.choices} "
            "enumerated choices)")


def audit_verdict(transfers: Iterable[LedgerEntry],
                  bound: BoundEntry | None = None) -> AuditVerdict:
    """Summarise a run's ledger and decide whether only aggregate metrics left the phone."""
    rows = list(transfers)
    refused_bytes = sum(max(0, int(e.bytes or 0)) for e in rows if e.direction == "refused")
    pushed = [e for e in rows if e.direction == "push"]
    pulled = [e for e in rows if e.direction == "pull"]
    violations = [
        Violation(device_path=e.device_path, kind=e.kind, direction=e.direction,
                  bytes=max(0, int(e.bytes or 0)), why=why)
        for e in rows if (why := _violation(e)) is not None
    ]
    leaked = sum(v.bytes for v in violations)
    if violations:
        verdict: Verdict = "fail"
        n = len(violations)
        headline = (f"{_human_bytes(leaked)} left the device outside the contract "
                    f"({n} transfer{'s' if n != 1 else ''})")
    elif refused_bytes:
        verdict = "refused"
        headline = (f"{refused_bytes:,} bytes crossed and were refused and destroyed on the "
                    "host")
    elif not rows:
        verdict, headline = "empty", "No transfers recorded: this run cannot be audited"
    else:
        verdict, headline = "pass", "0 image bytes left the device: only schema data crossed"
    return AuditVerdict(
        verdict=verdict,
        headline=headline,
        bytes_pushed=sum(t.bytes for t in _totals(pushed)),
        bytes_pulled=sum(t.bytes for t in _totals(pulled)),
        pushed_by_kind=_totals(pushed),
        pulled_by_kind=_totals(pulled),
        refused=[RefusedRead(device_path=e.device_path, kind=e.kind, reason=e.reason)
                 for e in rows if e.direction == "refused"],
        skipped=sum(1 for e in rows if e.direction == "skipped"),
        violations=violations,
        leaked_bytes=leaked,
        refused_bytes=refused_bytes,
        bound_bytes=None if bound is None else bound.bytes,
        bound_numbers=None if bound is None else bound.numbers,
        bound_choices=None if bound is None else bound.choices,
        bound_line=None if bound is None else bound_line(bound),
    )
