"""The on-device agent end to end: real models from models.build, real LiteRT, real files.

Every run is `python -u -m device_agent run DIR` in a subprocess, as the host launches it.
Models: MobileNet V1 alpha 0.25 at 96×96 (the shared ImageNet weights when present, else
random weights), 2 synthetic classes with planted distinctive file names.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WEIGHTS_025, runtime_python

from device_agent.contract import (
    EVENT_KINDS,
    EXIT_BAD_JOB,
    EXIT_CANCELLED,
    EXIT_DATA,
    EXIT_DISK_FULL,
    EXIT_OK,
    REASONS,
    RESULT_KEYS,
)
from device_agent.job import make_job, write_job
from device_agent.schema import render
from orchestrator.datasets.synth import synthesize

pytest_plugins = ["nnapi.fixtures"]  # fake_lib: the simulated NNAPI driver, built once
REPO = Path(__file__).resolve().parents[1]
MARK = "ZQXPRIVATE"  # planted in every file name and in the data folder's name
BLOCKED = ("tensorflow", "keras", "typer", "sqlmodel", "sqlalchemy", "fastapi", "pydantic",
           "orchestrator", "models")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """method1 (head only) and method2 (fine-tune from B = conv_pw_11), built once."""
    build = pytest.importorskip("models.build")
    from models.config import ModelConfig
    cache = tmp_path_factory.mktemp("model-cache")
    weights = str(WEIGHTS_025) if WEIGHTS_025.is_file() else "none"
    return {name: build.build(ModelConfig(alpha=0.25, input_size=96, weights=weights,
                                          finetune_from=ff, batch_size=4, dropout=0.2),
                              cache_dir=cache)
            for name, ff in (("method1", None), ("method2", "conv_pw_11"))}


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """cat/dog class folders whose every file name carries MARK, plus broken files."""
    root = tmp_path_factory.mktemp("data") / f"{MARK}-photos"
    synthesize(root, classes=2, per_class=10, size=120, seed=7, names=["cat", "dog"])
    for p in sorted(root.rglob("*.jpg")):
        p.rename(p.with_name(f"{MARK}-{p.parent.name}-{p.stem.split('.')[-1]}.jpg"))
    (root / "cat" / f"{MARK}-broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "cat" / f"{MARK}-notes.txt").write_text("not an image")
    return root


def _job_dir(tmp_path: Path, models: dict, photos: Path, variant: str = "method2",
             name: str = "run", **over) -> Path:
    m = models[variant]
    args = dict(run_key=f"{name}-1", experiment="agent-test", variant=variant,
                frozen=str(m.frozen_path), train=str(m.train_path), meta=str(m.meta_path),
                data_root=str(photos), classes=["cat", "dog"], train_per_class=4,
                test_per_class=4, seed=3, batch_size=4, head_epochs=2, finetune_epochs=2,
                lr=0.01, finetune_lr=0.001, threads=1)
    args.update(over)
    run_dir = tmp_path / name
    write_job(str(run_dir), make_job(**args))
    return run_dir


def _agent(run_dir: Path, *args: str, env: dict | None = None, timeout: float = 120,
           python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-u", "-m", "device_agent", "run", str(run_dir),
                           *args], cwd=REPO, capture_output=True, timeout=timeout,
                          env=env)


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _metrics(result: dict) -> list[dict]:
    """Per-epoch metrics without wall-clock seconds (which legitimately differ)."""
    return [{k: v for k, v in e.items() if k != "seconds"} for e in result["epochs"]]


def _guard_checks(run_dir: Path, epochs: int, classes: tuple[str, ...]) -> None:
    """Every event and the result pass the host's egress guard."""
    egress = pytest.importorskip("orchestrator.egress")
    limits = egress.EgressLimits(epochs=epochs, classes=classes,
                                 allowed_prefixes=(str(run_dir.parent),))
    last = 0
    for ev in _events(run_dir):
        egress.check_event(ev, limits, last)
        last = ev["seq"]
    res = _result(run_dir)
    egress.check_result(res, limits, res["run_key"])


# ------------------------------------------------------------------------------------------


def test_method2_runs_end_to_end_and_reports_only_aggregates(tmp_path, tiny_models, photos,
                                                             agent_python):
    """Head + fine-tune phases run; events/result follow the contract; no file name leaks."""
    run_dir = _job_dir(tmp_path, tiny_models, photos)
    proc = _agent(run_dir, python=agent_python)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()

    events = _events(run_dir)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["kind"] for e in events} <= set(EVENT_KINDS)
    assert proc.stdout.decode().splitlines() == (run_dir / "events.jsonl").read_text(
    ).splitlines()
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [(e["phase"], e["epoch"]) for e in epochs] == [
        ("head", 1), ("head", 2), ("finetune", 3), ("finetune", 4)]
    assert [e["epoch"] for e in events if e["kind"] == "checkpoint"] == [1, 2, 3, 4]
    stages = {e["stage"] for e in events if e["kind"] == "stage"}
    assert {"features", "embed"} <= stages
    assert events[-1]["kind"] == "done" and events[-1]["status"] == "finished"

    res = _result(run_dir)
    assert set(res) <= set(RESULT_KEYS)
    assert res["status"] == "finished" and res["run_key"] == "run-1"
    assert res["accuracy"] == epochs[-1]["test_acc"] == events[-1]["accuracy"]
    assert set(res["per_class_accuracy"]) == {"cat", "dog"}
    assert res["counts"]["train"] == 8 and res["counts"]["test"] == 8
    assert res["counts"]["per_class_train"] == {"cat": 4, "dog": 4}
    assert res["counts"]["skipped_too_large"] == res["counts"]["skipped_unsupported"] == 0
    assert res["data"] == {"decode": "fast", "orientation": "exif", "max_pixels": 50_000_000}
    assert res["delegate"]["requested"] == "cpu" and res["delegate"]["used"] == "cpu"
    assert res["phases"]["finetune"] == {"epochs": 2, "ran": 2}
    t = res["timing"]
    assert {"decode", "features", "embed", "train", "eval", "total"} <= set(t)
    assert len(t["train_per_epoch"]) == 4 and t["total"] >= t["train"] > 0
    assert res["peak_memory_mb"] > 0
    assert res["versions"]["interpreter"] in ("ai_edge_litert", "tflite_runtime")
    # Each model is static-shaped, so XNNPACK takes it on every runtime of the matrix.
    for model in ("frozen", "train"):
        d = res["delegation"][model]
        assert d["delegate"] == "xnnpack", (model, d)
        assert d["total_nodes"] >= d["delegated_nodes"] >= 0.8 * d["total_nodes"] > 0
    assert not (run_dir / "cache").exists()  # features of the photos are not kept
    assert (run_dir / "checkpoint" / "state.npz").is_file()

    # No file name (nor the data folder) in anything that can leave the phone.
    for blob in (proc.stdout, proc.stderr, (run_dir / "events.jsonl").read_bytes(),
                 (run_dir / "result.json").read_bytes()):
        assert MARK.encode() not in blob
    _guard_checks(run_dir, 4, ("cat", "dog"))


def test_corrupt_files_are_counted_without_names(tmp_path, tiny_models, photos):
    """With every cat file needed, the two broken ones are met, skipped and counted."""
    run_dir = _job_dir(tmp_path, tiny_models, photos, variant="method1", train_per_class=5,
                       test_per_class=5, head_epochs=1)
    proc = _agent(run_dir)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    counts = _result(run_dir)["counts"]
    assert counts["skipped_corrupt"] == 2
    assert counts["per_class_train"] == {"cat": 5, "dog": 5}
    assert MARK.encode() not in proc.stdout + proc.stderr


def test_method1_skips_the_finetune_phase(tmp_path, tiny_models, photos):
    """A head-only build trains head_epochs only, and the result says fine-tuning was skipped."""
    run_dir = _job_dir(tmp_path, tiny_models, photos, variant="method1", head_epochs=3,
                       finetune_epochs=2)
    proc = _agent(run_dir)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    res = _result(run_dir)
    assert [e["phase"] for e in res["epochs"]] == ["head"] * 3
    assert res["phases"]["head"] == {"epochs": 3, "ran": 3}
    assert res["phases"]["finetune"]["ran"] == 0
    assert res["phases"]["finetune"]["skipped"] == "head_only"
    assert "embed" not in {e.get("stage") for e in _events(run_dir)}
    _guard_checks(run_dir, 3, ("cat", "dog"))


def test_method1_and_method2_share_the_head_phase(tmp_path, tiny_models, photos):
    """Same trunk, seed and head: method 2's head epochs equal method 1's (cached embed)."""
    d1 = _job_dir(tmp_path, tiny_models, photos, variant="method1", name="m1",
                  finetune_epochs=0)
    d2 = _job_dir(tmp_path, tiny_models, photos, variant="method2", name="m2",
                  finetune_epochs=0)
    assert _agent(d1).returncode == EXIT_OK
    assert _agent(d2).returncode == EXIT_OK
    m1, m2 = _metrics(_result(d1)), _metrics(_result(d2))
    for a, b in zip(m1, m2, strict=True):
        for k in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5)


# --- interruption: kill -9, SIGTERM --------------------------------------------------------


def _start_blocked(run_dir: Path, *args: str, python: str = sys.executable) -> subprocess.Popen:
    """Start the agent with a one-page stdout pipe the test does not read: the agent blocks
    in a write once a page of events is out, at a point fixed by its output, not by timing."""
    if not Path("/proc/self/wchan").is_file():
        pytest.skip("needs Linux /proc/PID/wchan to see the agent blocked")
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([python, "-u", "-m", "device_agent", "run", str(run_dir),
                             *args], cwd=REPO, stdout=w, stderr=subprocess.DEVNULL)
    os.close(w)
    proc.stdout_fd = r  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not _blocked_in_write(proc.pid):
        assert time.monotonic() < deadline, "the agent never blocked"
        assert proc.poll() is None, "the agent finished before its output filled the pipe"
        time.sleep(0.05)
    return proc


def _blocked_in_write(pid: int) -> bool:
    """The kernel says the process sleeps in a pipe write (Linux /proc/PID/wchan)."""
    try:
        return "pipe_write" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def _drain(proc: subprocess.Popen) -> None:
    with os.fdopen(proc.stdout_fd, "rb") as f:  # type: ignore[attr-defined]
        f.read()


# 16 epochs of events outgrow the 4 KiB pipe: blocked in the fine-tune phase (8+8) or in
# the head phase (14+2).
@pytest.mark.parametrize("head, fine", [(8, 8), (14, 2)])
def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path, tiny_models, photos,
                                                       head, fine, agent_python):
    """kill -9 after a checkpoint, then --resume: same per-epoch metrics and accuracy."""
    whole = _job_dir(tmp_path, tiny_models, photos, name="whole", head_epochs=head,
                     finetune_epochs=fine)
    assert _agent(whole, python=agent_python).returncode == EXIT_OK
    cut = _job_dir(tmp_path, tiny_models, photos, name="cut", head_epochs=head,
                   finetune_epochs=fine)

    proc = _start_blocked(cut, python=agent_python)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _drain(proc)
    before = _events(cut)
    done_epochs = [e["epoch"] for e in before if e["kind"] == "checkpoint"]
    assert done_epochs and done_epochs[-1] < head + fine
    assert "done" not in {e["kind"] for e in before} and not (cut / "result.json").exists()
    assert (done_epochs[-1] <= head) == (fine == 2)  # the cut lands in the intended phase

    resumed = _agent(cut, "--resume", python=agent_python)
    assert resumed.returncode == EXIT_OK, resumed.stderr.decode()
    a, b = _result(whole), _result(cut)
    assert _metrics(b) == _metrics(a)
    assert b["accuracy"] == a["accuracy"] and b["per_class_accuracy"] == a["per_class_accuracy"]
    seqs = [e["seq"] for e in _events(cut)]
    assert seqs == list(range(1, len(seqs) + 1))  # numbering continues across the restart
    assert [e["kind"] for e in _events(cut)].count("start") == 2


def test_sigterm_saves_and_exits_cancelled(tmp_path, tiny_models, photos):
    """SIGTERM: status cancelled, EXIT_CANCELLED, checkpoint kept; --resume then finishes."""
    whole = _job_dir(tmp_path, tiny_models, photos, name="whole", head_epochs=8,
                     finetune_epochs=8)
    assert _agent(whole).returncode == EXIT_OK
    run_dir = _job_dir(tmp_path, tiny_models, photos, name="term", head_epochs=8,
                       finetune_epochs=8)
    proc = _start_blocked(run_dir)
    proc.send_signal(signal.SIGTERM)
    _drain(proc)
    assert proc.wait(timeout=30) == EXIT_CANCELLED
    events = _events(run_dir)
    assert events[-1]["kind"] == "done" and events[-1]["status"] == "cancelled"
    res = _result(run_dir)
    assert res["status"] == "cancelled" and len(res["epochs"]) < 16
    assert (run_dir / "checkpoint" / "state.npz").is_file()
    assert (run_dir / "cache").is_dir()  # kept for the resume

    resumed = _agent(run_dir, "--resume")
    assert resumed.returncode == EXIT_OK
    assert _metrics(_result(run_dir)) == _metrics(_result(whole))


# --- failures ------------------------------------------------------------------------------


def test_too_few_images_fails_before_training_with_the_count(tmp_path, tiny_models, photos):
    """A class smaller than train + test: error event with its count, EXIT_DATA, no epoch."""
    run_dir = _job_dir(tmp_path, tiny_models, photos, train_per_class=8, test_per_class=8)
    proc = _agent(run_dir)
    assert proc.returncode == EXIT_DATA
    events = _events(run_dir)
    err = [e for e in events if e["kind"] == "error"]
    # The host gets the catalogue code and its numbers; the sentence stays on the phone.
    assert len(err) == 1 and err[0]["code"] == "too_few_images"
    assert err[0]["args"] == [10, 16, 8, 8] and "message" not in err[0]
    assert "epoch" not in {e["kind"] for e in events}
    assert _result(run_dir)["status"] == "failed"
    ours = [x for x in proc.stderr.decode().splitlines() if not x.startswith("INFO: ")]
    assert len(ours) == 1 and "class 'dog' has 10 images; 16 needed" in ours[0]
    assert MARK.encode() not in proc.stdout + proc.stderr


def test_missing_data_folder_and_bad_job(tmp_path, tiny_models, photos):
    """A data source that is not there → EXIT_DATA; a broken job.json → EXIT_BAD_JOB."""
    run_dir = _job_dir(tmp_path, tiny_models, photos, data_root=str(tmp_path / "nowhere"))
    proc = _agent(run_dir)
    assert proc.returncode == EXIT_DATA
    assert "data folder does not exist" in proc.stderr.decode()
    assert str(tmp_path) not in proc.stdout.decode() + proc.stderr.decode()

    (run_dir / "job.json").write_text('{"schema": 1}')
    proc = _agent(run_dir)
    assert proc.returncode == EXIT_BAD_JOB
    assert _events(run_dir)[-1]["kind"] == "error"
    assert "run_key is missing" in proc.stderr.decode()


def test_batch_size_mismatch_is_a_bad_job(tmp_path, tiny_models, photos):
    """The graphs have a static batch: a job asking another batch size is refused."""
    run_dir = _job_dir(tmp_path, tiny_models, photos, batch_size=8)
    proc = _agent(run_dir)
    assert proc.returncode == EXIT_BAD_JOB
    assert "batch size 4" in proc.stderr.decode()


@pytest.mark.parametrize("delegate, reason", [("nnapi", "no NNAPI plan"),
                                              ("gpu", "no GPU delegate plugin")])
def test_unavailable_accelerator_falls_back_and_says_why(tmp_path, tiny_models, photos,
                                                         delegate, reason, agent_python):
    """An accelerator that cannot run is recorded as requested, not used, with the reason."""
    run_dir = _job_dir(tmp_path, tiny_models, photos, variant="method1", delegate=delegate,
                       head_epochs=1)
    proc = _agent(run_dir, python=agent_python)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    rec = _result(run_dir)["delegate"]
    assert rec["requested"] == delegate and rec["used"] == "cpu"
    assert reason in render(REASONS, rec["reason"])  # a catalogue code, rendered on the host
    ev = [e for e in _events(run_dir) if e["kind"] == "delegate"][0]
    assert (ev["requested"], ev["used"], ev["reason"]) == (delegate, "cpu", rec["reason"])


def _unshare_works() -> bool:
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and mount namespaces")
@pytest.mark.parametrize("where", ["feature cache", "checkpoint"])
def test_full_disk_is_one_clear_error(tmp_path, tiny_models, photos, where):
    """ENOSPC (a real, tiny tmpfs) → error event disk_full, one line, EXIT_DISK_FULL."""
    import numpy as np

    meta = json.loads(tiny_models["method2"].meta_path.read_text())
    feature_bytes = 16 * int(np.prod(meta["feature_shape"])) * 4
    size_kb = 32 if where == "feature cache" else (feature_bytes >> 10) + 96
    src = _job_dir(tmp_path, tiny_models, photos)
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size={size_kb}k tmpfs {mnt} && cp {src}/job.json {mnt}/ && "
              f"exec {sys.executable} -u -m device_agent run {mnt}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr.decode()
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    err = events[-1]
    assert err["kind"] == "error" and err["code"] == "disk_full" and "message" not in err
    # One line of ours on stderr (LiteRT itself may log an INFO line about XNNPACK).
    ours = [x for x in proc.stderr.decode().splitlines() if not x.startswith("INFO: ")]
    assert len(ours) == 1 and where in ours[0]


# --- the agent needs no host code ----------------------------------------------------------


def test_agent_runs_with_host_packages_unimportable(tmp_path, tiny_models, photos):
    """With tensorflow, typer, sqlmodel, fastapi, orchestrator, models blocked, a run works."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = {BLOCKED!r}\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked on the phone: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n")
    env = {**os.environ, "PYTHONPATH": f"{block}{os.pathsep}{REPO}"}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, cwd=REPO,
                           capture_output=True, timeout=60)
    assert b"blocked on the phone" in probe.stderr  # the blocker is active

    run_dir = _job_dir(tmp_path, tiny_models, photos, variant="method2", head_epochs=1,
                       finetune_epochs=1)
    proc = _agent(run_dir, env=env)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    assert _result(run_dir)["status"] == "finished"
    info = subprocess.run([sys.executable, "-m", "device_agent", "info"], env=env, cwd=REPO,
                          capture_output=True, timeout=60)
    assert info.returncode == 0, info.stderr.decode()
    assert json.loads(info.stdout)["interpreter"]["name"] in ("ai_edge_litert", "tflite_runtime")


# --- NNAPI through the simulated driver ----------------------------------------------------


def test_nnapi_runs_the_trunk_and_is_recorded(tmp_path, tiny_models, photos, fake_lib):
    """delegate nnapi + the build's plan: the trunk runs through NNAPI (the simulated
    libneuralnetworks.so stands in for a phone's driver, the one part that cannot exist
    here) and training matches the CPU run; the record passes the egress guard."""
    plan = tiny_models["method2"].dir / "nnapi_plan.json"
    assert plan.is_file(), "a method2 build writes nnapi_plan.json for its frozen trunk"
    env = {**os.environ, "ORCH_NNAPI_LIB": str(fake_lib)}
    for knob in [k for k in env if k.startswith("FAKE_NNAPI_")]:
        env.pop(knob)
    cpu = _job_dir(tmp_path, tiny_models, photos, name="cpu")
    nn = _job_dir(tmp_path, tiny_models, photos, name="nn", delegate="nnapi",
                  nnapi_plan=str(plan))
    assert _agent(cpu).returncode == EXIT_OK
    proc = _agent(nn, env=env)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()

    rec = _result(nn)["delegate"]
    assert rec["requested"] == "nnapi" and rec["used"] == "nnapi" and rec.get("reason") is None
    assert rec["info"]["simulated"] is True and rec["info"]["ms_per_image_wall"] > 0
    a, b = _metrics(_result(cpu)), _metrics(_result(nn))
    assert [e["test_acc"] for e in a] == [e["test_acc"] for e in b]
    for x, y in zip(a, b, strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-3, abs=1e-4)
    _guard_checks(nn, 4, ("cat", "dog"))


def test_info_reports_the_runtime_and_its_delegates(fake_lib):
    """`device_agent info`: interpreter, versions, and NNAPI as the (simulated) driver lists it."""
    env = {**os.environ, "ORCH_NNAPI_LIB": str(fake_lib)}
    proc = subprocess.run([sys.executable, "-m", "device_agent", "info"], cwd=REPO, env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["numpy"] and info["pillow"] and info["interpreter"]["version"]
    assert info["delegates"]["cpu"]["available"] is True
    gpu = info["delegates"]["gpu"]
    assert gpu["available"] is True or gpu["tried"]  # which plugins were looked for
    nnapi = info["delegates"]["nnapi"]
    assert nnapi["available"] is True and nnapi["simulated"] is True
    assert {d["name"] for d in nnapi["devices"]} >= {"nnapi-reference"}

    env["ORCH_NNAPI_LIB"] = "/nonexistent/libneuralnetworks.so"
    proc = subprocess.run([sys.executable, "-m", "device_agent", "info"], cwd=REPO, env=env,
                          capture_output=True, timeout=60)
    assert json.loads(proc.stdout)["delegates"]["nnapi"]["available"] is False


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_exif_rotated_photo_reaches_the_trunk_upright(tmp_path, tiny_models, fmt,
                                                      monkeypatch):
    """A portrait photo stored sideways with EXIF orientation 6 reaches the frozen trunk as
    the same photo stored upright does (its pixels and its features); with data.orientation
    ignore (the agent's old behaviour) the trunk sees it sideways. The JPEG is a camera-sized
    one that the `fast` decode scales down in the DCT (the path a phone's photos take)."""
    import io

    import numpy as np
    from PIL import Image

    from device_agent import decode, features, trunk
    from device_agent.events import EventLog
    from device_agent.fsio import read_json

    rng = np.random.default_rng(3)
    root = tmp_path / "photos"
    # Portrait, 90 wide (the JPEG: blocks of 16 pixels, 1152×1536, smooth enough to encode).
    grid = (rng.random((120, 90, 3)) * 80).astype(np.uint8) if fmt == "png" else \
        (rng.random((96, 72, 3)) * 80).astype(np.uint8)
    grid[: len(grid) // 4, :, 0] = 250  # a red sky on top
    scene = Image.fromarray(grid)
    if fmt == "jpeg":
        scene = scene.resize((1152, 1536), Image.NEAREST)
    kw = {"quality": 95} if fmt == "jpeg" else {}
    ext = "jpg" if fmt == "jpeg" else "png"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    scene.save(root / "cat" / f"a.{ext}", **kw)
    exif = Image.Exif()
    exif[0x0112] = 6  # as a phone stores a portrait shot: sensor rows, turn 90° to view
    scene.transpose(Image.Transpose.ROTATE_90).save(root / "cat" / f"b.{ext}",
                                                    exif=exif.tobytes(), **kw)
    for i in range(2):
        Image.fromarray((rng.random((90, 120, 3)) * 255).astype(np.uint8)).save(
            root / "dog" / f"{i}.png")
    m = tiny_models["method2"]
    meta = read_json(str(m.meta_path))
    if fmt == "jpeg":  # the sideways JPEG is one `fast` decodes at a reduced DCT scale
        with Image.open(root / "cat" / "b.jpg") as im:
            im.draft("RGB", decode.draft_size(int(meta["input_size"])))
            assert im.size[0] < 1536 // 2, im.size
    seen: list[np.ndarray] = []  # every image the trunk was given, in the order given
    open_trunk = trunk.open_trunk

    def recording(*a, **kw):
        t = open_trunk(*a, **kw)
        fn = t.fn
        t.fn = lambda image: (seen.append(np.array(image)), fn(image))[1]
        return t

    monkeypatch.setattr(trunk, "open_trunk", recording)
    rel, moved = {}, {}
    for orient in ("exif", "ignore"):
        seen.clear()
        job = make_job(run_key=f"o-{orient}", experiment="t", variant="method2",
                       frozen=str(m.frozen_path), train=str(m.train_path),
                       meta=str(m.meta_path), data_root=str(root), classes=["cat", "dog"],
                       train_per_class=1, test_per_class=1, batch_size=4, head_epochs=1,
                       finetune_epochs=0, lr=0.01, finetune_lr=0.001, orientation=orient,
                       threads=1)
        assert job["data"]["decode"] == "fast"
        work = tmp_path / orient
        work.mkdir()
        feats = features.extract(job, meta, str(work / "cache"),
                                 EventLog(str(work / "events.jsonl"), io.StringIO()),
                                 lambda: False)
        cat_a, cat_b = np.asarray(feats.train_x[0]), np.asarray(feats.test_x[0])
        assert feats.train_y[0] == feats.test_y[0] == 0
        assert len(seen) == 4  # the two cat photos first (class 0), then the dogs
        moved[orient] = float(np.abs(seen[0] - seen[1]).mean())  # grey levels
        rel[orient] = float(np.linalg.norm(cat_a - cat_b) / np.linalg.norm(cat_a))
    # Pixels: turning after the resize equals resizing the upright photo up to rounding.
    assert moved["exif"] < 1.0 and moved["ignore"] > 20, moved
    # Features: random weights (no shared weights file) amplify that rounding; real ones don't.
    assert rel["ignore"] > 2 * rel["exif"], rel
    if fmt == "png":
        assert rel["exif"] < 0.05, rel


@pytest.mark.skipif(not _unshare_works(), reason="needs root and mount namespaces")
def test_a_disk_that_fills_mid_run_keeps_the_last_checkpoint_and_the_metrics(
        tmp_path, tiny_models, photos):
    """The disk fills after a checkpoint (the agent is paused at that event, a file fills the
    tmpfs, it goes on): exit disk_full, the last announced checkpoint is intact on disk and
    the events keep every epoch's metrics up to it."""
    from device_agent import checkpoint

    src = _job_dir(tmp_path, tiny_models, photos, head_epochs=2, finetune_epochs=60)
    mnt, out = tmp_path / "fills", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    script = (
        f"mount -t tmpfs -o size=16m tmpfs {mnt} && cp {src}/job.json {mnt}/ && "
        f"{{ {sys.executable} -u -m device_agent run {mnt} > {out}/stdout & }}; pid=$!; "
        f"until grep -q '\"kind\": *\"checkpoint\"' {mnt}/events.jsonl 2>/dev/null; do "
        "kill -0 $pid 2>/dev/null || break; sleep 0.01; done; "
        f"kill -STOP $pid; dd if=/dev/zero of={mnt}/filler bs=64k 2>/dev/null; "
        f"kill -CONT $pid; wait $pid; rc=$?; rm -f {mnt}/filler; "
        f"cp -r {mnt}/checkpoint {mnt}/events.jsonl {out}/; ls {mnt}/checkpoint > {out}/ls; "
        "exit $rc")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO,
                          capture_output=True, timeout=300)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr.decode()[-2000:]
    err = json.loads((out / "stdout").read_text().splitlines()[-1])
    assert err["kind"] == "error" and err["code"] == "disk_full"
    events = _events(out)
    saved = [e["epoch"] for e in events if e["kind"] == "checkpoint"]
    assert saved and saved == list(range(1, len(saved) + 1))
    state, record = checkpoint.load(str(out / "checkpoint"))
    assert record["epoch"] == saved[-1] and state  # the last announced checkpoint, whole
    assert [e["epoch"] for e in record["epochs"]] == saved
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["test_acc"] for e in epochs[:len(saved)]] == [
        e["test_acc"] for e in record["epochs"]]  # the metrics so far, as checkpointed
    assert (out / "ls").read_text().split() == [checkpoint.STATE_FILE]  # no temp file left


# --- runtimes other than the host's ----------------------------------------------------------


def test_oldest_supported_runtime_trains(tmp_path, tiny_models, photos):
    """tflite-runtime 2.14, the oldest version orch supports, loads and trains the models."""
    python = runtime_python("tflite-runtime-2.14")
    run_dir = _job_dir(tmp_path, tiny_models, photos, head_epochs=1, finetune_epochs=1)
    proc = _agent(run_dir, python=python)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    res = _result(run_dir)
    assert res["status"] == "finished"
    assert (res["versions"]["interpreter"], res["versions"]["interpreter_version"][:4]) == (
        "tflite_runtime", "2.14")


def test_numpy_abi_mismatch_is_named(tmp_path, tiny_models, photos):
    """The real 2.20 wheel under numpy 2 (the ABI it was not built for): one line naming the
    cause and the fix, error code runtime_numpy_abi, not an internal error."""
    numpy = subprocess.run([sys.executable, "-c", "import numpy; print(numpy.__version__)"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    if not numpy.startswith("2."):
        pytest.skip(f"needs numpy 2 on the host (it has {numpy})")
    env_python = Path(runtime_python("tflite-runtime-2.20"))
    wheel = next(env_python.parent.parent.glob("lib/python*/site-packages/tflite_runtime"))
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "tflite_runtime").symlink_to(wheel)  # the wheel alone, next to the host's numpy
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ai_edge_litert':\n"
        "            raise ImportError('not on this phone')\n"
        "sys.meta_path.insert(0, _Block())\n")
    env = {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{REPO}"}
    run_dir = _job_dir(tmp_path, tiny_models, photos)

    proc = _agent(run_dir, env=env)

    err = [e for e in _events(run_dir) if e["kind"] == "error"]
    assert proc.returncode != EXIT_OK and len(err) == 1
    assert err[0]["code"] == "runtime_numpy_abi", err[0]  # the host's line: its catalogue text
    ours = [x for x in proc.stderr.decode().splitlines() if x.startswith("error: ")]
    assert len(ours) == 1 and "numpy ABI" in ours[0] and "numpy<2" in ours[0]  # agent.log


def test_too_old_runtime_is_refused_at_start(tmp_path, tiny_models, photos):
    """A tflite_runtime older than orch supports is refused before anything runs, in one
    line with the minimum version. (No such wheel is installed here: its version is set.)"""
    old = ("import sys; from device_agent import runtime; "
           "runtime.INTERPRETER_NAME = 'tflite_runtime'; "
           "runtime.interpreter_version = lambda: '2.13.1'; "
           "from device_agent.run import run; sys.exit(run(sys.argv[1]))")
    run_dir = _job_dir(tmp_path, tiny_models, photos)

    proc = subprocess.run([sys.executable, "-c", old, str(run_dir)], cwd=REPO,
                          capture_output=True, timeout=120)

    events = _events(run_dir)
    assert proc.returncode != EXIT_OK and [e["kind"] for e in events] == ["start", "error"]
    assert events[-1]["code"] == "runtime_too_old"  # the host's line: its catalogue text
    last = proc.stderr.decode().splitlines()[-1]  # the detail stays in agent.log
    assert last.startswith("error: ") and "tflite_runtime 2.13.1 is too old" in last
    assert "2.14 or newer" in last



# --- fine-tuning from A (conv1): nothing frozen ---------------------------------------------


@pytest.fixture(scope="session")
def model_a(tmp_path_factory):
    """A build that fine-tunes from A = conv1: every layer trains, the trunk only scales."""
    build = pytest.importorskip("models.build")
    from models.config import ModelConfig
    weights = str(WEIGHTS_025) if WEIGHTS_025.is_file() else "none"
    return build.build(ModelConfig(alpha=0.25, input_size=96, weights=weights,
                                   finetune_from="conv1", batch_size=4, dropout=0.2),
                       cache_dir=tmp_path_factory.mktemp("model-cache-a"))


def test_run_from_a_trains_everything_and_claims_no_delegate(tmp_path, model_a, photos,
                                                              fake_lib):
    """From A with NNAPI requested (and a driver there): the run finishes, fine-tunes every
    layer, and records the CPU with the reason that nothing is frozen, never NNAPI."""
    plan = model_a.dir / "nnapi_plan.json"
    assert plan.is_file(), "a build from conv1 still writes a plan (the input scaling)"
    env = {**os.environ, "ORCH_NNAPI_LIB": str(fake_lib)}
    for knob in [k for k in env if k.startswith("FAKE_NNAPI_")]:
        env.pop(knob)
    run_dir = _job_dir(tmp_path, {"fromA": model_a}, photos, variant="fromA", name="a",
                       head_epochs=1, finetune_epochs=1, delegate="nnapi",
                       nnapi_plan=str(plan))
    proc = _agent(run_dir, env=env, timeout=300)
    assert proc.returncode == EXIT_OK, proc.stderr.decode()

    res = _result(run_dir)
    assert res["status"] == "finished"
    assert [(e["phase"], e["epoch"]) for e in res["epochs"]] == [("head", 1), ("finetune", 2)]
    assert res["phases"]["finetune"] == {"epochs": 1, "ran": 1}  # not skipped: no key
    rec = res["delegate"]
    assert rec["requested"] == "nnapi" and rec["used"] == "cpu"
    assert rec["reason"]["code"] == "trunk_empty"
    assert res["delegation"]["frozen"]["delegate"] == "none"
    assert res["delegation"]["frozen"]["delegated_nodes"] == 0
    train = res["delegation"]["train"]  # conv1's slices and matmuls are XNNPACK's too
    assert train["delegate"] == "xnnpack"
    assert train["total_nodes"] >= train["delegated_nodes"] >= 0.8 * train["total_nodes"] > 0
    delegate_events = [e for e in _events(run_dir) if e["kind"] == "delegate"]
    assert delegate_events and all(e["used"] == "cpu" for e in delegate_events)
    _guard_checks(run_dir, 2, ("cat", "dog"))
