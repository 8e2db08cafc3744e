"""Pure view functions of the dashboard: phase boundary, timing breakdown, Table 1 matrix."""

from __future__ import annotations

import math

import pytest

from dashboard import views
from orchestrator.store.public import CompareRow


def test_phase_boundary_from_the_phase_metric():
    """The boundary sits between the last head epoch and the first fine-tune epoch."""
    series = {"phase": [(1, 0.0), (2, 0.0), (3, 0.0), (4, 1.0), (5, 1.0)]}
    assert views.phase_boundary(series, {}) == 3.5


def test_phase_boundary_falls_back_to_result_epochs():
    """Without a phase metric, result.json's per-epoch phases give the boundary."""
    result = {"epochs": [{"phase": "head", "epoch": 1}, {"phase": "head", "epoch": 2},
                         {"phase": "finetune", "epoch": 3}]}
    assert views.phase_boundary({"test_acc": [(1, 0.5)]}, result) == 2.5


def test_head_only_run_has_no_boundary():
    """Method 1 (head only) has one phase: nothing to draw."""
    assert views.phase_boundary({"phase": [(1, 0.0), (2, 0.0)]}, {}) is None


def test_epoch_charts_keep_nan_as_gaps_and_markers():
    """A NaN loss becomes a gap in the line and a marked step, never a number."""
    series = {"train_loss": [(1, 0.7), (2, math.nan), (3, 0.5)], "test_loss": [(1, 0.8)]}
    loss = views.epoch_charts(series, {})["loss"]
    train = next(s for s in loss["series"] if s["name"] == "train")
    assert train["points"][1] == [2, None] and train["nan"] == [2]


def test_timing_view_shares_add_up_to_the_total():
    """Decode, frozen layers, training and evaluation are parts of the total, with the rest."""
    timing = {"decode": 2.0, "features": 3.0, "train": 4.0, "eval": 1.0, "checkpoint": 0.5,
              "total": 12.0, "wall": 20.0, "train_per_epoch": [1.0, 1.5, 1.5]}
    v = views.timing_view(timing)
    assert [p.key for p in v.parts] == ["decode", "features", "train", "eval", "checkpoint",
                                        "rest"]
    assert sum(p.seconds for p in v.parts) == pytest.approx(timing["total"])
    assert sum(p.share for p in v.parts) == pytest.approx(1.0)
    assert [p.key for p in v.other] == ["wall"] and v.per_epoch == [1.0, 1.5, 1.5]


def test_timing_view_ignores_junk_values():
    """Non-numbers and NaN in the timing dict are skipped, not shown as 0."""
    v = views.timing_view({"decode": "n/a", "train": float("nan"), "eval": 1.0})
    assert [p.key for p in v.parts] == ["eval"] and v.total is None


def _row(variant: str, device: str, acc: float, run_id: int) -> CompareRow:
    return CompareRow(variant=variant, device=device, run_id=run_id, runs=1, accuracy=acc,
                      train_seconds=1.0, total_seconds=2.0, delegate_requested="nnapi",
                      delegate_used="nnapi", status="finished")


def test_table1_view_is_variants_by_devices():
    """Rows of queries.table1 become a variant × device matrix in the rows' variant order."""
    rows = [_row("method1", "b", 0.9, 1), _row("method1", "a", 0.8, 2),
            _row("method2", "a", 0.95, 3)]
    t = views.table1_view(rows, [])
    assert [v for v, _ in t.variants] == ["method1", "method2"]
    assert t.devices == ["a", "b"]
    assert t.cells["method2"]["a"].row.run_id == 3 and "b" not in t.cells["method2"]
    charts = views.table1_charts(t)
    assert charts["accuracy"]["series"][1]["values"] == [0.95, None]


def test_progress_label_does_not_repeat_the_epoch_count():
    """`epoch 3/20` is not followed by the same `3/20` again."""
    p = views.progress_of("running", {"stage": "train", "done": 3, "total": 20, "epoch": 3,
                                      "epochs": 20})
    assert p["label"] == "train · epoch 3/20" and p["max"] == 20


def test_planned_epochs_from_params_when_progress_lacks_them():
    """A live run's epoch count comes from its params: method 1 trains the head only."""
    from datetime import UTC, datetime

    from orchestrator.store.public import RunPublic

    def run(finetune_from):
        return RunPublic(id=1, experiment_id=1, variant="v", status="running",
                         created=datetime.now(UTC), progress={"stage": "train", "epoch": 2},
                         params={"head_epochs": 10, "finetune_epochs": 5,
                                 "finetune_from": finetune_from})

    assert views.planned_epochs(run("conv_pw_11")) == 15
    assert views.planned_epochs(run(None)) == 10
    assert views.progress_view(run(None))["label"] == "train · epoch 2/10"
