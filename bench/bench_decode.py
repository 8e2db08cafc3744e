"""12 MP camera photos: the agent's `fast` decode (JPEG DCT scaling, decode threads ahead of
the trunk) against `exact` (Keras's load_img, one image at a time), in the paper's protocol.

1. Per image, in this process, one thread: `decode.decode_photo` on the same camera photos,
   exact and fast alternating photo by photo; wall and CPU (thread) milliseconds.
2. The paper's protocol with the agent on this host (`orch run experiments/paper_table1.yaml
   --device local`, 100 train + 500 test photos per class, batch 4, 10 + 10 epochs) on
   synthetic camera photos (`orch data synth --camera`: 4000×3000 JPEGs, some with EXIF
   orientation tags), read in place (`device:`); the paper's MobileNet (alpha 1.0, input
   160; `weights: none`: the ImageNet file cannot be had here, and speed does not depend on
   weight values). `fast` runs both variants; `exact` runs method 1 only (its decoding is
   the same work in either variant, and 1,200 whole 12 MP decodes on a shared 2-core host
   take long). From each run's result: decode seconds (the feature pass's wait for decoded
   photos), its share of the agent's total, and peak memory (the agent's maximum resident
   set).
3. The shared Dogs vs. Cats photos (`../shared/data/catsdogs`), when present: as they are
   (about 500×375, below the size where DCT scaling applies at input 160) the two paths
   decode every photo alike but for EXIF orientation, which is counted in-process; scaled
   up to 2000×1500 JPEGs, `fast` takes the DCT path (1/4: 500×375 before the resize, the
   size a 12 MP photo is scaled to at 1/8), and the paper's protocol (alpha 0.25 ImageNet
   weights) runs with both paths for both variants, once per data seed (`--seeds`: each
   seed draws another train/test split and other training draws): accuracy within how many
   points, as the mean over the seeds.

    python bench/bench_decode.py [--photos 40] [--exact-sample 100,500] [--seeds 3]
        [--write] [--out bench/out/decode.json] [--from JSON]

Photo sets are written once under ~/.cache/orch/bench/ and reused (a photo is a function of
the seed, its class and its index).
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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from report import cpu_model, replace_section  # bench/ is the script's folder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("ORCH_SHARED_DATA", REPO.parent / "shared" / "data"))
CACHE = Path.home() / ".cache" / "orch" / "bench"
TRAIN, TEST, SEED, SIZE = 100, 500, 0, 160
HEADING = "## Photo decoding: 12 MP camera photos"

from device_agent import decode  # noqa: E402
from orchestrator.datasets.camera import synthesize_camera  # noqa: E402


def camera_set(per_class: int) -> Path:
    root = CACHE / f"camera-s{SEED}"  # photo i of a class is the same for any count
    synthesize_camera(root, per_class=per_class, names=["cat", "dog"], seed=SEED)
    return root


SCALED = (2000, 1500)


def scaled_real_set(src: Path) -> Path:
    """The shared photos scaled to SCALED (bilinear, JPEG quality 92), same names."""
    from PIL import Image

    root = CACHE / f"catsdogs-{SCALED[0]}x{SCALED[1]}"
    jobs = []
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        jobs += [(p, root / cls / p.name) for p in sorted((src / cls).glob("*.jpg"))]

    def write(job: tuple[Path, Path]) -> None:
        p, out = job
        if out.is_file():
            return
        with Image.open(p) as im:
            big = im.convert("RGB").resize(SCALED, Image.BILINEAR)
        tmp = out.with_name(f".{out.name}.part")
        big.save(tmp, "JPEG", quality=92)
        os.replace(tmp, out)

    with ThreadPoolExecutor(2) as ex:
        list(ex.map(write, jobs))
    return root


def same_decode(src: Path) -> dict:
    """How many of the shared photos the two paths decode differently (as they are)."""
    import numpy as np

    files = sorted(src.glob("*/*.jpg"))
    differ = sum(1 for p in files if not np.array_equal(
        decode.decode_photo(str(p), SIZE, mode=decode.FAST, orient=decode.EXIF),
        decode.decode_photo(str(p), SIZE, mode=decode.EXACT, orient=decode.IGNORE)))
    return {"photos": len(files), "differ": differ}


def per_image(paths: list[Path]) -> dict:
    """Median wall and CPU ms per photo of each path, one thread, photos alternating."""
    t: dict[str, dict[str, list[float]]] = {m: {"wall": [], "cpu": []} for m in ("exact", "fast")}
    for i, p in enumerate(paths):
        modes = ("exact", "fast") if i % 2 == 0 else ("fast", "exact")
        for m in modes:
            orient = decode.IGNORE if m == "exact" else decode.EXIF
            w0, c0 = time.perf_counter(), time.thread_time()
            out = decode.decode_photo(str(p), SIZE, mode=m, orient=orient)
            t[m]["cpu"].append(1000 * (time.thread_time() - c0))
            t[m]["wall"].append(1000 * (time.perf_counter() - w0))
            assert not isinstance(out, str), f"{p.name}: {out}"
    return {m: {k: statistics.median(v) for k, v in d.items()} for m, d in t.items()}


def orch_run(source: str, home: Path, *, decode_mode: str, alpha: float, weights: str,
             variant: str | None = None, sample: tuple[int, int] = (TRAIN, TEST),
             seed: int = SEED) -> dict:
    """The paper spec through `orch run --device local`; per variant: accuracy, timing,
    counts, peak memory."""
    cmd = [sys.executable, "-m", "orchestrator", "run", "experiments/paper_table1.yaml",
           "--device", "local", "--set", f"data.source={source}",
           "--set", f"model.alpha={alpha}", "--set", f"model.weights={weights}",
           "--set", f"data.decode={decode_mode}", "--format", "json"]
    if variant:
        cmd += ["--variant", variant]
    if seed != SEED:
        cmd += ["--set", f"data.seed={seed}"]
    if sample != (TRAIN, TEST):
        cmd += ["--set", f"data.train_per_class={sample[0]}",
                "--set", f"data.test_per_class={sample[1]}"]
    env = {**os.environ, "ORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("ORCH_DB", None)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"orch run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out: dict = {"command_wall": wall}
    for r in json.loads(proc.stdout)["runs"]:
        res = r["result"]
        out[r["variant"]] = {"accuracy": r["accuracy"], "timing": res["timing"],
                             "counts": res["counts"], "data": res.get("data"),
                             "peak_memory_mb": res["peak_memory_mb"]}
    return out


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=40, help="photos timed one by one")
    ap.add_argument("--exact-sample", default=f"{TRAIN},{TEST}",
                    help="train,test photos per class of the exact camera run (it decodes "
                    "every photo whole: on a busy 2-core host the full sample takes long)")
    ap.add_argument("--seeds", type=int, default=3,
                    help="data seeds of the shared-photo runs (both paths, both variants each)")
    ap.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "decode.json")
    ap.add_argument("--from", dest="from_", type=Path, metavar="JSON",
                    help="render (and --write) the figures of an earlier run's --out file")
    ap.add_argument("--resume", action="store_true",
                    help="keep the parts already in --out, measure only the missing ones")
    args = ap.parse_args()
    if args.from_:
        text = render(json.loads(args.from_.read_text()))
        print(text)
        if args.write:
            replace_section(REPO / "BENCHMARKS.md", HEADING, text)
        return
    exact_sample = tuple(int(x) for x in args.exact_sample.split(","))
    started = datetime.now(UTC)
    res: dict = {"started": started.isoformat(timespec="minutes"), "load": [load()],
                 "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(),
                             "python": platform.python_version()}}
    res["command"] = "python bench/bench_decode.py " + " ".join(sys.argv[1:])
    if args.resume and args.out.is_file():
        command = f"{json.loads(args.out.read_text()).get('command')}, then {res['command']}"
        res = json.loads(args.out.read_text())
        res["command"] = command
        res["load"].append(load())
    t0 = time.perf_counter()
    cam = camera_set(TRAIN + TEST)
    res.setdefault("synth_seconds", time.perf_counter() - t0)
    files = sorted(cam.glob("*/*.jpg"))
    res["camera_mb"] = statistics.median(p.stat().st_size for p in files) / 1e6
    res["tagged"] = sum(1 for p in files if _tag(p) != 1)
    res["files"] = len(files)
    step = max(1, len(files) // args.photos)
    if "per_image" not in res:
        res["per_image"] = per_image(files[::step][: args.photos])
    res["load"].append(load())
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        res["camera_runs"] = res.get("camera_runs") or {
            "fast": orch_run(f"device:{cam}", home, decode_mode="fast", alpha=1.0,
                             weights="none"),
            "exact": orch_run(f"device:{cam}", home, decode_mode="exact", alpha=1.0,
                              weights="none", variant="method1", sample=exact_sample)}
        _save(args.out, res)
        res["load"].append(load())
        weights = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
        real = SHARED / "catsdogs"
        if real.is_dir() and weights.is_file():
            res["real_same"] = same_decode(real)
            scaled = scaled_real_set(real)
            runs = res.setdefault("real_runs", {})
            for seed in range(args.seeds):
                for m in ("fast", "exact"):
                    if m not in runs.setdefault(str(seed), {}):
                        runs[str(seed)][m] = orch_run(f"device:{scaled}", home, decode_mode=m,
                                                      alpha=0.25, weights=str(weights),
                                                      seed=seed)
                        _save(args.out, res)
        res["load"].append(load())
    res["minutes"] = (time.perf_counter() - t0) / 60
    _save(args.out, res)
    text = render(res)
    print(text)
    if args.write:
        replace_section(REPO / "BENCHMARKS.md", HEADING, text)


def _save(out: Path, res: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))


def _tag(p: Path) -> int:
    from PIL import Image

    with Image.open(p) as im:
        return int(im.getexif().get(0x0112, 1))


def _photos(run: dict) -> int:
    """Photos the run decoded and used (skipped ones aside)."""
    return int(run["counts"]["train"] + run["counts"]["test"])


def _share(run: dict) -> float:
    return run["timing"]["decode"] / run["timing"]["total"]


def _real_runs(res: dict) -> dict:
    """The shared-photo runs by seed ({"0": {"fast": …, "exact": …}}), also from the
    one-seed layout of earlier runs ({"fast": …, "exact": …})."""
    real = {k: v for k, v in res.get("real_runs", {}).items() if "fast" in v and "exact" in v}
    return {str(SEED): real} if "fast" in real else real


def render(res: dict) -> str:
    m = res["machine"]
    pi = res["per_image"]
    runs = res["camera_runs"]
    images = 2 * (TRAIN + TEST)
    lines = [
        HEADING, "",
        f"`{res.get('command', 'python bench/bench_decode.py --write')}`: "
        f"{res['started'][:16].replace('T', ' ')} UTC, "
        f"{m['cpus']} cores (`nproc`), {m['cpu']}, Python {m['python']}; camera photos: one "
        f"repetition, shared photos: {len(_real_runs(res)) or 'no'} data seed(s); "
        f"load average {min(res['load']):.1f}–{max(res['load']):.1f} during the run (the "
        "machine is shared with other work, so wall times carry contention; CPU times "
        "less so).", "",
        f"Photos: {res['files']} synthetic camera photos (`orch data synth --camera`, seed "
        f"{SEED}): 4000×3000 JPEGs at quality 92, median {res['camera_mb']:.1f} MB, "
        f"{res['tagged']} of them stored sideways or upside down with an EXIF orientation "
        f"tag; written in {res['synth_seconds'] / 60:.1f} min (0 when already cached).", "",
        "**Per image**, one thread in one process, the same photos for both paths "
        "(median over the photos; exact without orientation, as Keras, fast with it):", "",
        "| path | wall ms / photo | CPU ms / photo |", "| --- | ---: | ---: |",
        f"| exact (whole image, then resize) | {pi['exact']['wall']:.1f} | "
        f"{pi['exact']['cpu']:.1f} |",
        f"| fast (DCT scaling to ≥ 2× the input, then resize) | {pi['fast']['wall']:.1f} | "
        f"{pi['fast']['cpu']:.1f} |",
        f"| exact / fast | {pi['exact']['wall'] / pi['fast']['wall']:.1f}× | "
        f"{pi['exact']['cpu'] / pi['fast']['cpu']:.1f}× |", "",
        f"**Paper protocol on the camera photos** (`orch run … --device local`, {images} photos "
        "per variant unless the row says fewer, alpha 1.0, input 160, batch 4, 10 + 10 epochs; "
        "`decode` = seconds the "
        "feature pass waited for decoded photos, `share` = decode / the agent's total; peak "
        "= the agent's maximum resident memory):", "",
        "| decode | variant | decode s | ms / photo | features s | agent total s | share "
        "| peak MB | workers |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, r in runs.items():
        for v in ("method1", "method2"):
            if v not in r:
                continue
            x = r[v]
            t = x["timing"]
            n = _photos(x)
            lines.append(
                f"| {mode} | {v} ({n} photos) | {t['decode']:.1f} | "
                f"{1000 * t['decode'] / n:.1f} | "
                f"{t['features']:.1f} | {t['total']:.1f} | {100 * _share(x):.0f} % | "
                f"{x['peak_memory_mb']:.0f} | "
                f"{'threads' if mode == 'fast' else '1 (inline)'} |")
    fast = runs["fast"]
    dec = sum(fast[v]["timing"]["decode"] for v in ("method1", "method2"))
    tot = sum(fast[v]["timing"]["total"] for v in ("method1", "method2"))
    in_run = {m: 1000 * runs[m]["method1"]["timing"]["decode"] / _photos(runs[m]["method1"])
              for m in runs}
    peak = max(x["peak_memory_mb"] for r in runs.values() for x in r.values()
               if isinstance(x, dict))
    lines += [
        "",
        f"With `fast`, decoding took {dec:.1f} s of the two variants' {tot:.1f} s on the "
        f"device ({100 * dec / tot:.0f} %). Per photo in method 1's run: {in_run['exact']:.1f} "
        f"ms exact vs {in_run['fast']:.1f} ms fast ({in_run['exact'] / in_run['fast']:.1f}×); "
        f"one thread, per photo: {pi['exact']['cpu'] / pi['fast']['cpu']:.1f}× in CPU time. "
        f"Peak memory at most {peak:.0f} MB.",
    ]
    real = _real_runs(res)
    if real:
        same = res["real_same"]
        seeds = sorted(real, key=int)
        lines += ["", f"**The shared Dogs vs. Cats photos**: as they are, the two paths decode "
                  f"{same['photos'] - same['differ']} of the {same['photos']} photos to the "
                  f"same pixels ({same['differ']} differ: EXIF orientation). Scaled to "
                  f"{SCALED[0]}×{SCALED[1]} JPEGs (quality 92), where `fast` decodes at 1/4, "
                  "the paper's protocol (alpha 0.25 ImageNet weights, input 160; last epoch's "
                  f"test accuracy on the 1,000 test photos), once per data seed ({len(seeds)} "
                  f"seeds: {', '.join(seeds)}; a seed draws the train/test split and the "
                  "training's shuffles and dropout):", "",
                  "| variant | exact, mean | fast, mean | fast − exact per seed (points) | "
                  "mean (points) | decode s exact / fast, mean |",
                  "| --- | ---: | ---: | --- | ---: | ---: |"]
        for v in ("method1", "method2"):
            acc = {m: [real[k][m][v]["accuracy"] for k in seeds] for m in ("exact", "fast")}
            diffs = [100 * (b - a) for a, b in zip(acc["exact"], acc["fast"], strict=True)]
            dsec = {m: statistics.mean(real[k][m][v]["timing"]["decode"] for k in seeds)
                    for m in ("exact", "fast")}
            lines.append(f"| {v} | {100 * statistics.mean(acc['exact']):.2f} % | "
                         f"{100 * statistics.mean(acc['fast']):.2f} % | "
                         f"{', '.join(f'{d:+.1f}' for d in diffs)} | "
                         f"{statistics.mean(diffs):+.2f} | "
                         f"{dsec['exact']:.1f} / {dsec['fast']:.1f} |")
    else:
        lines += ["", "The shared Dogs vs. Cats photos were absent: no accuracy comparison."]
    ok = {True: "met", False: "not met"}
    checks = [f"fast ≥ 3× faster per photo than exact: {in_run['exact'] / in_run['fast']:.1f}× "
              f"in the run ({ok[in_run['exact'] >= 3 * in_run['fast']]}), "
              f"{pi['exact']['cpu'] / pi['fast']['cpu']:.1f}× on one thread "
              f"({ok[pi['exact']['cpu'] >= 3 * pi['fast']['cpu']]})",
              f"decoding ≤ 30 % of the run: {100 * dec / tot:.0f} % ({ok[dec <= 0.3 * tot]})",
              "peak memory < 400 MB: " + ", ".join(
                  f"{m} {v} {r[v]['peak_memory_mb']:.0f} MB" for m, r in runs.items()
                  for v in ("method1", "method2") if v in r) + f" ({ok[peak < 400]})"]
    if real:
        gap = max(abs(statistics.mean(real[k]["fast"][v]["accuracy"]
                                      - real[k]["exact"][v]["accuracy"] for k in real))
                  for v in ("method1", "method2"))
        checks.append(f"accuracy within 1 point: the mean of fast − exact over {len(real)} "
                      f"seed(s) is {100 * gap:.2f} points at most ({ok[gap <= 0.01]})")
    lines += ["", "Against the targets: " + "; ".join(checks) + ".", "", EXPLANATION]
    return "\n".join(lines) + "\n"


EXPLANATION = (
    "Where the time goes: a 12 MP JPEG's entropy (Huffman) decoding has to read every byte "
    "of its 3–5 MB whatever the output size, so DCT scaling (1/8 here: 500×375 before the "
    "resize) saves the inverse DCT, the colour conversion and the resize of 12 M pixels, not "
    "the Huffman decoding; that is the per-image ratio above. 1/8 is libjpeg's smallest "
    "scale, so asking the DCT for less than twice the input would not scale a 12 MP photo "
    "any further: what `fast` still spends per photo is nearly all Huffman decoding. In a "
    "run, `fast` also decodes on one thread per usable core (at most as many 12 MP decodes "
    "as the 160 MB decode budget holds), up to 4 photos per thread ahead of the trunk, which "
    "starts on the first decoded photo: the `decode` seconds of a fast run are only the wait "
    "the trunk could not hide. On a busy host that wait follows the CPU a photo's decode "
    "takes against everything else the run computes: method 1 (head only) does little "
    "besides the feature pass, and its trunk costs a photo less CPU than its decode, so its "
    "share stays high however well the two overlap; method 2's fine-tuning is most of its "
    "run. The protocol decodes the same photos once per variant: keeping them decoded on "
    "the phone for the second variant would halve that, but the agent deletes everything "
    "derived from the photos when a run ends, and keeping decoded pixels between runs is a "
    "privacy decision not taken here. "
    "`exact` keeps Keras's path, one whole image at a time in the feature pass's thread (its "
    "12 MP decodes hold about 100 MB each), for the parity tests. A phone has 4–8 cores for "
    "the decode threads where this host has 2 shared ones, and slower ones: the per-image "
    "figures scale with the core, the parallel gain with their number. Peak memory is the "
    "agent process's whole resident set (VmHWM: interpreter, models, decode buffers, the "
    "batch of features in use): the feature cache is read a batch of rows at a time, not "
    "memory-mapped, so method 2's 1,200 cached feature maps (its trunk ends at layer B, "
    "10×10×512 floats per photo at alpha 1.0: 246 MB) stay in the kernel's page cache and "
    "out of the agent. The accuracies: each repetition is another data seed (another split "
    "of the shared photos, other shuffles and dropout), not the same draw again; "
    "method 2's fine-tuning moves with small input differences (on identical pixels the "
    "agent and its Keras twin differ by 1.2 points, section \"Paper protocol: agent vs "
    "Keras\"), which the per-seed column shows.")


if __name__ == "__main__":
    main()
