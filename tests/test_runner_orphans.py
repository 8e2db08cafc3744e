"""Agents of runs the store ended while their phone was away are stopped by the next run
on that phone (a real local device folder and SQLite store; each "agent" is a sleeping
process launched as the link launches agents: its own session, a pid file)."""

from __future__ import annotations

import os
import subprocess
import sys

from device_agent import contract
from orchestrator.links.local import LocalLink
from orchestrator.runner.orphans import flag_left_running, stop_left_running
from orchestrator.store import repo
from orchestrator.store.db import open_session
from orchestrator.store.tables import LEFT_RUNNING


def _agent(link: LocalLink, key: str) -> tuple[str, subprocess.Popen]:
    run_dir = os.path.join(link.root, "runs", key)
    os.makedirs(run_dir)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", run_dir],
                            start_new_session=True)
    with open(os.path.join(run_dir, contract.PID_FILE), "w") as f:
        f.write(f"{proc.pid}\n")
    return run_dir, proc


def test_only_flagged_ended_runs_of_this_phone_are_stopped(tmp_path):
    link = LocalLink(tmp_path / "device")
    procs = []
    try:
        with open_session(f"sqlite:///{tmp_path / 'orch.db'}") as s:
            exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="x")
            phone = repo.upsert_device(session=s, serial="P1", model="Pixel 7")
            other = repo.upsert_device(session=s, serial="P2", model="Pixel 7")
            runs = {}
            for key, device, status in (("1-moved", phone, "cancelled"),
                                        ("2-live", phone, "interrupted"),
                                        ("3-unflagged", phone, "cancelled"),
                                        ("4-elsewhere", other, "cancelled")):
                run_dir, proc = _agent(link, key)
                procs.append(proc)
                runs[key] = repo.create_run(session=s, experiment_id=exp.id, variant="m1",
                                            device_id=device.id, status=status,
                                            device_run_dir=run_dir, error="moved to run 9")
            for key in ("1-moved", "2-live", "4-elsewhere"):
                flag_left_running(session=s, run_id=runs[key].id)
            said: list[str] = []

            stopped = stop_left_running(link=link, session=s, device_id=phone.id,
                                        say=said.append)
            again = stop_left_running(link=link, session=s, device_id=phone.id,
                                      say=said.append)
            flags = {k: LEFT_RUNNING in repo.get_run(session=s, run_id=r.id).progress
                     for k, r in runs.items()}
        alive = {k: p.poll() is None for k, p in zip(runs, procs, strict=True)}
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert stopped == [runs["1-moved"].id] and again == []
    assert alive == {"1-moved": False, "2-live": True, "3-unflagged": True,
                     "4-elsewhere": True}
    assert flags == {"1-moved": False, "2-live": True, "3-unflagged": False,
                     "4-elsewhere": True}
    assert len(said) == 1 and f"run {runs['1-moved'].id} (cancelled: moved to run 9)" in said[0]
