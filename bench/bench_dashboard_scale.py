"""Dashboard latency at farm scale on both stores: 10,000 runs and 2,000,000 metric points
in SQLite and in PostgreSQL, p50 / p95 per page.

    python bench/bench_dashboard_scale.py --pg URL [--runs 10000] [--requests 50]
        [--repeats 2] [--write BENCHMARKS.md]

The store is filled by bench_dashboard.py's bulk fill (25 epochs × 8 metric keys per run,
10 phones, health samples and ledger rows), the server is `orch dashboard` in its own
process, the client httpx with keep-alive on loopback (bench_dashboard.time_pages).
--write replaces the "## Dashboard at scale" section of the given file.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_dashboard as bd  # noqa: E402  (bench/ is the script's folder)
from report import cpu_model, replace_section  # noqa: E402

SECTION = "## Dashboard at scale"


def pages(runs: int) -> dict[str, list[str]]:
    rng = random.Random(1)
    ids = [rng.randint(1, runs) for _ in range(50)]
    return {
        "experiment page (Table 1 + charts + 50 runs)": ["/experiments/1"],
        f"experiment page, runs list page {runs // 100 + 1} of {-(-runs // 50)}":
            [f"/experiments/1?page={runs // 100 + 1}"],
        "run page (curves, timing, health, audit)": [f"/runs/{i}" for i in ids],
        "runs list, sorted by accuracy": ["/runs?sort=accuracy"],
        "experiments list": ["/"],
        "devices list": ["/devices"],
        "API: one run with metrics and ledger": [f"/api/runs/{i}" for i in ids],
    }


def measure(url: str, runs: int, requests: int, repeats: int) -> tuple[dict, float, dict]:
    bd.RUNS = runs
    t = time.perf_counter()
    sizes = bd.fill(url)
    fill_s = time.perf_counter() - t
    print(f"{url.split(':')[0]}: filled {sizes} in {fill_s:.0f} s", flush=True)
    proc, base = bd.start_server(url)
    try:
        lat = bd.time_pages(base, pages(runs), requests, repeats)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return lat, fill_s, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", required=True, help="a PostgreSQL server URL (a database on it "
                    "is created and dropped)")
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=50, help="requests per page per repeat")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--write", type=Path)
    a = ap.parse_args()
    import psycopg

    load0 = os.getloadavg()[0]
    results = {}
    folder = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    results["SQLite"] = measure(f"sqlite:///{folder / 'd.db'}", a.runs, a.requests, a.repeats)
    name = f"orch_dash_{uuid.uuid4().hex[:8]}"
    plain = a.pg.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        results["PostgreSQL"] = measure(f"{a.pg.rpartition('/')[0]}/{name}", a.runs,
                                        a.requests, a.repeats)
    finally:
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    sizes = results["SQLite"][2]
    lines = [SECTION, "",
             f"Machine: `nproc` {os.cpu_count()} ({cpu_model()}), Python "
             f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}; 1-minute load "
             f"average {load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
             "(shared with other work). Store: "
             f"{sizes['runs']:,} runs on {bd.DEVICES} phones, {sizes['metrics']:,} metric "
             f"points, {sizes['samples']:,} health samples, {sizes['transfers']:,} ledger "
             "rows, bulk-filled (SQLite "
             f"{results['SQLite'][1]:.0f} s, PostgreSQL {results['PostgreSQL'][1]:.0f} s); "
             "PostgreSQL is Debian's package on loopback (the tests' throwaway server, "
             f"fsync off). {a.requests} requests per page per repetition, {a.repeats} "
             "repetitions; produced by `python bench/bench_dashboard_scale.py --pg URL "
             "--write BENCHMARKS.md`.", "",
             "| page | SQLite p50 ms | SQLite p95 ms | PostgreSQL p50 ms | PostgreSQL p95 ms |",
             "| --- | ---: | ---: | ---: | ---: |"]
    sq, pg = results["SQLite"][0], results["PostgreSQL"][0]
    for page in sq:
        cells = []
        for lat in (sq, pg):
            cells.append(f"{statistics.median(r[0] for r in lat[page]):.0f}")
            cells.append(f"{max(r[1] for r in lat[page]):.0f}")
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    worst = {k: max(r[1] for reps in v[0].values() for r in reps) for k, v in results.items()}
    lines += ["", f"Worst p95 over the pages: SQLite {worst['SQLite']:.0f} ms, PostgreSQL "
              f"{worst['PostgreSQL']:.0f} ms (p50: median of the repetitions; p95: the worst "
              "repetition).", "",
              "The experiment page reads a fixed amount whatever the number of runs: its runs "
              "list is paged (50 a page, with the count and page links; a page deep in the "
              "list costs what the first does); Table 1's cells (newest finished run of each "
              "variant × device, and how many runs) come from an index over (experiment, "
              "variant, device, status, accuracy) (store schema step 5), then the ~20 chosen "
              "rows; the spread over finished repeats (which parses every finished run's "
              "timing) is kept by the dashboard and computed again only when the finished "
              "runs change (one index-only statement checks). The experiments and devices "
              "lists still aggregate over every run.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        replace_section(a.write, SECTION, text)


if __name__ == "__main__":
    main()
