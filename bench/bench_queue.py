"""The workers' queue at scale: claims per second with 1, 4 and 16 worker processes on one
PostgreSQL (and SQLite for comparison), and the store's size per 10,000 runs.

    python bench/bench_queue.py --pg URL [--runs 2000] [--reps 3] [--write BENCHMARKS.md]

Each worker is its own process with its own engine and phone (a device row), as on a farm;
a claim is what `orch sweep worker` does for each run: `worker_repo.claim` (a locked
SELECT … SKIP LOCKED / BEGIN IMMEDIATE, then the item, run and sweep updates) and then the
run marked finished. Timing starts when every worker is connected. The size is measured
after queuing and finishing 10,000 runs with the result, timing and 25 epochs × 8 metric
points each that a real run stores (`pg_database_size`; SQLite: the file after a checkpoint).
--write replaces the "## Queue and store at scale" section of the given file.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import queue
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import cpu_model, replace_section  # noqa: E402  (bench/ is the script's folder)

SECTION = "## Queue and store at scale"
WORKERS = (1, 4, 16)


def _queue(url: str, runs: int) -> int:
    from sqlalchemy import insert
    from sqlmodel import Session

    from orchestrator.store import repo, sweep_repo, worker_repo
    from orchestrator.store.db import make_engine
    from orchestrator.store.sweep_tables import SweepItem
    from orchestrator.store.tables import Run

    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        exp = repo.upsert_experiment(session=s, name="bench", spec={}, spec_hash="h")
        sw = sweep_repo.create_sweep(session=s, name="bench", experiment_id=exp.id,
                                     spec={"queue": worker_repo.POOL})
    with engine.begin() as c:
        ids = c.execute(insert(Run).returning(Run.id), [
            {"experiment_id": exp.id, "variant": f"p{i}", "status": "queued",
             "sweep_id": sw.id, "params": {"sweep_point": {"data.seed": i}}, "timing": {},
             "result": {}, "progress": {}, "delegate_info": {}} for i in range(runs)]
        ).scalars().all()
        c.execute(insert(SweepItem), [
            {"sweep_id": sw.id, "run_id": rid, "run_ids": [rid], "label": f"p{i}",
             "variant": "method2", "point": {"data.seed": i}, "repetition": 0,
             "spec": {}, "phone": "", "attempts": 0, "health_wait": 0.0}
            for i, rid in enumerate(ids)])
    engine.dispose()
    return sw.id


def _worker(url: str, k: int, sweep_id: int, ready, go, out) -> None:
    from orchestrator.store import repo, worker_repo
    from orchestrator.store.db import open_session

    with open_session(url) as s:
        dev = repo.upsert_device(session=s, serial=f"BENCH{k}", model="Pixel 7")
        w = worker_repo.register(session=s, name=f"bench:{k}", host="bench",
                                 devices=[dev.serial], lease_s=60)
        ready.release()
        go.wait()
        n = 0
        while (item := worker_repo.claim(session=s, worker_id=w.id, sweep_ids=[sweep_id],
                                         device_id=dev.id, phone=dev.serial,
                                         model=dev.model)) is not None:
            repo.transition_run(session=s, run_id=item.run_id, to="finished")
            n += 1
        out.put((n, time.perf_counter()))


def claims_per_s(url: str, workers: int, runs: int) -> float:
    sweep_id = _queue(url, runs)
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, k, sweep_id, ready, go, out))
             for k in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    t0 = time.perf_counter()
    go.set()
    got: list[tuple[int, float]] = []
    while len(got) < len(procs):
        try:
            got.append(out.get(timeout=5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"a worker failed (exit codes {dead})") from None
    for p in procs:
        p.join(60)
    total = sum(n for n, _ in got)
    assert total == runs, f"{total} claims for {runs} runs"
    return total / (max(t for _, t in got) - t0)


def _fresh_pg(server: str):
    """A new database on the server; (its URL, drop())."""
    import psycopg

    name = f"orch_bench_{uuid.uuid4().hex[:8]}"
    plain = server.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    base = server.rpartition("/")[0]

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return f"{base}/{name}", drop


def store_size(url: str, runs: int = 10_000) -> int:
    """Bytes of a store holding `runs` finished runs as a sweep leaves them."""
    from sqlalchemy import insert, text, update

    from orchestrator.store.db import make_engine
    from orchestrator.store.tables import Metric, Run

    sweep_id = _queue(url, runs)
    engine = make_engine(url)
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "phase", "epoch_seconds",
            "lr", "grad_norm")
    now = datetime.now(UTC)
    with engine.begin() as c:
        ids = c.execute(text("SELECT id FROM run WHERE sweep_id = :s"),
                        {"s": sweep_id}).scalars().all()
        c.execute(update(Run).where(Run.sweep_id == sweep_id).values(
            status="finished", accuracy=0.93, started=now, finished=now,
            timing={"decode": 9.1, "features": 20.3, "train": 40.2, "eval": 2.1,
                    "total": 74.6, "train_per_epoch": [1.6] * 25},
            result={"accuracy": 0.93, "per_class_accuracy": {"cat": 0.92, "dog": 0.94},
                    "epochs": [{"epoch": e, "test_acc": 0.9} for e in range(1, 26)]}))
        for chunk in range(0, len(ids), 1000):
            c.execute(insert(Metric), [
                {"run_id": rid, "key": k, "step": e, "value": 0.5, "is_nan": False,
                 "time": now} for rid in ids[chunk:chunk + 1000] for e in range(1, 26)
                for k in keys])
    with engine.connect() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("CHECKPOINT"))
            size = c.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        else:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            size = Path(engine.url.database).stat().st_size
    engine.dispose()
    return int(size)


def plan(capacity: float, size_10k: int) -> list[str]:
    """A farm of 100 phones on 10 hosts, sized with the figures just measured."""
    runs_per_s = 100 / 60  # every phone finishing a one-minute run (short for real training)
    per_day_mb = runs_per_s * 86_400 / 10_000 * size_10k / 1e6
    return [
        "A plan for 100 phones on 10 hosts, with these figures:", "",
        "- One PostgreSQL for the lab; on each host `orch sweep worker --db postgresql://… "
        "--lease 30` beside its 10 phones, and sweeps queued from anywhere with `orch sweep "
        "FILE --queue-only`.",
        f"- Claims: 100 phones that each finish a one-minute run ask for "
        f"{runs_per_s:.1f} claims/s; the queue took {capacity:.0f} claims/s with 16 workers "
        f"here ({capacity / runs_per_s:.0f}× that) on 2 shared cores. Heartbeats add one "
        "write per host every 10 s; ingestion of events is per run and epoch, as on one "
        "host.",
        "- Connections: each worker holds a session per phone plus its heartbeat, at most "
        "15 from SQLAlchemy's pool; 10 hosts need up to 150, over PostgreSQL's default "
        "`max_connections` of 100: raise it to 200 (or put PgBouncer in front).",
        f"- Size: at that rate the store grows by about {per_day_mb:,.0f} MB a day "
        f"({size_10k / 1e6:.0f} MB per 10,000 runs, metrics included): a PostgreSQL "
        "volume sized in hundreds of GB, or old metrics archived; at 10,000 runs the "
        "dashboard's experiment and list pages already take hundreds of ms (\"Dashboard at "
        "scale\"), so a farm of this size wants them paged or summarized before it grows "
        "further.",
        "- A host that dies: its runs go back to the queue 30 s after its last heartbeat "
        "and the other hosts' phones that match the sweep take them; its own phones' "
        "agents are stopped when those phones are next used. SQLite stays the store of a "
        "single host (one writer at a time).", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", required=True, help="a PostgreSQL server URL (a database on it "
                    "is created and dropped per measurement)")
    ap.add_argument("--runs", type=int, default=2000, help="runs queued per measurement")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size-runs", type=int, default=10_000, help="runs stored for the "
                    "size figure (reported per 10,000, scaled linearly)")
    ap.add_argument("--write", type=Path)
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    rates: dict[tuple[str, int], list[float]] = {}
    for rep in range(a.reps):
        for n in WORKERS:
            for kind in ("postgresql", "sqlite"):
                if kind == "postgresql":
                    url, drop = _fresh_pg(a.pg)
                else:
                    folder = tempfile.mkdtemp()
                    url, drop = f"sqlite:///{folder}/q.db", (lambda: None)
                try:
                    r = claims_per_s(url, n, a.runs)
                finally:
                    drop()
                rates.setdefault((kind, n), []).append(r)
                print(f"rep {rep} {kind} {n} workers: {r:.0f} claims/s", flush=True)
    pg_url, drop = _fresh_pg(a.pg)
    try:
        pg_size = store_size(pg_url, a.size_runs) * 10_000 // a.size_runs
    finally:
        drop()
    sq_size = store_size(f"sqlite:///{tempfile.mkdtemp()}/s.db", a.size_runs) * 10_000 \
        // a.size_runs
    print(f"size per 10,000 runs: postgresql {pg_size / 1e6:.1f} MB, sqlite "
          f"{sq_size / 1e6:.1f} MB", flush=True)

    def cell(xs: list[float]) -> str:
        return f"{statistics.median(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})"

    lines = [SECTION, "",
             f"Machine: `nproc` {os.cpu_count()} ({cpu_model()}), Python "
             f"{platform.python_version()}, PostgreSQL from Debian's package on loopback "
             f"(the tests' throwaway server: fsync off), {datetime.now(UTC):%Y-%m-%d}; "
             f"1-minute load average {load0:.1f} at the start and {os.getloadavg()[0]:.1f} "
             "at the end (shared with other work). Produced by `python bench/bench_queue.py "
             f"--pg URL --runs {a.runs} --size-runs {a.size_runs} --write BENCHMARKS.md`: "
             f"{a.runs:,} queued runs per measurement, "
             f"{a.reps} repetitions, median (min–max).", "",
             "Queue claims per second (each: claim a run, then mark it finished; every "
             "worker a process of its own with its own connection):", "",
             "| workers | PostgreSQL claims/s | SQLite file claims/s |", "| --- | --- | --- |"]
    for n in WORKERS:
        lines.append(f"| {n} | {cell(rates[('postgresql', n)])} | "
                     f"{cell(rates[('sqlite', n)])} |")
    scaled = (f" (measured with {a.size_runs:,} runs, scaled linearly, so the empty "
              "database's own few MB are counted several times over)"
              if a.size_runs != 10_000 else "")
    lines += ["", f"Store size per 10,000 finished sweep runs (queue item, run row with its "
              f"result and timing, 25 epochs × 8 metric points){scaled}: PostgreSQL "
              f"{pg_size / 1e6:.0f} MB, SQLite {sq_size / 1e6:.0f} MB.", ""]
    lines += plan(statistics.median(rates[("postgresql", 16)]), pg_size)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        replace_section(a.write, SECTION, text)


if __name__ == "__main__":
    main()
