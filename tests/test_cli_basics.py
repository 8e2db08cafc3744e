"""The CLI surface: validate exit codes, empty results as JSON, unready commands say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def orch(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_validate_paper_spec_exits_zero():
    """`orch validate experiments/paper_table1.yaml` passes."""
    r = orch("validate", "experiments/paper_table1.yaml")
    assert r.returncode == 0, r.stderr
    assert "method2" in r.stdout


def test_validate_plans_every_shipped_sweep_without_phones():
    """`orch validate` of a sweep file checks every point; the split sweep includes A = conv1."""
    for path in sorted((REPO / "experiments").glob("sweep_*.yaml")):
        r = orch("validate", str(path.relative_to(REPO)), "--format", "json")
        assert r.returncode == 0, (path.name, r.stdout, r.stderr)
        assert json.loads(r.stdout)["valid"] is True
    r = orch("validate", "experiments/sweep_split_layers.yaml", "--format", "json")
    points = json.loads(r.stdout)["points"]
    assert "method2(conv1,nnapi)" in points and "method2(conv_pw_11,cpu)" in points


def test_validate_bad_sweep_point_names_its_line(tmp_path):
    """A sweep point no spec takes exits 2 naming the grid entry and its line."""
    (tmp_path / "paper_table1.yaml").write_text(
        (REPO / "experiments" / "paper_table1.yaml").read_text())
    bad = tmp_path / "sweep.yaml"
    bad.write_text("base: paper_table1.yaml\ngrid:\n  finetune_from: [A, conv_pw_99]\n"
                   "devices: all\n")
    r = orch("validate", str(bad))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "grid.finetune_from" in r.stdout and "conv_pw_99" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_validate_bad_override_exits_spec_code():
    """A bad --set is refused with the field named and exit code 2 (SPEC)."""
    r = orch("validate", "experiments/paper_table1.yaml", "--set", "training.batch_size=0")
    assert r.returncode == 2
    assert "training.batch_size" in r.stdout and "≥ 1" in r.stdout


def test_results_list_json_on_empty_store():
    """An empty store lists as []."""
    r = orch("results", "list", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_unknown_run_is_one_line_not_a_traceback():
    """An expected failure prints one line with a hint, never a traceback."""
    r = orch("results", "show", "42")
    assert r.returncode == 9
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "orch results list" in r.stderr


def test_seconds_keep_the_precision_a_small_run_needs():
    from orchestrator.cli.common import fmt_s

    assert [fmt_s(x) for x in (None, 0.0004, 0.04, 0.5, 12.34)] == [
        None, "0 ms", "40 ms", "0.50 s", "12.3 s"]


def test_bad_options_and_arguments_are_one_line_not_a_traceback():
    """The parser's own errors (an unknown option, a bad choice, a missing or mistyped
    argument) print one line naming the problem and where help is; exit code 2."""
    for args, named in ((["--bogus"], "--bogus"),
                        (["results", "compare", "x", "--format", "xml"], "'xml'"),
                        (["results", "show"], "run_id"),
                        (["results", "show", "abc"], "run_id"),
                        (["results", "list", "--status", "done"], "orphaned")):
        r = orch(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and named in r.stderr, r.stderr
        assert "--help`" in r.stderr


def test_results_as_csv_for_spreadsheets(isolated_home):
    """`--format csv`: a header and plain numbers (fractions, seconds); empty when missing."""
    import csv
    import io

    from orchestrator.settings import get_settings
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    with open_session(get_settings().db_url) as s:
        exp = repo.upsert_experiment(session=s, name="t1", spec={"variants": {"m1": {}}},
                                     spec_hash="h")
        dev = repo.upsert_device(session=s, serial="R5CT1", model="Pixel 7")
        run = repo.create_run(session=s, experiment_id=exp.id, variant="m1", device_id=dev.id,
                              status="finished", accuracy=0.975,
                              timing={"train": 12.5, "total": 40.0})
        repo.record_metrics(session=s, run_id=run.id, metrics=[("test_acc", 1, 0.9),
                                                               ("test_acc", 2, 0.975)])
    def rows(*args: str, reader=csv.DictReader) -> list:
        return list(reader(io.StringIO(orch("results", *args, "-f", "csv").stdout)))

    table, runs = rows("compare", "t1"), rows("list")
    epochs = rows("show", str(run.id), reader=csv.reader)
    assert [(r["variant"], r["device"], r["accuracy"], r["train_seconds"], r["finetune_from"])
            for r in table] == [("m1", "Pixel 7", "0.975", "12.5", "")]
    assert runs[0]["run"] == str(run.id) and runs[0]["total_seconds"] == "40.0"
    assert epochs == [["run", "epoch", "test_acc"], [str(run.id), "1", "0.9"],
                      [str(run.id), "2", "0.975"]]


def test_compare_shows_mean_and_range_of_repeated_runs(isolated_home):
    """A cell with three finished repetitions: the latest run, and mean (range, n) too."""
    from orchestrator.settings import get_settings
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    with open_session(get_settings().db_url) as s:
        exp = repo.upsert_experiment(session=s, name="rep", spec={"variants": {"m1": {}}},
                                     spec_hash="h")
        dev = repo.upsert_device(session=s, serial="R5CT1", model="Pixel 7")
        for acc in (0.90, 0.96, 0.93):
            repo.create_run(session=s, experiment_id=exp.id, variant="m1", device_id=dev.id,
                            status="finished", accuracy=acc)
    table = subprocess.run([sys.executable, "-m", "orchestrator", "results", "compare", "rep"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "200"})
    (row,) = json.loads(orch("results", "compare", "rep", "-f", "json").stdout)
    assert table.returncode == 0, table.stderr
    assert "93.00 % (90.0–96.0, n=3)" in table.stdout
    assert (row["accuracy"], row["finished_runs"], row["runs"]) == (0.93, 3, 3)
    assert abs(row["accuracy_mean"] - 0.93) < 1e-9
    assert (row["accuracy_min"], row["accuracy_max"]) == (0.90, 0.96)


def test_compare_by_device_is_a_grid_of_variants_by_phones(isolated_home):
    from orchestrator.settings import get_settings
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    with open_session(get_settings().db_url) as s:
        exp = repo.upsert_experiment(session=s, name="grid",
                                     spec={"variants": {"m1": {}, "m2": {}}}, spec_hash="h")
        for serial, model in (("P1", "Pixel 7"), ("G1", "SM-S911B")):
            dev = repo.upsert_device(session=s, serial=serial, model=model)
            for variant, acc in (("m1", 0.91), ("m2", 0.975)):
                repo.create_run(session=s, experiment_id=exp.id, variant=variant,
                                device_id=dev.id, status="finished", accuracy=acc,
                                timing={"train": 12.0})
    r = subprocess.run([sys.executable, "-m", "orchestrator", "results", "compare", "grid",
                        "--by-device"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "m1" in ln or "variant" in ln]
    assert "Pixel 7" in lines[0] and "SM-S911B" in lines[0]
    assert lines[1].count("91.00 % · 12.0 s") == 2


def test_results_list_filters_by_phone_and_variant(isolated_home):
    """--device takes an alias, a serial or the shown name; an unknown one is one line."""
    from orchestrator.settings import get_settings
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    with open_session(get_settings().db_url) as s:
        exp = repo.upsert_experiment(session=s, name="f", spec={}, spec_hash="h")
        ids = {}
        for serial in ("P1", "P2"):
            dev = repo.upsert_device(session=s, serial=serial, model="Pixel 7")
            for variant in ("m1", "m2"):
                ids[serial, variant] = repo.create_run(
                    session=s, experiment_id=exp.id, variant=variant, device_id=dev.id,
                    status="finished", accuracy=0.9).id
        repo.set_alias(session=s, serial="P2", alias="lab2")

    def listed(*args: str) -> set[int]:
        r = orch("results", "list", "--format", "json", *args)
        assert r.returncode == 0, r.stderr
        return {x["id"] for x in json.loads(r.stdout)}

    assert listed("--device", "lab2") == {ids["P2", "m1"], ids["P2", "m2"]}
    assert listed("--device", "pixel 7", "--variant", "m2") == {ids["P1", "m2"]}  # the shown name
    assert listed("--device", "P1") == {ids["P1", "m1"], ids["P1", "m2"]}
    bad = orch("results", "list", "--device", "nokia")
    assert bad.returncode == 9 and bad.stderr.strip().count("\n") == 0
    assert "known: Pixel 7, lab2" in bad.stderr


def test_results_show_names_the_runtime_and_what_each_delegate_took(isolated_home):
    """`orch results show` prints the interpreter's version and, per model, the nodes the
    delegate took (or that the runtime cannot say how many)."""
    from orchestrator.settings import get_settings
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    result = {"versions": {"interpreter": "ai_edge_litert", "interpreter_version": "2.3.0"},
              "delegation": {"frozen": {"delegate": "nnapi", "delegated_nodes": 31,
                                        "total_nodes": 31},
                             "train": {"delegate": "xnnpack", "delegated_nodes": None,
                                       "total_nodes": 533}}}
    with open_session(get_settings().db_url) as s:
        exp = repo.upsert_experiment(session=s, name="rt", spec={"variants": {"m2": {}}},
                                     spec_hash="h")
        run = repo.create_run(session=s, experiment_id=exp.id, variant="m2",
                              status="finished", result=result)
    out = subprocess.run([sys.executable, "-m", "orchestrator", "results", "show", str(run.id)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "300"})
    assert out.returncode == 0, out.stderr
    assert "runtime ai_edge_litert 2.3.0" in out.stdout
    assert "frozen model: nnapi took 31 of 31 nodes" in out.stdout
    assert "train model: xnnpack took part of the graph" in out.stdout
