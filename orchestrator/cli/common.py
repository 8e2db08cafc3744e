"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from sqlmodel import Session


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for scripts.")
]


class TableFormat(StrEnum):
    """For results that are tables: csv too, for spreadsheets and papers."""

    table = "table"
    json = "json"
    csv = "csv"


TableFormatOption = Annotated[
    TableFormat, typer.Option("--format", "-f", help="table for people, json for scripts, "
                              "csv for spreadsheets (plain numbers: fractions, seconds).")
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Results store: any SQLAlchemy URL (default: ORCH_DB, else a "
                 "SQLite file under ORCH_HOME).", show_default=False),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec field, e.g. --set training.batch_size=8 "
                 "(repeatable).", show_default=False),
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def store_url(db: str | None) -> str:
    from orchestrator.settings import get_settings

    return db or get_settings().db_url


def open_store(db: str | None) -> Session:
    from orchestrator.store.db import open_session

    return open_session(store_url(db))


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, default=str, allow_nan=True) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*["—" if v is None else str(v) for v in r])
    console.print(table)


def print_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Comma-separated values on stdout; empty cells for missing values."""
    from orchestrator.store.export import to_csv

    sys.stdout.write(to_csv(columns, [dict(zip(columns, r, strict=True)) for r in rows]))


def print_run_heading(run: Any, tail: str) -> None:
    """`Run 12 · experiment / variant on device · tail`, the first line of a run's views."""
    console.print(f"[bold]Run {run.id}[/bold] · {run.experiment} / {run.variant} on "
                  f"{run.device or 'local'} · {tail}")


def fmt_pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.2f} %"


def fmt_s(x: float | None) -> str | None:
    """Seconds with the precision a reader needs: a small run's 0.04 s is not "0.0 s"."""
    if x is None:
        return None
    if x < 0.1:
        return f"{1000 * x:.0f} ms"
    return f"{x:.2f} s" if x < 1 else f"{x:.1f} s"


def fmt_skipped(result: dict[str, Any]) -> str | None:
    """`skipped 3 unsupported (not JPEG/PNG, e.g. HEIC), 1 too large, 2 corrupt`, or None."""
    counts = result.get("counts") or {}
    parts = [f"{counts[k]} {label}" for k, label in (
        ("skipped_unsupported", "unsupported (not JPEG/PNG, e.g. HEIC)"),
        ("skipped_too_large", "too large"), ("skipped_corrupt", "corrupt"))
        if isinstance(counts.get(k), int) and counts[k] > 0]
    return f"skipped {', '.join(parts)}" if parts else None


def fmt_photos(result: dict[str, Any]) -> str | None:
    """The photos line of a run: images used, how they were decoded, what was skipped."""
    counts, data = result.get("counts") or {}, result.get("data") or {}
    parts = []
    if counts.get("train") is not None:
        parts.append(f"{counts['train']} train + {counts.get('test', 0)} test images")
    if data:
        mp = data.get("max_pixels")
        parts.append(f"decode {data.get('decode')}, orientation {data.get('orientation')}"
                     + (f", ≤ {mp / 1e6:g} MP" if isinstance(mp, int) else ""))
    parts.append(fmt_skipped(result) or "none skipped")
    return "photos: " + " · ".join(parts) if counts or data else None
