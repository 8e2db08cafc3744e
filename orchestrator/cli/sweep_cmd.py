"""`orch sweep SWEEP.yaml | status ID | resume ID | cancel ID | list | worker`: parameters ×
phones.

`orch sweep FILE` is `orch sweep run FILE`: a first argument that is not a subcommand is
taken as a sweep file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from typer.core import TyperGroup

from orchestrator.cli.common import (
    DbOption,
    FormatOption,
    OutputFormat,
    SetOption,
    console,
    err_console,
    open_store,
    print_json,
    print_table,
    store_url,
)
from orchestrator.cli.sweep_worker_cmd import worker
from orchestrator.errors import RunError
from orchestrator.store import sweep_repo
from orchestrator.store.status import RunStatus, SweepState
from orchestrator.sweep.display import SweepDisplay, status_table
from orchestrator.sweep.status import SweepStatus


class _SweepGroup(TyperGroup):
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_SweepGroup, no_args_is_help=True,
                  help="Sweeps over parameters × phones: `orch sweep SWEEP.yaml`, then "
                       "status / resume / cancel / list.")

SweepId = Annotated[int, typer.Argument(help="Sweep id (see `orch sweep list`).")]
ReassignOption = Annotated[
    float | None,
    typer.Option("--reassign-after", help="Seconds a phone may be away before its runs move "
                 "to a phone of the same model (default: the sweep's reassign_after_s).",
                 show_default=False),
]


def _finish(status: SweepStatus, format: OutputFormat) -> None:
    """Print the final state; a sweep with failed runs exits with the run error code."""
    if format is OutputFormat.json:
        print_json(status)
    else:
        console.print(status_table(status))
        console.print(f"Table 1 of every point × phone: `orch results compare "
                      f"{status.experiment}`", soft_wrap=True)
    failed = [i for i in status.items if i.status == RunStatus.FAILED]
    if failed:
        first = failed[0]
        raise RunError(f"Sweep {status.sweep.id}: {len(failed)} of {len(status.items)} runs "
                       f"failed; run {first.run_id} ({first.label} on {first.phone}): "
                       f"{first.error or 'no reason given'}.",
                       hint=f"See `orch results show {first.run_id}`; `orch sweep resume "
                            f"{status.sweep.id} --retry-failed` runs the failed ones again.")
    if status.sweep.status == SweepState.INTERRUPTED:
        raise RunError(f"Sweep {status.sweep.id} stopped with runs left: {status.sweep.error}.",
                       hint=f"`orch sweep resume {status.sweep.id}` continues it.")


def _drive(sweep_id: int, db: str | None, reassign_after: float | None,
           format: OutputFormat) -> None:
    from orchestrator.sweep.driver import DriveOptions, drive

    with SweepDisplay(err_console) as display:
        status = drive(url=store_url(db), sweep_id=sweep_id, display=display,
                       options=DriveOptions(reassign_after_s=reassign_after))
    _finish(status, format)


@app.command("run")
def run_(
    sweep: Annotated[Path, typer.Argument(help="Sweep file (YAML); see experiments/sweep_*.")],
    set_: SetOption = None,
    devices: Annotated[list[str] | None, typer.Option(
        "--devices", help="Phones instead of the sweep's: names (alias, serial, model, "
        "SERIAL@HOST:PORT; comma-separated or repeated), `all`, or selector fields "
        "(model=Pixel*, sdk=>=30, manufacturer=…, servers=local,HOST:PORT).",
        show_default=False)] = None,
    reassign_after: ReassignOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the points and phones; queue and run nothing.")] = False,
    queue_only: Annotated[bool, typer.Option(
        "--queue-only", help="Queue the runs for `orch sweep worker`s (on this or other "
        "hosts) and return; no phone is asked. Named --devices get every point each; "
        "otherwise each point runs once, on the first matching phone free.")] = False,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Queue every point × phone of a sweep and run them, all phones at once."""
    from orchestrator.sweep.phones import parse_cli_devices
    from orchestrator.sweep.queue import create_sweep, preview_sweep

    chosen = parse_cli_devices(devices) if devices else None
    if dry_run:
        with open_store(db) as s:
            preview = preview_sweep(session=s, path=sweep, cli_sets=set_ or [],
                                    devices=chosen)
        if format is OutputFormat.json:
            print_json(preview)
        else:
            console.print(f"sweep {preview.name} → experiment {preview.experiment}: "
                          f"{len(preview.points)} points × {preview.repetitions} "
                          f"repetitions × {len(preview.phones)} phones = {preview.runs} "
                          "runs", soft_wrap=True)
            print_table(None, ["point (variant and overrides)"], [[p] for p in preview.points])
            print_table(None, ["phone"], [[p] for p in preview.phones])
        return
    if queue_only:
        from orchestrator.sweep.queue import queue_for_workers

        with open_store(db) as s:
            row = queue_for_workers(session=s, path=sweep, cli_sets=set_ or [],
                                    devices=chosen, reassign_after_s=reassign_after)
            runs = len(sweep_repo.list_items(session=s, sweep_id=row.id))
        if format is OutputFormat.json:
            print_json({"sweep": row, "runs": runs})
        else:
            console.print(f"sweep {row.id}: {runs} runs queued for workers (`orch sweep "
                          f"worker --db …` on each host; `orch sweep status {row.id}`)",
                          soft_wrap=True)
        return
    with open_store(db) as s:
        row = create_sweep(session=s, path=sweep, cli_sets=set_ or [], devices=chosen,
                           reassign_after_s=reassign_after)
    n, phones = row.spec["points"], len(row.spec["devices"])
    err_console.print(f"sweep {row.id}: {n} points × {phones} phones queued "
                      f"(`orch sweep status {row.id}`; `orch sweep resume {row.id}` "
                      "continues it if this process stops)", soft_wrap=True)
    _drive(row.id, db, reassign_after, format)


@app.command("resume")
def resume_(
    sweep_id: SweepId,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Also run the failed runs again (as new runs).")] = False,
    reassign_after: ReassignOption = None,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Continue a stopped sweep; finished runs are never repeated."""
    if retry_failed:
        from orchestrator.sweep.queue import requeue_failed

        with open_store(db) as s:
            n = requeue_failed(session=s, sweep_id=sweep_id)
        err_console.print(f"sweep {sweep_id}: {n} failed runs queued again")
    _drive(sweep_id, db, reassign_after, format)


@app.command("status")
def status_(
    sweep_id: SweepId,
    watch: Annotated[bool, typer.Option("--watch", "-w",
                                        help="Refresh until the sweep ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.",
                                            min=0.1, max=3600)] = 2.0,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Per phone: runs done / running / queued / failed, and what each is on now."""
    from orchestrator.sweep.status import sweep_status

    def read() -> SweepStatus:
        with open_store(db) as s:
            return sweep_status(session=s, sweep_id=sweep_id)

    status = read()
    if format is OutputFormat.json:
        print_json(status)
        return
    if not watch:
        console.print(status_table(status))
        return
    if not console.is_terminal:  # a log gets the final table only
        while status.driver == "running":
            time.sleep(interval)
            status = read()
        console.print(status_table(status))
        return
    with Live(status_table(status), console=console, auto_refresh=False) as live:
        while status.driver == "running":
            time.sleep(interval)
            status = read()
            live.update(status_table(status), refresh=True)


@app.command("cancel")
def cancel_(
    sweep_id: SweepId,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Cancel queued runs and ask running agents to stop."""
    from orchestrator.sweep.cancel import cancel_sweep

    with open_store(db) as s:
        out = cancel_sweep(session=s, sweep_id=sweep_id)
    if format is OutputFormat.json:
        print_json(out)
        return
    if out.already:
        console.print(f"Sweep {sweep_id} is already {out.already}.")
        return
    console.print(f"Sweep {sweep_id} cancelled: {len(out.queued)} queued runs cancelled, "
                  f"{len(out.stopped)} running agents asked to stop"
                  + (f"; {out.driver} records their end" if out.driver else "") + ".",
                  soft_wrap=True)
    for run_id, why in out.unreachable.items():
        err_console.print(f"run {run_id}: its phone did not answer ({why}); its agent may "
                          "still be training", soft_wrap=True)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="At most this many sweeps, newest first.",
                                       min=1, max=1_000_000)] = 20,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Sweeps, newest first, with their run counts."""
    from orchestrator.store import sweep_repo
    from orchestrator.sweep.status import sweep_status

    with open_store(db) as s:
        rows = [sweep_status(session=s, sweep_id=sw.id)
                for sw in sweep_repo.list_sweeps(session=s, limit=limit)]
    if format is OutputFormat.json:
        print_json([{"sweep": r.sweep, "experiment": r.experiment, "driver": r.driver,
                     "counts": r.counts} for r in rows])
        return
    if not rows:
        console.print("No sweeps yet. Start one with `orch sweep SWEEP.yaml`.")
        return
    print_table(None, ["sweep", "name", "experiment", "status", "done", "running", "queued",
                       "failed", "created"],
                [(r.sweep.id, r.sweep.name, r.experiment,
                  r.sweep.status + (" (stalled)" if r.driver == "stalled" else ""),
                  r.counts["finished"], r.counts["running"], r.counts["queued"],
                  r.counts["failed"], r.sweep.created.strftime("%Y-%m-%d %H:%M"))
                 for r in rows])


app.command("worker")(worker)
