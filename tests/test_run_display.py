"""Plain-line progress (logs, CI): one line per epoch, with the time left at the pace so far."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.runner.display import RunDisplay
from orchestrator.runner.follow import Progress


def test_epoch_lines_say_the_time_left_from_the_pace_so_far():
    out = io.StringIO()
    now = [100.0]
    with RunDisplay(Console(file=out, width=200), live=False, clock=lambda: now[0]) as show:
        for epoch, at in ((1, 100.0), (2, 110.0), (3, 120.0), (10, 190.0)):
            now[0] = at
            show(Progress("method2", "epoch", 1, epoch=epoch, epochs=10, test_acc=0.5,
                          text="head"))
        for epoch, at in ((1, 300.0), (2, 300.1)):  # a tiny run: no "0 s left"
            now[0] = at
            show(Progress("tiny", "epoch", 3, epoch=epoch, epochs=3, text="head"))
        now[0] = 500.0
        show(Progress("method1", "epoch", 2, epoch=1, epochs=40, text="head"))
        now[0] = 505.0
        show(Progress("method1", "epoch", 2, epoch=2, epochs=40, text="head"))
    lines = out.getvalue().splitlines()
    assert lines[0] == "method2: epoch 1/10 (head), test acc 0.5000"
    assert lines[1].endswith(", about 80 s left")  # 10 s per epoch, 8 to go
    assert lines[2].endswith(", about 70 s left")
    assert lines[3] == "method2: epoch 10/10 (head), test acc 0.5000"
    assert lines[5] == "tiny: epoch 2/3 (head)"
    assert lines[7] == "method1: epoch 2/40 (head), about 3 min left"  # 5 s × 38
