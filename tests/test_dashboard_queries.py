"""orchestrator/store/queries.py: same answers as repo.py, in a constant number of statements."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlmodel import Session
from store_backends import BACKENDS, backend_url

from dashboard.sample_data import fill
from orchestrator.errors import NotFound
from orchestrator.store import queries, repo
from orchestrator.store.db import make_engine


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    """A filled store per backend, built once per module (the tests only read it)."""
    with backend_url(request.param, tmp_path_factory.mktemp("queries")) as url:
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as s:
            info = fill(s, repeats=2)
            # A second experiment, and a run with no device (a local run), to mix things up.
            other = fill(s, repeats=1, seed=1, experiment="sweep-alpha")
            repo.create_run(session=s, experiment_id=other.experiment_id, variant="method1",
                            status="finished", accuracy=0.5,
                            timing={"train": 1.0, "total": 2.0})
            yield s, info, engine
        engine.dispose()


@contextmanager
def count_statements(engine):
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_table1_picks_the_latest_finished_run_of_each_cell(store):
    """Each Table 1 row is the newest finished run of its variant × device (else the newest
    run), with the cell's run count, for every experiment."""
    s, _info, _ = store
    for exp in repo.list_experiments(session=s):
        cells: dict[tuple[str, str], list] = {}
        for r in repo.list_runs(session=s, experiment=exp.name):  # newest first
            cells.setdefault((r.variant, r.device or "local"), []).append(r)
        want = {}
        for key, runs in cells.items():
            chosen = next((r for r in runs if r.status == "finished"), runs[0])
            want[key] = (chosen.id, len(runs), chosen.accuracy, chosen.timing.get("train"),
                         chosen.status)
        rows = queries.table1(session=s, experiment=exp.name)
        assert {(r.variant, r.device): (r.run_id, r.runs, r.accuracy, r.train_seconds,
                                        r.status) for r in rows} == want
        assert len(rows) == len(want)


def test_table1_of_unknown_experiment_is_not_found(store):
    """An unknown name raises NotFound naming the experiments the store holds."""
    s, _info, _ = store
    with pytest.raises(NotFound, match="known: "):
        queries.table1(session=s, experiment="nope")


def test_runs_page_rows_equal_repo_get_run(store):
    """Each joined row is repo.get_run's public run (built there with two more lookups),
    except result.json, which lists leave out."""
    s, _info, _ = store
    page = queries.runs_page(session=s, limit=500)
    assert page.total == len(repo.list_runs(session=s)) == len(page.runs)
    for run in page.runs:
        full = repo.get_run(session=s, run_id=run.id)
        assert run.result == {}
        assert run == full.model_copy(update={"result": {}})
    assert any(repo.get_run(session=s, run_id=r.id).result for r in page.runs)


def test_runs_page_filters_sorts_and_pages(store):
    """Filters narrow, sorting puts missing values last, pages tile the whole list."""
    s, info, _ = store
    failed = queries.runs_page(session=s, statuses=["failed"])
    assert info.failed in [r.id for r in failed.runs]
    assert all(r.status == "failed" for r in failed.runs)
    by_acc = queries.runs_page(session=s, experiment_id=info.experiment_id, sort="accuracy",
                               limit=500).runs
    accs = [r.accuracy for r in by_acc]
    known = [a for a in accs if a is not None]
    assert known == sorted(known, reverse=True)
    assert accs[len(known):] == [None] * (len(accs) - len(known))
    by_train = queries.runs_page(session=s, sort="train", descending=False, limit=500).runs
    trains = [r.timing.get("train") for r in by_train if r.timing.get("train") is not None]
    assert trains == sorted(trains)
    pages = [queries.runs_page(session=s, limit=5, offset=o) for o in range(0, 40, 5)]
    ids = [r.id for p in pages for r in p.runs]
    assert len(ids) == len(set(ids)) == pages[0].total
    dev = queries.runs_page(session=s, device_id=info.device_ids[1], variant="method2")
    assert dev.runs and all(r.device_id == info.device_ids[1] and r.variant == "method2"
                            for r in dev.runs)


def test_runs_page_rejects_an_unknown_sort(store):
    """A sort key outside the list is an error, not SQL built from user text."""
    s, _info, _ = store
    with pytest.raises(ValueError, match="sort"):
        queries.runs_page(session=s, sort="id; DROP TABLE run")


def test_metric_series_many_equals_repo_run_metrics(store):
    """One statement for several runs gives each run's points of repo.run_metrics, NaN
    included."""
    s, info, _ = store
    run_ids = info.finished[:3] + [info.running]
    repo.record_metrics(session=s, run_id=info.running, metrics=[("train_loss", 99, math.nan)])
    many = queries.metric_series_many(session=s, run_ids=run_ids)
    for run_id in run_ids:
        expected: dict[str, list] = {}
        for m in repo.run_metrics(session=s, run_id=run_id):
            expected.setdefault(m.key, []).append((m.step, m.value))
        got = many[run_id]
        assert got.keys() == expected.keys()
        for key in expected:
            assert [(st, "nan" if v is not None and math.isnan(v) else v)
                    for st, v in got[key]] == [
                (st, "nan" if v is not None and math.isnan(v) else v)
                for st, v in expected[key]]
    only = queries.metric_series_many(session=s, run_ids=run_ids[:1], keys=["test_acc"])
    assert list(only[run_ids[0]]) == ["test_acc"]


def test_latest_samples_are_each_devices_newest(store):
    """The grouped latest-per-device equals the newest sample of each device's own list."""
    s, _info, _ = store
    latest = queries.latest_samples(session=s)
    for dev in repo.list_devices(session=s):
        newest = queries.device_samples(session=s, device_id=dev.id, limit=1)
        assert latest.get(dev.id) == (newest[0] if newest else None)


def test_experiments_summary_counts_match_the_runs(store):
    """Run counts, best accuracy and devices per experiment agree with the runs themselves."""
    s, _info, _ = store
    for e in queries.experiments_summary(session=s):
        runs = repo.list_runs(session=s, experiment=e.name)
        assert e.runs == len(runs)
        assert e.finished == sum(r.status == "finished" for r in runs)
        assert e.running == sum(r.status == "running" for r in runs)
        best = max((r for r in runs if r.accuracy is not None), key=lambda r: r.accuracy)
        assert e.best_accuracy == best.accuracy
        assert repo.get_run(session=s, run_id=e.best_run_id).accuracy == best.accuracy
        assert set(e.devices) == {r.device or "local" for r in runs}


def test_device_summaries_count_runs_per_device(store):
    """Each device's run count and best accuracy come from its own runs."""
    s, _info, _ = store
    for d in queries.device_summaries(session=s):
        runs = repo.list_runs(session=s, device_id=d.device.id)
        assert d.runs == len(runs)
        accs = [r.accuracy for r in runs if r.accuracy is not None]
        assert d.best_accuracy == (max(accs) if accs else None)


def test_list_queries_do_not_grow_with_the_number_of_runs(store):
    """Lists cost a fixed number of statements, where repo.list_runs costs 2 per run more."""
    s, _info, engine = store
    n = len(repo.list_runs(session=s))
    with count_statements(engine) as seen:
        queries.runs_page(session=s, limit=500)
    assert len(seen) == 4  # count, page, device names, phone leases (for orphaned runs)
    with count_statements(engine) as seen:
        queries.experiments_summary(session=s)
    assert len(seen) == 4
    with count_statements(engine) as seen:
        queries.device_summaries(session=s)
    assert len(seen) == 4
    with count_statements(engine) as seen:
        queries.table1(session=s, experiment="paper-table1")
    assert len(seen) == 4  # experiment, cells (an index), the chosen rows, device names
    with count_statements(engine) as seen:
        repo.list_runs(session=s)
    assert len(seen) > n  # the per-row lookups the joins avoid (identity map caches some)


def test_runs_by_ids_keeps_the_asked_order(store):
    """The compare page's runs come back in the order they were chosen; unknown ids drop."""
    s, info, _ = store
    ids = [info.finished[3], info.finished[0], 99_999, info.finished[3]]
    assert [r.id for r in queries.runs_by_ids(session=s, run_ids=ids)] == [
        info.finished[3], info.finished[0]]


@pytest.mark.parametrize("kind", BACKENDS)
def test_cell_stats_are_reused_until_the_finished_runs_change(kind, tmp_path):
    """The experiment page computes the spread of its cells again only after a run finished:
    until then one index-only statement confirms the kept copy."""
    from dashboard import data

    with backend_url(kind, tmp_path) as url:
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as s:
            info = fill(s, repeats=2)
            first = data.cell_stats(s, info.experiment_id)
            with count_statements(engine) as seen:
                again = data.cell_stats(s, info.experiment_id)
            assert again == first and len(seen) == 1
            repo.create_run(session=s, experiment_id=info.experiment_id,
                            variant=first[0].variant,
                            device_id=repo.list_devices(session=s)[0].id,
                            status="finished", accuracy=0.01,
                            timing={"train": 0.5, "total": 1.0})
            after = data.cell_stats(s, info.experiment_id)
            assert after == queries.cell_stats(session=s, experiment_id=info.experiment_id)
            assert after != first and min(c.accuracy_min for c in after) == 0.01
        engine.dispose()
