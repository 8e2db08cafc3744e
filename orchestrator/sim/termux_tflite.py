"""`tflite_runtime` on a virtual phone's Termux: Termux's python-tflite-runtime, simulated by
the host's LiteRT under that name (installed as tflite_runtime/__init__.py; standalone).

Its `interpreter` submodule is this module: `from tflite_runtime import interpreter` and
`import tflite_runtime.interpreter` both give LiteRT's Interpreter and load_delegate.
"""

from __future__ import annotations

import importlib
import sys

import sitecustomize  # the Termux gate (termux_gate.py)

sitecustomize.GATE.allow.add("ai_edge_litert")
try:
    _litert = importlib.import_module("ai_edge_litert")
    interpreter = importlib.import_module("ai_edge_litert.interpreter")
finally:
    sitecustomize.GATE.allow.discard("ai_edge_litert")

sys.modules[__name__ + ".interpreter"] = interpreter
__version__ = getattr(_litert, "__version__", None) or "2"
