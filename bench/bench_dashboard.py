"""Dashboard latency with 1,000 runs and 200,000 metric points (p50 / p95 over repetitions).

    python bench/bench_dashboard.py [--requests 200] [--repeats 3] [--write]

Fills a SQLite store with bulk inserts, starts the real server (`orch dashboard`, its own
process), and times pages over HTTP with keep-alive. For comparison it times what a user
would otherwise do for the same figures: `orch results compare --format json` and
`orch results show RUN --format json` (a new process each), and, in-process, the Table 1
query both of them use (queries.table1).
`--write` replaces the `## Dashboard` section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from report import cpu_model  # bench/ is the script's folder
from sqlalchemy import insert
from sqlmodel import Session

from dashboard import create_app
from dashboard.testing import free_port, make_client
from orchestrator.store import queries
from orchestrator.store.db import make_engine
from orchestrator.store.tables import Device, DeviceSample, Experiment, Metric, Run, Transfer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RUNS, EPOCHS, DEVICES = 1000, 25, 10
KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "phase", "epoch_seconds", "lr",
        "grad_norm")  # 1,000 runs × 25 epochs × 8 keys = 200,000 points


def fill(url: str, seed: int = 0) -> dict[str, int]:
    """A store of RUNS runs of one experiment on DEVICES phones, with bulk inserts."""
    rng = random.Random(seed)
    engine = make_engine(url)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    spec = {"name": "paper-table1", "variants": {"method1": {"finetune_from": None},
                                                 "method2": {"finetune_from": "conv_pw_11"}},
            "training": {"batch_size": 4, "head_epochs": 12, "finetune_epochs": 13}}
    with engine.begin() as c:
        c.execute(insert(Experiment), [{"name": "paper-table1", "spec": spec, "spec_hash": "h",
                                        "created": t0}])
        c.execute(insert(Device), [
            {"serial": f"SER{i:04d}", "model": f"Phone {i}", "manufacturer": "Acme",
             "sdk": 30 + i % 5, "release": str(11 + i % 5), "soc": f"SoC{i}",
             "abi": "arm64-v8a", "launcher": "runas", "facts": {"free_mb": 1000 * i},
             "first_seen": t0, "last_seen": t0} for i in range(1, DEVICES + 1)])
        runs, metrics, samples, transfers = [], [], [], []
        for rid in range(1, RUNS + 1):
            variant = "method1" if rid % 2 else "method2"
            dev = 1 + rid % DEVICES
            acc = rng.uniform(0.85, 0.99)
            per_epoch = [rng.uniform(0.2, 3.0) for _ in range(EPOCHS)]
            timing = {"decode": rng.uniform(5, 15), "features": rng.uniform(10, 30),
                      "train": sum(per_epoch), "eval": rng.uniform(1, 4),
                      "train_per_epoch": per_epoch}
            timing["total"] = timing["decode"] + timing["features"] + timing["train"] + 3
            start = t0 + timedelta(minutes=3 * rid)
            runs.append({
                "id": rid, "experiment_id": 1, "device_id": dev, "variant": variant,
                "status": "finished" if rid % 37 else "failed",
                "params": {"finetune_from": spec["variants"][variant]["finetune_from"]},
                "created": start, "started": start, "finished": start + timedelta(minutes=2),
                "accuracy": acc, "timing": timing, "delegate_requested": "nnapi",
                "delegate_used": "nnapi" if dev % 3 else "xnnpack", "agent_version": "0.1.0",
                "interpreter": "tflite_runtime", "launcher": "runas",
                "result": {"accuracy": acc, "per_class_accuracy": {"cat": acc, "dog": acc},
                           "epochs": [{"epoch": e + 1, "phase": "head" if e < 12 else
                                       "finetune", "test_acc": acc} for e in range(EPOCHS)],
                           "peak_memory_mb": 300.0},
                "events_seen": EPOCHS + 4, "progress": {}, "delegate_info": {}})
            for e in range(1, EPOCHS + 1):
                values = (1 / e, acc - 0.3 / e, 1.2 / e, acc - 0.35 / e,
                          0.0 if e <= 12 else 1.0, per_epoch[e - 1], 1e-3, rng.random())
                metrics += [{"run_id": rid, "key": k, "step": e, "value": v, "is_nan": False,
                             "time": start} for k, v in zip(KEYS, values, strict=True)]
                samples.append({"run_id": rid, "device_id": dev, "step": e,
                                "battery": 90 - e, "temperature": 30 + e / 3, "time": start})
            transfers += [{"run_id": rid, "device_id": dev, "direction": d, "kind": k,
                           "device_path": f"/data/local/tmp/orch/{k}/{rid}", "bytes": b,
                           "time": start}
                          for d, k, b in (("push", "model", 1_800_000), ("push", "job", 900),
                                          ("push", "agent", 40_000), ("skipped", "model", 0),
                                          ("pull", "metrics", 9_000), ("pull", "metrics", 3_000),
                                          ("refused", "other", 0))]
        c.execute(insert(Run), runs)
        c.execute(insert(Metric), metrics)
        c.execute(insert(DeviceSample), samples)
        c.execute(insert(Transfer), transfers)
    engine.dispose()
    return {"runs": len(runs), "metrics": len(metrics), "samples": len(samples),
            "transfers": len(transfers)}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def time_pages(base: str, paths: dict[str, list[str]], n: int, repeats: int
               ) -> dict[str, list[tuple[float, float, float]]]:
    """name → [(p50, p95, max) in ms] per repetition; each path list is cycled through."""
    out: dict[str, list[tuple[float, float, float]]] = {k: [] for k in paths}
    with httpx.Client(base_url=base, timeout=30) as client:
        for urls in paths.values():  # warm up: first render compiles templates
            for u in urls[:5]:
                assert client.get(u).status_code == 200, u
        for _ in range(repeats):
            for name, urls in paths.items():
                ms = []
                for i in range(n):
                    t = time.perf_counter()
                    r = client.get(urls[i % len(urls)])
                    ms.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
                out[name].append((pct(ms, 0.5), pct(ms, 0.95), max(ms)))
    return out


def time_cli(args: list[str], env: dict[str, str], repeats: int) -> list[float]:
    ms = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        ms.append((time.perf_counter() - t) * 1000)
        assert r.returncode == 0, r.stderr
    return ms


def time_inproc(fn, repeats: int) -> list[float]:
    ms = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    return ms


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "dashboard", "--port",
                             str(port), "--db", url], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/static/app.css", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the dashboard did not start: " + proc.stderr.read())


def machine(load_start: float) -> str:
    cpu = cpu_model()
    return (f"`nproc` {os.cpu_count()} ({cpu}), Python {platform.python_version()}, "
            f"SQLite file store, {datetime.now(UTC):%Y-%m-%d}; 1-minute load average "
            f"{load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
            "(the machine is shared with other work)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per page per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    a = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / "dashboard_bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    t = time.perf_counter()
    sizes = fill(url)
    fill_s = time.perf_counter() - t
    print(f"filled {sizes} in {fill_s:.1f} s", flush=True)

    rng = random.Random(1)
    run_ids = [rng.randint(1, RUNS) for _ in range(50)]
    pages = {
        "experiment page (Table 1 + charts + 50 runs)": ["/experiments/1"],
        "run page (curves, timing, health, audit)": [f"/runs/{i}" for i in run_ids],
        "runs list, sorted by accuracy": ["/runs?sort=accuracy"],
        "experiments list": ["/"],
        "devices list": ["/devices"],
        "compare page, 5 runs": [f"/compare?run={i}&run={i + 1}&run={i + 2}&run={i + 3}"
                                 f"&run={i + 4}" for i in range(1, 900, 97)],
        "API: one run with metrics and ledger": [f"/api/runs/{i}" for i in run_ids],
    }
    load_start = os.getloadavg()[0]
    proc, base = start_server(url)
    try:
        lat = time_pages(base, pages, a.requests, a.repeats)
    finally:
        proc.terminate()
        proc.wait(timeout=15)

    env = {**os.environ, "ORCH_DB": url}
    cli_compare = time_cli(["results", "compare", "paper-table1", "--format", "json"], env, 5)
    cli_show = time_cli(["results", "show", str(run_ids[0]), "--format", "json"], env, 5)
    engine = make_engine(url)
    with Session(engine) as s:
        new = time_inproc(lambda: queries.table1(session=s, experiment="paper-table1"), 20)
    # The app's own cost, without the network or a second process: the fastest of many
    # in-process requests is what a page costs when the machine is not busy with others.
    with make_client(create_app(url, engine=engine)) as client:
        inproc = {name: time_inproc(lambda u=urls[0]: client.get(u), 100)
                  for name, urls in pages.items() if name.startswith(("experiment page",
                                                                       "run page"))}
    engine.dispose()

    lines = ["## Dashboard", "",
             f"Machine: {machine(load_start)}. Store: {sizes['runs']:,} runs of one experiment on "
             f"{DEVICES} phones, {sizes['metrics']:,} metric points, "
             f"{sizes['samples']:,} health samples, {sizes['transfers']:,} ledger rows "
             f"(bulk-filled in {fill_s:.1f} s). Server: `orch dashboard` in its own process "
             f"(uvicorn, one worker); client: httpx with keep-alive on loopback, "
             f"{a.requests} requests per page per repetition, {a.repeats} repetitions. "
             "Produced by `python bench/bench_dashboard.py --write`.", "",
             "| page | p50 ms (per repetition) | p95 ms (per repetition) | max ms |",
             "| --- | --- | --- | --- |"]
    for name, reps in lat.items():
        lines.append(f"| {name} | {' / '.join(f'{r[0]:.1f}' for r in reps)} | "
                     f"{' / '.join(f'{r[1]:.1f}' for r in reps)} | "
                     f"{max(r[2] for r in reps):.0f} |")
    worst95 = max(r[1] for reps in lat.values() for r in reps)
    exp50 = statistics.median(r[0] for r in lat["experiment page (Table 1 + charts + 50 runs)"])
    run50 = statistics.median(r[0] for r in lat["run page (curves, timing, health, audit)"])
    lines += ["", f"Worst p95 over all pages and repetitions: {worst95:.1f} ms "
              f"(target: under 100 ms).", "",
              "What a user would otherwise run for the same figures (a new process each time, "
              "5 runs, median; mostly interpreter start-up and imports):", "",
              f"- `orch results compare paper-table1 --format json`: "
              f"{statistics.median(cli_compare):.0f} ms, i.e. "
              f"{statistics.median(cli_compare) / exp50:.0f}× the experiment page's p50 "
              f"(which also draws the charts and lists runs);",
              f"- `orch results show RUN --format json`: {statistics.median(cli_show):.0f} ms, "
              f"{statistics.median(cli_show) / run50:.0f}× the run page's p50.", "",
              f"In-process, the Table 1 rows over {RUNS:,} runs (20 repetitions, median): "
              f"`queries.table1` (for the CLI and the dashboard alike: one grouped query over the "
              f"`ix_run_cell` index picks each cell's run, then only those rows are read) "
              f"{statistics.median(new):.1f} ms.", "",
              "In-process requests (Starlette's TestClient, no network, 100 each): "
              + "; ".join(f"{name.split(' (')[0]} fastest {min(ms):.1f} ms, median "
                          f"{statistics.median(ms):.1f} ms" for name, ms in inproc.items())
              + ". The fastest is the page's own cost on an idle core; the gap to the "
              "medians and to the HTTP figures above is the machine's load.", ""]
    text = "\n".join(lines)
    print(text)
    if a.write:
        path = ROOT / "BENCHMARKS.md"
        current = path.read_text() if path.exists() else "# Benchmarks\n"
        pattern = re.compile(r"^## Dashboard\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(current):
            updated = pattern.sub(lambda _m: text + "\n", current)
        else:
            updated = current.rstrip("\n") + "\n\n" + text + "\n"
        path.write_text(updated)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
