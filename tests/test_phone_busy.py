"""One phone, one run at a time, on a virtual Pixel 7 over the real adb server: two runs at
once, two resumes at once, the host stopped by SIGTERM or killed with -9 and then resumed,
and an events file damaged by two writers. Each ends with exactly the planned epochs, each
stored once, and the accuracy and losses of an undisturbed run with the same seed.

Tiny settings (alpha 0.25, input 96, 6 + 4 photos per class, 1 + 40 epochs); models build
once per session (the build cache the other runner tests use).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WEIGHTS_025
from runs import REPO, store, tiny_photos, with_build_cache
from sim_fixtures import adb_server, phones  # noqa: F401

from device_agent import contract
from orchestrator.store import lease, queries, repo

PAPER = REPO / "experiments" / "paper_table1.yaml"
RUNS = "/data/local/tmp/orch/runs"
EPOCHS = 41  # 1 head + 40 fine-tune


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return tiny_photos(tmp_path_factory.mktemp("busy-photos"))


@pytest.fixture(scope="module")
def pixel7(phones):
    return phones("pixel7", name="pixel7-busy")


def _args(serial: str, photos: Path) -> list[str]:
    """Method 2, from the ImageNet weights when the shared file is here (losses then move,
    and must move the same way after any interruption)."""
    weights = str(WEIGHTS_025) if WEIGHTS_025.is_file() else "none"
    return ["run", str(PAPER), "--device", serial, "--variant", "method2",
            "--set", "model.alpha=0.25", "--set", "model.input_size=96",
            "--set", f"model.weights={weights}", "--set", "data.train_per_class=6",
            "--set", "data.test_per_class=4", "--set", "training.head_epochs=1",
            "--set", f"training.finetune_epochs={EPOCHS - 1}",
            "--set", f"data.source=host:{photos}", "--format", "json"]


def _orch(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _done(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def undisturbed(pixel7, photos, tmp_path_factory):
    """The run once without trouble, in its own store: accuracy and test-loss series."""
    home = with_build_cache(tmp_path_factory.mktemp("busy-undisturbed"), tmp_path_factory)
    rc, out, err = _done(_orch(*_args(pixel7.serial, photos),
                               env={**os.environ, "ORCH_HOME": str(home)}))
    assert rc == 0, err
    run = json.loads(out)["runs"][0]
    with store(home) as s:
        loss = queries.metric_series(session=s, run_id=run["id"])["test_loss"]
    return run["accuracy"], loss


def _check_same_as_undisturbed(home: Path, run_id: int, undisturbed) -> None:
    """Finished, every planned epoch stored once (the unique constraint would hide a second
    copy, so the steps are counted), the undisturbed accuracy and losses."""
    accuracy, expected_loss = undisturbed
    with store(home) as s:
        run = repo.get_run(session=s, run_id=run_id)
        series = queries.metric_series(session=s, run_id=run_id)
    assert run.status == "finished", run.error
    assert len(run.result["epochs"]) == EPOCHS
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert [step for step, _ in series[key]] == list(range(1, EPOCHS + 1)), key
    assert run.accuracy == accuracy
    assert [v for _, v in series["test_loss"]] == pytest.approx(
        [v for _, v in expected_loss], rel=1e-6, abs=1e-7)


def _events(pixel7, run_dir: str) -> list[dict]:
    lines = (pixel7.host_path(run_dir) / contract.EVENTS_FILE).read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _kinds(pixel7, run_dir: str, kind: str) -> int:
    return sum(e.get("kind") == kind for e in _events(pixel7, run_dir))


def _at_checkpoint(pixel7, proc: subprocess.Popen, known: set[str], epoch: int = 3) -> str:
    """The new run folder on the phone, once its agent checkpointed `epoch`."""
    runs = pixel7.host_path(RUNS)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        for name in {p.name for p in runs.iterdir()} - known if runs.exists() else ():
            events = runs / name / contract.EVENTS_FILE
            text = events.read_text(errors="replace") if events.exists() else ""
            if f'"kind":"checkpoint","epoch":{epoch}' in text:
                return name
        time.sleep(0.005)
    raise AssertionError(f"no checkpoint {epoch} within 300 s")


def _folders(pixel7) -> set[str]:
    runs = pixel7.host_path(RUNS)
    return {p.name for p in runs.iterdir()} if runs.exists() else set()


def _agent_pid(run_dir: str) -> int | None:
    """The phone's agent as the host sees it (the phone's processes are host processes)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"device_agent" in a for a in cmd) and run_dir.encode() in cmd:
                return int(proc.name)
    return None


# ------------------------------------------------------------------ two at once


def test_two_runs_at_once_take_turns(pixel7, photos, home, undisturbed):
    """Two `orch run` on one phone at once: one trains, the other says what it waits for
    and starts after it; `--no-wait` on a held phone is refused with exit 5. Both end as
    the undisturbed run does. The phone is held by another command while both start, so
    the refusal and the wait do not depend on how fast the runs are."""
    from orchestrator.runner.phone_lease import hold_for_command

    with store(home) as s, hold_for_command(session=s, serial=pixel7.serial, purpose="doctor"):
        procs = [_orch(*_args(pixel7.serial, photos)) for _ in range(2)]
        refused = subprocess.run([sys.executable, "-m", "orchestrator",
                                  *_args(pixel7.serial, photos), "--no-wait"],
                                 cwd=REPO, capture_output=True, text=True, timeout=300)
    holder = None
    deadline = time.monotonic() + 300
    while holder is None and time.monotonic() < deadline:
        with store(home) as s:
            dev = repo.find_device(session=s, serial=pixel7.serial)
            held = lease.current(session=s, device_id=dev.id) if dev else None
        holder = held.run_id if held else None
        time.sleep(0.05)
    results = [_done(p) for p in procs]

    assert refused.returncode == 5, refused.stderr
    assert "is busy" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert [rc for rc, _, _ in results] == [0, 0], [err[-500:] for _, _, err in results]
    runs = [json.loads(out)["runs"][0] for _, out, _ in results]
    first, second = sorted(runs, key=lambda r: r["id"] != holder)
    waited = {json.loads(out)["runs"][0]["id"]: err for _, out, err in results}[second["id"]]
    assert f"is busy: run {first['id']} (method2)" in waited and "waiting for it" in waited
    with store(home) as s:
        a, b = (repo.get_run(session=s, run_id=r["id"]) for r in (first, second))
    # Took turns: the second agent started after the first run ended. `started` is the
    # agent's own start event, which the guard admits in whole seconds only.
    assert b.started >= a.finished.replace(microsecond=0)
    for r in runs:
        _check_same_as_undisturbed(home, r["id"], undisturbed)
        assert _kinds(pixel7, r["device_run_dir"], "epoch") == EPOCHS


def test_two_resumes_at_once_start_one_agent(pixel7, photos, home, undisturbed):
    """Host and agent killed at epoch 3; two `orch run --resume RUN` at once: one restarts
    the agent from its checkpoint and follows it, the other waits and reports the run the
    first followed to its end. One agent restart, one events file the guard admits."""
    known = _folders(pixel7)
    cut = _orch(*_args(pixel7.serial, photos))
    folder = _at_checkpoint(pixel7, cut, known)
    run_dir = f"{RUNS}/{folder}"
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    os.kill(_agent_pid(run_dir), signal.SIGKILL)
    run_id = int(folder.split("-")[0])

    results = [_done(p) for p in [_orch("run", "--resume", str(run_id), "--format", "json")
                                  for _ in range(2)]]

    assert [rc for rc, _, _ in results] == [0, 0], [err[-500:] for _, _, err in results]
    assert {json.loads(out)["runs"][0]["id"] for _, out, _ in results} == {run_id}
    assert any(f"is busy: run {run_id}" in err for _, _, err in results)
    assert _kinds(pixel7, run_dir, "start") == 2  # the first agent and one restart
    _check_same_as_undisturbed(home, run_id, undisturbed)


# ------------------------------------------------------------------ the host stops


def test_sigterm_marks_the_run_interrupted_and_resume_follows_the_agent(pixel7, photos, home,
                                                                        undisturbed):
    """SIGTERM to `orch run` at epoch 3: exit 6 with the resume command, the run stored as
    `interrupted` with it; the agent was left training, and `orch run --resume RUN` follows
    that same agent (no second start) to the undisturbed result."""
    known = _folders(pixel7)
    proc = _orch(*_args(pixel7.serial, photos))
    folder = _at_checkpoint(pixel7, proc, known)
    proc.send_signal(signal.SIGTERM)
    rc, _, err = _done(proc)
    run_id = int(folder.split("-")[0])

    assert rc == 6, err
    assert "SIGTERM" in err and f"`orch run --resume {run_id}`" in err
    with store(home) as s:
        stopped = repo.get_run(session=s, run_id=run_id)
        assert lease.current(session=s, device_id=stopped.device_id) is None  # let go
    assert stopped.status == "interrupted" and f"orch run --resume {run_id}" in stopped.error
    resumed = _done(_orch("run", "--resume", str(run_id), "--format", "json"))
    assert resumed[0] == 0, resumed[2]
    assert _kinds(pixel7, f"{RUNS}/{folder}", "start") == 1
    assert _kinds(pixel7, f"{RUNS}/{folder}", "epoch") == EPOCHS
    _check_same_as_undisturbed(home, run_id, undisturbed)


def test_kill_9_of_the_host_shows_orphaned_then_resume_follows(pixel7, photos, home,
                                                               undisturbed):
    """`kill -9` of `orch run` at epoch 3 leaves the run `running` with a lapsed lease:
    `orch results list` shows it `orphaned` with the resume command; `--resume` follows the
    agent still training (no second start) to the undisturbed result."""
    known = _folders(pixel7)
    proc = _orch(*_args(pixel7.serial, photos))
    folder = _at_checkpoint(pixel7, proc, known)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = int(folder.split("-")[0])

    listed = subprocess.run([sys.executable, "-m", "orchestrator", "results", "list"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    as_json = subprocess.run([sys.executable, "-m", "orchestrator", "results", "list",
                              "--format", "json"], cwd=REPO, capture_output=True, text=True,
                             timeout=120)
    shown = next(r for r in json.loads(as_json.stdout) if r["id"] == run_id)
    assert shown["status"] == "orphaned"
    assert f"run {run_id} orphaned" in listed.stdout
    assert f"`orch run --resume {run_id}`" in listed.stdout

    resumed = _done(_orch("run", "--resume", str(run_id), "--format", "json"))
    assert resumed[0] == 0, resumed[2]
    assert _kinds(pixel7, f"{RUNS}/{folder}", "start") == 1
    assert _kinds(pixel7, f"{RUNS}/{folder}", "epoch") == EPOCHS
    _check_same_as_undisturbed(home, run_id, undisturbed)


def test_an_events_file_damaged_by_two_writers_recovers_on_resume(pixel7, photos, home,
                                                                  undisturbed):
    """Host and agent killed at epoch 3, then the events file gets a second writer's lines
    (seqs going back, as two agents in one folder wrote them). `--resume` keeps the valid
    prefix, records the rest in the ledger as discarded (its byte count), and trains on
    from the last checkpoint to the undisturbed result; the audit counts the bytes that
    crossed in the refused read (not a pass)."""
    known = _folders(pixel7)
    proc = _orch(*_args(pixel7.serial, photos))
    folder = _at_checkpoint(pixel7, proc, known)
    run_dir = f"{RUNS}/{folder}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.kill(_agent_pid(run_dir), signal.SIGKILL)
    run_id = int(folder.split("-")[0])
    events = pixel7.host_path(run_dir) / contract.EVENTS_FILE
    lines = events.read_bytes().splitlines(keepends=True)
    second_writer = b"".join(lines[1:6])
    with open(events, "ab") as f:
        f.write(second_writer)

    rc, _, err = _done(_orch("run", "--resume", str(run_id), "--format", "json"))

    assert rc == 0, err
    assert "written by two agents at once" in err
    with store(home) as s:
        ledger = repo.run_transfers(session=s, run_id=run_id)
    discarded = [t for t in ledger if t.direction == "discarded"]
    assert [t.bytes for t in discarded] == [len(second_writer)]
    _check_same_as_undisturbed(home, run_id, undisturbed)
    audit = subprocess.run([sys.executable, "-m", "orchestrator", "audit", str(run_id)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    # The second writer's lines crossed in the read the guard refused: the audit counts
    # them as crossed and destroyed, which is not a pass (no photo bytes are in the store).
    assert audit.returncode == 7 and "crossed and were refused and destroyed" in audit.stdout


def test_clean_with_no_wait_on_a_held_phone_refuses_and_removes_nothing(pixel7, home):
    """While another command holds the phone, `orch devices clean --no-wait` exits 5 naming
    what holds it, and every folder on the phone stays; once released, clean runs."""
    from orchestrator.runner.phone_lease import hold_for_command

    marker = pixel7.host_path(RUNS) / "9-held-by-another"
    marker.mkdir(parents=True, exist_ok=True)
    (marker / "result.json").write_text("{}")
    before = _folders(pixel7)
    with store(home) as s, hold_for_command(session=s, serial=pixel7.serial, purpose="doctor"):
        refused = subprocess.run([sys.executable, "-m", "orchestrator", "devices", "clean",
                                  pixel7.serial, "--no-wait"],
                                 cwd=REPO, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 5, refused.stderr
        assert "busy" in refused.stderr and "Traceback" not in refused.stderr
        assert _folders(pixel7) == before
    cleaned = subprocess.run([sys.executable, "-m", "orchestrator", "devices", "clean",
                              pixel7.serial, "--no-wait"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cleaned.returncode == 0, cleaned.stderr
    assert marker.name not in _folders(pixel7)
