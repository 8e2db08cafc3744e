"""`orch devices doctor`: does this phone have what a run needs, and how to fix each gap.

Facts are gathered once (`gather`), then each check is a small pure function of them, so
launchers (Termux run-as, ssh) can append their own checks to `CHECKS`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orchestrator.devices.facts import DeviceFacts
from orchestrator.devices.health import HealthSample

MIN_FREE_BYTES = 256 * 1024 * 1024  # models + features cache + a host: data set, with room
MIN_BATTERY = 20.0  # percent, unless plugged in
MIN_NNAPI_SDK = 27  # Android 8.1: the NNAPI NDK API
MIN_PYTHON = (3, 9)

# Run with the phone's Python when `device_agent info` is unavailable: which modules import.
PROBE = (
    "import importlib, json, platform\n"
    "r = {'python': platform.python_version(), 'machine': platform.machine()}\n"
    "for m in ('numpy', 'PIL', 'ai_edge_litert', 'tflite_runtime'):\n"
    "    try:\n"
    "        r[m] = getattr(importlib.import_module(m), '__version__', 'present')\n"
    "    except Exception:\n"
    "        r[m] = None\n"
    "print(json.dumps(r))\n"
)


class CheckResult(BaseModel):
    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass
class DoctorContext:
    """Everything the checks look at, gathered from the phone once."""

    serial: str
    facts: DeviceFacts
    health: HealthSample | None
    free_bytes: int | None
    python: str | None  # path of the phone's Python, None when absent
    runtime: dict[str, Any] = field(default_factory=dict)  # device_agent info (or PROBE)
    runtime_error: str | None = None  # why the agent could not report
    staging_ok: bool = True
    staging_error: str | None = None


Check = Callable[[DoctorContext], CheckResult]


def _version_tuple(v: str | None) -> tuple[int, ...]:
    parts = []
    for p in (v or "").split(".")[:2]:
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def check_staging(ctx: DoctorContext) -> CheckResult:
    if ctx.staging_ok:
        return CheckResult(name="staging folder", ok=True, detail="writable")
    return CheckResult(name="staging folder", ok=False,
                       detail=ctx.staging_error or "not writable",
                       fix="Check `adb shell ls -ld /data/local/tmp` (must belong to shell).")


def check_python(ctx: DoctorContext) -> CheckResult:
    name = "python"
    if ctx.python is None:
        return CheckResult(name=name, ok=False, detail="no python3/python on the shell PATH",
                           fix="Install Termux (GitHub build) and run `pkg install python` in "
                               "it, or put a Python 3.9+ on the adb shell's PATH.")
    version = ctx.runtime.get("python")
    if version and _version_tuple(version) < MIN_PYTHON:
        return CheckResult(name=name, ok=False, detail=f"{ctx.python} is Python {version}",
                           fix="The agent needs Python 3.9+: `pkg upgrade python` in Termux.")
    return CheckResult(name=name, ok=True, detail=f"{ctx.python} ({version or 'version ?'})")


def _module_check(name: str, keys: tuple[str, ...], fix: str) -> Check:
    def check(ctx: DoctorContext) -> CheckResult:
        if ctx.python is None:
            return CheckResult(name=name, ok=False, detail="no Python to import it with",
                               fix="Install Python first (see above).")
        found = [(k, ctx.runtime.get(k)) for k in keys if ctx.runtime.get(k)]
        if found:
            k, v = found[0]
            return CheckResult(name=name, ok=True, detail=f"{k} {v}")
        return CheckResult(name=name, ok=False, detail="cannot be imported", fix=fix)

    check.__name__ = f"check_{name.replace(' ', '_')}"
    return check


check_numpy = _module_check("numpy", ("numpy",), "In Termux: `pkg install python-numpy`.")
check_pillow = _module_check("Pillow", ("pillow",),
                             "In Termux: `pkg install python-pillow`.")
_check_interpreter_present = _module_check(
    "TFLite interpreter", ("interpreter",),
    "In Termux: `pkg install python-tflite-runtime` (or `pip install ai-edge-litert` where "
    "a wheel exists).")


def check_interpreter(ctx: DoctorContext) -> CheckResult:
    """The interpreter and its version; ✗ below the oldest version that loads orch's models."""
    from device_agent.versions import too_old

    found = _check_interpreter_present(ctx)
    version = ctx.runtime.get("interpreter_version")
    if not found.ok or not version:
        return found
    name = ctx.runtime.get("interpreter")
    detail = f"{name} {version}"
    minimum = too_old(name, version)
    if minimum is None:
        return CheckResult(name=found.name, ok=True, detail=detail)
    fix = ("In Termux: `pkg upgrade python-tflite-runtime`." if name == "tflite_runtime"
           else "`pip install -U ai-edge-litert`.")
    return CheckResult(name=found.name, ok=False,
                       detail=f"{detail} is older than {minimum}, the oldest that loads "
                              "orch's models", fix=fix)


def check_agent(ctx: DoctorContext) -> CheckResult:
    if ctx.runtime_error is None and ctx.runtime.get("agent"):
        return CheckResult(name="agent", ok=True,
                           detail=f"device_agent {ctx.runtime.get('agent')} starts")
    return CheckResult(name="agent", ok=False,
                       detail=ctx.runtime_error or "`device_agent info` gave no version",
                       fix="Fix the Python checks above; then `orch devices doctor` again.")


def check_space(ctx: DoctorContext) -> CheckResult:
    if ctx.free_bytes is None:
        return CheckResult(name="free space", ok=False, detail="df gave no figure",
                           fix="Check `adb shell df -k /data/local/tmp`.")
    gb = ctx.free_bytes / 1e9
    if ctx.free_bytes < MIN_FREE_BYTES:
        return CheckResult(name="free space", ok=False,
                           detail=f"{gb:.2f} GB free, a run needs {MIN_FREE_BYTES / 1e9:.2f} GB",
                           fix=f"`orch devices clean {ctx.serial}`, or free space on the phone.")
    return CheckResult(name="free space", ok=True, detail=f"{gb:.2f} GB free")


def check_battery(ctx: DoctorContext) -> CheckResult:
    h = ctx.health
    if h is None or h.battery is None:
        return CheckResult(name="battery", ok=True, detail="no battery reading (no battery?)")
    plugged = " (plugged in)" if h.plugged else ""
    if h.battery < MIN_BATTERY and not h.plugged:
        return CheckResult(name="battery", ok=False, detail=f"{h.battery:.0f} %{plugged}",
                           fix=f"Charge it above {MIN_BATTERY:.0f} % or plug it in: a phone "
                               "that dies mid-run loses the epoch in progress.")
    return CheckResult(name="battery", ok=True, detail=f"{h.battery:.0f} %{plugged}")


def check_thermal(ctx: DoctorContext) -> CheckResult:
    h = ctx.health
    status = None if h is None else h.thermal_status
    temp = "" if h is None or h.temperature is None else f", {h.temperature:.1f} °C"
    if status is not None and status >= 3:
        return CheckResult(name="temperature", ok=False,
                           detail=f"thermal status {status} (severe or worse){temp}",
                           fix="Let it cool down: throttling skews timings (or set "
                               "health.max_temperature / cooldown_s in the spec).")
    shown = "unknown" if status is None else str(status)
    return CheckResult(name="temperature", ok=True, detail=f"thermal status {shown}{temp}")


def check_nnapi(ctx: DoctorContext) -> CheckResult:
    sdk = ctx.facts.sdk
    if sdk is not None and sdk < MIN_NNAPI_SDK:
        return CheckResult(name="NNAPI", ok=False,
                           detail=f"Android SDK {sdk} has no NNAPI (needs {MIN_NNAPI_SDK}+)",
                           fix="Use `delegate: xnnpack` or `cpu` in the spec on this phone.")
    detail = f"Android SDK {sdk}" if sdk else "SDK unknown"
    if ctx.runtime.get("nnapi_available") is False:
        # Not a gap: the agent falls back to the CPU and records why.
        detail += f"; the agent cannot load it ({ctx.runtime.get('nnapi_reason') or '?'}), " \
                  "runs fall back to the CPU"
    return CheckResult(name="NNAPI", ok=True, detail=detail)


CHECKS: list[Check] = [check_staging, check_python, check_numpy, check_pillow,
                       check_interpreter, check_agent, check_space, check_battery,
                       check_thermal, check_nnapi]


def run_checks(ctx: DoctorContext, checks: list[Check] | None = None) -> list[CheckResult]:
    return [check(ctx) for check in (CHECKS if checks is None else checks)]


def parse_runtime(text: str) -> dict[str, Any]:
    """`device_agent info` (one JSON object, maybe pretty-printed, maybe after warnings) or
    PROBE output → a flat dict: python, numpy, pillow, interpreter, agent, nnapi."""
    lines = text.strip().splitlines()
    raw: dict[str, Any] = {}
    for i, line in enumerate(lines):
        if line.startswith("{"):
            try:
                value = json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
            if isinstance(value, dict):
                raw = value
                break
    if not raw:
        return {}
    interp = raw.get("interpreter")
    if isinstance(interp, dict):
        interp = interp.get("name")
    version = (raw.get("interpreter") or {}).get("version") if isinstance(
        raw.get("interpreter"), dict) else None
    if interp is None:
        interp = next((m for m in ("ai_edge_litert", "tflite_runtime") if raw.get(m)), None)
        version = raw.get(interp) if interp and raw.get(interp) != "present" else None
    nnapi = (raw.get("delegates") or {}).get("nnapi") or {}
    machine = raw.get("machine") or (raw.get("platform") or {}).get("machine")
    return {"python": raw.get("python"), "machine": machine, "numpy": raw.get("numpy"),
            "pillow": raw.get("pillow") or raw.get("PIL"), "interpreter": interp,
            "interpreter_version": version,
            "agent": raw.get("agent_version") or raw.get("agent"),
            "nnapi_available": nnapi.get("available"), "nnapi_reason": nnapi.get("reason")}


def probe_command(python: str) -> str:
    return f"{shlex.quote(python)} -c {shlex.quote(PROBE)}"
