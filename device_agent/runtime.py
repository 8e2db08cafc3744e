"""The TFLite interpreter the agent runs on: LiteRT (`ai_edge_litert`) or `tflite_runtime`."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

try:  # LiteRT, the current name of the TFLite runtime (PyPI ai-edge-litert)
    from ai_edge_litert import interpreter as _tfl

    INTERPRETER_NAME = "ai_edge_litert"
except ImportError:  # Termux's python-tflite-runtime and older wheels
    try:
        from tflite_runtime import interpreter as _tfl  # type: ignore[no-redef]

        INTERPRETER_NAME = "tflite_runtime"
    except ImportError:
        _tfl = None  # type: ignore[assignment]
        INTERPRETER_NAME = None


def interpreter_version() -> str | None:
    if INTERPRETER_NAME is None:
        return None
    try:
        from importlib.metadata import version

        dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
        return version(dist[INTERPRETER_NAME])
    except Exception:  # a vendored build has no metadata
        mod = sys.modules.get(INTERPRETER_NAME)
        return getattr(mod, "__version__", None)


def versions() -> dict[str, Any]:
    """Versions reported with every result (no host or user details)."""
    from device_agent.contract import AGENT_VERSION

    return {"agent": AGENT_VERSION, "interpreter": INTERPRETER_NAME,
            "interpreter_version": interpreter_version(),
            "python": platform.python_version(), "numpy": np.__version__}


def check_supported() -> None:
    """Refuse, at start and in one line, an interpreter too old to load orch's models."""
    from device_agent.versions import too_old

    version = interpreter_version()
    minimum = too_old(INTERPRETER_NAME, version)
    if minimum is not None:
        from device_agent.errors import AgentError

        raise AgentError(f"{INTERPRETER_NAME} {version} is too old for orch's models: it needs "
                         f"{minimum} or newer (Termux: pkg upgrade python-tflite-runtime; pip: "
                         "pip install -U ai-edge-litert)", code="runtime_too_old")


def require() -> Any:
    """The interpreter module, or an error saying what to install."""
    if _tfl is None:
        from device_agent.errors import AgentError

        raise AgentError("no TFLite interpreter: install ai-edge-litert, or Termux's "
                         "python-tflite-runtime", code="no_interpreter")
    return _tfl


def make_interpreter(path: str, *, threads: int, delegates: list[Any] | None = None,
                     default_delegates: bool = True, explicit: str | None = None) -> Any:
    """An allocated interpreter; `default_delegates=False` keeps XNNPACK out (plain kernels).

    Its `orch_delegation` says which delegate took how many nodes (delegation.summarize);
    `explicit` names the kind of the delegates passed in.
    """
    from device_agent import delegation

    tfl = require()
    kwargs: dict[str, Any] = {"model_path": path, "num_threads": threads}
    if delegates:
        kwargs["experimental_delegates"] = delegates
    resolver = getattr(tfl, "OpResolverType", None)
    if not default_delegates and resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    def build() -> Any:
        it = tfl.Interpreter(**kwargs)
        it.allocate_tensors()
        return it

    try:
        it, lines = delegation.build_logged(build, os.path.dirname(tfl.__file__))
    except SystemError as e:  # a wheel built against another numpy ABI fails in C++
        raise numpy_abi_error(e) from e
    it.orch_delegation = delegation.summarize(path, lines, it, explicit)
    return it


def numpy_abi_error(e: BaseException) -> Any:
    """The agent's error for a runtime whose C++ part cannot use this numpy."""
    from device_agent.errors import AgentError

    return AgentError(
        f"{INTERPRETER_NAME} {interpreter_version()} cannot run with numpy {np.__version__} "
        f"(a numpy ABI mismatch: {str(e).splitlines()[0][:80]}); install the numpy it was "
        "built for (numpy<2 for PyPI's tflite-runtime; on Termux, `pkg install "
        "python-numpy python-tflite-runtime` together)", code="runtime_numpy_abi")


def delegated(interpreter: Any) -> bool | None:
    """Whether a delegate took part of the graph (a DELEGATE node); None if it cannot be told."""
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # private API, absent in some runtimes
        return None
    return any(op.get("op_name") == "DELEGATE" for op in ops)
