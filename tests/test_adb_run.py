"""`orch run --device <phone>` end to end over the real adb server and virtual phones: the
paper spec at small settings (alpha 0.25, input 96, no weights, tiny synthetic photos),
`device:` photos that never leave the phone, staging skipped on a second run, the egress
guard over adb, a dropped link resumed to the same result, an ambiguous `--device`.

A private adb server (own port) keeps other suites' phones out of `--device` resolution.
Models build once per session (the cache folder is shared with the runner's tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import WEIGHTS_025
from runs import REPO, orch, store, tiny_photos, with_build_cache
from sim_fixtures import ADB, adb_server, cut_at_checkpoint, phones  # noqa: F401

from device_agent import contract
from orchestrator.egress import EgressGuard, EgressLimits
from orchestrator.errors import EgressRefused
from orchestrator.links.adb import AdbLink
from orchestrator.store import queries, repo

PAPER = REPO / "experiments" / "paper_table1.yaml"
GALLERY = "/sdcard/DCIM/catsdogs"  # the paper spec's `device:` data source
SMALL = ["--set", "model.alpha=0.25", "--set", "model.input_size=96",
         "--set", "model.weights=none", "--set", "data.train_per_class=6",
         "--set", "data.test_per_class=4", "--set", "training.head_epochs=1",
         "--set", "training.finetune_epochs=1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return tiny_photos(tmp_path_factory.mktemp("adb-photos"))


@pytest.fixture(scope="module")
def pixel7(phones, photos):
    """The virtual Pixel 7, its gallery holding the photos at the paper spec's path."""
    return phones("pixel7", name="pixel7", photos=photos)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ the paper spec


class AdbSpy:
    """Records every adb service request and sync transfer the host makes (the boundary)."""

    def __init__(self, monkeypatch) -> None:
        import adbutils
        import adbutils.sync as sync_mod

        from orchestrator.devices import sync as orch_sync

        self.services: list[str] = []
        self.sync_paths: list[str] = []
        spy = self
        real_send = adbutils.AdbConnection.send_command
        real_prepare = sync_mod.Sync._prepare_sync
        real_push = orch_sync.SyncSession.push

        def send_command(conn, cmd):
            spy.services.append(cmd)
            return real_send(conn, cmd)

        def prepare_sync(sync, path, cmd):
            spy.sync_paths.append(f"{cmd} {path}")
            return real_prepare(sync, path, cmd)

        def push(session, local_path, device_path, mode=0o644):
            spy.sync_paths.append(f"SEND {device_path}")
            return real_push(session, local_path, device_path, mode)

        monkeypatch.setattr(adbutils.AdbConnection, "send_command", send_command)
        monkeypatch.setattr(sync_mod.Sync, "_prepare_sync", prepare_sync)
        monkeypatch.setattr(orch_sync.SyncSession, "push", push)


def test_paper_spec_on_device_photos_runs_and_no_photo_leaves(pixel7, photos, home, capsys):
    """`orch run experiments/paper_table1.yaml --device pixel7` (small settings) trains both
    variants on the phone's own photos; compare shows both; the audit passes; the host
    never lists, reads or copies the photo folder, and no photo lands on the host."""
    from orchestrator.cli.app import main

    with pytest.MonkeyPatch.context() as mp:
        spy = AdbSpy(mp)
        main(["devices", "alias", "pixel7", pixel7.serial])
        capsys.readouterr()
        main(["run", str(PAPER), "--device", "pixel7", *SMALL, "--format", "json"])
        runs = json.loads(capsys.readouterr().out)["runs"]

    compare = orch("results", "compare", "paper-table1", "--format", "json")
    audits = [orch("audit", str(r["id"])) for r in runs]

    assert [(r["variant"], r["status"]) for r in runs] == [("method1", "finished"),
                                                           ("method2", "finished")]
    assert all(0 <= r["accuracy"] <= 1 and r["launcher"] == "direct" for r in runs)
    assert compare.returncode == 0, compare.stderr
    assert {c["variant"] for c in json.loads(compare.stdout)} == {"method1", "method2"}
    assert all(a.returncode == 0 and "0 image bytes left the device" in a.stdout
               for a in audits), [a.stdout[-300:] + a.stderr for a in audits]
    with store(home) as s:
        ledger = [t for r in runs for t in repo.run_transfers(session=s, run_id=r["id"])]
        samples = repo.run_samples(session=s, run_id=runs[1]["id"])
    assert not [t for t in ledger if t.kind == "images" or GALLERY in t.device_path]
    assert {t.kind for t in ledger if t.direction == "pull"} == {"metrics"}
    assert len(samples) == 2 and all(x.battery and x.temperature for x in samples)
    # The adb boundary: the photo folder is named only inside the job pushed to the phone.
    assert spy.services and spy.sync_paths
    assert not [c for c in spy.services if GALLERY in c]
    assert not [p for p in spy.sync_paths if GALLERY in p]
    # Nothing on the host holds a photo's bytes (the phone's own storage folder aside).
    photo_hashes = {sha(p) for p in photos.rglob("*.jpg")}
    host_files = [p for p in home.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in host_files if sha(p) in photo_hashes]


def test_done_when_sim_start_run_compare_audit(adb_server, photos, home):
    """On a fresh ORCH_HOME: `orch sim start --profile pixel7 --name pixel7`, then
    `orch run experiments/paper_table1.yaml --device pixel7 --set …` (the phone's name is
    enough), `orch results compare paper-table1` shows both variants, `orch audit RUN`
    proves no image bytes came back."""
    started = orch("sim", "start", "--profile", "pixel7", "--name", "pixel7",
                   "--photos", str(photos))
    try:
        assert started.returncode == 0, started.stderr
        ran = orch("run", str(PAPER), "--device", "pixel7", *SMALL, "--format", "json")
        compare = orch("results", "compare", "paper-table1", "--format", "json")
        assert ran.returncode == 0, ran.stderr
        audits = [orch("audit", str(r["id"])) for r in json.loads(ran.stdout)["runs"]]
    finally:
        orch("sim", "stop", "pixel7")
    rows = json.loads(compare.stdout)
    assert sorted((c["variant"], c["status"]) for c in rows) == [("method1", "finished"),
                                                                 ("method2", "finished")]
    assert all(c["device"] == "Pixel 7" for c in rows)
    assert all(a.returncode == 0 and "0 image bytes left the device" in a.stdout
               for a in audits)


def test_a_second_run_pushes_no_model_or_image_again(pixel7, photos, home):
    """Host photos: the first run pushes the images (agent and model may already be there from
    the test before); the second pushes only its job, the rest recorded as skipped."""
    args = ["run", str(PAPER), "--device", pixel7.serial, "--variant", "method1", *SMALL,
            "--set", f"data.source=host:{photos}", "--format", "json"]
    first = orch(*args)
    second = orch(*args)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    runs = [json.loads(r.stdout)["runs"][0] for r in (first, second)]
    with store(home) as s:
        a, b = (repo.run_transfers(session=s, run_id=r["id"]) for r in runs)
    # The working tree is shared: if the agent's code changed between the two runs, its new
    # bundle is pushed again (a new content hash), and only then.
    new_agent = runs[0]["params"]["agent"] != runs[1]["params"]["agent"]
    assert {t.kind for t in a if t.direction == "push"} >= {"images", "job"}
    assert {t.kind for t in a} == {"agent", "model", "images", "job", "metrics"}
    assert {t.kind for t in b if t.direction == "push"} == {"job"} | (
        {"agent"} if new_agent else set())
    assert {t.kind for t in b if t.direction == "skipped"} >= {"model", "images"}
    assert sum(t.bytes for t in b if t.kind in ("model", "images")) == 0


# ------------------------------------------------------------------ the egress guard over adb


def test_planted_jpeg_and_oversized_result_are_refused_over_adb(pixel7, photos, home):
    """In a run folder on the phone: a planted JPEG, a JPEG renamed result.json and an
    oversized result are refused; each refusal is in the ledger, and no photo byte comes
    back: the phone's reader sends nothing that is not ASCII text."""
    link = AdbLink(pixel7.serial)
    run_dir = f"{link.root}/runs/planted-{os.getpid()}"
    folder = pixel7.host_path(run_dir)
    folder.mkdir(parents=True)
    jpeg = next(photos.glob("cat/*.jpg")).read_bytes()
    (folder / "cat.1.jpg").write_bytes(jpeg)
    with store(home) as s:
        exp = repo.upsert_experiment(session=s, name="egress-adb", spec={}, spec_hash="h")
        run = repo.create_run(session=s, experiment_id=exp.id, variant="method1")
        guard = EgressGuard(link=link, session=s, run_id=run.id, run_dir=run_dir,
                            run_key=os.path.basename(run_dir),
                            limits=EgressLimits(epochs=2, classes=("cat", "dog")))
        with pytest.raises(EgressRefused, match="not one of the files"):
            guard.read(f"{run_dir}/cat.1.jpg")
        (folder / contract.RESULT_FILE).write_bytes(jpeg)
        with pytest.raises(EgressRefused, match="not ASCII JSON text"):
            guard.read_result()
        (folder / contract.RESULT_FILE).write_text(
            '{"schema": 1, "pad": "' + "x" * (300 * 1024) + '"}')
        with pytest.raises(EgressRefused, match="over its"):
            guard.read_result()
        ledger = repo.run_transfers(session=s, run_id=run.id)
    assert [t.direction for t in ledger] == ["refused"] * 3
    assert [t.bytes for t in ledger] == [0, 0, 0]  # the phone's reader sent none of them
    verdict = orch("audit", str(run.id), "--format", "json")
    assert verdict.returncode == 0 and len(json.loads(verdict.stdout)["verdict"]["refused"]) == 3


# ------------------------------------------------------------------ a dropped link


def _long_args(serial: str, photos: Path) -> list[str]:
    """Method 2 for 1 + 120 epochs; from the ImageNet weights when the shared file is here,
    so the losses move (and must move the same way after a resume)."""
    weights = str(WEIGHTS_025) if WEIGHTS_025.is_file() else "none"
    return ["run", str(PAPER), "--device", serial, "--variant", "method2",
            *SMALL, "--set", "training.finetune_epochs=120", "--set", f"model.weights={weights}",
            "--set", f"data.source=host:{photos}", "--format", "json"]


@pytest.fixture(scope="module")
def undisturbed(pixel7, photos, tmp_path_factory):
    """The long method-2 run once without trouble: its final accuracy and test loss."""
    home = with_build_cache(tmp_path_factory.mktemp("undisturbed"), tmp_path_factory)
    r = orch(*_long_args(pixel7.serial, photos), home=home)
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)["runs"][0]
    with store(home) as s:
        loss = queries.metric_series(session=s, run_id=run["id"])["test_loss"]
    return run["accuracy"], loss


def _agent_host_pid(run_dir: str) -> int | None:
    """The phone's agent as the host sees it (the phone's processes are host processes)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"device_agent" in a for a in cmd) and run_dir.encode() in cmd:
            return int(proc.name)
    return None


def _kill_agent(folder: str) -> None:
    """Kill a run's agent as a phone's task killer would."""
    pid = _agent_host_pid("/data/local/tmp/orch/runs/" + folder)
    if pid:
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("kill", [False, True], ids=["agent-keeps-running", "agent-killed"])
def test_dropped_link_resumes_to_the_undisturbed_result(pixel7, photos, home, undisturbed,
                                                        kill):
    """The cable is pulled at epoch 3: `orch run` stops with RunInterrupted and the resume
    command. Plugged back in, the same command again reattaches to the still-running agent;
    `orch run --resume RUN` restarts a killed one from its checkpoint. Either way the run
    ends with the undisturbed run's accuracy and losses, each stored once."""
    found: list[str] = []
    cutter = threading.Thread(target=cut_at_checkpoint, args=(
        pixel7, "/data/local/tmp/orch/runs", 3, found, _kill_agent if kill else None))
    cutter.start()
    cut = orch(*_long_args(pixel7.serial, photos))
    cutter.join()
    pixel7.set_faults(clear=True)

    assert cut.returncode == 6 and "--resume" in cut.stderr, cut.stderr
    run_id = int(cut.stderr.split("--resume ")[1].split("`")[0])
    if kill:
        resumed = orch("run", "--resume", str(run_id), "--format", "json")
    else:
        resumed = orch(*_long_args(pixel7.serial, photos))

    assert resumed.returncode == 0, resumed.stderr
    run = json.loads(resumed.stdout)["runs"][0]
    assert run["id"] == run_id
    with store(home) as s:
        loss = queries.metric_series(session=s, run_id=run_id)["test_loss"]
        metrics = repo.run_metrics(session=s, run_id=run_id)
    accuracy, expected_loss = undisturbed
    assert run["status"] == "finished" and run["accuracy"] == accuracy
    assert [step for step, _ in loss] == [step for step, _ in expected_loss]
    assert [v for _, v in loss] == pytest.approx([v for _, v in expected_loss], rel=1e-6,
                                                 abs=1e-7)
    epochs = len(expected_loss)  # every metric key once per epoch, none twice or missing
    assert set(Counter(m.key for m in metrics).values()) == {epochs}
    events = pixel7.host_path(run["device_run_dir"]) / contract.EVENTS_FILE
    assert events.read_text().count('"kind": "start"') + events.read_text().count(
        '"kind":"start"') == (2 if kill else 1)


# ------------------------------------------------------------------ --device resolution


def test_two_pixels_matching_device_pixel_are_refused(pixel7, phones, home):
    """`--device Pixel` with two Pixel 7s attached: DeviceAmbiguous (exit 5) names both."""
    other = phones("pixel7", name="pixel7-second")
    r = orch("run", str(PAPER), "--device", "Pixel", *SMALL)
    assert r.returncode == 5
    assert "matches 2 phones" in r.stderr
    assert pixel7.serial in r.stderr and other.serial in r.stderr
