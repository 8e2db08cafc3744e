"""The follow loop polls soon after events, slower the longer the agent is quiet (up to its
normal pace), and fast after the last epoch until the agent's end is collected (a real
local device folder, egress guard and SQLite store; the "agent" is a sleeping process
whose events the test writes, so each poll can be seen)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from device_agent import contract
from orchestrator.egress import EgressGuard, EgressLimits
from orchestrator.links.local import LocalLink
from orchestrator.runner.follow import follow_agent
from orchestrator.store import repo
from orchestrator.store.db import open_session

RUN_KEY = "3-follow"


def _event(seq: int, kind: str, **fields) -> str:
    return json.dumps({"seq": seq, "t": 1.7e9 + seq, "kind": kind, **fields}) + "\n"


def _epoch(seq: int, n: int) -> str:
    return _event(seq, "epoch", phase="head" if n == 1 else "finetune", epoch=n,
                  train_loss=0.6, train_acc=0.6, test_loss=0.6, test_acc=0.6, seconds=0.1)


def test_polls_faster_after_the_last_epoch_until_done(tmp_path):
    """Quiet agents are polled ever slower up to poll_s; right after events and after the
    last epoch, fast."""
    link = LocalLink(tmp_path / "device")
    run_dir = os.path.join(link.root, "runs", RUN_KEY)
    os.makedirs(run_dir)
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", run_dir])
    try:
        (tmp_path / "device" / "runs" / RUN_KEY / contract.PID_FILE).write_text(f"{agent.pid}\n")
        session = open_session(f"sqlite:///{tmp_path / 'orch.db'}")
        exp = repo.upsert_experiment(session=session, name="e", spec={}, spec_hash="x")
        run = repo.create_run(session=session, experiment_id=exp.id, variant="m1")
        guard = EgressGuard(link=link, session=session, run_id=run.id, run_dir=run_dir,
                            run_key=RUN_KEY, limits=EgressLimits(
                                epochs=2, classes=("cat", "dog"),
                                allowed_prefixes=(link.root,)))
        # What the agent writes between two polls: nothing five times, epoch 1, nothing,
        # epoch 2 (the last), nothing, nothing, then done.
        script = ["", "", "", "", "", _epoch(2, 1), "", _epoch(3, 2), "", "",
                  _event(4, "done", status="finished", accuracy=0.6)]
        events = os.path.join(run_dir, contract.EVENTS_FILE)
        with open(events, "w") as f:
            f.write(_event(1, "start", agent_version="0.1.0", interpreter="ai_edge_litert",
                           pid=agent.pid))
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            if script:
                with open(events, "a") as f:
                    f.write(script.pop(0))
            elif len(slept) > 20:  # the loop must end once done is read
                raise AssertionError(f"still polling: {slept}")

        agent_done = []
        out = follow_agent(link=link, guard=guard, session=session, run_id=run.id,
                           device_id=None, variant="m1", epochs=2, on_progress=agent_done.append,
                           poll_s=0.5, exit_grace_s=0.0, sleep=sleep)
        session.close()
    finally:
        agent.kill()
        agent.wait()
    assert out.terminal == "finished"
    # Up to the last epoch: fast right after events came, then 1.5× slower per quiet poll
    # up to poll_s; fast throughout after it.
    assert slept == pytest.approx([0.1, 0.15, 0.225, 0.3375, 0.5, 0.5, 0.1, 0.15,
                                   0.1, 0.1, 0.1])
    assert [p.epoch for p in agent_done if p.kind == "epoch"] == [1, 2]
