"""`python -m device_agent.nnapi.check MODEL_DIR`: NNAPI against LiteRT's CPU path, as JSON.

MODEL_DIR is a build folder (frozen.tflite + nnapi_plan.json/.npz). For every NNAPI device
(or each --device), a runner is opened (its correctness guard included), its features are
compared with LiteRT CPU's on random images, and images are timed through it; LiteRT's CPU
path is timed with 1 and 4 threads on the same images. Prints numbers and device names
only. Used on a real phone by the `device` test and by bench/bench_nnapi.py.
Unlike the binding, this tool needs a TFLite interpreter (ai_edge_litert or tflite_runtime).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from device_agent.nnapi.probe import nnapi_info
from device_agent.nnapi.session import open_nnapi_runner


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        from tflite_runtime import interpreter  # type: ignore[no-redef]
    return interpreter


class LiteRTCpu:
    """frozen.tflite on LiteRT's CPU path, one image per invoke (as the agent runs it)."""

    def __init__(self, path: str, threads: int) -> None:
        self.interpreter = _interpreter_module().Interpreter(model_path=path,
                                                             num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for image in np.asarray(images, dtype=np.float32):
            self.interpreter.set_tensor(self.input["index"], image[None])
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.output)[0].copy())
        return np.stack(out)


def _ms_per_image(fn, images: np.ndarray, reps: int) -> list[float]:
    fn(images[:1])  # warm-up: first-run allocation and weight packing are not the steady state
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(images)
        times.append(round((time.perf_counter() - start) / len(images) * 1e3, 3))
    return times


def check(model_dir: str | Path, *, devices: list[str] | None = None, images: int = 8,
          reps: int = 3, threads: tuple[int, ...] = (1, 4), fp16: bool = False,
          allow_reference: bool = True, seed: int = 0) -> dict:
    """NNAPI (each device) vs LiteRT CPU on this machine: agreement and ms per image."""
    folder = Path(model_dir)
    frozen, plan = str(folder / "frozen.tflite"), str(folder / "nnapi_plan.json")
    cpu = LiteRTCpu(frozen, threads=1)
    size = int(cpu.input["shape"][1])
    x = np.random.default_rng(seed).uniform(0, 255, (images, size, size, 3)).astype(np.float32)
    want = cpu(x)
    runtime = nnapi_info()
    result: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "machine": platform.machine()},
        "images": images, "reps": reps, "input_size": size, "nnapi_runtime": runtime,
        "cpu": {f"threads_{t}": _ms_per_image(LiteRTCpu(frozen, t), x, reps) for t in threads},
        "nnapi": [],
    }
    names = devices or [d["name"] for d in runtime.get("devices") or []] or [None]
    for name in names:
        runner, record = open_nnapi_runner(plan, reference_fn=cpu, probe_images=x[:2],
                                           device_name=name, fp16=fp16,
                                           allow_reference=allow_reference)
        info = record["info"]
        entry = {"device": name, "used": record["used"], "reason": record["reason"],
                 "type": info.get("type"), "feature_level": info.get("feature_level"),
                 "simulated": info.get("simulated"), "fp16": fp16}
        if runner is not None:
            try:
                got = runner.run(x)
                entry["max_abs_diff"] = float(np.max(np.abs(got - want)))
                entry["ms_per_image_wall"] = _ms_per_image(runner.run, x, reps)
                before = len(runner.hw_ns)
                runner.run(x)
                hw = runner.hw_ns[before:]
                entry["ms_per_image_hw"] = round(sum(hw) / len(hw) / 1e6, 3) if hw else None
            finally:
                runner.close()
        result["nnapi"].append(entry)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_agent.nnapi.check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--device", action="append", help="an NNAPI device name (repeatable)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = check(args.model_dir, devices=args.device, images=args.images, reps=args.reps,
                   threads=tuple(args.threads), fp16=args.fp16, seed=args.seed)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
