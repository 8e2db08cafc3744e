"""Host → device side of the audit ledger: one row per pushed or skipped transfer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from orchestrator.links.base import TransferInfo
from orchestrator.store import repo

BATCH_ROWS = 256  # a photo folder's rows are written this many per commit


@dataclass
class PushLedger:
    session: Session | None  # None: a probe with no store (`orch devices doctor`) records nothing
    run_id: int | None
    device_id: int | None
    launcher: str | None
    _pending: list[dict[str, Any]] | None = field(default=None, repr=False)

    def record(self, info: TransferInfo, kind: str, reason: str | None = None) -> None:
        if info.skipped:
            direction, reason = "skipped", reason or "same sha256 already on the device"
        else:
            direction = "push"
        if self.session is None:
            return
        row = dict(direction=direction, kind=kind, device_path=info.device_path,
                   nbytes=info.bytes, sha256=info.sha256, run_id=self.run_id,
                   device_id=self.device_id, launcher=self.launcher, reason=reason)
        if self._pending is None:
            repo.record_transfer(session=self.session, **row)
            return
        self._pending.append(row)
        if len(self._pending) >= BATCH_ROWS:
            self._flush()

    def removed(self, folder: str, kind: str, entries: int) -> None:
        """Entries orch did not push, removed from a staged folder before a launch."""
        if self.session is not None:
            repo.record_transfer(session=self.session, direction="removed", kind=kind,
                                 device_path=folder, nbytes=0, sha256=None, run_id=self.run_id,
                                 device_id=self.device_id, launcher=self.launcher,
                                 reason=f"{entries} entr{'y' if entries == 1 else 'ies'} orch "
                                        "did not push, removed before the launch")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Commit rows in groups (one commit per file costs more than pushing a photo); the
        rows of whatever crossed are written even when a push fails midway."""
        if self._pending is not None:
            yield
            return
        self._pending = []
        try:
            yield
        finally:
            self._flush()
            self._pending = None

    def _flush(self) -> None:
        if self._pending and self.session is not None:
            repo.record_transfers(session=self.session, rows=self._pending)
            self._pending = []
