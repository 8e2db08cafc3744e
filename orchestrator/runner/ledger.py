"""Host → device side of the audit ledger: one row per pushed or skipped transfer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from orchestrator.runner.link import TransferInfo
from orchestrator.store import repo


@dataclass
class PushLedger:
    session: Session
    run_id: int | None
    device_id: int | None
    launcher: str | None

    def record(self, info: TransferInfo, kind: str, reason: str | None = None) -> None:
        if info.skipped:
            direction, reason = "skipped", reason or "same sha256 already on the device"
        else:
            direction = "push"
        repo.record_transfer(session=self.session, direction=direction, kind=kind,
                             device_path=info.device_path, nbytes=info.bytes,
                             sha256=info.sha256, run_id=self.run_id, device_id=self.device_id,
                             launcher=self.launcher, reason=reason)
