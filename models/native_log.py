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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

_lock = threading.Lock()  # fd 2 is one per process: one redirection at a time
# A block's terminal stream, closed at the next block rather than at its own end: a display
# thread may be in the middle of a write to it when the block ends.
_retired: list[TextIO] = []


@contextmanager
def native_log_to(path: Path) -> Iterator[Path]:
    """Within the block, what C++ code writes to fd 2 is appended to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        while _retired:
            with suppress(OSError, ValueError):
                _retired.pop().close()
        try:
            sys.stderr.flush()
            current = os.dup(2)  # whatever fd 2 is now (a terminal, a file, a capture)
        except (OSError, ValueError, AttributeError):  # no usable stderr
            yield path
            return
        terminal = open(current, "w", buffering=1, encoding="utf-8",  # noqa: SIM115
                        errors="replace")
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        python_stderr = sys.stderr
        os.dup2(log, 2)
        os.close(log)
        sys.stderr = terminal
        try:
            yield path
        finally:
            sys.stderr = python_stderr
            terminal.flush()
            os.dup2(current, 2)
            _retired.append(terminal)
