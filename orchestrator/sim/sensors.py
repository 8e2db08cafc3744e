"""Battery and temperature of a virtual phone: a small deterministic model (pure).

Given the profile, the time step and how many cores the phone's processes kept busy, the
battery drains (or charges while plugged) and the SoC temperature moves towards
idle + rise × load with a first-order lag; skin and battery follow the SoC. The phone
renders the state as real `dumpsys battery` / `dumpsys thermalservice` output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from orchestrator.sim.profile import Profile

TYPE_CPU, TYPE_BATTERY, TYPE_SKIN = 0, 2, 3


@dataclass(frozen=True)
class SensorState:
    level: float  # battery, %
    soc_c: float  # SoC temperature, °C
    elapsed_s: float = 0.0
    busy_cores: float = 0.0  # load of the last step


def initial_state(profile: Profile) -> SensorState:
    return SensorState(level=profile.battery.level, soc_c=profile.thermal.idle_c)


def step(profile: Profile, state: SensorState, dt: float, busy_cores: float) -> SensorState:
    """The state `dt` seconds later, with `busy_cores` cores busy throughout."""
    if dt <= 0:
        return state
    load = min(max(busy_cores, 0.0), float(profile.cores))
    b, th = profile.battery, profile.thermal
    pct_per_h = -(b.idle_drain_pct_h + b.busy_drain_pct_h * load)
    if b.plugged != "none":
        pct_per_h += b.charge_pct_h
    level = min(max(state.level + pct_per_h * dt / 3600.0, 0.0), 100.0)
    target = th.idle_c + th.rise_per_core_c * load
    soc = target + (state.soc_c - target) * math.exp(-dt / th.tau_s)
    return replace(state, level=level, soc_c=soc, elapsed_s=state.elapsed_s + dt,
                   busy_cores=load)


def skin_c(profile: Profile, state: SensorState) -> float:
    th = profile.thermal
    return th.ambient_c + th.skin_share * (state.soc_c - th.ambient_c)


def battery_c(profile: Profile, state: SensorState) -> float:
    th = profile.thermal
    return th.ambient_c + th.battery_share * (state.soc_c - th.ambient_c)


def thermal_status(profile: Profile, state: SensorState) -> int:
    """PowerManager thermal status 0 (none) … 6 (shutdown), from the skin temperature."""
    skin = skin_c(profile, state)
    return sum(1 for t in profile.thermal.thresholds_c if skin >= t)


def battery_status(profile: Profile, state: SensorState) -> int:
    """BatteryManager status: 2 charging, 3 discharging, 5 full."""
    if profile.battery.plugged == "none":
        return 3
    return 5 if state.level >= 100.0 else 2


def render_battery(profile: Profile, state: SensorState) -> str:
    b = profile.battery
    level = int(state.level)
    lines = [
        "Current Battery Service state:",
        f"  AC powered: {str(b.plugged == 'ac').lower()}",
        f"  USB powered: {str(b.plugged == 'usb').lower()}",
        "  Wireless powered: false",
        "  Dock powered: false",
        f"  Max charging current: {3000000 if b.plugged == 'ac' else 500000}",
        "  Max charging voltage: 5000000",
        f"  Charge counter: {int(state.level / 100.0 * b.capacity_mah * 1000)}",
        f"  status: {battery_status(profile, state)}",
        "  health: 2",
        "  present: true",
        f"  level: {level}",
        "  scale: 100",
        f"  voltage: {int(3600 + 6 * state.level)}",
        f"  temperature: {round(battery_c(profile, state) * 10)}",
        f"  technology: {b.technology}",
    ]
    return "\n".join(lines) + "\n"


def _temp(value: float, kind: int, name: str, status: int = 0) -> str:
    body = f"mValue={round(value, 2)}, mType={kind}, mName={name}, mStatus={status}"
    return f"\tTemperature{{{body}}}"


def render_thermal(profile: Profile, state: SensorState) -> str:
    status = thermal_status(profile, state)
    skin = _temp(skin_c(profile, state), TYPE_SKIN, "skin", status)
    listeners = ["\tcallbacks: 1", "\tkilled: false", "\tbroadcasts count: -1"]
    lines = [
        "IsStatusOverride: false",
        "ThermalEventListeners:", *listeners,
        "ThermalStatusListeners:", *listeners,
        f"Thermal Status: {status}",
        "Cached temperatures:", skin,
        "HAL Ready: true",
        "HAL connection:",
        "\tThermalHAL 2.0 connected: yes",
        "Current temperatures from HAL:",
        _temp(state.soc_c, TYPE_CPU, profile.thermal.cpu_sensor),
        _temp(battery_c(profile, state), TYPE_BATTERY, "battery"),
        skin,
        "Current cooling devices from HAL:",
        f"\tCoolingDevice{{mValue={min(status, 3)}, mType=2, mName=cpu}}",
    ]
    return "\n".join(lines) + "\n"
