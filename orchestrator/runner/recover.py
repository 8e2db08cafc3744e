"""A run whose events file two agents wrote at once (before agents locked their run folder,
or on a phone whose agent predates the lock): keep what the egress guard admits, discard
the rest, and go on from the last checkpoint.

The guard refuses the file from the first line whose seq does not go up. The bytes from
there on are never read: the ledger records them as `discarded` (count only), and the agent,
restarted with `--resume`, moves them aside on the phone (device_agent/events.py `repair`)
before it appends again, so the guard admits the file from its start once more.
"""

from __future__ import annotations

from sqlmodel import Session

from orchestrator.egress import EgressGuard
from orchestrator.errors import EgressRefused
from orchestrator.store import repo


def discard_damaged_tail(*, session: Session, guard: EgressGuard, err: EgressRefused,
                         device_id: int | None) -> int | None:
    """Record the tail of a two-writer events file as discarded; its byte offset, or None
    when the refusal was for anything else (then it stands)."""
    at = guard.order_break_at
    if at is None or err.path != guard.events_path:
        return None
    st = guard.link.stat(guard.events_path)
    size = st.size if st is not None else at
    repo.record_transfer(
        session=session, direction="discarded", kind="metrics", device_path=guard.events_path,
        nbytes=max(0, size - at), sha256=None, run_id=guard.run_id, device_id=device_id,
        launcher=guard.link.launcher,
        reason=f"written by two agents at once from byte {at}: not read, moved aside on the "
               "device; the run goes on from its last checkpoint")
    return at
