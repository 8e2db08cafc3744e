"""Battery and temperature of a phone, sampled per epoch and before a run (one shell call)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.devices.adb import Phone
from orchestrator.devices.parsers import parse_battery, parse_thermal

_SPLIT = "=====ORCH-THERMAL====="
# thermalservice exists from Android 10 on; its absence must not fail the battery reading.
HEALTH_COMMAND = (f"dumpsys battery && echo {_SPLIT} && "
                  "{ dumpsys thermalservice 2>/dev/null || true; }")


@dataclass(frozen=True)
class HealthSample:
    battery: float | None  # percent
    temperature: float | None  # °C: skin, else CPU, else battery
    battery_temperature: float | None
    thermal_status: int | None  # 0 none … 6 shutdown (None before Android 10)
    plugged: bool | None


def health_from_text(text: str) -> HealthSample:
    """Parse the combined output of HEALTH_COMMAND (pure)."""
    battery_text, _, thermal_text = text.partition(_SPLIT)
    b = parse_battery(battery_text)
    t = parse_thermal(thermal_text)
    return HealthSample(
        battery=b.level_pct,
        temperature=t.temperature_c if t.temperature_c is not None else b.temperature_c,
        battery_temperature=b.temperature_c,
        thermal_status=t.status,
        plugged=b.plugged,
    )


def sample_health(phone: Phone) -> HealthSample:
    return health_from_text(phone.run(HEALTH_COMMAND, timeout=30))
