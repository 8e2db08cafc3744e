"""Build the simulated libneuralnetworks.so for tests (the product's own build function)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.simnnapi import DEFAULT_API_LEVEL, build_library


def build_fake_nnapi(out_dir: Path, *, api_level: int = DEFAULT_API_LEVEL) -> Path:
    """Compile orchestrator/simnnapi/fake_nnapi.c (`cc -shared -fPIC -O2 -lm`) into out_dir,
    cached."""
    return build_library(out_dir, api_level=api_level)
