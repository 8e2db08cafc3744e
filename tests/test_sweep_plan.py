"""Sweep files: expansion into labelled runs, and problems that name the field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.sweep.plan import make_label
from orchestrator.sweep.queue import plan_sweep

REPO = Path(__file__).resolve().parents[1]

BASE = """\
name: tiny
model: {alpha: 0.25, input_size: 96, weights: none}
data: {source: "host:imgs", train_per_class: 4, test_per_class: 4, seed: 0}
training: {batch_size: 4, head_epochs: 1, finetune_epochs: 1}
variants:
  method1: {finetune_from: null}
  method2: {finetune_from: B}
"""


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "base.yaml").write_text(BASE)
    return tmp_path


def sweep(folder: Path, text: str, *, sets=()) -> list:
    path = folder / "sweep.yaml"
    path.write_text(text)
    return plan_sweep(path, cli_sets=list(sets))[1]


def problems(folder: Path, text: str, *, sets=()) -> list:
    with pytest.raises(SpecError) as err:
        sweep(folder, text, sets=sets)
    return err.value.problems


def test_grid_crosses_keys_and_labels_each_point(folder):
    """A 2 × 2 grid over both variants gives 8 runs, each label naming its point."""
    runs = sweep(folder, "base: base.yaml\ngrid:\n  delegate: [nnapi, cpu]\n"
                         "  data.seed: [0, 1]\n")

    labels = [r.label for r in runs]
    assert len(runs) == 8 and len(set(labels)) == 8
    assert labels[:4] == ["method1(nnapi,seed=0)", "method2(nnapi,seed=0)",
                          "method1(nnapi,seed=1)", "method2(nnapi,seed=1)"]
    r = runs[3]
    assert (r.spec.delegate, r.spec.data.seed, list(r.spec.variants)) == ("nnapi", 1,
                                                                         ["method2"])


def test_finetune_from_shorthand_makes_one_run_per_layer(folder):
    """`finetune_from` trains one variant per point: method1 for null, method2 otherwise."""
    runs = sweep(folder, "base: base.yaml\ngrid:\n  finetune_from: [null, A, conv_pw_9]\n")

    assert [(r.label, r.variant, r.spec.variants[r.variant].finetune_from) for r in runs] == [
        ("method1(head)", "method1", None),
        ("method2(conv1)", "method2", "conv1"),  # A: the paper's first row
        ("method2(conv_pw_9)", "method2", "conv_pw_9")]


def test_points_cross_the_grid_and_repetitions_share_a_label(folder):
    """Listed points × grid, each repeated; another variant's setting does not duplicate."""
    runs = sweep(folder, "base: base.yaml\nrepetitions: 2\nvariants: [method1]\n"
                         "points:\n  - {variants.method2.finetune_from: conv_pw_7}\n"
                         "  - {variants.method2.finetune_from: conv_pw_9}\n"
                         "grid: {data.seed: [3]}\n")

    # method1 is the same run in both points: planned once, twice over.
    assert [(r.label, r.repetition) for r in runs] == [("method1(seed=3)", 0),
                                                       ("method1(seed=3)", 1)]


def test_set_and_health_apply_to_every_run_and_paths_follow_the_sweep_file(folder, tmp_path):
    """`set:` and `health:` reach every run; a relative host path is the sweep file's."""
    (folder / "other").mkdir()
    runs = sweep(folder, "base: base.yaml\nset: {data.source: 'host:other', "
                         "training.batch_size: 2}\nhealth: {min_battery: 40, cooldown_s: 5}\n")

    assert {r.spec.training.batch_size for r in runs} == {2}
    assert {r.spec.data.path for r in runs} == {str((folder / "other").resolve())}
    assert {(r.spec.health.min_battery, r.spec.health.cooldown_s) for r in runs} == {(40, 5)}


def test_a_bad_grid_value_names_the_sweep_line(folder):
    """An invalid value in the grid is reported at its own line of the sweep file."""
    found = problems(folder, "base: base.yaml\ngrid:\n  delegate: [nnapi,\n    tpu]\n")

    assert [(p.field, p.line) for p in found] == [("grid.delegate.1", 4)]
    assert "nnapi" in found[0].message  # the allowed values


def test_a_bad_layer_in_the_shorthand_names_its_line(folder):
    """An unknown split layer in `finetune_from:` points at that value."""
    found = problems(folder, "base: base.yaml\ngrid:\n  finetune_from: [B, conv_pw_99]\n")

    assert [(p.field, p.line) for p in found] == [("grid.finetune_from.1", 3)]


@pytest.mark.parametrize("text, field, line", [
    ("base: base.yaml\ngird: {delegate: [cpu]}\n", "gird", 2),
    ("base: base.yaml\ndevices: {modle: Pixel*}\n", "devices.modle", 2),
    ("base: base.yaml\ndevices: {sdk: 'about 30'}\n", "devices.sdk", 2),
    ("base: base.yaml\ngrid: {delegate: cpu}\n", "grid.delegate", 2),
    ("base: base.yaml\nrepetitions: 0\n", "repetitions", 2),
    ("base: missing.yaml\n", "base", 1),
    ("base: base.yaml\nvariants: [method3]\n", "variants", 2),
])
def test_sweep_file_problems_name_field_and_line(folder, text, field, line):
    """Typos, wrong types and unknown names in the sweep file name the field and line."""
    found = problems(folder, text)
    assert (found[0].field, found[0].line) == (field, line)


def test_an_experiment_spec_given_as_a_sweep_says_so(folder):
    """Passing the base spec itself as the sweep gives one problem that says what to do."""
    found = problems(folder, BASE)
    assert len(found) == 1 and found[0].field == "base" and "orch run" in found[0].message


def test_set_on_a_swept_key_is_refused(folder):
    """`--set` of a key the grid varies would collapse the points: an error."""
    found = problems(folder, "base: base.yaml\ngrid: {delegate: [nnapi, cpu]}\n",
                     sets=["delegate=cpu"])
    assert found[0].field == "--set delegate"


def test_problems_of_the_base_spec_name_the_base_file(folder):
    """A broken base spec is reported against its own file and line."""
    (folder / "base.yaml").write_text(BASE.replace("batch_size: 4", "batch_size: 0"))
    with pytest.raises(SpecError) as err:
        sweep(folder, "base: base.yaml\n")
    assert err.value.source.endswith("base.yaml")
    assert (err.value.problems[0].field, err.value.problems[0].line) == (
        "training.batch_size", 4)


def test_shipped_sweeps_plan():
    """Every sweep in experiments/ plans; the split sweep keeps each layer × delegate apart."""
    files = sorted((REPO / "experiments").glob("sweep_*.yaml"))
    plans = {f.stem: plan_sweep(f, cli_sets=[])[1] for f in files}

    assert {"sweep_table1_all_phones", "sweep_split_layers", "sweep_demo"} <= set(plans)
    split = plans["sweep_split_layers"]
    assert len({r.label for r in split}) == len(split) == 14  # 7 splits (A too) × 2 delegates
    assert {"method2(conv1,nnapi)", "method2(conv1,cpu)"} <= {r.label for r in split}
    table1 = plans["sweep_table1_all_phones"]
    assert [r.label for r in table1].count("method2") == 3  # three repetitions


def test_label_names_only_what_the_point_sets_for_this_variant(folder):
    """Another variant's split is left out; values are rendered plainly."""
    (run,) = [r for r in sweep(folder, "base: base.yaml\n") if r.variant == "method2"]
    point = {"variants.method1.finetune_from": None, "training.lr": 0.01,
             "nnapi.fp16": True, "delegate": "gpu"}
    assert make_label("method2", point, run.spec) == "method2(lr=0.01,fp16=true,gpu)"
