"""Pure functions that turn store data into what pages and charts show (no I/O here)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from device_agent.contract import FINETUNE, HEAD
from orchestrator.store.public import CompareRow, RunPublic, SamplePublic
from orchestrator.store.queries import CellStats, RunProgress, Series
from orchestrator.store.runtime_info import planned_epochs as run_plan
from orchestrator.store.status import AT_REST

# The paper's stages of a run, in order, with the words researchers use for them.
TIMING_PARTS = (("decode", "Decode images"), ("features", "Frozen layers"),
                ("embed", "Upper layers, cached"), ("train", "Training"),
                ("eval", "Evaluation"), ("checkpoint", "Checkpoints"))
TERMINAL = AT_REST  # no progress bar: nothing moves these on by themselves


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


# ------------------------------------------------------------------ run page


def phase_boundary(series: Series, result: dict[str, Any]) -> float | None:
    """Where fine-tuning starts on the epoch axis (between two epochs), or None.

    From the `phase` metric (0 = head, 1 = fine-tune) when stored, else from result.json's
    per-epoch phases.
    """
    if series.get("phase"):
        head = [s for s, v in series["phase"] if v is not None and v == 0]
        tune = [s for s, v in series["phase"] if v is not None and v >= 1]
    else:
        epochs = [e for e in result.get("epochs") or [] if isinstance(e, dict)]
        head = [e.get("epoch") for e in epochs if e.get("phase") == HEAD]
        tune = [e.get("epoch") for e in epochs if e.get("phase") == FINETUNE]
        head = [x for x in head if isinstance(x, int)]
        tune = [x for x in tune if isinstance(x, int)]
    if not head or not tune:
        return None
    return (max(head) + min(tune)) / 2


def _points(pts: list[tuple[int, float | None]]) -> tuple[list[list[Any]], list[int]]:
    """[[step, value|None]] for a chart, and the steps whose value was NaN."""
    out, nan = [], []
    for step, value in pts:
        if value is not None and not math.isfinite(value):
            nan.append(step)
            out.append([step, None])
        else:
            out.append([step, value])
    return out, nan


def line_chart(title: str, y_label: str, series: list[dict[str, Any]], *,
               y_format: str = "num", x_label: str = "epoch", boundary: float | None = None,
               y_min: float | None = None, y_max: float | None = None,
               x_max: float | None = None) -> dict[str, Any]:
    return {"kind": "line", "title": title, "x_label": x_label, "y_label": y_label,
            "y_format": y_format, "series": series, "boundary": boundary,
            "y_min": y_min, "y_max": y_max, "x_max": x_max}


def epoch_charts(series: Series, result: dict[str, Any],
                 epochs: int | None = None) -> dict[str, dict[str, Any]]:
    """Loss and accuracy per epoch, train and test, with the head / fine-tune boundary.

    `epochs`: the planned number, so a live run's axis shows how far it has come.
    """
    boundary = phase_boundary(series, result)
    charts = {}
    for name, title, y_label, fmt, keys in (
        ("loss", "Loss per epoch", "loss", "num", ("train_loss", "test_loss")),
        ("accuracy", "Accuracy per epoch", "accuracy", "pct", ("train_acc", "test_acc")),
    ):
        lines = []
        for i, key in enumerate(keys):
            if key in series:
                pts, nan = _points(series[key])
                lines.append({"name": key.split("_")[0], "points": pts, "nan": nan,
                              "color": i, "dash": key.startswith("train")})
        charts[name] = line_chart(title, y_label, lines, y_format=fmt, boundary=boundary,
                                  y_min=0 if fmt == "num" else None,
                                  y_max=1 if fmt == "pct" else None, x_max=epochs)
    return charts


class TimingPart(BaseModel):
    key: str
    label: str
    seconds: float
    share: float  # of the total


class TimingView(BaseModel):
    parts: list[TimingPart]
    total: float | None
    other: list[TimingPart]  # further numeric entries, outside the agent (build, wall, …)
    per_epoch: list[float]


def timing_view(timing: dict[str, Any]) -> TimingView:
    """The agent's stages (decode, frozen layers, training, evaluation, …) as parts of its
    total; other entries (the host's build, staging, wall time) are listed apart."""
    known = [(k, label, _finite(timing.get(k))) for k, label in TIMING_PARTS]
    parts_sum = sum(v for _k, _l, v in known if v is not None)
    total = _finite(timing.get("total"))
    denom = total if total and total >= parts_sum else parts_sum
    parts = [TimingPart(key=k, label=label, seconds=v, share=v / denom if denom else 0.0)
             for k, label, v in known if v is not None]
    if total is not None and total > parts_sum > 0 and (total - parts_sum) / total > 0.005:
        rest = total - parts_sum
        parts.append(TimingPart(key="rest", label="Other agent work", seconds=rest,
                                share=rest / total))
    skip = {k for k, _ in TIMING_PARTS} | {"total", "train_per_epoch"}
    other = [TimingPart(key=k, label=k.replace("_", " "), seconds=v, share=0.0)
             for k, raw in timing.items() if k not in skip and (v := _finite(raw)) is not None]
    per_epoch = [v for x in timing.get("train_per_epoch") or [] if (v := _finite(x)) is not None]
    return TimingView(parts=parts, total=total, other=other, per_epoch=per_epoch)


def timing_chart(view: TimingView) -> dict[str, Any]:
    return {"kind": "stack", "unit": "s",
            "parts": [{"name": p.label, "value": p.seconds} for p in view.parts]}


def per_epoch_chart(view: TimingView, boundary: float | None) -> dict[str, Any]:
    return {"kind": "bars", "title": "Training time per epoch", "y_label": "seconds",
            "y_format": "s", "categories": [str(i + 1) for i in range(len(view.per_epoch))],
            "series": [{"name": "seconds", "values": view.per_epoch}],
            "boundary": boundary, "x_label": "epoch", "legend": False}


def health_charts(samples: list[SamplePublic]) -> dict[str, dict[str, Any]]:
    """Battery and temperature over the run (x = the sample's step, else its order)."""
    xs = [s.step if s.step is not None else i for i, s in enumerate(samples)]
    battery = [[x, _finite(s.battery)] for x, s in zip(xs, samples, strict=True)]
    temp = [[x, _finite(s.temperature)] for x, s in zip(xs, samples, strict=True)]
    return {
        "battery": line_chart("Battery", "battery %", [
            {"name": "battery", "points": battery, "color": 2, "nan": []}],
            y_format="int", x_label="step", y_min=0, y_max=100),
        "temperature": line_chart("Temperature", "°C", [
            {"name": "temperature", "points": temp, "color": 5, "nan": []}],
            y_format="num", x_label="step"),
    }


def delegate_state(run: RunPublic) -> str:
    """ok (got what was asked), fallback (asked for more than it got), or unknown."""
    if not run.delegate_used:
        return "unknown"
    if run.delegate_requested in (None, run.delegate_used):
        return "ok"
    return "fallback"


def planned_epochs(run: RunPublic | RunProgress) -> int | None:
    """Epochs the run will report: from its progress, else from its params (method 1 trains
    the head only, so its fine-tune epochs do not count)."""
    given = (run.progress or {}).get("epochs")
    if isinstance(given, int) and given > 0:
        return given
    return run_plan(run.params or {})


def progress_view(run: RunPublic | RunProgress) -> dict[str, Any] | None:
    """Progress of a live run as {label, value, max} for a <progress> bar."""
    if run.status in TERMINAL:
        return None
    p = dict(run.progress or {})
    if p.get("epoch") is not None and not p.get("epochs"):
        p["epochs"] = planned_epochs(run)
    return progress_of(run.status, p)


def progress_of(status: str, p: dict[str, Any]) -> dict[str, Any]:
    done, total = _finite(p.get("done")), _finite(p.get("total"))
    stage = p.get("stage") or status
    label = str(stage)
    epoch = (p.get("epoch"), p.get("epochs"))
    if epoch[0] is not None and epoch[1]:
        label += f" · epoch {epoch[0]}/{epoch[1]}"
    if done is not None and total and (done, total) != epoch:
        label += f" · {int(done)}/{int(total)}"
    return {"label": label, "value": done if total else None, "max": total or None}


# ------------------------------------------------------------------ experiment page


class Table1Cell(BaseModel):
    row: CompareRow
    stats: CellStats | None = None


class Table1(BaseModel):
    variants: list[tuple[str, str | None]]  # (variant, finetune_from)
    devices: list[str]
    cells: dict[str, dict[str, Table1Cell]]  # variant → device → cell


def table1_view(rows: list[CompareRow], stats: list[CellStats]) -> Table1:
    """Rows of queries.table1 as the paper's matrix: variants down, devices across."""
    by = {(s.variant, s.device): s for s in stats}
    variants: dict[str, str | None] = {}
    devices: list[str] = []
    cells: dict[str, dict[str, Table1Cell]] = {}
    for r in rows:
        variants.setdefault(r.variant, r.finetune_from)
        if r.device not in devices:
            devices.append(r.device)
        cells.setdefault(r.variant, {})[r.device] = Table1Cell(
            row=r, stats=by.get((r.variant, r.device)))
    return Table1(variants=list(variants.items()), devices=sorted(devices), cells=cells)


def table1_charts(t: Table1) -> dict[str, dict[str, Any]]:
    """Accuracy and training time across devices, one bar per variant, min–max whiskers."""
    acc, train = [], []
    for i, (variant, _ff) in enumerate(t.variants):
        cells = [t.cells.get(variant, {}).get(d) for d in t.devices]
        acc.append({"name": variant, "color": i,
                    "values": [c.row.accuracy if c else None for c in cells],
                    "lo": [c.stats.accuracy_min if c and c.stats else None for c in cells],
                    "hi": [c.stats.accuracy_max if c and c.stats else None for c in cells]})
        train.append({"name": variant, "color": i,
                      "values": [c.row.train_seconds if c else None for c in cells],
                      "lo": [c.stats.train_min if c and c.stats else None for c in cells],
                      "hi": [c.stats.train_max if c and c.stats else None for c in cells]})
    return {
        "accuracy": {"kind": "bars", "title": "Accuracy by device", "y_label": "accuracy",
                     "y_format": "pct", "categories": t.devices, "series": acc},
        "train": {"kind": "bars", "title": "Training time by device", "y_label": "seconds",
                  "y_format": "s", "categories": t.devices, "series": train},
    }


# ------------------------------------------------------------------ compare page


def run_label(run: RunPublic) -> str:
    return f"#{run.id} {run.variant} · {run.device or 'local'}"


def compare_charts(runs: list[RunPublic], series: dict[int, Series]) -> dict[str, Any]:
    """The chosen runs' curves overlaid: test solid, train dashed, one colour per run."""
    charts = {}
    for name, title, y_label, fmt, key in (("accuracy", "Accuracy per epoch", "accuracy",
                                            "pct", "acc"),
                                           ("loss", "Loss per epoch", "loss", "num", "loss")):
        lines = []
        for i, run in enumerate(runs):
            s = series.get(run.id, {})
            for split in ("test", "train"):
                if f"{split}_{key}" in s:
                    pts, nan = _points(s[f"{split}_{key}"])
                    lines.append({"name": f"{run_label(run)} ({split})", "points": pts,
                                  "nan": nan, "color": i, "dash": split == "train"})
        charts[name] = line_chart(title, y_label, lines, y_format=fmt,
                                  y_min=0 if fmt == "num" else None,
                                  y_max=1 if fmt == "pct" else None)
    return charts


def compare_facts(runs: list[RunPublic]) -> list[tuple[str, str, list[Any]]]:
    """(fact, format, one value per run) rows for the side-by-side table."""
    def t(r: RunPublic, k: str) -> Any:
        return (r.timing or {}).get(k)

    facts: list[tuple[str, str, Any]] = [
        ("experiment", "text", lambda r: r.experiment),
        ("variant", "text", lambda r: r.variant),
        ("fine-tune from", "text",
         lambda r: (r.params or {}).get("finetune_from") or "head only"),
        ("device", "text", lambda r: r.device or "local"),
        ("status", "text", lambda r: r.status),
        ("accuracy", "pct", lambda r: r.accuracy),
        ("training time", "secs", lambda r: t(r, "train")),
        ("frozen layers time", "secs", lambda r: t(r, "features")),
        ("total time", "secs", lambda r: t(r, "total")),
        ("delegate requested", "text", lambda r: r.delegate_requested),
        ("delegate used", "text", lambda r: r.delegate_used),
        ("peak memory (MB)", "num", lambda r: (r.result or {}).get("peak_memory_mb")),
        ("interpreter", "text", lambda r: r.interpreter),
        ("launcher", "text", lambda r: r.launcher),
        ("agent", "text", lambda r: r.agent_version),
        ("started", "when", lambda r: r.started),
    ]
    return [(name, fmt, [f(r) for r in runs]) for name, fmt, f in facts]
