"""`orch sweep worker`: serve the shared queue of workers' sweeps with this host's phones
until stopped (Ctrl-C or SIGTERM: the lease ends and the others take over its runs)."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from orchestrator.cli.common import (
    DbOption,
    FormatOption,
    OutputFormat,
    console,
    err_console,
    print_json,
    store_url,
)


def worker(
    devices: Annotated[list[str] | None, typer.Option(
        "--devices", help="This host's phones to serve: names (comma-separated or "
        "repeated) or selector fields (model=Pixel*, sdk=>=30); default: every phone the "
        "local adb server reaches.", show_default=False)] = None,
    lease: Annotated[float, typer.Option(
        "--lease", min=3.0, help="Seconds without a heartbeat after which the other "
        "workers take this one for dead and queue its runs again.")] = 30.0,
    exit_when_idle: Annotated[bool, typer.Option(
        "--exit-when-idle", help="Leave once no workers' sweep has runs left.")] = False,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Claim and run queued runs of `orch sweep FILE --queue-only` sweeps on this host's
    phones, beside other hosts' workers sharing the store (PostgreSQL for many hosts)."""
    from orchestrator.sweep.display import SweepDisplay
    from orchestrator.sweep.host_worker import WorkerOptions, serve
    from orchestrator.sweep.phones import parse_cli_devices

    opts = WorkerOptions(devices=parse_cli_devices(devices) if devices else None,
                         lease_s=lease, exit_when_idle=exit_when_idle)
    signal.signal(signal.SIGTERM, lambda *_: opts.stop.set())
    with SweepDisplay(err_console, live=False) as display:
        try:
            summary = serve(url=store_url(db), display=display, options=opts)
        except KeyboardInterrupt:
            opts.stop.set()
            raise
    if format is OutputFormat.json:
        print_json(summary)
    else:
        console.print(f"worker {summary.name} left: {summary.runs} runs taken, "
                      f"{summary.handed_back} runs of dead workers queued again.")
