"""What a run's result says about its runtime, in words for the CLI and the dashboard alike:
the interpreter with its version, and how much of each model a delegate actually took; and
how many epochs its parameters plan."""

from __future__ import annotations

from typing import Any

from device_agent import contract

MODELS = ("frozen", "train")


def runtime_label(result: dict[str, Any] | None) -> str | None:
    """"tflite_runtime 2.20.0dev20250409", or None when the result does not say."""
    versions = (result or {}).get("versions") or {}
    name = versions.get("interpreter")
    if not name:
        return None
    version = versions.get("interpreter_version")
    return f"{name} {version}" if version else str(name)


def planned_epochs(params: dict[str, Any]) -> int | None:
    """Epochs a run with these parameters reports (the contract's plan: method 1 skips the
    fine-tune epochs); None when its parameters do not say."""
    head, tune = params.get("head_epochs"), params.get("finetune_epochs")
    if not isinstance(head, int):
        return None
    plan = contract.planned_epochs(head, tune if isinstance(tune, int) else 0,
                                   has_finetune=params.get("finetune_from") is not None)
    return sum(plan.values())


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
