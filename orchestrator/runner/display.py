"""Live progress of `orch run`: rich bars on a terminal, plain lines otherwise (logs, CI).

Progress goes to stderr so that `--format json` keeps stdout for the result alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from orchestrator.runner.follow import Progress as RunProgress


class RunDisplay:
    """Callable progress sink for `run_experiment`; a context manager around the live bars."""

    def __init__(self, console: Console, *, live: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.clock = clock
        self._bars: Progress | None = None
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._last_line: dict[tuple[str, str], object] = {}
        self._first_epoch: dict[str, tuple[int, float]] = {}  # variant → (epoch, when seen)

    def __enter__(self) -> RunDisplay:
        if self.live:
            self._bars = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                TimeRemainingColumn(),  # from the stage's pace so far: long phone runs
                console=self.console, transient=False)
            self._bars.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()

    # ------------------------------------------------------------------ updates

    def __call__(self, p: RunProgress) -> None:
        if self._bars is not None:
            self._bar(p)
        else:
            self._line(p)

    def _bar(self, p: RunProgress) -> None:
        assert self._bars is not None
        if p.kind in ("note", "delegate", "launch"):
            self._bars.console.print(f"[dim]{p.variant}:[/dim] {p.text}", soft_wrap=True)
            return
        name = p.stage if p.kind == "agent" else p.kind
        key = (p.variant, name or "?")
        if p.kind == "epoch":
            total, done = p.epochs, p.epoch
            note = f"test acc {p.test_acc:.3f}" if p.test_acc is not None else ""
        else:
            total, done, note = p.total, p.done, p.text
        if key not in self._tasks:
            self._tasks[key] = self._bars.add_task(f"{p.variant} · {name}", total=total,
                                                   note=note)
        fields = {"note": note} if note or p.kind == "epoch" else {}
        self._bars.update(self._tasks[key], total=total, completed=done or 0, **fields)

    def _time_left(self, p: RunProgress) -> str:
        """`, about 40 s left` from the pace of the epochs seen so far (none at the first)."""
        if p.epoch is None or not p.epochs:
            return ""
        now = self.clock()
        first = self._first_epoch.setdefault(p.variant, (p.epoch, now))
        done, spent = p.epoch - first[0], now - first[1]
        if done <= 0 or p.epoch >= p.epochs:
            return ""
        left = spent / done * (p.epochs - p.epoch)
        if left < 1:  # a small run: nothing worth waiting for
            return ""
        return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"

    def _line(self, p: RunProgress) -> None:
        """One plain line per meaningful change: a stage's start and end, each epoch."""
        if p.kind == "agent":
            key = (p.variant, f"agent:{p.stage}")
            state = "end" if p.total is not None and p.done == p.total else "start"
            if self._last_line.get(key) == state or (state == "start" and key in self._last_line):
                return
            self._last_line[key] = state
            counts = f" {p.done}/{p.total}" if p.total is not None else ""
            self.console.print(f"{p.variant}: {p.stage}{counts}", soft_wrap=True)
        elif p.kind == "epoch":
            acc = f", test acc {p.test_acc:.4f}" if p.test_acc is not None else ""
            self.console.print(f"{p.variant}: epoch {p.epoch}/{p.epochs} ({p.text}){acc}"
                               f"{self._time_left(p)}", soft_wrap=True)
        elif p.text:  # updates without text (a file staged) are for the bars only
            self.console.print(f"{p.variant}: {p.text}", soft_wrap=True)
