"""The run pipeline end to end in-process: real tiny models (alpha 0.25, input 96, built once
per session), the real agent as a local subprocess, a real SQLite store and ledger."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from runs import build_cache

from device_agent import contract
from orchestrator.errors import RunInterrupted
from orchestrator.links.local import LocalLink
from orchestrator.runner.devices import register_device
from orchestrator.runner.pipeline import default_builder, run_experiment
from orchestrator.spec import load_spec_text
from orchestrator.store import queries, repo
from orchestrator.store.db import open_session

SPEC = """
name: tiny
model: {{alpha: 0.25, input_size: 96, weights: none}}
head: {{classes: [cat, dog]}}
data: {{source: "{source}", train_per_class: {train}, test_per_class: 4, seed: 0}}
training: {{batch_size: 4, head_epochs: 1, finetune_epochs: {finetune}}}
variants:
  method1: {{finetune_from: null}}
  method2: {{finetune_from: B}}
delegate: nnapi
"""


@pytest.fixture(scope="session")
def builder(tmp_path_factory):
    """The real models/ build, cached for the whole session (each config builds once); the
    CLI tests share the cache folder."""
    return default_builder(build_cache(tmp_path_factory))


def make_spec(source: str, *, finetune: int = 1, train: int = 6):
    return load_spec_text(SPEC.format(source=source, finetune=finetune, train=train),
                          base_dir=Path("."))


@pytest.fixture
def env(tmp_path, isolated_home):
    link = LocalLink(isolated_home / "local-device")
    session = open_session(f"sqlite:///{tmp_path / 'orch.db'}")
    device = register_device(session=session, link=link)
    yield link, session, device
    session.close()


def run(env, spec, variants, builder, **kw):
    link, session, device = env
    return run_experiment(spec=spec, variants=variants, link=link, session=session,
                          device=device, builder=builder, poll_s=0.05, **kw)


def test_both_variants_finish_and_are_stored_with_their_audit(env, synth_data, builder):
    """Method 1 and 2 train on the local agent; metrics, timing, hashes and ledger are stored."""
    link, session, _ = env
    spec = make_spec(f"host:{synth_data}")

    m1, m2 = run(env, spec, ["method1", "method2"], builder)

    assert (m1.status, m2.status) == ("finished", "finished")
    for r in (m1, m2):
        assert 0.0 <= r.accuracy <= 1.0
        assert {"build", "stage", "wall", "train", "total"} <= set(r.timing)
        assert r.delegate_requested == "nnapi" and r.delegate_used == "cpu"
        assert r.delegate_reason and r.launcher == "local"
        assert r.params["alpha"] == 0.25 and r.params["data_kind"] == "host"
    # Method 1 skips the fine-tune phase; each metric is stored once per epoch.
    assert [s for s, _ in queries.metric_series(session=session, run_id=m1.id)["test_acc"]] == [1]
    series2 = queries.metric_series(session=session, run_id=m2.id)
    assert series2["phase"] == [(1, 0.0), (2, 1.0)]
    assert m2.params["finetune_from"] == "conv_pw_11"
    # The ledger: staging pushes, metrics pulls only, and the frozen model's hash matches.
    rows = repo.run_transfers(session=session, run_id=m2.id)
    assert {r.kind for r in rows if r.direction == "pull"} == {"metrics"}
    assert not [r for r in rows if r.direction == "refused"]
    frozen = [r for r in rows if r.device_path.endswith("/frozen.tflite")]
    assert frozen and frozen[0].sha256 == m2.frozen_hash


def test_a_second_run_stages_nothing_again(env, synth_data, builder):
    """Re-running pushes only the new job: agent, models and images are skipped by hash."""
    _, session, _ = env
    spec = make_spec(f"host:{synth_data}")
    run(env, spec, ["method1"], builder)

    (again,) = run(env, spec, ["method1"], builder)

    rows = repo.run_transfers(session=session, run_id=again.id)
    pushed = {r.kind for r in rows if r.direction == "push"}
    skipped = {r.kind for r in rows if r.direction == "skipped"}
    assert pushed == {"job"}
    assert skipped == {"agent", "model", "images"}
    images = [r for r in rows if r.kind == "images"]
    assert len(images) == 1 and "already on the device" in images[0].reason


def _kill_after_checkpoint(link: LocalLink, epoch: int, sig: int = signal.SIGKILL) -> None:
    """Wait for a run folder's checkpoint event `epoch`, then kill that agent (from outside,
    as a phone's task killer would)."""
    runs = Path(link.root) / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for events in runs.glob(f"*/{contract.EVENTS_FILE}"):
            lines = events.read_text(errors="replace").splitlines()
            if any(f'"kind":"checkpoint","epoch":{epoch}' in ln for ln in lines):
                pid = int((events.parent / contract.PID_FILE).read_text())
                os.kill(pid, sig)
                return
        time.sleep(0.005)


def test_a_killed_agent_resumes_from_its_checkpoint_without_duplicates(env, synth_data,
                                                                       builder):
    """Killed mid-run → interrupted with metrics so far; --resume finishes it, nothing twice."""
    link, session, _ = env
    spec = make_spec(f"host:{synth_data}", finetune=150)
    killer = threading.Thread(target=_kill_after_checkpoint, args=(link, 3))
    killer.start()

    (cut,) = run(env, spec, ["method2"], builder)
    killer.join()

    assert cut.status == "interrupted" and "--resume" in cut.error
    kept = queries.metric_series(session=session, run_id=cut.id)["test_acc"]
    assert 3 <= len(kept) < 151

    (done,) = run(env, None, [], builder, resume_run_id=cut.id)

    assert done.status == "finished" and done.error is None
    series = queries.metric_series(session=session, run_id=done.id)
    assert [s for s, _ in series["test_acc"]] == list(range(1, 152))
    metrics = repo.run_metrics(session=session, run_id=done.id)
    assert set(Counter(m.key for m in metrics).values()) == {151}  # each key once per epoch
    events = (Path(done.device_run_dir) / contract.EVENTS_FILE).read_text().splitlines()
    assert done.events_seen == json.loads(events[-1])["seq"]
    assert done.timing["wall"] > cut.timing["wall"]


def test_ctrl_c_leaves_the_agent_running_and_resume_collects(env, synth_data, builder):
    """Ctrl-C without stopping: the run is marked interrupted, the agent trains on to the end,
    and --resume collects its result without running it again."""
    link, session, _ = env
    spec = make_spec(f"host:{synth_data}", finetune=150)
    asked = []

    def ctrl_c_at_first_epoch(p):
        if p.kind == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="keeps running") as err:
        run(env, spec, ["method2"], builder, on_progress=ctrl_c_at_first_epoch,
            on_interrupt=lambda r: asked.append(r.id) or False)
    run_id = asked[0]
    cut = repo.get_run(session=session, run_id=run_id)
    kept = len(queries.metric_series(session=session, run_id=run_id)["test_acc"])
    while link.agent_alive(cut.device_run_dir):  # it was left running: let it finish
        time.sleep(0.05)
    notes = []

    (done,) = run(env, None, [], builder, resume_run_id=run_id,
                  on_progress=lambda p: notes.append(p.text))

    assert err.value.run_id == run_id and "reattach" in err.value.hint
    assert cut.status == "interrupted" and kept < 151
    assert done.status == "finished" and "finished while detached" in " ".join(notes)
    assert len(queries.metric_series(session=session, run_id=run_id)["test_acc"]) == 151
    events = (Path(done.device_run_dir) / contract.EVENTS_FILE).read_text()
    assert events.count('"kind":"start"') == 1  # collected, not run again


def test_ctrl_c_and_stop_cancels_the_agent_and_resume_finishes(env, synth_data, builder):
    """Ctrl-C answered "stop": the agent is stopped on the device; --resume restarts it from
    its checkpoint and the run finishes with every epoch once."""
    link, session, _ = env
    spec = make_spec(f"host:{synth_data}", finetune=150)

    def ctrl_c_at_first_epoch(p):
        if p.kind == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="stopped by the user") as err:
        run(env, spec, ["method2"], builder, on_progress=ctrl_c_at_first_epoch,
            on_interrupt=lambda r: True)
    cut = repo.get_run(session=session, run_id=err.value.run_id)
    stopped_alive = link.agent_alive(cut.device_run_dir)

    (done,) = run(env, None, [], builder, resume_run_id=cut.id)

    assert cut.status == "interrupted" and not stopped_alive
    assert done.status == "finished"
    steps = [s for s, _ in queries.metric_series(session=session, run_id=cut.id)["test_acc"]]
    assert steps == list(range(1, 152))


def test_an_agent_error_fails_the_run_with_its_reason(env, builder):
    """A `device:` folder that is not there: the agent's data error becomes the run's error."""
    _, session, _ = env
    spec = make_spec("device:/nonexistent/orch-test-photos")

    (r,) = run(env, spec, ["method1"], builder)

    assert r.status == "failed" and r.error == ("data_missing: the data folder or a class "
                                                "folder is missing on the phone")
    rows = repo.run_transfers(session=session, run_id=r.id)
    assert not [t for t in rows if t.kind == "images"]  # device: data is never staged


def test_too_few_host_images_fail_before_anything_is_staged(env, synth_data, builder):
    """A class smaller than train + test is a DataError before any run is stored, any model
    built or any photo pushed."""
    from sqlmodel import select

    from orchestrator.errors import DataError
    from orchestrator.store.tables import Run, Transfer

    _, session, _ = env
    spec = make_spec(f"host:{synth_data}", train=50)

    with pytest.raises(DataError, match="has 10 images"):
        run(env, spec, ["method1"], builder)

    assert not session.exec(select(Run)).all()
    assert not session.exec(select(Transfer)).all()


HOSTILE_AGENT = '''
"""Test double: an agent that tries to send a feature map back inside result.json."""
import json, os, sys, time
run_dir = sys.argv[2]
job = json.load(open(os.path.join(run_dir, "job.json")))
with open(os.path.join(run_dir, "events.jsonl"), "a") as f:
    f.write(json.dumps({"seq": 1, "t": time.time(), "kind": "start"}) + "\\n")
    f.write(json.dumps({"seq": 2, "t": time.time(), "kind": "done", "status": "finished"}) + "\\n")
fmap = [[[0.5] * 8] * 5] * 5
json.dump({"schema": 1, "run_key": job["run_key"], "status": "finished", "accuracy": 0.9,
           "delegate": {"used": "cpu", "info": {"features": fmap}}},
          open(os.path.join(run_dir, "result.json"), "w"))
'''


def test_a_result_smuggling_a_feature_map_fails_the_run_and_is_audited(env, synth_data,
                                                                       builder, tmp_path):
    """A hostile agent (test double) cannot get a feature map into the store."""
    _, session, _ = env
    package = tmp_path / "hostile" / "device_agent"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(HOSTILE_AGENT)
    spec = make_spec(f"host:{synth_data}")

    (r,) = run(env, spec, ["method1"], builder, agent_package=package)

    assert r.status == "failed" and "Egress guard refused" in r.error
    assert r.result == {} and r.accuracy is None
    refused = [t for t in repo.run_transfers(session=session, run_id=r.id)
               if t.direction == "refused"]
    assert len(refused) == 1 and refused[0].device_path.endswith("/result.json")


def test_orch_model_build_fills_the_cache_orch_run_builds_from(tmp_path, synth_data):
    """Models built ahead with `orch model build` are found by a run: not built twice."""
    from orchestrator.cli.model_cmd import build_variants

    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC.format(source=f"host:{synth_data}", finetune=1, train=6))
    (ahead,) = build_variants(path, variant="method1", out=None, overrides=[])
    found = default_builder()(make_spec(f"host:{synth_data}"), "method1")
    assert not ahead["cache_hit"] and found.cache_hit
    assert str(found.dir) == ahead["dir"]
