"""`orch results list|show RUN|compare EXPERIMENT`: read the results store."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.cli.common import (
    DbOption,
    TableFormat,
    TableFormatOption,
    console,
    fmt_pct,
    fmt_photos,
    fmt_s,
    open_store,
    print_csv,
    print_json,
    print_run_heading,
    print_table,
)
from orchestrator.store import queries, repo
from orchestrator.store.public import CompareRow
from orchestrator.store.runtime_info import delegation_rows, runtime_label
from orchestrator.store.status import RunStatus

app = typer.Typer(help="Browse stored results.", no_args_is_help=True)


@app.command("list")
def list_(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    device: Annotated[str | None, typer.Option(
        help="Only runs on this phone (alias, serial or shown name).")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.",
                                       min=1, max=1_000_000)] = 50,
    db: DbOption = None,
    format: TableFormatOption = TableFormat.table,
) -> None:
    """List runs, newest first."""
    from orchestrator.store.labels import find_device_id
    from orchestrator.store.lease import ORPHANED, mark_orphans

    shown = (*repo.RUN_STATUSES, ORPHANED)
    if status is not None and status not in shown:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(shown)}",
                                 param_hint="--status")
    with open_store(db) as s:
        device_id = find_device_id(session=s, name=device) if device else None
        runs = repo.list_runs(session=s, experiment=experiment,
                              status=RunStatus.RUNNING if status == ORPHANED else status,
                              limit=limit,
                              device_id=device_id, variant=variant)
        runs = mark_orphans(session=s, runs=runs)
    if status == ORPHANED:
        runs = [r for r in runs if r.status == ORPHANED]
    if format is TableFormat.json:
        print_json(runs)
        return
    if format is TableFormat.csv:
        from orchestrator.store.export import RUN_COLUMNS, run_records, to_csv

        sys.stdout.write(to_csv(RUN_COLUMNS, run_records(runs)))
        return
    if not runs:
        console.print("No runs yet. Start one with `orch run SPEC --device DEV`.")
        return
    print_table(None, ["run", "experiment", "variant", "device", "status", "accuracy",
                       "train", "delegate", "finished"],
                [(r.id, r.experiment, r.variant, r.device or "local", r.status,
                  fmt_pct(r.accuracy), fmt_s(r.timing.get("train")), r.delegate_used,
                  r.finished.strftime("%Y-%m-%d %H:%M") if r.finished else None) for r in runs])
    for r in runs:  # what to do about a run no host follows
        if r.status in (ORPHANED, RunStatus.INTERRUPTED) and r.error:
            console.print(f"run {r.id} {r.status}: {r.error}", soft_wrap=True)


@app.command()
def show(
    run_id: Annotated[int, typer.Argument(help="Run id (see `orch results list`).")],
    db: DbOption = None,
    format: TableFormatOption = TableFormat.table,
) -> None:
    """Show one run: status, accuracy, timing, delegate and per-epoch metrics (csv: the
    per-epoch metrics)."""
    with open_store(db) as s:
        run = repo.get_run(session=s, run_id=run_id)
        series = queries.metric_series(session=s, run_id=run_id)
    if format is TableFormat.json:
        print_json({"run": run, "metrics": series})
        return
    epochs = sorted({step for pts in series.values() for step, _ in pts})
    if format is TableFormat.csv:
        keys = sorted(series)
        lookup = {k: dict(series[k]) for k in keys}
        print_csv(["run", "epoch", *keys],
                  [(run.id, e, *[lookup[k].get(e) for k in keys]) for e in epochs])
        return
    print_run_heading(run, run.status)
    if run.error:
        console.print(f"[red]error:[/red] {run.error}", soft_wrap=True)
    console.print(f"accuracy {fmt_pct(run.accuracy) or '—'} · delegate requested "
                  f"{run.delegate_requested or '—'}, used {run.delegate_used or '—'}"
                  + (f" ({run.delegate_reason})" if run.delegate_reason else ""), soft_wrap=True)
    runtime = runtime_label(run.result)
    taken = [f"{model} model: {text}" for model, text in delegation_rows(run.result)]
    if runtime or taken:
        console.print(" · ".join([f"runtime {runtime or '—'}", *taken]), soft_wrap=True)
    photos = fmt_photos(run.result or {})
    if photos:
        console.print(photos, soft_wrap=True, markup=False)
    if run.timing:
        console.print("timing: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in run.timing.items() if isinstance(v, (int, float))))
    keys = [k for k in ("train_loss", "train_acc", "test_loss", "test_acc") if k in series]
    if epochs and keys:
        lookup = {k: dict(series[k]) for k in keys}
        print_table("per epoch", ["epoch", *keys],
                    [(e, *[None if lookup[k].get(e) is None else f"{lookup[k][e]:.4f}"
                           for k in keys]) for e in epochs])


@app.command()
def compare(
    experiment: Annotated[str, typer.Argument(help="Experiment name (the spec's `name`).")],
    by_device: Annotated[bool, typer.Option(
        "--by-device", help="A grid: a row per variant, a column per phone, accuracy and "
        "training time in each cell (table format).")] = False,
    db: DbOption = None,
    format: TableFormatOption = TableFormat.table,
) -> None:
    """The paper's Table 1: variant × device → accuracy, training time, delegate used.
    A cell with repeated finished runs also shows their mean accuracy and range."""
    from orchestrator.store.export import COMPARE_COLUMNS, cell_of, compare_records, to_csv

    with open_store(db) as s:
        rows = queries.table1(session=s, experiment=experiment)
        exp = repo.get_experiment(session=s, name=experiment)
        stats = queries.cell_stats(session=s, experiment_id=exp.id)
    if format is TableFormat.json:
        print_json(compare_records(rows, stats))
        return
    if format is TableFormat.csv:
        sys.stdout.write(to_csv(COMPARE_COLUMNS, compare_records(rows, stats)))
        return
    if by_device:
        _print_grid(experiment, rows)
        return
    spread = cell_of(rows, stats)
    repeated = any(c and c.finished > 1 for c in spread)

    def mean_range(c: queries.CellStats | None) -> str | None:
        if not c or c.finished < 2 or c.accuracy_mean is None:
            return None
        return (f"{fmt_pct(c.accuracy_mean)} ({100 * c.accuracy_min:.1f}–"
                f"{100 * c.accuracy_max:.1f}, n={c.finished})")

    print_table(f"{experiment}", ["variant", "finetune_from", "device", "accuracy",
                                  *(["mean (range) of finished runs"] if repeated else []),
                                  "training time", "total", "delegate (req → used)",
                                  "status", "run"],
                [(r.variant, r.finetune_from or "head only", r.device, fmt_pct(r.accuracy),
                  *([mean_range(c)] if repeated else []),
                  fmt_s(r.train_seconds), fmt_s(r.total_seconds),
                  f"{r.delegate_requested or '—'} → {r.delegate_used or '—'}", r.status,
                  r.run_id) for r, c in zip(rows, spread, strict=True)])


def _print_grid(experiment: str, rows: list[CompareRow]) -> None:
    """Variants down, phones across: how each phone did on each variant, at a glance."""
    devices = list(dict.fromkeys(r.device for r in rows))
    variants = list(dict.fromkeys(r.variant for r in rows))
    cell = {(r.variant, r.device): r for r in rows}

    def text(r: CompareRow | None) -> str | None:
        if r is None:
            return None
        acc = fmt_pct(r.accuracy) or r.status
        return f"{acc} · {fmt_s(r.train_seconds)}" if r.train_seconds is not None else acc

    print_table(f"{experiment}: accuracy · training time", ["variant", *devices],
                [(v, *[text(cell.get((v, d))) for d in devices]) for v in variants])
