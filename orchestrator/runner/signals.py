"""Host signals: SIGTERM and SIGHUP stop `orch run` the way Ctrl-C does, without a question.

The handler raises `HostStopped` (a KeyboardInterrupt) in the main thread, so the pipeline's
one interruption path marks the run `interrupted` with its resume command and releases the
phone's lease; the agent is detached and keeps training on the phone.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class HostStopped(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise HostStopped (once: a second one while
    the run is being marked is ignored, so the mark is not cut short)."""
    fired = []

    def handler(signum: int, _frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        raise HostStopped(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
