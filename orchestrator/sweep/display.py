"""What a sweep shows while it runs and when asked: plain lines per phone (logs, CI), a live
per-phone table on a terminal, and the status table of `orch sweep status`.

Everything goes to the console it is given (stderr while a sweep runs), from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.runner.follow import Progress
from orchestrator.store.status import RunStatus
from orchestrator.sweep.status import SweepStatus

COLUMNS = ("finished", "running", "queued", "failed")


def status_table(status: SweepStatus) -> Table:
    """Per phone: done / running / queued / failed (+ interrupted, cancelled when any)."""
    sw = status.sweep
    extra = [k for k in (RunStatus.INTERRUPTED.value, RunStatus.CANCELLED.value)
             if status.counts.get(k)]
    title = (f"sweep {sw.id} {sw.name} · {status.experiment} · {sw.status}"
             + (" (no live driver: `orch sweep resume " + str(sw.id) + "`)"
                if status.driver == "stalled" else ""))
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", show_edge=False,
                  title_justify="left")
    table.add_column("phone")
    for name in ("done", "running", "queued", "failed", *extra):
        table.add_column(name, justify="right")
    table.add_column("now")
    for p in status.phones:
        name = p.phone if not p.serial or p.serial == p.phone else f"{p.phone} ({p.serial})"
        # Text cells: labels and serials are never read as rich markup.
        table.add_row(Text(name), *[str(p.counts.get(k, 0)) for k in (*COLUMNS, *extra)],
                      Text(p.current or ""))
    table.add_row(Text("total", style="bold"),
                  *[str(status.counts.get(k, 0)) for k in (*COLUMNS, *extra)], "")
    return table


class SweepDisplay:
    """Lines per phone, plus (on a terminal) a live status table refreshed by the driver."""

    def __init__(self, console: Console, *, live: bool | None = None,
                 epochs: bool = True) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.epochs = epochs
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> SweepDisplay:
        if self.live:
            self._live = Live(Group(), console=self.console, refresh_per_second=2,
                              transient=True)
            self._live.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()

    def say(self, phone: str, text: str) -> None:
        with self._lock:
            self.console.print(f"[{phone}] {text}", soft_wrap=True, markup=False,
                               highlight=False)

    def refresh(self, status: SweepStatus) -> None:
        if self._live is not None:
            with self._lock:
                self._live.update(status_table(status))

    def progress(self, phone: str, label: str) -> Callable[[Progress], None]:
        """A pipeline progress sink for one run: its epochs and notes as lines."""

        def sink(p: Progress) -> None:
            if p.kind == "epoch" and self.epochs:
                acc = f", test acc {p.test_acc:.4f}" if p.test_acc is not None else ""
                self.say(phone, f"run {p.run_id} {label}: epoch {p.epoch}/{p.epochs} "
                                f"({p.text}){acc}")
            elif p.kind in ("delegate", "launch") and p.text:
                self.say(phone, f"run {p.run_id} {label}: {p.text}")

        return sink
