"""`orch run --device local` as a user runs it: a CLI subprocess, real tiny models, the real
agent, the default SQLite store under ORCH_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import REPO, orch, store, tiny_photos

from device_agent import contract
from orchestrator.store import repo

SPEC = """
name: tiny-cli
model: {{alpha: 0.25, input_size: 96, weights: none}}
data: {{source: "host:{source}", train_per_class: 6, test_per_class: 4, seed: 0}}
training: {{batch_size: 4, head_epochs: 1, finetune_epochs: {finetune}}}
variants:
  method1: {{finetune_from: null}}
  method2: {{finetune_from: B}}
delegate: nnapi
"""


def spec_file(tmp_path: Path, data: Path, finetune: int = 1) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(SPEC.format(source=data, finetune=finetune))
    return p


def test_orch_run_local_runs_both_variants_and_compares_them(home, synth_data, tmp_path):
    """Both variants finish and are stored once; compare shows both; a re-run stages nothing."""
    spec = spec_file(tmp_path, synth_data)

    first = orch("run", str(spec), "--device", "local", "--format", "json")
    compare = orch("results", "compare", "tiny-cli", "--format", "json")
    again = orch("run", str(spec), "--device", "local", "--variant", "method1")

    assert first.returncode == 0, first.stderr
    runs = json.loads(first.stdout)["runs"]
    assert [(r["variant"], r["status"]) for r in runs] == [("method1", "finished"),
                                                          ("method2", "finished")]
    assert "epoch 2/2 (finetune)" in first.stderr  # plain progress lines off a terminal
    rows = json.loads(compare.stdout)
    assert {r["variant"] for r in rows} == {"method1", "method2"}
    assert all(r["accuracy"] is not None and r["delegate_used"] == "cpu" for r in rows)
    assert again.returncode == 0, again.stderr
    assert "tiny-cli" in again.stdout and "accuracy" in again.stdout
    assert "(cached)" in again.stderr  # the models of the first run, not built again
    with store(home) as s:
        runs_now = repo.list_runs(session=s, experiment="tiny-cli")
        assert len(runs_now) == 3
        ledger = repo.run_transfers(session=s, run_id=runs_now[0].id)
    assert {t.kind for t in ledger if t.direction == "push"} == {"job"}
    assert {t.kind for t in ledger if t.direction == "skipped"} == {"agent", "model", "images"}


def test_orch_run_resume_after_the_agent_is_killed(home, synth_data, tmp_path):
    """Agent killed mid-run: `orch run` exits 6 naming --resume; `orch run --resume` finishes
    it and no metric is stored twice."""
    spec = spec_file(tmp_path, synth_data, finetune=150)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(spec),
                             "--device", "local", "--variant", "method2"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = home / "local-device" / "runs"
    deadline = time.monotonic() + 240
    killed = False
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        for events in runs.glob(f"*/{contract.EVENTS_FILE}"):
            if '"kind":"checkpoint","epoch":3' in events.read_text(errors="replace"):
                os.kill(int((events.parent / contract.PID_FILE).read_text()), signal.SIGKILL)
                killed = True
        time.sleep(0.005)
    out, err = proc.communicate(timeout=120)

    assert killed and proc.returncode == 6, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "interrupted" in last and "Traceback" not in err
    with store(home) as s:
        (cut,) = repo.list_runs(session=s, experiment="tiny-cli")
    assert f"orch run --resume {cut.id}" in (cut.error or "")

    resumed = orch("run", "--resume", str(cut.id))

    assert resumed.returncode == 0, resumed.stderr
    with store(home) as s:
        done = repo.get_run(session=s, run_id=cut.id)
        metrics = repo.run_metrics(session=s, run_id=cut.id)
    assert done.status == "finished"
    assert len(metrics) == len({(m.key, m.step) for m in metrics}) == 151 * 6


def test_a_phone_name_is_a_one_line_error(home, tmp_path, synth_data):
    """A device other than `local` fails in one line with a named exit code, no traceback."""
    r = orch("run", str(spec_file(tmp_path, synth_data)), "--device", "no-such-phone-xyz")
    assert r.returncode in (5, 10) and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error:")


def test_run_without_a_spec_or_resume_is_a_spec_error(home):
    """`orch run --device local` alone names what is missing and exits 2."""
    r = orch("run", "--device", "local")
    assert r.returncode == 2 and "SPEC" in r.stderr


def test_skipped_photos_are_named_by_count_in_the_summaries(home, synth_data, tmp_path):
    """A HEIC photo and a too-large panorama among the photos: `orch run` and `orch results
    show` say how many were skipped and why, and how the photos were decoded."""
    import shutil
    import struct
    import zlib

    data = tmp_path / "photos"
    shutil.copytree(synth_data, data)
    (data / "cat" / "IMG_0001.HEIC").write_bytes(
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(2000))
    ihdr = struct.pack(">IIBBBBB", 20000, 5000, 8, 2, 0, 0, 0)
    (data / "cat" / "pano.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        + struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT")))
    spec = spec_file(tmp_path, data)  # 6 + 4 of each class's 10 photos: every file is read

    run = orch("run", str(spec), "--device", "local", "--variant", "method1",
               "--set", "data.max_pixels=60000000")
    assert run.returncode == 0, run.stderr
    assert "skipped 1 unsupported (not JPEG/PNG, e.g. HEIC), 1 too large" in run.stdout
    run_id = next(line.split()[1] for line in run.stdout.splitlines()
                  if line.startswith("run "))
    show = orch("results", "show", run_id)
    assert show.returncode == 0, show.stderr
    assert ("photos: 12 train + 8 test images · decode fast, orientation exif, ≤ 60 MP · "
            "skipped 1 unsupported (not JPEG/PNG, e.g. HEIC), 1 too large") in show.stdout


@pytest.mark.parametrize("make", ["no dog folder", "empty dog folder"])
def test_data_problems_exit_3_before_any_build(isolated_home, tmp_path, make):
    """A class folder missing or empty is a data error (exit 3, one line), found before the
    models are built: nothing lands in the build cache and no run is stored."""
    data = tiny_photos(tmp_path / "photos")
    for f in (data / "dog").iterdir():
        f.unlink()
    if make == "no dog folder":
        (data / "dog").rmdir()
    isolated_home.mkdir(parents=True, exist_ok=True)
    r = orch("run", str(spec_file(tmp_path, data)), "--device", "local")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "dog" in r.stderr
    models = isolated_home / "cache" / "models"
    assert not models.exists() or not any(models.iterdir())
    with store(isolated_home) as s:
        assert repo.list_runs(session=s) == []
