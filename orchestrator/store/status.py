"""A run's status and the changes allowed between statuses (Flower's run-status table).

Every status write goes through `repo.transition_run`, which checks the change against
`TRANSITIONS` in the same UPDATE that makes it. The sets callers ask about (open, ended,
at rest) are derived from the table here, never retyped. A leaf module: it imports nothing
from orch, so the dashboard and the CLI can use it as well as the store.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Stored as its value: the strings in the database and in JSON stay the same."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


_S = RunStatus

# How a run moves on while it is being worked on. A status that is a key here is open.
_FORWARD: dict[RunStatus, frozenset[RunStatus]] = {
    # claimed or staged; ended before its agent started (a build error, a health gate,
    # Ctrl-C, a cancel); handed back to the queue again by a dead worker's successor
    _S.QUEUED: frozenset({_S.RUNNING, _S.FAILED, _S.INTERRUPTED, _S.CANCELLED, _S.QUEUED}),
    # taken up again (staged after its claim, reattached, resumed); back to the queue (the
    # host stops during the health gates); the verdict of its end
    _S.RUNNING: frozenset({_S.RUNNING, _S.QUEUED, _S.FINISHED, _S.FAILED, _S.INTERRUPTED,
                           _S.CANCELLED}),
    # resumed from the agent's checkpoint; its reason updated; given up, cancelled, queued
    _S.INTERRUPTED: frozenset({_S.RUNNING, _S.INTERRUPTED, _S.FAILED, _S.CANCELLED,
                               _S.QUEUED}),
}
# An ended run taken up again: retried in its own row, resumed from its agent's checkpoint
# (`orch run --resume`), awaited with its lost phone; a failed one is recorded cancelled when
# its sweep was cancelled before the retry. A finished run never changes again.
_AFTER_END: dict[RunStatus, frozenset[RunStatus]] = {
    _S.FAILED: frozenset({_S.RUNNING, _S.INTERRUPTED, _S.CANCELLED}),
    _S.CANCELLED: frozenset({_S.RUNNING}),
}
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    s: _FORWARD.get(s, frozenset()) | _AFTER_END.get(s, frozenset()) for s in RunStatus}

OPEN = frozenset(_FORWARD)  # still to do: queued, running, interrupted
ENDED = frozenset(RunStatus) - OPEN  # finished, failed, cancelled
# Nothing moves it on by itself: ended, or interrupted and waiting for `orch run --resume`.
AT_REST = ENDED | {_S.INTERRUPTED}
# Shown, never stored: `orphaned` is a running run no live host follows (store/lease.py).
DERIVED = ("orphaned",)


def allowed(current: str, target: str) -> bool:
    return RunStatus(target) in TRANSITIONS[RunStatus(current)]


def sources(target: str) -> frozenset[RunStatus]:
    """The statuses a run may be in to move to `target`."""
    return frozenset(s for s, nxt in TRANSITIONS.items() if RunStatus(target) in nxt)


class SweepState(StrEnum):
    """A sweep's own state (its items' states are their runs' statuses). Stored as its value."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its driving process stopped; `orch sweep resume` goes on


SWEEP_OPEN = frozenset({SweepState.QUEUED, SweepState.RUNNING})  # workers may claim its runs
SWEEP_ENDED = frozenset({SweepState.FINISHED, SweepState.CANCELLED})  # nothing left to run
