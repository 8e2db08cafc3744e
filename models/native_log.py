"""TensorFlow's C++ log lines (converter op counts, oneDNN notices, absl warnings) go to a
file instead of the terminal. TF_CPP_MIN_LOG_LEVEL does not reach the converter's absl
logging, so the process's stderr descriptor is pointed at the file while TensorFlow works;
Python's own `sys.stderr` (progress displays, warnings) keeps writing to the terminal.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()  # fd 2 is one per process: one redirection at a time


@contextmanager
def native_log_to(path: Path) -> Iterator[Path]:
    """Within the block, what C++ code writes to fd 2 is appended to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable stderr (closed, or replaced by a test)
            yield path
            return
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        terminal = open(saved, "w", buffering=1, closefd=False, encoding="utf-8",  # noqa: SIM115
                        errors="replace")
        python_stderr = sys.stderr
        os.dup2(log, 2)
        sys.stderr = terminal
        try:
            yield path
        finally:
            sys.stderr = python_stderr
            terminal.flush()
            try:
                python_stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            os.close(log)
            terminal.close()
