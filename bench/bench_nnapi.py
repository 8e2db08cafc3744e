"""The frozen trunk through NNAPI (each device) vs LiteRT's CPU path (1 and 4 threads).

Both sides run the same frozen trunk on the same images, one image per call as the agent
runs it; the figure is ms per image (wall clock), plus NNAPI's own on-hardware time
(getDuration). The work is done by `python -m device_agent.nnapi.check`, which also checks
that NNAPI's features agree with LiteRT's.

    # a real phone (what the numbers are for): push agent + models, run there
    python bench/bench_nnapi.py --adb SERIAL --python "/data/local/tmp/python/bin/python3"
    # this host, against the simulated libneuralnetworks.so (says nothing about a phone)
    python bench/bench_nnapi.py [--configs 0.25:128:conv_pw_11 1.0:160:conv_pw_11] [--write]

A config is alpha:input_size:split (split `none` = head-only, pooled output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import posixpath
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import cpu_model  # bench/ is the script's folder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_025 = REPO.parent / "shared" / "data" / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
DEFAULT_CONFIGS = ("0.25:128:conv_pw_11", "0.25:128:none", "1.0:160:conv_pw_11")
DEVICE_ROOT = "/data/local/tmp/orch-nnapi-bench"


def build_trunk(alpha: float, size: int, split: str | None, folder: Path) -> str:
    """frozen.tflite + the NNAPI plan in `folder`, as a build makes them; returns the weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models import keras_net
    from models.config import ModelConfig
    from models.convert import convert_frozen
    from models.nnapi_plan import export_plan

    weights = str(SHARED_025) if alpha == 0.25 and SHARED_025.is_file() else "none"
    config = ModelConfig(alpha=alpha, input_size=size, weights=weights, finetune_from=split)
    model = keras_net.build_keras_model(config)
    if weights == "none":
        randomize_batchnorm(model)
    trunk = keras_net.build_frozen_keras(config, model)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "frozen.tflite").write_bytes(convert_frozen(trunk))
    export_plan(trunk, folder)
    return "imagenet (shared file)" if weights != "none" else "random, BN statistics drawn"


def randomize_batchnorm(model: Any, seed: int = 0) -> None:
    """Random kernels with Keras's default BatchNorm statistics shrink the features to ~1e-15,
    which would make the agreement column meaningless: draw the statistics too."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(1.0, 2.5, c), rng.normal(0.3, 0.3, c),
                               rng.normal(0.0, 0.2, c), rng.uniform(0.5, 2.0, c)])


def run_on_host(model_dir: Path, images: int, reps: int) -> dict[str, Any]:
    from device_agent.nnapi.check import check
    from orchestrator.simnnapi import build_library

    os.environ["ORCH_NNAPI_LIB"] = str(build_library(model_dir.parent / "fake-nnapi"))
    return check(model_dir, images=images, reps=reps)


def run_on_phone(model_dir: Path, images: int, reps: int, serial: str, python: str) -> dict:
    import adbutils

    os.environ.setdefault("ADBUTILS_ADB_PATH", "/usr/bin/adb")
    device = adbutils.adb.device(serial=serial)
    device.shell2(f"rm -rf {DEVICE_ROOT} && mkdir -p {DEVICE_ROOT}/model")
    for path in sorted((REPO / "device_agent").rglob("*.py")):
        dest = posixpath.join(DEVICE_ROOT, path.relative_to(REPO).as_posix())
        device.shell2(f"mkdir -p {posixpath.dirname(dest)}")
        device.sync.push(str(path), dest)
    for name in ("frozen.tflite", "nnapi_plan.json", "nnapi_plan.npz"):
        device.sync.push(str(model_dir / name), f"{DEVICE_ROOT}/model/{name}")
    device.shell2(f"chmod -R a+rX {DEVICE_ROOT}")
    out = device.shell2(f"cd {DEVICE_ROOT} && PYTHONPATH={DEVICE_ROOT} {python} -m "
                        f"device_agent.nnapi.check {DEVICE_ROOT}/model --images {images} "
                        f"--reps {reps}", timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"the check failed on the phone:\n{out.output[-2000:]}")
    return json.loads(out.output[out.output.index("{"):])


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def rows(config: str, weights: str, result: dict) -> list[str]:
    """Markdown rows: one per path, with every repetition and the ratio to LiteRT 1 thread."""
    base = statistics.median(result["cpu"]["threads_1"])
    out = []
    for key, times in result["cpu"].items():
        threads = key.split("_")[1]
        out.append(f"| {config} | {weights} | LiteRT CPU, {threads} thread(s) | "
                   f"{_median(times)} | {', '.join(map(str, times))} | "
                   f"{statistics.median(times) / base:.2f} | – | – |")
    for entry in result["nnapi"]:
        name = f"NNAPI {entry['device']} ({entry['type']})"
        if entry["used"] != "nnapi":
            out.append(f"| {config} | {weights} | {name} | – | fell back: {entry['reason']} "
                       "| – | – | – |")
            continue
        times = entry["ms_per_image_wall"]
        out.append(f"| {config} | {weights} | {name} | {_median(times)} | "
                   f"{', '.join(map(str, times))} | {statistics.median(times) / base:.2f} | "
                   f"{entry['ms_per_image_hw']} | {entry['max_abs_diff']:.1e} |")
    return out


HEADER = ("| config (alpha:size:split) | weights | path | ms/image (median) | "
          "ms/image per repetition | × LiteRT 1 thread | NNAPI on-hardware ms | max abs diff |\n"
          "|---|---|---|---|---|---|---|---|")


def machine() -> str:
    cpu = cpu_model()
    return (f"{os.cpu_count()} CPUs (`nproc` {os.cpu_count()}), {cpu}, {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--adb", metavar="SERIAL", help="run on this phone instead of the host")
    parser.add_argument("--python", default="python3", help="the phone's Python command")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    lines, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="orch-bench-nnapi-") as tmp:
        for config in args.configs:
            alpha, size, split = config.split(":")
            folder = Path(tmp) / config.replace(":", "_")
            weights = build_trunk(float(alpha), int(size), None if split == "none" else split,
                                  folder)
            if args.adb:
                result = run_on_phone(folder, args.images, args.reps, args.adb, args.python)
            else:
                result = run_on_host(folder, args.images, args.reps)
            raw[config] = result
            lines += rows(config, weights, result)
            print(f"{config}: done", file=sys.stderr)
    where = (f"phone {args.adb}" if args.adb else
             "simulated library on the host CPU — says nothing about a phone's accelerator")
    print(f"Machine: {machine()}\nNNAPI: {where}\nImages per repetition: {args.images}, "
          f"repetitions: {args.reps}\n\n{HEADER}\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
