"""result.json: aggregate metrics only (no file names, no per-image data), written atomically."""

from __future__ import annotations

import os
from typing import Any

from device_agent import runtime
from device_agent.contract import JOB_SCHEMA, RESULT, RESULT_FILE
from device_agent.events import clean
from device_agent.fsio import write_json_atomic
from device_agent.schema import conform


def peak_memory_mb(status: str = "/proc/self/status") -> float | None:
    """Peak resident memory of this process: VmHWM on Linux/Android. ru_maxrss is only the
    fallback: it keeps the high-water mark of the process image before exec, so an agent
    started by a large host process (`--device local`) would report that process's peak."""
    try:
        with open(status, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def all_versions() -> dict[str, Any]:
    import PIL

    return {**runtime.versions(), "pillow": PIL.__version__}


def write_result(run_dir: str, **fields: Any) -> dict[str, Any]:
    """Write result.json from the given RESULT_KEYS fields; returns what was written."""
    result = conform(RESULT, clean({"schema": JOB_SCHEMA, "peak_memory_mb": peak_memory_mb(),
                                    "versions": all_versions(), **fields}))
    result["run_key"] = fields.get("run_key")
    write_json_atomic(os.path.join(run_dir, RESULT_FILE), result, "result")
    return result
