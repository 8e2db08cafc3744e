"""Shared by the benchmark scripts: the machine they ran on, and writing a benchmark's
figures into its own section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from orchestrator.links.local import cpu_model as local_cpu_model


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), for the machine line of a report."""
    return local_cpu_model() or "unknown CPU"


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the section that starts with `heading` (e.g. "## Models") by `text`, or append
    it; the other sections stay as they are."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(heading + "\n")
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(heading))
    tail = old[end + 1:] if end >= 0 else ""
    path.write_text(old[:start] + text.rstrip("\n") + "\n" + ("\n" + tail if tail else ""))
