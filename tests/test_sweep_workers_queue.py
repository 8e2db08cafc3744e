"""The workers' queue on both stores: concurrent claims from many worker processes' sessions
never take a run twice, selectors and bound phones are respected, and the runs of a worker
whose lease ran out are queued again exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from store_backends import backend_url

from orchestrator.store import repo, sweep_repo, worker_repo
from orchestrator.store.db import open_session
from orchestrator.store.tables import utcnow


@pytest.fixture(params=["sqlite-file", "postgresql"])
def store(request, tmp_path):
    with backend_url(request.param, tmp_path) as url, open_session(url) as s:
        yield url, s


def pool(s, n: int, *, bound_to=None, selector=None):
    """A workers' sweep of n runs, unbound (or bound to the device `bound_to`)."""
    exp = repo.upsert_experiment(session=s, name="exp", spec={}, spec_hash="h")
    sw = sweep_repo.create_sweep(session=s, name="pool", experiment_id=exp.id,
                                 spec={"queue": worker_repo.POOL, "selector": selector})
    for i in range(n):
        dev_id = bound_to.id if bound_to else None
        run = repo.create_run(session=s, experiment_id=exp.id, variant=f"v{i}",
                              device_id=dev_id, sweep_id=sw.id)
        sweep_repo.add_item(session=s, sweep_id=sw.id, run_id=run.id, label=f"v{i}",
                            variant="v", point={"i": i}, repetition=0, spec={},
                            device_id=dev_id, phone=bound_to.serial if bound_to else "",
                            model=None)
    sweep_repo.commit_items(session=s)
    return sw


def test_many_workers_claim_every_run_exactly_once(store):
    """Eight workers, each with its own session in its own thread, drain 40 runs: each run
    is taken once, by the worker whose claim says so."""
    url, s = store
    sw = pool(s, 40)
    got: list[tuple[int, int]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            with open_session(url) as mine:
                dev = repo.upsert_device(session=mine, serial=f"W{k}", model="Pixel 7")
                w = worker_repo.register(session=mine, name=f"h{k}:1", host=f"h{k}",
                                         devices=[dev.serial], lease_s=30)
                while (item := worker_repo.claim(
                        session=mine, worker_id=w.id, sweep_ids=[sw.id], device_id=dev.id,
                        phone=dev.serial, model=dev.model)) is not None:
                    assert item.worker_id == w.id and item.device_id == dev.id
                    with lock:
                        got.append((item.id, w.id))
                    repo.transition_run(session=mine, run_id=item.run_id, to="finished")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert not errors, errors
    assert len(got) == len({i for i, _ in got}) == 40
    assert worker_repo.close_if_done(session=s, sweep_id=sw.id)
    assert sweep_repo.get_sweep(session=s, sweep_id=sw.id).status == "finished"


def test_selectors_and_bound_phones_are_respected(store):
    """A run bound to one phone is never claimed by another; an unbound one is."""
    _, s = store
    a = repo.upsert_device(session=s, serial="A", model="Pixel 7")
    b = repo.upsert_device(session=s, serial="B", model="Pixel 7")
    bound = pool(s, 1, bound_to=a)
    w = worker_repo.register(session=s, name="h:1", host="h", devices=["A", "B"], lease_s=30)

    assert worker_repo.claim(session=s, worker_id=w.id, sweep_ids=[bound.id], device_id=b.id,
                             phone="B", model=b.model) is None
    item = worker_repo.claim(session=s, worker_id=w.id, sweep_ids=[bound.id],
                             device_id=a.id, phone="A", model=a.model)
    assert item is not None and item.phone == "A"


def test_a_dead_workers_runs_are_queued_again_once(store):
    """A worker stops heartbeating with one run not yet started and one mid-way: after its
    lease, the first is queued again as it is, the second as a new run (the old one
    cancelled, saying why); two reapers at once hand each back only once."""
    url, s = store
    sw = pool(s, 3)
    dev = repo.upsert_device(session=s, serial="D", model="Pixel 7")
    dead = worker_repo.register(session=s, name="gone:1", host="gone", devices=["D"],
                                lease_s=30)
    first = worker_repo.claim(session=s, worker_id=dead.id, sweep_ids=[sw.id],
                              device_id=dev.id, phone="D", model=dev.model)
    second = worker_repo.claim(session=s, worker_id=dead.id, sweep_ids=[sw.id],
                               device_id=dev.id, phone="D", model=dev.model)
    repo.update_run(session=s, run_id=second.run_id, events_seen=5,
                    device_run_dir="/data/local/tmp/orch/runs/x")
    assert worker_repo.hand_back_expired(session=s) == []  # its lease is still good

    later = utcnow() + timedelta(seconds=31)
    results: list = []

    def reap() -> None:
        with open_session(url) as mine:
            results.append(worker_repo.hand_back_expired(session=mine, now=later))

    threads = [threading.Thread(target=reap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert sum(n for r in results for _, n in r) == 2
    assert not worker_repo.heartbeat(session=s, worker_id=dead.id, lease_s=30)
    again = sweep_repo.get_item(session=s, item_id=first.id)
    assert again.run_id == first.run_id and again.status == "queued"
    assert again.worker_id is None and again.device_id is None
    moved = sweep_repo.get_item(session=s, item_id=second.id)
    assert moved.run_ids == [second.run_id, moved.run_id] and moved.status == "queued"
    old = repo.get_run(session=s, run_id=second.run_id)
    assert old.status == "cancelled" and "gone:1 lost its lease" in old.error
    assert f"run {moved.run_id}" in old.error
    (w,) = worker_repo.list_workers(session=s)
    assert w.state == "expired"
