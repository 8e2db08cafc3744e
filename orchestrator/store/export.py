"""Results as flat records for scripts and spreadsheets: the comparison table with the
spread of repeated runs, and run lists. Plain numbers (fractions, seconds), no formatting."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from orchestrator.store.public import CompareRow, RunPublic
from orchestrator.store.queries import CellStats

COMPARE_COLUMNS = ("variant", "finetune_from", "device", "accuracy", "train_seconds",
                   "total_seconds", "delegate_requested", "delegate_used", "status", "run",
                   "runs", "finished_runs", "accuracy_mean", "accuracy_min", "accuracy_max")
RUN_COLUMNS = ("run", "experiment", "variant", "device", "status", "accuracy",
               "train_seconds", "total_seconds", "delegate_requested", "delegate_used",
               "finished")


def cell_of(rows: Sequence[CompareRow], stats: Iterable[CellStats]) -> list[CellStats | None]:
    """Each row's spread over the finished runs of its cell (None: none finished)."""
    by = {(c.variant, c.device): c for c in stats}
    return [by.get((r.variant, r.device)) for r in rows]


def compare_records(rows: Sequence[CompareRow],
                    stats: Iterable[CellStats]) -> list[dict[str, Any]]:
    out = []
    for r, c in zip(rows, cell_of(rows, stats), strict=True):
        out.append({
            "variant": r.variant, "finetune_from": r.finetune_from, "device": r.device,
            "accuracy": r.accuracy, "train_seconds": r.train_seconds,
            "total_seconds": r.total_seconds, "delegate_requested": r.delegate_requested,
            "delegate_used": r.delegate_used, "status": r.status, "run": r.run_id,
            "runs": r.runs, "finished_runs": c.finished if c else 0,
            "accuracy_mean": c.accuracy_mean if c else None,
            "accuracy_min": c.accuracy_min if c else None,
            "accuracy_max": c.accuracy_max if c else None,
        })
    return out


def run_records(runs: Iterable[RunPublic]) -> list[dict[str, Any]]:
    return [{"run": r.id, "experiment": r.experiment, "variant": r.variant,
             "device": r.device or "local", "status": r.status, "accuracy": r.accuracy,
             "train_seconds": r.timing.get("train"), "total_seconds": r.timing.get("total"),
             "delegate_requested": r.delegate_requested, "delegate_used": r.delegate_used,
             "finished": r.finished.isoformat() if r.finished else None} for r in runs]


def to_csv(columns: Sequence[str], records: Iterable[dict[str, Any]]) -> str:
    """A header and one line per record; missing values are empty cells."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(columns)
    out.writerows([["" if rec.get(c) is None else rec[c] for c in columns] for rec in records])
    return buf.getvalue()
