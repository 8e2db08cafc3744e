"""The privacy verdict of a run, computed from its transfer ledger alone (pure; no I/O).

The privacy contract lets only the run's aggregate outputs come back from the phone: its
events and result files (kinds `metrics`, `events`, `result`). Any other pull, whatever its
size, breaks the contract. Refused reads are the egress guard doing its job: they are listed,
and do not fail the verdict. The dashboard and `orch audit RUN` share this code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Literal, Protocol

from pydantic import BaseModel

# Kinds that may be pulled from the phone: aggregate metrics only.
ALLOWED_PULL_KINDS = frozenset({"metrics", "events", "result"})
# Directions that move no bytes off the phone.
# (`discarded`: event lines written by two agents at once, dropped on the phone unread.)
INBOUND_DIRECTIONS = frozenset({"push", "refused", "skipped", "discarded"})
# A pulled file named like a photo fails the verdict even if its kind claims otherwise.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".heic", ".heif"})

Verdict = Literal["pass", "fail", "empty"]


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
    verdict: Verdict  # pass | fail | empty (nothing recorded: the run cannot be vouched for)
    headline: str  # e.g. "0 image bytes left the device"
    bytes_pushed: int
    bytes_pulled: int
    pushed_by_kind: list[KindTotal]
    pulled_by_kind: list[KindTotal]
    refused: list[RefusedRead]
    skipped: int  # pushes skipped because the phone already had the same bytes
    violations: list[Violation]
    leaked_bytes: int  # bytes of pulls that broke the contract

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


def audit_verdict(transfers: Iterable[LedgerEntry]) -> AuditVerdict:
    """Summarise a run's ledger and decide whether only aggregate metrics left the phone."""
    rows = list(transfers)
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
    elif not rows:
        verdict, headline = "empty", "No transfers recorded: this run cannot be audited"
    else:
        verdict, headline = "pass", "0 image bytes left the device"
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
    )
