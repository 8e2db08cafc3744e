"""`orch audit RUN`: the transfer ledger of a run and its privacy verdict.

The verdict is `orchestrator.audit.audit_verdict` (the dashboard's too), computed from the
ledger rows alone: "0 image bytes left the device" is proven from what was recorded. With it,
the run's information bound (the most its admitted data could hold) and its device's sum.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import (
    DbOption,
    FormatOption,
    OutputFormat,
    console,
    open_store,
    print_json,
    print_run_heading,
    print_table,
)
from orchestrator.errors import AuditFailed


def _size(n: int) -> str:
    return f"{n:,} B"


def audit(
    run_id: Annotated[int, typer.Argument(help="Run id (see `orch results list`).")],
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """The transfer ledger of a run and its privacy verdict (non-zero exit if it fails)."""
    from orchestrator.audit import audit_verdict, kib
    from orchestrator.store import repo

    with open_store(db) as s:
        run = repo.get_run(session=s, run_id=run_id)
        ledger = repo.run_transfers(session=s, run_id=run_id)
        bound = repo.run_bound(session=s, run_id=run_id)
        device = repo.device_bound(session=s, device_id=run.device_id) \
            if run.device_id is not None else None
    verdict = audit_verdict(ledger, bound)
    if format is OutputFormat.json:
        print_json({"run": run.id, "experiment": run.experiment, "variant": run.variant,
                    "device": run.device, "ledger": ledger, "verdict": verdict,
                    "bound": bound, "device_bound": device, "ok": verdict.ok})
    else:
        print_run_heading(run, f"{len(ledger)} ledger rows")
        print_table("ledger", ["time", "direction", "kind", "device path", "bytes", "sha256",
                               "reason"],
                    [(t.time.strftime("%H:%M:%S"), t.direction, t.kind, t.device_path,
                      _size(t.bytes), (t.sha256 or "")[:12] or None, t.reason)
                     for t in ledger])
        print_table("pushed to the phone", ["kind", "files", "bytes"],
                    [(k.kind, k.files, _size(k.bytes)) for k in verdict.pushed_by_kind])
        print_table("pulled from the phone", ["kind", "files", "bytes"],
                    [(k.kind, k.files, _size(k.bytes)) for k in verdict.pulled_by_kind])
        console.print(f"skipped pushes (already on the phone): {verdict.skipped} · "
                      f"refused reads: {len(verdict.refused)}")
        for r in verdict.refused:
            console.print(f"  refused {r.device_path}: {r.reason or 'no reason recorded'}",
                          soft_wrap=True)
        for v in verdict.violations:
            console.print(f"  [red]violation[/red] {v.direction} {v.device_path} "
                          f"({_size(v.bytes)}): {v.why}", soft_wrap=True)
        if verdict.bound_line:
            console.print(verdict.bound_line, soft_wrap=True)
        if device is not None and device.runs:
            console.print(f"all {device.runs} run(s) on this device together: at most "
                          f"{kib(device.bytes)}", soft_wrap=True)
        mark = "[green]✓[/green]" if verdict.ok else "[red]✗[/red]"
        console.print(f"{mark} {verdict.headline}", soft_wrap=True)
    if not verdict.ok:
        raise AuditFailed(f"Run {run.id} fails the privacy audit: {verdict.headline}.",
                          hint="See the ledger above (`orch audit RUN --format json`).")
