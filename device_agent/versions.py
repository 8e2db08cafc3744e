"""Interpreter versions: which are too old for orch's models (the agent and the host's doctor
ask the same question). Pure functions, no imports of numpy or a runtime."""

from __future__ import annotations

import re

from device_agent.contract import MIN_RUNTIME_VERSIONS


def version_tuple(text: str | None) -> tuple[int, ...]:
    """(2, 20) of "2.20.0.dev20250409": the numeric release parts before any suffix."""
    out = []
    for part in (text or "").split(".")[:3]:
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        out.append(int(digits.group(0)))
        if digits.end() < len(part):  # "0dev2025…": a pre-release suffix ends the release
            break
    return tuple(out)


def too_old(name: str | None, version: str | None) -> str | None:
    """The minimum version if interpreter `name` at `version` is older than orch supports."""
    minimum = MIN_RUNTIME_VERSIONS.get(name or "")
    if minimum is None or not version_tuple(version):
        return None
    return minimum if version_tuple(version) < version_tuple(minimum) else None
