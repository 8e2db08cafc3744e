"""The paper's protocol, done by orch's on-device agent (`orch run --device local`) and by the
plain Keras script a researcher would otherwise write: accuracy and wall time, method 1 and 2.

Protocol (Kondo et al., at the width we have weights for): Dogs vs. Cats photographs, 100
train + 500 test images per class sampled with seed 0, MobileNet V1 alpha 0.25 ImageNet
weights, input 160, batch 4, Adam; method 1 = head only (GAP → Dropout 0.2 → Dense), 10
epochs at 1e-3; method 2 = the same head phase, then 10 epochs from conv_pw_11 (layer B) up
at 1e-4. Both sides evaluate the test set after every epoch and report the last epoch's
test accuracy. The Keras twin uses the agent's own sampling and decoding (the `exact`
path, Keras's load_img, without EXIF orientation), so both see the same images.

    python bench/bench_agent_vs_keras.py [--reps 3] [--out bench/out/agent_vs_keras.json]

Each repetition runs the agent (the `orch run` command of the paper spec, as a user types
it) and then the Keras twin, one after the other, never at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from report import cpu_model  # bench/ is the script's folder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLASSES = ["cat", "dog"]
TRAIN, TEST, SEED, SIZE, BATCH, EPOCHS = 100, 500, 0, 160, 4, 10
SPLIT_LAYER = "conv_pw_11"  # layer B


# ------------------------------------------------------------------ the agent (orch run)


def run_agent(data: Path, weights: Path, home: Path) -> dict:
    """`orch run experiments/paper_table1.yaml --device local` with the bench's data/weights."""
    cmd = [sys.executable, "-m", "orchestrator", "run", "experiments/paper_table1.yaml",
           "--device", "local", "--set", f"data.source=host:{data}",
           "--set", "model.alpha=0.25", "--set", f"model.weights={weights}",
           # Keras's own decoding, as the twin below: both sides see the same pixels.
           "--set", "data.decode=exact", "--set", "data.orientation=ignore",
           "--format", "json"]
    env = {**os.environ, "ORCH_HOME": str(home)}
    env.pop("ORCH_DB", None)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"orch run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    runs = {r["variant"]: r for r in json.loads(proc.stdout)["runs"]}
    out = {"command_wall": wall}
    for variant, r in runs.items():
        t = r["timing"]
        out[variant] = {"accuracy": r["accuracy"], "wall": t["wall"], "build": t["build"],
                        "stage": t["stage"], "device_total": t["total"],
                        "decode_features": t["decode"] + t["features"],
                        "train": t["train"], "eval": t["eval"],
                        "delegate": f"{r['delegate_requested']} → {r['delegate_used']}",
                        "run_id": r["id"]}
    return out


# ------------------------------------------------------------------ the Keras twin


def load_images(data: Path):
    """The agent's sample (same listing, seeded order and decoding), as numpy arrays."""
    import numpy as np

    from device_agent import data as agent_data

    listings = agent_data.list_classes(str(data), CLASSES)
    counts = agent_data.SampleCounts(CLASSES)
    xs = {"train": [], "test": []}
    ys = {"train": [], "test": []}
    for s in agent_data.iter_samples(listings, train=TRAIN, test=TEST, seed=SEED, size=SIZE,
                                     counts=counts):
        xs[s.split].append(s.pixels)
        ys[s.split].append(s.label)
    return (np.stack(xs["train"]), np.array(ys["train"]), np.stack(xs["test"]),
            np.array(ys["test"]))


def run_keras(data: Path, weights: Path) -> dict:
    """Transfer learning then fine-tuning from layer B, as in TensorFlow's own tutorial."""
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = load_images(data)
    t_decode = time.perf_counter() - t0

    import keras

    keras.utils.set_random_seed(SEED)
    t1 = time.perf_counter()
    base = keras.applications.MobileNet(input_shape=(SIZE, SIZE, 3), alpha=0.25,
                                        include_top=False, weights=str(weights))
    base.trainable = False
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    x = base(x, training=False)  # BatchNorm in inference mode, in both phases
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    model = keras.Model(image, out)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t_model = time.perf_counter() - t1

    t2 = time.perf_counter()
    head = model.fit(x_tr, y_tr, batch_size=BATCH, epochs=EPOCHS, shuffle=True,
                     validation_data=(x_te, y_te), verbose=0)
    t_head = time.perf_counter() - t2

    t3 = time.perf_counter()
    base.trainable = True
    split = [layer.name for layer in base.layers].index(SPLIT_LAYER)
    for layer in base.layers[:split]:
        layer.trainable = False
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    fine = model.fit(x_tr, y_tr, batch_size=BATCH, epochs=2 * EPOCHS, initial_epoch=EPOCHS,
                     shuffle=True, validation_data=(x_te, y_te), verbose=0)
    t_fine = time.perf_counter() - t3

    shared = t_decode + t_model
    return {
        "method1": {"accuracy": float(head.history["val_accuracy"][-1]),
                    "wall": shared + t_head, "train_eval": t_head},
        "method2": {"accuracy": float(fine.history["val_accuracy"][-1]),
                    "wall": shared + t_head + t_fine, "train_eval": t_head + t_fine},
        "decode": t_decode, "model": t_model,
    }


# ------------------------------------------------------------------ report


def machine() -> dict:
    cpu = cpu_model()
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def summarize(reps: list[dict]) -> str:
    """A markdown table: median (min–max) over repetitions, and the ratios."""

    def fig(values: list[float], fmt: str) -> str:
        med = statistics.median(values)
        if len(values) == 1:
            return format(med, fmt)
        return f"{format(med, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"

    lines = ["| method | side | test accuracy | wall s | of which on device / train+eval s |",
             "| --- | --- | --- | --- | --- |"]
    for m in ("method1", "method2"):
        a = [r["agent"][m] for r in reps]
        k = [r["keras"][m] for r in reps]
        lines.append(f"| {m} | orch agent (`--device local`) | "
                     f"{fig([x['accuracy'] * 100 for x in a], '.2f')} % | "
                     f"{fig([x['wall'] for x in a], '.1f')} | "
                     f"{fig([x['device_total'] for x in a], '.1f')} |")
        lines.append(f"| {m} | plain Keras | {fig([x['accuracy'] * 100 for x in k], '.2f')} % "
                     f"| {fig([x['wall'] for x in k], '.1f')} | "
                     f"{fig([x['train_eval'] for x in k], '.1f')} |")
    lines.append("")
    lines.append("| method | accuracy agent − Keras (points) | wall agent / Keras | "
                 "agent without build / Keras |")
    lines.append("| --- | --- | --- | --- |")
    for m in ("method1", "method2"):
        diff = [(r["agent"][m]["accuracy"] - r["keras"][m]["accuracy"]) * 100 for r in reps]
        ratio = [r["agent"][m]["wall"] / r["keras"][m]["wall"] for r in reps]
        warm = [(r["agent"][m]["wall"] - r["agent"][m]["build"]) / r["keras"][m]["wall"]
                for r in reps]
        lines.append(f"| {m} | {fig(diff, '+.2f')} | {fig(ratio, '.2f')} | "
                     f"{fig(warm, '.2f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", type=Path, default=SHARED / "catsdogs")
    ap.add_argument("--weights", type=Path,
                    default=SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5")
    ap.add_argument("--home", type=Path, default=REPO / "bench" / "out" / "orch-home",
                    help="ORCH_HOME of the agent runs (its build cache persists across reps)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "agent_vs_keras.json")
    args = ap.parse_args()
    if not (args.data / "cat").is_dir() or not args.weights.is_file():
        raise SystemExit(f"needs {args.data} (cat/, dog/) and {args.weights}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "reps": []}
    for i in range(args.reps):
        agent = run_agent(args.data.resolve(), args.weights.resolve(), args.home)
        print(f"rep {i + 1} agent: " + json.dumps(agent), flush=True)
        keras_side = run_keras(args.data, args.weights)
        print(f"rep {i + 1} keras: " + json.dumps(keras_side), flush=True)
        report["reps"].append({"agent": agent, "keras": keras_side})
        args.out.write_text(json.dumps(report, indent=1))
    report["markdown"] = summarize(report["reps"])
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["machine"]))
    print(report["markdown"])


if __name__ == "__main__":
    main()
