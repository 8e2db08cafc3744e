"""What the agent's feature cache saves: the frozen trunk once per image vs. once per epoch.

The agent decodes every sampled image and runs the frozen trunk on it ONCE, then trains
from cached features (and, in method 2's head phase, from cached `embed` output). The
alternative a straightforward on-device loop would use is the whole forward pass every
epoch: decode + trunk for every training image in every epoch and for every test image at
every evaluation, `embed` again in every head epoch. Both sides here use the agent's own
modules (decoding, LiteRT trunk, train.tflite signatures, batching), so they differ only in
the caching.

    python bench/bench_agent_cache.py [--reps 3] [--per-class 30] [--epochs 3]

Method 2 (split at layer B, conv_pw_11), MobileNet V1 alpha 0.25, input 160, batch 4;
the shared Dogs-vs-Cats photos and ImageNet weights when present, else a synthetic set and
random weights. Writes bench/out/agent_cache.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
WEIGHTS = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"

from report import cpu_model  # noqa: E402  (bench/ is the script's folder)

from device_agent import data  # noqa: E402
from device_agent.job import make_job, write_job  # noqa: E402
from device_agent.model import TrainModel  # noqa: E402
from device_agent.training import dropout_mask, evaluate, padded, training_rng  # noqa: E402
from device_agent.trunk import CpuTrunk  # noqa: E402


def dataset(tmp: Path, per_class: int) -> tuple[Path, list[str], str]:
    if (SHARED / "catsdogs" / "cat").is_dir():
        return SHARED / "catsdogs", ["cat", "dog"], "Dogs vs. Cats photographs (shared)"
    from orchestrator.datasets.synth import synthesize

    s = synthesize(tmp / "synth", classes=2, per_class=2 * per_class, size=320, seed=0)
    return s.root, s.classes, "synthetic set (orch data synth, 320 px)"


def run_agent(job: dict, run_dir: Path) -> dict:
    """The product: `python -m device_agent run`, timed by its own result.json."""
    write_job(str(run_dir), job)
    proc = subprocess.run([sys.executable, "-m", "device_agent", "run", str(run_dir)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"agent failed: {proc.stderr[-500:]}")
    res = json.loads((run_dir / "result.json").read_text())
    return {"seconds": res["timing"]["total"], "accuracy": res["accuracy"],
            "timing": {k: v for k, v in res["timing"].items() if k != "train_per_epoch"}}


def run_uncached(job: dict, meta: dict) -> dict:
    """The same training with the whole forward pass in every epoch (no feature cache)."""
    t0 = time.perf_counter()
    d, tr = job["data"], job["training"]
    size, b = meta["input_size"], meta["batch_size"]
    listings = data.list_classes(d["root"], d["classes"])
    counts = data.SampleCounts(d["classes"])
    paths: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    seen: list[str] = []

    def record(path: str, sz: int):
        seen.append(path)
        return data.decode_image(path, sz)

    for s in data.iter_samples(listings, train=d["train_per_class"], test=d["test_per_class"],
                               seed=d["seed"], size=size, counts=counts, decode=record):
        paths[s.split].append((seen[-1], s.label))
    trunk = CpuTrunk(job["models"]["frozen"], threads=job["threads"])
    model = TrainModel(job["models"]["train"], meta, threads=job["threads"])
    rng, rate, dim = training_rng(d["seed"]), meta["dropout"], meta["pooled_dim"]
    k = len(d["classes"])

    def features(items: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([trunk(data.decode_image(p, size)) for p, _ in items])
        return x, np.array([y for _, y in items], dtype=np.int32)

    acc = None
    for phase, epochs in (("head", tr["head_epochs"]), ("finetune", tr["finetune_epochs"])):
        if phase == "finetune":
            model.reset_optimizer()
        for _ in range(epochs):
            order = rng.permutation(len(paths["train"]))
            for start in range(0, len(order), b):
                items = [paths["train"][i] for i in order[start:start + b]]
                x, y = features(items)  # the trunk again, every epoch
                w = np.zeros(b, np.float32)
                w[: len(items)] = 1
                mask = dropout_mask(rng, b, dim, rate)
                if phase == "head":
                    pooled = model.embed(padded(x, b))  # the upper layers again, too
                    model.train_head(pooled, padded(y, b), w, mask, tr["lr"])
                else:
                    model.train(padded(x, b), padded(y, b), w, mask, tr["finetune_lr"])
            xt, yt = features(paths["test"])
            fn = (lambda z: model.infer_head(model.embed(z))) if phase == "head" else model.infer
            acc = evaluate(fn, xt, yt, batch=b, num_classes=k).accuracy
    return {"seconds": time.perf_counter() - t0, "accuracy": acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=30, help="train and test images per class")
    ap.add_argument("--epochs", type=int, default=3, help="head epochs = fine-tune epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "agent_cache.json")
    args = ap.parse_args()

    from models.build import build
    from models.config import ModelConfig

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        root, classes, data_label = dataset(tmp, args.per_class)
        weights = str(WEIGHTS) if WEIGHTS.is_file() else "none"
        m = build(ModelConfig(alpha=0.25, input_size=160, weights=weights,
                              finetune_from="conv_pw_11", batch_size=4),
                  cache_dir=tmp / "models")
        meta = json.loads(m.meta_path.read_text())
        job = make_job(run_key="bench", experiment="bench-cache", variant="method2",
                       frozen=str(m.frozen_path), train=str(m.train_path),
                       meta=str(m.meta_path), data_root=str(root), classes=classes,
                       train_per_class=args.per_class, test_per_class=args.per_class, seed=0,
                       batch_size=4, head_epochs=args.epochs, finetune_epochs=args.epochs,
                       lr=1e-3, finetune_lr=1e-4, threads=args.threads,
                       decode="exact", orientation="ignore")  # the uncached side's decode
        runs: dict[str, list[dict]] = {"cached": [], "uncached": []}
        for rep in range(args.reps):  # alternate, never at the same time
            runs["cached"].append(run_agent(job, tmp / f"run{rep}"))
            runs["uncached"].append(run_uncached(job, meta))
            print(f"rep {rep + 1}: cached {runs['cached'][-1]['seconds']:.1f} s, "
                  f"uncached {runs['uncached'][-1]['seconds']:.1f} s", flush=True)

    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    out = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(), "python": platform.python_version(), "data": data_label,
        "weights": "ImageNet (shared file)" if weights != "none" else "random",
        "per_class": args.per_class, "epochs": [args.epochs, args.epochs],
        "threads": args.threads, "reps": args.reps, "runs": runs, "median_seconds": med,
        "ratio_uncached_over_cached": med["uncached"] / med["cached"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
