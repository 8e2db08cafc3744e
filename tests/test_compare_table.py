"""The comparison table: phones of one model keep apart, sweep points keep their order."""

from __future__ import annotations

from sqlmodel import Session

from orchestrator.store import queries, repo
from orchestrator.store.db import make_engine


def _store_with_two_pixels() -> tuple[Session, int]:
    s = Session(make_engine("sqlite://"), expire_on_commit=False)
    exp = repo.upsert_experiment(session=s, name="t1", spec={"variants": {"m1": {}}},
                                 spec_hash="h")
    for serial, acc in (("R5CT1", 0.9), ("R5CT2", 0.8)):
        dev = repo.upsert_device(session=s, serial=serial, model="Pixel 7")
        repo.create_run(session=s, experiment_id=exp.id, variant="m1", device_id=dev.id,
                        status="finished", accuracy=acc, timing={"train": 1.0, "total": 2.0})
    galaxy = repo.upsert_device(session=s, serial="G1", model="SM-S911B")
    repo.create_run(session=s, experiment_id=exp.id, variant="m1", device_id=galaxy.id,
                    status="finished", accuracy=0.7)
    return s, exp.id


def test_same_model_phones_get_their_serial_and_unique_models_do_not():
    s, exp_id = _store_with_two_pixels()
    rows = queries.table1(session=s, experiment="t1")
    assert sorted(r.device for r in rows) == ["Pixel 7 (R5CT1)", "Pixel 7 (R5CT2)", "SM-S911B"]
    assert {r.device: r.accuracy for r in rows}["Pixel 7 (R5CT2)"] == 0.8
    stats = {c.device: c.accuracy_mean for c in queries.cell_stats(session=s, experiment_id=exp_id)}
    assert stats == {"Pixel 7 (R5CT1)": 0.9, "Pixel 7 (R5CT2)": 0.8, "SM-S911B": 0.7}
    names = {r.device for r in queries.runs_page(session=s).runs}
    assert names == set(stats)
    summary = queries.experiments_summary(session=s)[0]
    assert summary.devices == sorted(stats)


def test_an_alias_is_shown_as_given_and_frees_the_model_name():
    s, _ = _store_with_two_pixels()
    repo.set_alias(session=s, serial="R5CT1", alias="pixel-a")
    names = sorted(r.device for r in queries.table1(session=s, experiment="t1"))
    assert names == ["Pixel 7", "SM-S911B", "pixel-a"]
    assert {d.label for d in queries.device_summaries(session=s)} == set(names)


def test_sweep_points_keep_the_order_they_were_queued_in():
    """Points not named in the spec (a sweep's) follow the sweep file, not the alphabet."""
    s, exp_id = _store_with_two_pixels()
    dev = repo.upsert_device(session=s, serial="R5CT1")
    for variant in ("epochs=5", "epochs=10", "epochs=20", "epochs=5"):
        repo.create_run(session=s, experiment_id=exp_id, variant=variant, device_id=dev.id,
                        status="finished", accuracy=0.5)
    want = ["m1", "epochs=5", "epochs=10", "epochs=20"]
    rows = queries.table1(session=s, experiment="t1")
    assert list(dict.fromkeys(r.variant for r in rows)) == want
