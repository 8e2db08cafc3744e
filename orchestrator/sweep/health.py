"""Health gates before a run: cool down after the phone's last run, then wait until its
battery is high enough and it is cool enough. Clock, sleep and the sampler are injected, so
the rules are tested without waiting; every sample taken is handed to `on_sample`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.links.base import HealthSample
from orchestrator.spec import HealthSpec


@dataclass(frozen=True)
class GateResult:
    ok: bool
    waited_s: float  # cool-down + waiting for battery/temperature
    cooldown_s: float
    samples: int
    reason: str | None = None  # why it gave up (or was stopped)


def unmet(health: HealthSpec, sample: HealthSample | None) -> str | None:
    """What keeps the phone from starting a run now (None: nothing). An unknown reading does
    not hold a run back: not every phone reports temperature."""
    if sample is None:
        return None
    if (health.min_battery is not None and sample.battery is not None
            and sample.battery < health.min_battery):
        return f"battery {sample.battery:.0f} % < {health.min_battery} %"
    if (health.max_temperature is not None and sample.temperature is not None
            and sample.temperature > health.max_temperature):
        return f"temperature {sample.temperature:.1f} °C > {health.max_temperature} °C"
    return None


def wait_until_ready(
    *,
    health: HealthSpec,
    sample: Callable[[], HealthSample | None],
    since_last_run_s: float | None,
    on_sample: Callable[[HealthSample], None] = lambda _s: None,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 5.0,
) -> GateResult:
    """Cool down, then sample until the gates pass or `health.max_wait_s` is spent."""
    start = clock()
    cooldown = 0.0
    if since_last_run_s is not None and health.cooldown_s > since_last_run_s:
        end = start + health.cooldown_s - since_last_run_s
        while (now := clock()) < end:
            if should_stop():
                return GateResult(False, now - start, now - start, 0, "stopped")
            sleep(min(poll_s, end - now))
        cooldown = clock() - start
    gate_start = clock()
    samples = 0
    while True:
        s = sample()
        samples += 1
        if s is not None:
            on_sample(s)
        why = unmet(health, s)
        now = clock()
        if why is None:
            return GateResult(True, now - start, cooldown, samples)
        if now - gate_start >= health.max_wait_s:
            return GateResult(False, now - start, cooldown, samples,
                              f"{why} after waiting {now - gate_start:.0f} s")
        if should_stop():
            return GateResult(False, now - start, cooldown, samples, "stopped")
        sleep(min(poll_s, max(0.0, health.max_wait_s - (now - gate_start))))
