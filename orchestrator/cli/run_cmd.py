"""`orch run SPEC --device DEV`: build, stage, train on the device, collect, compare."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from orchestrator.cli.click_compat import ABORTS
from orchestrator.cli.common import (
    DbOption,
    FormatOption,
    OutputFormat,
    SetOption,
    console,
    err_console,
    fmt_pct,
    fmt_s,
    fmt_skipped,
    open_store,
    print_json,
)
from orchestrator.errors import RunError, SpecError, SpecProblem
from orchestrator.runner.devices import device_name_of_run, open_link, register_device
from orchestrator.runner.display import RunDisplay
from orchestrator.runner.pipeline import run_experiment
from orchestrator.runner.signals import stop_on_signals
from orchestrator.settings import get_settings
from orchestrator.spec import load_spec
from orchestrator.store import queries
from orchestrator.store.public import CompareRow, RunPublic
from orchestrator.store.status import RunStatus


def _ask_to_stop(run: RunPublic) -> bool:
    """On Ctrl-C: stop the device's run too? Without a terminal, leave it running."""
    if not sys.stdin.isatty():
        return False
    try:
        return typer.confirm(f"Stop run {run.id} on the device too?", default=False,
                             err=True)
    except (KeyboardInterrupt, *ABORTS):
        return False


def _summary_line(r: RunPublic) -> str:
    t = r.timing
    parts = [f"{k} {fmt_s(t[k])}" for k in ("build", "stage", "total", "train")
             if isinstance(t.get(k), (int, float))]
    wall = fmt_s(t.get("wall")) or "—"
    text = (f"run {r.id} {r.variant}: {r.status} · accuracy {fmt_pct(r.accuracy) or '—'} · "
            f"wall {wall}" + (f" ({', '.join(parts)})" if parts else ""))
    skipped = fmt_skipped(r.result or {})
    return text + (f" · {skipped}" if skipped else "") + (f" · {r.error}" if r.error else "")


def _print_compare(title: str | None, rows: list[CompareRow]) -> None:
    """The paper's Table 1, compact enough for an 80-column log."""
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", show_edge=False,
                  collapse_padding=True, pad_edge=False)
    for name in ("run", "variant", "from", "device", "accuracy", "train", "total", "delegate",
                 "status"):
        table.add_column(name, no_wrap=name in ("run", "accuracy", "train", "total"))
    for c in rows:
        table.add_row(str(c.run_id), c.variant, c.finetune_from or "head only", c.device,
                      fmt_pct(c.accuracy) or "—", fmt_s(c.train_seconds) or "—",
                      fmt_s(c.total_seconds) or "—",
                      f"{c.delegate_requested or '—'}→{c.delegate_used or '—'}", c.status)
    console.print(table)


def run(
    spec: Annotated[Path | None, typer.Argument(
        help="Experiment spec (YAML). Not needed with --resume.", show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        "--device", "-d", help="Where to train: `local` (this host) or a phone.",
        show_default=False)] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant of the spec.")] = None,
    set_: SetOption = None,
    resume: Annotated[int | None, typer.Option(
        "--resume", help="Continue run RUN from its last checkpoint, or reattach to it.",
        show_default=False)] = None,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Refuse (exit 5) instead of waiting when the phone is busy.")] = False,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Run an experiment on a phone (or --device local): build, stage, train, collect.
    One run at a time per phone: a busy phone is waited for (or refused with --no-wait).
    SIGTERM or SIGHUP leaves the agent training; `--resume RUN` follows it to the end."""
    settings = get_settings()
    parsed = None
    if resume is None:
        if spec is None:
            raise SpecError([SpecProblem("SPEC", "missing: give a spec file, or --resume RUN")])
        parsed = load_spec(spec, overrides=set_ or [])
        variants = parsed.variant_names(variant)
    else:
        variants = []
    with open_store(db) as session:
        if device is None and resume is not None:
            device = device_name_of_run(session=session, run_id=resume)
        if device is None:
            raise SpecError([SpecProblem("--device", "missing: `--device local` or a phone")])
        link = open_link(device, settings=settings, session=session)
        dev = register_device(session=session, link=link)
        with RunDisplay(err_console) as display, stop_on_signals():
            runs = run_experiment(spec=parsed, variants=variants, link=link, session=session,
                                  device=dev, on_progress=display, resume_run_id=resume,
                                  on_interrupt=_ask_to_stop, wait=not no_wait)
        experiment = parsed.name if parsed else runs[0].experiment
        rows = queries.table1(session=session, experiment=experiment) if experiment else []
    if format is OutputFormat.json:
        print_json({"runs": runs, "compare": rows})
    else:
        for r in runs:
            console.print(_summary_line(r), soft_wrap=True)
        _print_compare(experiment, rows)
    bad = [r for r in runs if r.status != RunStatus.FINISHED]
    if bad:
        first = bad[0]
        raise RunError(f"{len(bad)} of {len(runs)} runs did not finish; run {first.id} "
                       f"({first.variant}) {first.status}: {first.error or 'no reason given'}.",
                       hint=f"See `orch results show {first.id}`.")
