"""What a run's result says about its runtime, in words for the CLI and the dashboard alike:
the interpreter with its version, and how much of each model a delegate actually took."""

from __future__ import annotations

from typing import Any

MODELS = ("frozen", "train")


def runtime_label(result: dict[str, Any] | None) -> str | None:
    """"tflite_runtime 2.20.0dev20250409", or None when the result does not say."""
    versions = (result or {}).get("versions") or {}
    name = versions.get("interpreter")
    if not name:
        return None
    version = versions.get("interpreter_version")
    return f"{name} {version}" if version else str(name)


def delegation_rows(result: dict[str, Any] | None) -> list[tuple[str, str]]:
    """[(model, "xnnpack took 525 of 533 nodes")] for each model the result reports."""
    delegation = (result or {}).get("delegation") or {}
    rows = []
    for model in MODELS:
        d = delegation.get(model)
        if not isinstance(d, dict):
            continue
        taken, total = d.get("delegated_nodes"), d.get("total_nodes")
        of = f" of {total}" if total is not None else ""
        if d.get("delegate") in (None, "none"):
            text = f"no delegate: plain CPU kernels{f' for all {total} nodes' if total else ''}"
        elif taken is None:
            text = f"{d['delegate']} took part of the graph (the runtime does not say how much)"
        else:
            text = f"{d['delegate']} took {taken}{of} nodes"
        rows.append((model, text))
    return rows
