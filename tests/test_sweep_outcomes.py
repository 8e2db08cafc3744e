"""The sweep worker's retry policy and outcomes, on a real store. The attempt itself (build,
stage, train on a phone) is replaced by one that raises: what is tested is what the worker
does with each kind of failure, not the pipeline (test_sweep_farm.py runs that)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import BuildError
from orchestrator.spec import load_spec
from orchestrator.store import repo, sweep_repo
from orchestrator.store.db import open_session
from orchestrator.sweep.worker import Outcome, PhoneWorker, SweepRuntime

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep(tmp_path):
    """One queued item of a three-attempt sweep on one phone; (url, session, item, phone)."""
    url = f"sqlite:///{tmp_path / 'orch.db'}"
    s = open_session(url)
    spec = load_spec(REPO / "experiments" / "paper_table1.yaml")
    exp = repo.upsert_experiment(session=s, name="exp", spec={}, spec_hash="h")
    dev = repo.upsert_device(session=s, serial="SER1", model="Pixel 7")
    sw = sweep_repo.create_sweep(session=s, name="sw", experiment_id=exp.id,
                                 spec={"max_attempts": 3})
    run = repo.create_run(session=s, experiment_id=exp.id, variant="method1",
                          device_id=dev.id, sweep_id=sw.id)
    sweep_repo.add_item(session=s, sweep_id=sw.id, run_id=run.id, label="method1",
                        variant="method1", point={}, repetition=0,
                        spec=spec.model_dump(mode="json"), device_id=dev.id,
                        phone=dev.serial, model=dev.model)
    sweep_repo.commit_items(session=s)
    item = sweep_repo.claim_next(session=s, sweep_id=sw.id, device_id=dev.id,
                                 phone=dev.serial, model=dev.model)
    yield url, s, item, dev
    s.close()


def _worker(url, dev, sweep_id, error: Exception) -> tuple[PhoneWorker, list[str]]:
    said: list[str] = []
    rt = SweepRuntime(sweep_id=sweep_id, url=url, reassign_after_s=300, max_attempts=3,
                      say=lambda _phone, text: said.append(text),
                      progress=lambda _phone, _label: lambda _p: None)

    class Failing(PhoneWorker):
        attempts = 0

        def _attempt(self, s, item, run, spec):
            type(self).attempts += 1
            raise error

    return Failing(rt, dev), said


def test_an_expected_failure_is_tried_again_until_max_attempts(sweep):
    """A BuildError fails one attempt; the worker tries again, then gives up with the reason
    after max_attempts, and says so."""
    url, s, item, dev = sweep
    w, said = _worker(url, dev, item.sweep_id, BuildError("the converter ran out of memory"))

    assert w._execute(s, item) is Outcome.GAVE_UP

    assert type(w).attempts == 3
    run = repo.get_run(session=s, run_id=sweep_repo.get_item(session=s, item_id=item.id).run_id)
    assert run.status == "failed" and "converter ran out of memory" in run.error
    assert sweep_repo.get_item(session=s, item_id=item.id).note.startswith(
        "gave up after 3 failed attempts: BuildError")
    assert any("gave up after 3 failed attempts" in t for t in said)


def test_a_bug_is_not_tried_again(sweep):
    """A programming error would fail every attempt the same way: one attempt, the run left
    failed with the error's name, the item noted."""
    url, s, item, dev = sweep
    w, _ = _worker(url, dev, item.sweep_id, KeyError("variant"))

    assert w._execute(s, item) is Outcome.GAVE_UP

    assert type(w).attempts == 1
    run = repo.get_run(session=s, run_id=item.run_id)
    assert (run.status, run.error) == ("failed", "KeyError: 'variant'")
    note = sweep_repo.get_item(session=s, item_id=item.id).note
    assert note == "not tried again: an unexpected error: KeyError: 'variant'"


def test_a_failure_after_the_sweep_was_cancelled_ends_the_item_cancelled(sweep):
    """A sweep cancelled during an attempt: its failure is not retried, the run is recorded
    cancelled and the outcome says so."""
    url, s, item, dev = sweep
    w, _ = _worker(url, dev, item.sweep_id, BuildError("no"))
    cancel_first = type(w)._attempt

    def cancelled_meanwhile(self, s, item, run, spec):
        self.rt.cancelled.set()
        return cancel_first(self, s, item, run, spec)

    type(w)._attempt = cancelled_meanwhile

    assert w._execute(s, item) is Outcome.CANCELLED

    assert type(w).attempts == 1
    assert repo.get_run(session=s, run_id=item.run_id).status == "cancelled"
