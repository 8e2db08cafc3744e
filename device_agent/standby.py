"""A warm agent: `run JOB_DIR --standby SECONDS` starts, imports numpy and the interpreter,
then waits for the host to write JOB_DIR/job.json and runs it at once. A sweep keeps one
waiting per phone, so the next run does not pay the interpreter's start-up."""

from __future__ import annotations

import json
import os
import time

from device_agent.contract import JOB_FILE

POLL_S = 0.02


def wait_for_job(job_dir: str, seconds: float) -> bool:
    """True once job.json is complete (parses); False after `seconds` without one."""
    path = os.path.join(job_dir, JOB_FILE)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                json.loads(f.read())
            return True
        except (OSError, ValueError):  # not there yet, or still being written
            time.sleep(POLL_S)
    return False
