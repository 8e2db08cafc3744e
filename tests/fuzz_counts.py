"""Counts kept by the fuzz tests (documents generated, API cases, CLI cases, failures found),
written to the JSON file named by ORCH_RELIABILITY_OUT so scripts/reliability.py can report
them in RELIABILITY.md. Without that variable nothing is written."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

COUNTS: Counter[str] = Counter()


def count(key: str, n: int = 1) -> None:
    COUNTS[key] += n


def flush() -> None:
    out = os.environ.get("ORCH_RELIABILITY_OUT")
    if not out:
        return
    path = Path(out)
    old = json.loads(path.read_text()) if path.is_file() else {}
    for k, v in COUNTS.items():
        old[k] = old.get(k, 0) + v
    path.write_text(json.dumps(old, indent=2, sort_keys=True))
    COUNTS.clear()
