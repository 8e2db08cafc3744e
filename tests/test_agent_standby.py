"""The warm agent's wait (device_agent/standby.py): it takes job.json only once the file is
complete, and leaves after its time without one."""

from __future__ import annotations

import json
import threading
import time

from device_agent.contract import JOB_FILE
from device_agent.standby import wait_for_job


def test_a_half_written_job_is_not_taken_until_complete(tmp_path):
    """A job.json cut mid-way is not JSON yet: the wait goes on until the rest arrives."""
    text = json.dumps({"schema": 1, "run_key": "s-1", "training": {"epochs": 2}}, indent=1)
    (tmp_path / JOB_FILE).write_text(text[: len(text) // 2])
    done: list[bool] = []
    t = threading.Thread(target=lambda: done.append(wait_for_job(str(tmp_path), 30)))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()
    (tmp_path / JOB_FILE).write_text(text)
    t.join(10)
    assert done == [True]


def test_no_job_in_time_means_leave(tmp_path):
    """Without a job.json the wait ends False after its time."""
    t0 = time.monotonic()
    assert wait_for_job(str(tmp_path), 0.3) is False
    assert time.monotonic() - t0 >= 0.3
