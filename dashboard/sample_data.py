"""Realistic example results written through `repo.py`, as the run pipeline writes them.

For the dashboard's tests and for looking at the dashboard without a phone
(`python -m dashboard.sample_data DB_URL`). Figures come from a seeded generator, so tests
read their expectations back from the store instead of hard-coding them.
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from orchestrator.store import repo
from orchestrator.store.db import make_engine

SPEC = {
    "name": "paper-table1",
    "description": "Transfer learning vs fine-tuning from layer B, on the phone.",
    "model": {"arch": "mobilenet_v1", "alpha": 0.25, "input_size": 128, "weights": "imagenet"},
    "head": {"dropout": 0.2, "classes": ["cat", "dog"]},
    "data": {"source": "device:/sdcard/DCIM/catsdogs", "train_per_class": 100,
             "test_per_class": 500, "seed": 0},
    "training": {"batch_size": 4, "head_epochs": 10, "finetune_epochs": 10,
                 "optimizer": "adam", "lr": 0.001, "finetune_lr": 0.0001},
    "variants": {"method1": {"finetune_from": None}, "method2": {"finetune_from": "conv_pw_11"}},
    "delegate": "nnapi",
}

# (serial, model, manufacturer, sdk, release, soc, abi, launcher, NNAPI works, speed factor)
PHONES = [
    ("28121FDH2000X1", "Pixel 7", "Google", 34, "14", "GS201", "arm64-v8a", "runas", True, 1.0),
    ("R5CR10ABCDE", "SM-G991B", "samsung", 33, "13", "exynos2100", "arm64-v8a", "ssh", False,
     1.3),
    ("emulator-virtual-1", "Pixel 4a", "Google", 30, "11", "SM7150", "arm64-v8a", "direct",
     True, 1.8),
]


@dataclass
class SampleStore:
    """Ids of what `fill` wrote, so tests can address it."""

    experiment_id: int = 0
    experiment: str = ""
    device_ids: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    running: int | None = None
    failed: int | None = None


def _curves(rng: random.Random, head: int, finetune: int, final: float):
    """Per-epoch (phase, train_loss, train_acc, test_loss, test_acc) that look like training."""
    out = []
    n = head + finetune
    for e in range(1, n + 1):
        phase = "head" if e <= head else "finetune"
        # Head epochs approach a plateau; fine-tune epochs climb towards `final`.
        plateau = final - (0.06 if finetune else 0.0)
        if phase == "head":
            acc = 0.5 + (plateau - 0.5) * (1 - math.exp(-e / 2.5))
        else:
            acc = plateau + (final - plateau) * (1 - math.exp(-(e - head) / 2.0))
        test_acc = min(0.999, max(0.4, acc + rng.uniform(-0.012, 0.012)))
        train_acc = min(1.0, test_acc + rng.uniform(0.005, 0.03))
        test_loss = max(0.02, -math.log(max(test_acc, 1e-3)) * 1.4 + rng.uniform(-0.02, 0.02))
        train_loss = max(0.01, test_loss * rng.uniform(0.75, 0.95))
        out.append((e, phase, train_loss, train_acc, test_loss, test_acc))
    return out


def _finished_run(s: Session, rng: random.Random, exp_id: int, variant: str, dev, phone,
                  started: datetime) -> int:
    serial, _model, _m, _sdk, _rel, _soc, _abi, launcher, nnapi_ok, speed = phone
    finetune_from = SPEC["variants"][variant]["finetune_from"]
    head = SPEC["training"]["head_epochs"]
    finetune = SPEC["training"]["finetune_epochs"] if finetune_from else 0
    final = (0.975 if finetune_from else 0.91) + rng.uniform(-0.015, 0.01)
    curves = _curves(rng, head, finetune, final)
    per_epoch = [round(rng.uniform(0.25, 0.4) * speed * (1 if p == "head" else 9), 3)
                 for _e, p, *_ in curves]
    timing = {"decode": round(rng.uniform(9, 12) * speed, 2),
              "features": round(rng.uniform(14, 20) * speed * (1 if nnapi_ok else 2.4), 2),
              "train": round(sum(per_epoch), 2), "eval": round(rng.uniform(2, 4) * speed, 2),
              "train_per_epoch": per_epoch}
    timing["total"] = round(sum(timing[k] for k in ("decode", "features", "train", "eval"))
                            + rng.uniform(1, 3), 2)
    used = "nnapi" if nnapi_ok else "xnnpack"
    reason = None if nnapi_ok else "NNAPI rejected 3 of 28 ops (DEPTHWISE_CONV_2D); CPU fallback"
    acc = curves[-1][5]
    result = {
        "schema": 1, "status": "finished", "accuracy": acc,
        "per_class_accuracy": {"cat": round(acc + rng.uniform(-0.02, 0.02), 4),
                               "dog": round(acc + rng.uniform(-0.02, 0.02), 4)},
        "epochs": [{"phase": p, "epoch": e, "train_loss": tl, "train_acc": ta, "test_loss": vl,
                    "test_acc": va, "seconds": per_epoch[e - 1]}
                   for e, p, tl, ta, vl, va in curves],
        "timing": timing, "peak_memory_mb": round(rng.uniform(180, 420), 1),
        "delegate": {"requested": "nnapi", "used": used, "reason": reason},
        "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"},
        "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "skipped_too_large": 0,
                   "skipped_unsupported": 3,
                   "per_class_train": {"cat": 100, "dog": 100},
                   "per_class_test": {"cat": 500, "dog": 500}},
        "data": {"decode": "fast", "orientation": "exif", "max_pixels": 50_000_000},
    }
    run = repo.create_run(
        session=s, experiment_id=exp_id, variant=variant, device_id=dev.id,
        params={"finetune_from": finetune_from, "batch_size": 4, "head_epochs": head,
                "finetune_epochs": finetune}, status="finished",
        created=started - timedelta(seconds=40), started=started,
        finished=started + timedelta(seconds=timing["total"]),
        accuracy=acc, timing=timing, delegate_requested="nnapi", delegate_used=used,
        delegate_reason=reason,
        delegate_info={"nnapi_device": "google-edgetpu" if nnapi_ok else None,
                       "ops_total": 28, "ops_delegated": 28 if nnapi_ok else 25},
        frozen_hash=f"{rng.getrandbits(64):016x}", train_hash=f"{rng.getrandbits(64):016x}",
        agent_version="0.1.0", interpreter="ai_edge_litert 2.3", launcher=launcher,
        device_run_dir=f"/data/local/tmp/orch/runs/r{rng.getrandbits(32):08x}",
        result=result, events_seen=len(curves) + 4,
    )
    points: list[tuple[str, int, float | None]] = []
    for e, p, tl, ta, vl, va in curves:
        points += [("train_loss", e, tl), ("train_acc", e, ta), ("test_loss", e, vl),
                   ("test_acc", e, va), ("phase", e, 0.0 if p == "head" else 1.0)]
    repo.record_metrics(session=s, run_id=run.id, metrics=points)
    battery, temp = rng.uniform(70, 95), rng.uniform(29, 33)
    for e in range(0, len(curves) + 1):
        repo.record_sample(session=s, device_id=dev.id, run_id=run.id, step=e,
                           battery=round(battery - e * rng.uniform(0.2, 0.6), 1),
                           temperature=round(temp + 9 * (1 - math.exp(-e / 6)), 1))
    _ledger(s, rng, run.id, dev.id, launcher)
    return run.id


def _ledger(s: Session, rng: random.Random, run_id: int, device_id: int, launcher: str) -> None:
    root = "/data/local/tmp/orch"
    for kind, path, size in [("agent", f"{root}/agent/device_agent.tar", 48_213),
                             ("model", f"{root}/models/a1/frozen.tflite", 1_876_544),
                             ("model", f"{root}/models/a1/train.tflite", 1_204_112),
                             ("job", f"{root}/runs/r1/job.json", 912)]:
        repo.record_transfer(session=s, run_id=run_id, device_id=device_id, direction="push",
                             kind=kind, device_path=path, nbytes=size, launcher=launcher,
                             sha256=f"{rng.getrandbits(128):032x}")
    repo.record_transfer(session=s, run_id=run_id, device_id=device_id, direction="skipped",
                         kind="model", device_path=f"{root}/models/a1/meta.json", nbytes=640,
                         reason="already on the phone with the same sha256")
    for path, size in [(f"{root}/runs/r1/events.jsonl", 9_884), (f"{root}/runs/r1/result.json",
                                                                  3_021)]:
        repo.record_transfer(session=s, run_id=run_id, device_id=device_id, direction="pull",
                             kind="metrics", device_path=path, nbytes=size, launcher=launcher,
                             sha256=f"{rng.getrandbits(128):032x}")
    repo.record_transfer(session=s, run_id=run_id, device_id=device_id, direction="refused",
                         kind="other", device_path=f"{root}/runs/r1/cache/features.npy",
                         reason="not the run's events or result file")


def fill(session: Session, *, repeats: int = 2, seed: int = 0,
         experiment: str = "paper-table1") -> SampleStore:
    """Write an experiment with finished runs on three phones, one running and one failed."""
    rng = random.Random(seed)
    spec = dict(SPEC, name=experiment)
    exp = repo.upsert_experiment(session=session, name=experiment, spec=spec,
                                 spec_hash=f"{rng.getrandbits(64):016x}")
    out = SampleStore(experiment_id=exp.id, experiment=exp.name)
    devices = []
    for phone in PHONES:
        serial, model, manufacturer, sdk, release, soc, abi, launcher, _ok, _speed = phone
        dev = repo.upsert_device(session=session, serial=serial, model=model,
                                 manufacturer=manufacturer, sdk=sdk, release=release, soc=soc,
                                 abi=abi, launcher=launcher,
                                 facts={"free_mb": rng.randint(4_000, 60_000),
                                        "python": "3.11.9", "interpreter": "tflite_runtime"})
        devices.append((dev, phone))
        out.device_ids.append(dev.id)
    repo.set_alias(session=session, serial=PHONES[0][0], alias="pixel7")
    t0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    for _ in range(repeats):
        for variant in SPEC["variants"]:
            for dev, phone in devices:
                t0 += timedelta(minutes=7)
                out.finished.append(_finished_run(session, rng, exp.id, variant, dev, phone,
                                                  t0))
    dev, phone = devices[0]
    running = repo.create_run(
        session=session, experiment_id=exp.id, variant="method2", device_id=dev.id,
        params={"finetune_from": "conv_pw_11"}, status="running", created=t0, started=t0,
        delegate_requested="nnapi", delegate_used="nnapi", launcher=phone[7],
        progress={"stage": "train", "done": 3, "total": 20, "epoch": 3, "epochs": 20})
    repo.record_metrics(session=session, run_id=running.id, metrics=[
        (k, e, v) for e, _p, tl, ta, vl, va in _curves(rng, 3, 0, 0.9)
        for k, v in (("train_loss", tl), ("train_acc", ta), ("test_loss", vl),
                     ("test_acc", va), ("phase", 0.0))])
    out.running = running.id
    dev, phone = devices[1]
    failed = repo.create_run(
        session=session, experiment_id=exp.id, variant="method1", device_id=dev.id,
        params={"finetune_from": None}, status="failed", created=t0, started=t0,
        error="agent exited with code 5: the phone's storage is full (needs 120 MB)",
        delegate_requested="nnapi", launcher=phone[7])
    out.failed = failed.id
    return out


def main(argv: list[str]) -> None:  # pragma: no cover - a convenience for people
    url = argv[1] if len(argv) > 1 else "sqlite:///sample.db"
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        info = fill(s)
    print(f"wrote experiment {info.experiment!r} with {len(info.finished) + 2} runs to {url}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
