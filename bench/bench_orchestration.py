"""Orchestration overhead of `orch run --device <phone>` on a virtual Pixel 7: the wall time
of the command minus the agent's own compute time, on a phone that has nothing staged
(first run) and again once everything is there (second run).

    python bench/bench_orchestration.py [--reps 3] [--write BENCHMARKS.md]

The workload is the paper's protocol at alpha 0.25: both variants, 100 train + 500 test
photos per class, input 160, batch 4, 10 + 10 epochs (`--epochs` to shorten), on the
photographs of ../shared/data/catsdogs when present (else a synthetic set of the same size).
Two data sources: `device:` (the photos already in the phone's gallery: the paper's case)
and `host:` (the photos pushed to the phone on the first run). Each repetition cleans the
phone's staging folder, runs the command twice and reads the runs back from the store.
The model build cache is warmed once beforehand; its cold cost is reported on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from report import cpu_model, replace_section  # noqa: E402  (bench/ is the script's folder)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dashboard.testing import free_port  # noqa: E402
from orchestrator.datasets.synth import synthesize  # noqa: E402
from orchestrator.sim import manager  # noqa: E402

SECTION = "## Orchestration overhead"
CATSDOGS = REPO.parent / "shared" / "data" / "catsdogs"
WEIGHTS = REPO.parent / "shared" / "data" / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
ADB = os.environ.get("ADBUTILS_ADB_PATH", "/usr/bin/adb")


def orch(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"orch {' '.join(args[:3])} … failed ({r.returncode}): "
                         f"{r.stderr.strip().splitlines()[-1:]}")
    return wall, r


def run_args(serial: str, source: str, epochs: int) -> list[str]:
    weights = str(WEIGHTS) if WEIGHTS.is_file() else "none"
    return ["run", "experiments/paper_table1.yaml", "--device", serial,
            "--set", "model.alpha=0.25", "--set", f"model.weights={weights}",
            "--set", f"data.source={source}", "--set", f"training.head_epochs={epochs}",
            "--set", f"training.finetune_epochs={epochs}", "--format", "json"]


def measure(env: dict[str, str], args: list[str]) -> dict[str, float]:
    """One `orch run`: command wall, the agents' own totals, build and staging seconds."""
    wall, r = orch(env, *args)
    runs = json.loads(r.stdout)["runs"]
    assert all(x["status"] == "finished" for x in runs), [x["error"] for x in runs]
    agent = sum(float(x["timing"]["total"]) for x in runs)
    return {"wall": wall, "agent": agent, "overhead": wall - agent,
            "build": sum(float(x["timing"].get("build", 0)) for x in runs),
            "stage": sum(float(x["timing"].get("stage", 0)) for x in runs),
            "pushed_mb": 0.0, "accuracy": runs[-1]["accuracy"],
            "ids": [x["id"] for x in runs]}


def pushed_mb(home: Path, ids: list[int]) -> float:
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    with open_session(f"sqlite:///{home / 'orch.db'}") as s:
        return sum(t.bytes for i in ids for t in repo.run_transfers(session=s, run_id=i)
                   if t.direction == "push") / 1e6


def cli_start(env: dict[str, str], reps: int = 5) -> float:
    """Median seconds of `orch --help`: Python start plus the CLI's imports."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "orchestrator", "--help"], cwd=REPO, env=env,
                       capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def agent_logs(phone: manager.SimPhone, lines: int = 15) -> str:
    """The tails of the newest run folders' agent.log, to say why a run failed."""
    runs = phone.host_path("/data/local/tmp/orch/runs")
    folders = sorted(runs.iterdir(), key=lambda d: d.stat().st_mtime)[-2:] if runs.exists() \
        else []
    out = []
    for d in folders:
        log = d / "agent.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        out.append(f"--- {d.name}/agent.log\n" + "\n".join(tail))
    return "\n".join(out)


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10, help="head epochs = fine-tune epochs")
    ap.add_argument("--write", type=Path, help="replace the section in this Markdown file")
    a = ap.parse_args()

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        work = Path(tmp)
        photos = CATSDOGS if (CATSDOGS / "cat").is_dir() else work / "synth"
        if photos != CATSDOGS:
            synthesize(photos, per_class=600, size=224, names=["cat", "dog"])
        port = free_port()
        home = work / "home"
        env = {**os.environ, "ORCH_HOME": str(home), "ORCH_ADB_PORT": str(port),
               "ADBUTILS_ADB_PATH": ADB}
        os.environ.update({k: env[k] for k in ("ORCH_HOME", "ORCH_ADB_PORT",
                                               "ADBUTILS_ADB_PATH")})
        subprocess.run([ADB, "-P", str(port), "start-server"], capture_output=True, check=True)
        phone = manager.start_phone(profile="pixel7", name="bench", photos=photos,
                                    home=work / "sim", tethered=True)
        results: dict[str, list[tuple[dict, dict]]] = {"device": [], "host": []}
        try:
            sources = {"device": "device:/sdcard/DCIM/catsdogs", "host": f"host:{photos}"}
            # Warm the build cache once, and keep its cold cost apart.
            cold = measure(env, run_args(phone.serial, sources["device"], a.epochs))
            cold["cli_start"] = cli_start(env)
            for rep in range(a.reps):
                for kind, source in sources.items():
                    orch(env, "devices", "clean", phone.serial)
                    first = measure(env, run_args(phone.serial, source, a.epochs))
                    second = measure(env, run_args(phone.serial, source, a.epochs))
                    for m in (first, second):
                        m["pushed_mb"] = pushed_mb(home, m["ids"])
                    results[kind].append((first, second))
                    print(f"rep {rep + 1} {kind}: first {first['wall']:.1f} s "
                          f"(agent {first['agent']:.1f}), second {second['wall']:.1f} s "
                          f"(agent {second['agent']:.1f})", flush=True)
        except SystemExit:
            print(agent_logs(phone), file=sys.stderr)
            raise
        finally:
            manager.stop_phone("bench", home=work / "sim")
            subprocess.run([ADB, "-P", str(port), "kill-server"], capture_output=True)
    report = render(results, cold, a, load, photos == CATSDOGS)
    print(report)
    if a.write:
        replace_section(a.write, SECTION, report)


def render(results: dict, cold: dict, a: argparse.Namespace, load: float,
           real_photos: bool) -> str:
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    adb_version = subprocess.run([ADB, "version"], capture_output=True,
                                 text=True).stdout.split("\n")[1].removeprefix("Version ")
    data = ("the 1,200 Dogs vs. Cats photographs of `../shared/data/catsdogs`" if real_photos
            else "a synthetic set of 600 photos per class (224 px)")
    lines = [
        SECTION, "",
        f"`python bench/bench_orchestration.py --reps {a.reps} --epochs {a.epochs}`: "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {nproc} cores (`nproc`), {cpu_model()}, "
        f"load average {load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end; adb "
        f"{adb_version}, one virtual Pixel 7 "
        "(its agent runs on this host's CPU).", "",
        f"Workload: `orch run experiments/paper_table1.yaml --device SERIAL` with alpha 0.25, "
        f"{'ImageNet' if WEIGHTS.is_file() else 'no'} weights, input 160, batch 4, "
        f"{a.epochs} + {a.epochs} epochs, both variants, 100 train + 500 test photos per "
        f"class from {data}. **Overhead = wall time of the command − the agents' own "
        "`timing.total`** (everything `orch` adds: Python start, device resolution, build "
        "cache lookup, staging, launch, following, collection, the agent's interpreter "
        "start). First run = nothing staged on the phone (`orch devices clean` before); "
        "second run = the same command again. Median of "
        f"{a.reps} repetitions (min–max), seconds.", "",
        "| data | run | wall | agent compute | overhead | overhead / wall | staging "
        "| pushed MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for kind, pairs in results.items():
        for i, label in enumerate(("first", "second")):
            ms = [p[i] for p in pairs]
            ratio = [m["overhead"] / m["wall"] for m in ms]
            lines.append(
                f"| `{kind}:` | {label} | {med([m['wall'] for m in ms])} "
                f"| {med([m['agent'] for m in ms])} | {med([m['overhead'] for m in ms])} "
                f"| {100 * statistics.median(ratio):.1f} % "
                f"| {med([m['stage'] for m in ms])} "
                f"| {statistics.median([m['pushed_mb'] for m in ms]):.1f} |")
        first = statistics.median(p[0]["overhead"] / p[0]["wall"] for p in pairs)
        second = statistics.median(p[1]["overhead"] for p in pairs)
        verdicts.append(
            f"`{kind}:` data: first-run overhead {100 * first:.1f} % of the run "
            f"(aim < 10 %: {'met' if first < 0.10 else 'missed'}), second-run overhead "
            f"{second:.2f} s (aim < 2 s: {'met' if second < 2.0 else 'missed'}).")
    per_variant = statistics.median(p[1]["overhead"] for ps in results.values() for p in ps)
    lines += ["", *verdicts, "",
              f"Where a second run's overhead goes (both variants in one command): starting "
              f"Python and the CLI ({cold['cli_start']:.1f} s, `orch --help`), then per "
              "variant: staging checks (hashes computed on the phone, one command per "
              "folder), the job push, starting the agent's Python on the phone, and the "
              "follow loop's polling (0.1 s after an event, backing off to 0.5 s while the agent "
              "is quiet; one reader process on the phone answers each poll): "
              f"{(per_variant - cold['cli_start']) / 2:.1f} s per variant in the median.", "",
              "Overhead of each repetition, in order (seconds): " + "; ".join(
                  f"`{kind}:` {label} " + ", ".join(f"{p[i]['overhead']:.1f}" for p in pairs)
                  for kind, pairs in results.items()
                  for i, label in enumerate(("first", "second"))) + ".", "",
              f"The build cache was warmed by one extra run beforehand; cold, the two builds "
              f"took {cold['build']:.1f} s (a first run on a new machine adds that once; "
              "the ratios above exclude it). The agent runs on this host's 2 shared cores, so "
              "its compute time is a host figure, not a phone's; the overhead is what orch "
              "adds around it.", "",
              "What the `host:` first run adds: the photos cross in one adb sync session, each "
              "is hashed once on the host (the data set's manifest; the push reuses it), and "
              "their ledger rows are committed 256 at a time. Everything here is CPU-bound "
              "Python on 2 shared cores: under other load the same commands have measured "
              "several times these overheads."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
