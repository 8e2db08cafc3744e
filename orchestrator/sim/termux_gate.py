"""Termux's Python on a virtual phone (installed as its sitecustomize.py; standalone).

The interpreter is the host's, so every host module is there; this gate makes a module
importable only once `pkg` has installed the Termux package that provides it, and LiteRT
only under the name Termux packages it as (`tflite_runtime`: a thin alias of the host's
`ai_edge_litert` next to this file, or the real wheel of the profile's runtime): what the
agent finds matches a real Termux install.
"""

from __future__ import annotations

import os
import sys

INSTALLED = "/data/data/com.termux/files/usr/var/lib/orch-sim/installed"
# module → Termux package providing it (None: no Termux package has it)
GATED = {"numpy": "python-numpy", "PIL": "python-pillow",
         "tflite_runtime": "python-tflite-runtime", "ai_edge_litert": None}


class Gate:
    """A meta-path finder that refuses a gated module's top-level import."""

    def __init__(self) -> None:
        self.allow: set[str] = set()  # opened by the tflite_runtime alias while it loads

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - importlib's protocol
        if "." in name or name not in GATED or name in self.allow:
            return None  # a submodule's parent already passed the gate
        package = GATED[name]
        if package is not None and os.path.exists(os.path.join(INSTALLED, package)):
            return None
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)


GATE = Gate()
sys.meta_path.insert(0, GATE)
