"""Scheduling overhead of `orch sweep` per run, with 1, 2 and 4 virtual phones.

    python bench/bench_sweep.py [--reps 3] [--runs-per-phone 4] [--write BENCHMARKS.md]

Each repetition drives a fresh sweep (the paper spec at alpha 0.25, input 96, no weights,
6 + 4 photos per class from each phone's gallery, 1 + 1 epochs; `runs-per-phone` points)
on N phones through a private adb server, exactly as `orch sweep` does. The models are
built before timing (a cache hit for every run), so what is measured is the sweep itself.

    overhead per run = (sweep wall × N − Σ agent compute) / runs

i.e. the time each phone's lane spends on anything but the agent's own training work
(`result.json` timing.total): queue claims, health sampling, staging checks, starting the
agent's Python on the phone, following its events, collecting and storing the result.
Sweeps keep one warm agent waiting per phone (device_agent/standby.py); on one phone each
repetition also drives the same sweep with a new agent Python per run (`warm_agent=False`),
interleaved, for the table with and without.
--write replaces the "## Sweep scheduling" section of the given file.
"""

from __future__ import annotations

import argparse
import io
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ADBUTILS_ADB_PATH", "/usr/bin/adb")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from report import cpu_model, replace_section  # noqa: E402  (bench/ is the script's folder)

from dashboard.testing import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Sweep scheduling"
PHONES = (("b-pixel-a", "pixel7"), ("b-pixel-b", "pixel7"), ("b-galaxy", "galaxy_s23"),
          ("b-nokia", "nokia23"))
SWEEP = """\
name: bench-{n}-{rep}
base: {base}
variants: [method2]
set:
  name: bench-sweep
  model.alpha: 0.25
  model.input_size: 96
  model.weights: none
  data.train_per_class: 6
  data.test_per_class: 4
  training.head_epochs: 1
  training.finetune_epochs: 1
grid: {{data.seed: {seeds}}}
health: {{min_battery: 5, cooldown_s: 0}}
"""


def one_sweep(work: Path, n: int, rep: int, runs_per_phone: int, serials: list[str],
              warm: bool = True) -> dict:
    from rich.console import Console

    from orchestrator.runner.pipeline import default_builder
    from orchestrator.store import repo
    from orchestrator.store.db import open_session
    from orchestrator.sweep.display import SweepDisplay
    from orchestrator.sweep.driver import DriveOptions, drive
    from orchestrator.sweep.queue import create_sweep

    tag = f"{rep}-{'warm' if warm else 'cold'}"
    path = work / f"sweep-{n}-{tag}.yaml"
    path.write_text(SWEEP.format(n=n, rep=tag, base=REPO / "experiments" / "paper_table1.yaml",
                                 seeds=list(range(runs_per_phone))))
    url = f"sqlite:///{work / 'orch.db'}"
    with open_session(url) as s:
        sw = create_sweep(session=s, path=path, cli_sets=[], devices=serials[:n])
    options = DriveOptions(builder=default_builder(work / "cache"), warm_agent=warm)
    with SweepDisplay(Console(file=io.StringIO()), live=False) as display:
        start = time.perf_counter()
        status = drive(url=url, sweep_id=sw.id, display=display, options=options)
        wall = time.perf_counter() - start
    with open_session(url) as s:
        runs = repo.list_runs(session=s, sweep_id=sw.id)
    assert status.counts["finished"] == len(runs) == n * runs_per_phone, status.counts
    k = len(runs)
    compute = sum(float(r.result["timing"]["total"]) for r in runs)
    host_wall = sum(float(r.timing["wall"]) for r in runs)  # the pipeline's own span
    build = sum(float(r.timing.get("build", 0)) for r in runs)
    stage = sum(float(r.timing.get("stage", 0)) for r in runs)
    return {"phones": n, "rep": rep, "warm": warm, "runs": k, "wall_s": round(wall, 3),
            "agent_compute_s": round(compute, 3),
            "overhead_per_run_s": round((wall * n - compute) / k, 3),
            # where it goes, per run: outside the pipeline (queue, gates, threads) …
            "queue_gate_s": round((wall * n - host_wall) / k, 3),
            # … staging checks and the job push, and the rest of the pipeline (build cache
            # lookup, launching the agent's Python, following its events, collecting).
            "stage_s": round(stage / k, 3),
            "launch_follow_s": round((host_wall - stage - build - compute) / k, 3),
            "build_lookup_s": round(build / k, 3),
            "load": round(os.getloadavg()[0], 1)}


def agent_import_s(serial: str, reps: int) -> list[float]:
    """How long the phone's Python takes to import the agent (numpy, LiteRT): the part of a
    launch the agent's own clock does not see. Needs the agent staged (after a sweep)."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.address import DeviceAddress

    phone = Phone(DeviceAddress.parse(serial))
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        phone.run("cd /data/local/tmp/orch/agent/* && PYTHONPATH=. python3 -c "
                  "'import device_agent.run'")
        t1 = time.perf_counter()
        phone.run("true")
        out.append((t1 - t0) - (time.perf_counter() - t1))  # minus one shell round trip
    return out


def run(reps: int, runs_per_phone: int) -> tuple[list[dict], list[float], float]:
    from orchestrator.datasets.synth import synthesize
    from orchestrator.settings import get_settings
    from orchestrator.sim import manager
    from orchestrator.spec import load_spec
    from orchestrator.store import repo  # noqa: F401  (store modules before threads)

    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    port = free_port()
    os.environ.update(ORCH_HOME=str(work), ORCH_ADB_PORT=str(port))
    get_settings.cache_clear()
    adb = os.environ["ADBUTILS_ADB_PATH"]
    subprocess.run([adb, "-P", str(port), "start-server"], capture_output=True, check=True)
    photos = work / "photos"
    synthesize(photos, per_class=10, size=96, names=["cat", "dog"])
    started = []
    try:
        for name, profile in PHONES:
            started.append(manager.start_phone(profile=profile, name=name, photos=photos,
                                               home=work))
        serials = [p.serial for p in started]
        # Build once before timing: every timed run then finds its models in the cache.
        from orchestrator.runner.pipeline import default_builder

        spec = load_spec(REPO / "experiments" / "paper_table1.yaml", overrides=[
            "model.alpha=0.25", "model.input_size=96", "model.weights=none"])
        default_builder(work / "cache")(spec, "method2")
        rows = []
        for rep in range(reps):
            for n, warm in ((1, False), (1, True), (2, True), (4, True)):
                row = one_sweep(work, n, rep, runs_per_phone, serials, warm)
                print(json.dumps(row), flush=True)
                rows.append(row)
        return rows, agent_import_s(serials[0], 2 * reps), load
    finally:
        for p in started:
            manager.stop_phone(p.name, home=work)
        subprocess.run([adb, "-P", str(port), "kill-server"], capture_output=True)


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def report(all_rows: list[dict], imports: list[float], reps: int, runs_per_phone: int,
           load: float) -> str:
    rows = [r for r in all_rows if r.get("warm", True)]
    cold = [r for r in all_rows if not r.get("warm", True)]
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    loads = [r["load"] for r in rows]
    head = (f"{SECTION}\n\n`python bench/bench_sweep.py --reps {reps} --runs-per-phone "
            f"{runs_per_phone}`: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {nproc} cores "
            f"(`nproc`), {cpu_model()}, Python {platform.python_version()}; load average "
            f"{load:.1f} at the start, {min(loads):.1f}–{max(loads):.1f} during the runs "
            "(the machine is shared with other engineers' suites).\n\n"
            "Each sweep: the paper spec at alpha 0.25, input 96, no weights, 6 + 4 photos "
            "per class from each phone's gallery, 1 + 1 epochs, method 2; "
            f"{runs_per_phone} points per phone, one run at a time per phone, all phones at "
            "once, over a private adb server, models already built (cache hits). "
            "Overhead per run = (sweep wall × phones − Σ agent compute) / runs: each phone's "
            "lane time not spent in the agent's own work (result timing.total). It covers "
            "the queue claim, health sampling, staging checks (every file already there by "
            "hash; only job.json is pushed), starting the agent's Python on the phone, "
            "following its events (one health sample per epoch), collecting and storing. "
            f"Median of {reps} repetitions (min–max):\n\n")
    lines = ["| phones | runs | sweep wall s | Σ agent compute s | overhead per run s | "
             "overhead vs 1 phone | runs per minute |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    parts = ["| phones | queue, gates s | staging s | launch, follow, collect s | "
             "build cache lookup s |", "| ---: | ---: | ---: | ---: | ---: |"]
    base = statistics.median(r["overhead_per_run_s"] for r in rows if r["phones"] == 1)
    for n in (1, 2, 4):
        sel = [r for r in rows if r["phones"] == n]
        over = [r["overhead_per_run_s"] for r in sel]
        rpm = [60 * r["runs"] / r["wall_s"] for r in sel]
        lines.append(f"| {n} | {sel[0]['runs']} | {med([r['wall_s'] for r in sel])} | "
                     f"{med([r['agent_compute_s'] for r in sel])} | {med(over)} | "
                     f"{statistics.median(over) / base:.2f}× | {med(rpm)} |")
        parts.append(f"| {n} | " + " | ".join(
            med([r[k] for r in sel]) for k in ("queue_gate_s", "stage_s", "launch_follow_s",
                                               "build_lookup_s")) + " |")
    per_run = {n: statistics.median(r["agent_compute_s"] / r["runs"] for r in rows
                                    if r["phones"] == n) for n in (1, 2, 4)}
    over = {n: statistics.median(r["overhead_per_run_s"] for r in rows if r["phones"] == n)
            for n in (1, 2, 4)}
    rpm = {n: statistics.median(60 * r["runs"] / r["wall_s"] for r in rows
                                if r["phones"] == n) for n in (1, 2, 4)}
    local = statistics.median(r["queue_gate_s"] + r["stage_s"] for r in rows
                              if r["phones"] == 1)
    notes = (
        f"\n\nWith tiny runs the sweep is dominated by its fixed cost per run: "
        f"{over[1]:.2f} s of lane time on one phone against {per_run[1]:.2f} s of agent "
        "compute. A new agent's Python start on the phone (importing numpy and LiteRT, "
        f"before the agent's clock starts: {med(imports)} s on a virtual phone here) is "
        "paid between runs: as soon as a run's agent reports its end, the sweep starts the "
        "phone's next agent, which waits, warm, for the next job.json "
        "(device_agent/standby.py), while the host collects the run, claims the next one, "
        "samples health and checks staging (when the import takes longer than that host "
        "work, as on this loaded machine, the rest of it is still waited for). Following a "
        "run costs one adb round trip per "
        "poll and no process start: the egress reader (orchestrator/read_once.py, the same "
        "isolated no-follow, bounded, printable-only read) is started once per run and "
        "answers each read over one adb shell stream. Polls come 0.1 s after events and "
        "after the last epoch, and back off by 1.5× per quiet poll to 0.5 s; the agent's "
        "liveness is asked only after 0.5 s without an event; epochs that arrive together "
        "share one health sample. Staging checks are two round trips (each staged folder "
        "is pruned and hashed in one command), handing over the job two (a mkdir that also "
        "lists the folder, then the push). The "
        f"queue, health gate and staging checks take {local:.2f} s. "
        f"Throughput still grows with phones ({rpm[1]:.0f} → {rpm[2]:.0f} → {rpm[4]:.0f} "
        "runs per minute for 1 → 2 → 4 phones), but this machine has "
        "2 cores for 4 virtual phones, the host process and other engineers' work: the "
        f"agent's own compute per run rises from {per_run[1]:.2f} s (1 phone) to "
        f"{per_run[4]:.2f} s (4 phones), and the per-run overhead by "
        f"{over[4] / over[1]:.2f}×, because every phone's Python, the adb server and the "
        "host's threads contend for the same CPUs. On real phones each agent has its own "
        "CPU; the host-side share (queue, gates, staging, following) is what remains.\n")
    warm1 = [r for r in rows if r["phones"] == 1]
    versus = ["| one phone | overhead per run s | launch, follow, collect s | "
              "queue, gates s | staging s | runs per minute |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, sel in (("a new agent Python per run", cold), ("one warm agent (default)", warm1)):
        if sel:
            versus.append(f"| {name} | " + " | ".join(
                med([r[k] for r in sel]) for k in ("overhead_per_run_s", "launch_follow_s",
                                                   "queue_gate_s", "stage_s"))
                + f" | {med([60 * r['runs'] / r['wall_s'] for r in sel])} |")
    if cold:
        c = statistics.median(r["overhead_per_run_s"] for r in cold)
        versus.append(f"\nThe warm agent takes the overhead per run on one phone from "
                      f"{c:.2f} s to {over[1]:.2f} s ({over[1] / c:.2f}×), repetitions "
                      "interleaved under the same load. The aim, under 1 s per run on one "
                      f"phone, is {'met' if over[1] < 1 else 'not met'} in this run, at a "
                      f"load average of {statistics.median(loads):.0f} on {nproc} cores.")
    return (head + "\n".join(lines) + "\n\nWhere the overhead goes, per run (median, "
            "min–max):\n\n" + "\n".join(parts)
            + "\n\nWith and without the warm agent (same sweeps, 1 phone):\n\n"
            + "\n".join(versus) + notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runs-per-phone", type=int, default=4)
    ap.add_argument("--write", type=Path, help=f"update this file's '{SECTION}' section")
    ap.add_argument("--json", type=Path, help="also write the raw rows here")
    ap.add_argument("--from-json", type=Path, help="render the report from rows written by "
                    "--json (with --reps and --runs-per-phone as they were) instead of running")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        rows, imports = saved["runs"], saved["agent_import_s"]
        load = saved.get("load_start", rows[0]["load"])
    else:
        rows, imports, load = run(args.reps, args.runs_per_phone)
    text = report(rows, imports, args.reps, args.runs_per_phone, load)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "agent_import_s": imports,
                                         "load_start": load}, indent=1))
    if args.write:
        replace_section(args.write, SECTION, text)


if __name__ == "__main__":
    main()
