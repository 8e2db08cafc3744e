"""The phone lease (store/lease.py, runner/phone_lease.py), the agent's run-folder lock and the
repair of an events file two agents wrote: on real SQLite files shared by several engines (as
several hosts share one database) and real agent processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session
from store_backends import backend_url

from device_agent import contract
from device_agent.events import repair
from orchestrator.errors import DeviceBusy
from orchestrator.runner import phone_lease
from orchestrator.runner.phone_lease import hold_phone
from orchestrator.store import lease, repo
from orchestrator.store.db import make_engine

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite-file", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    """A store several engines share: a SQLite file, or a fresh PostgreSQL database when
    ORCH_TEST_PG_URL names a server."""
    with backend_url(request.param, tmp_path) as u:
        yield u


def _host(url: str) -> Session:
    """A session on its own engine: another host on the same database."""
    return Session(make_engine(url), expire_on_commit=False)


def _take(s: Session, token: str, *, now: float, holder: str = "hostA:1", ttl: float = 60,
          dead=lambda _h: False, run_id: int | None = None, device_id: int = 7):
    return lease.try_acquire(session=s, device_id=device_id, token=token, holder=holder,
                             purpose="run", run_id=run_id, label="method2", now=now,
                             ttl_s=ttl, holder_dead=dead)


def test_one_holder_at_a_time_and_takeover_only_when_expired_or_dead(url):
    """A second host is refused while the lease is live; it takes an expired lease, or one
    whose holder is known dead; renew and release work only with the holder's token."""
    a, b = _host(url), _host(url)
    assert _take(a, "ta", now=1000) is None
    held = _take(b, "tb", now=1010, holder="hostB:2")
    assert held is not None and held.holder == "hostA:1" and held.label == "method2"
    assert not lease.renew(session=b, device_id=7, token="tb", now=1010, ttl_s=60)
    assert lease.renew(session=a, device_id=7, token="ta", now=1050, ttl_s=60)
    assert _take(b, "tb", now=1100, holder="hostB:2") is not None  # renewed: live to 1110
    assert _take(b, "tb", now=1111, holder="hostB:2") is None  # expired: taken over
    assert not lease.renew(session=a, device_id=7, token="ta", now=1112, ttl_s=60)
    assert _take(a, "ta", now=1120, dead=lambda h: h == "hostB:2") is None  # dead holder
    lease.release(session=b, device_id=7, token="tb")  # not its lease any more: no effect
    assert lease.current(session=b, device_id=7).holder == "hostA:1"
    lease.release(session=a, device_id=7, token="ta")
    assert lease.current(session=b, device_id=7) is None


def test_racing_hosts_get_the_phone_once(url):
    """Eight hosts (own engines, own threads) race for a free phone, then for its expired
    lease: each time exactly one wins."""
    hosts = [_host(url) for _ in range(8)]
    for now in (1000.0, 2000.0):
        start = threading.Barrier(len(hosts))
        won: list[int] = []

        def race(i: int, now: float = now, start: threading.Barrier = start,
                 won: list[int] = won) -> None:
            start.wait()
            if _take(hosts[i], f"t{now}-{i}", now=now, holder=f"h{i}:1") is None:
                won.append(i)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(len(hosts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, won


def _run_with_epochs(s: Session, seconds: list[float], planned: int):
    exp = repo.upsert_experiment(session=s, name="exp", spec={}, spec_hash="h")
    dev = repo.upsert_device(session=s, serial="SER7", model="Pixel 7", alias="pixel7")
    run = repo.create_run(session=s, experiment_id=exp.id, variant="method2",
                          device_id=dev.id, params={"head_epochs": 1,
                                                    "finetune_epochs": planned - 1,
                                                    "finetune_from": "B"})
    repo.record_metrics(session=s, run_id=run.id, metrics=[
        ("epoch_seconds", i + 1, v) for i, v in enumerate(seconds)])
    repo.transition_run(session=s, run_id=run.id, to="running",
                        progress={"epoch": len(seconds)})
    return dev, run


def _in_thread(fn) -> BaseException | None:
    """What `fn` raised in another thread (a thread holds a phone once: nested holds in one
    thread share the lease)."""
    out: list[BaseException | None] = [None]

    def call() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001  (handed to the test)
            out[0] = e

    t = threading.Thread(target=call)
    t.start()
    t.join(timeout=60)
    return out[0]


def test_a_busy_phone_names_the_run_and_its_time_left(url):
    """`--no-wait` on a held phone: DeviceBusy (exit 5) saying `pixel7 is busy: run N
    (method2), about 3 min left`; waiting says the same and gets the phone once it is free."""
    a, b = _host(url), _host(url)
    dev, run = _run_with_epochs(a, [6.0] * 10, planned=40)  # 30 epochs × 6 s left
    said: list[str] = []
    with hold_phone(session=a, device=dev, purpose="run", label="method2", run_id=run.id):
        refused = _in_thread(lambda: hold_phone(session=b, device=dev, purpose="run",
                                                wait=False).__enter__())
        assert isinstance(refused, DeviceBusy)
        assert refused.exit_code == 5 and refused.run_id == run.id
        assert refused.message == f"pixel7 is busy: run {run.id} (method2), about 3 min left."
        got: list[bool] = []

        def second() -> None:
            with hold_phone(session=b, device=dev, purpose="run", say=said.append,
                            poll_s=0.05):
                got.append(True)

        waiter = threading.Thread(target=second)
        waiter.start()
        deadline = time.monotonic() + 30
        while not said and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not got  # still waiting while the first holds the phone
    waiter.join(timeout=30)
    assert got == [True]
    assert said == [f"pixel7 is busy: run {run.id} (method2), about 3 min left; waiting for it"]


def test_nested_holds_share_one_lease_and_name_the_run(url):
    """A sweep's turn holds the phone; the run inside it holds it again without waiting on
    itself, and the lease then names that run."""
    s = _host(url)
    dev, run = _run_with_epochs(s, [], planned=2)
    with hold_phone(session=s, device=dev, purpose="sweep") as outer:
        with hold_phone(session=s, device=dev, purpose="run", run_id=run.id, wait=False) as inner:
            assert inner is outer
            assert lease.current(session=s, device_id=dev.id).run_id == run.id
        assert lease.current(session=s, device_id=dev.id) is not None
    assert lease.current(session=s, device_id=dev.id) is None


def test_a_running_run_whose_host_died_shows_orphaned_then_interrupted(url, tmp_path):
    """A host killed while following a run leaves its lease: the run shows `orphaned` with
    the resume command (stored status unchanged); the next host to take the phone marks it
    `interrupted` with the same hint."""
    s = _host(url)
    dev, run = _run_with_epochs(s, [1.0], planned=4)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    holder = f"{phone_lease.me().rpartition(':')[0]}:{dead.stdout.strip()}"
    assert _take(s, "gone", now=time.time(), holder=holder, run_id=run.id,
                 device_id=dev.id) is None
    (shown,) = lease.mark_orphans(session=s, runs=[repo.get_run(session=s, run_id=run.id)])
    assert shown.status == "orphaned" and f"orch run --resume {run.id}" in shown.error
    assert repo.get_run(session=s, run_id=run.id).status == "running"
    with hold_phone(session=s, device=dev, purpose="clean", wait=False):
        stored = repo.get_run(session=s, run_id=run.id)
    assert stored.status == "interrupted" and f"orch run --resume {run.id}" in stored.error


def _agent(run_dir: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "device_agent", *args, str(run_dir)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def test_a_second_agent_in_a_locked_run_folder_refuses(tmp_path):
    """While a live agent holds the run folder's lock, a second agent started there exits
    with EXIT_LOCKED and error code run_locked, touches nothing, and points agent.pid back
    at the live agent (`repair` is refused too); once that one is gone the folder can be
    used again."""
    run_dir = tmp_path / "runs" / "12-abcd"
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from device_agent import lock; "
         "lock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(600)",
         str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        (run_dir / contract.PID_FILE).write_text("999999\n")  # the launcher's, for the 2nd
        (run_dir / contract.EVENTS_FILE).write_text('{"seq":1,"t":1,"kind":"start"}\n')
        second = _agent(run_dir, "run", "--resume")
        out, err = second.communicate(timeout=60)
        assert second.returncode == contract.EXIT_LOCKED, err
        assert json.loads(out.splitlines()[-1])["code"] == "run_locked"
        assert f"pid {holder.pid}" in err and "12-abcd" in err
        assert (run_dir / contract.PID_FILE).read_text().strip() == str(holder.pid)
        assert (run_dir / contract.EVENTS_FILE).read_text() == '{"seq":1,"t":1,"kind":"start"}\n'
        repair = _agent(run_dir, "repair")  # a resume's foreground repair: refused as well
        assert repair.wait(timeout=60) == contract.EXIT_LOCKED
    finally:
        holder.kill()
        holder.wait()
    third = _agent(run_dir, "run")  # no job.json: it gets past the lock and fails on the job
    _, err = third.communicate(timeout=60)
    assert third.returncode == contract.EXIT_BAD_JOB, err


def test_repair_keeps_the_valid_prefix_of_a_two_writer_events_file(tmp_path):
    """Lines after the first seq that does not go up are moved to events.jsonl.discarded; a
    line cut short by a kill -9 earlier in the file is kept (the guard skips it)."""
    path = tmp_path / contract.EVENTS_FILE
    good = ['{"seq":1,"kind":"start"}', '{"seq":2,"kind":"epoch"', '{"seq":2,"kind":"epoch"}',
            '{"seq":3,"kind":"checkpoint"}']
    bad = ['{"seq":3,"kind":"start"}', '{"seq":4,"kind":"epoch"}', '{"seq":4,"kind":"epoch"}']
    text = "\n".join(good + bad) + "\n"
    path.write_text(text)
    kept = "\n".join(good) + "\n"
    assert repair(str(path)) == len(text) - len(kept)
    assert path.read_text() == kept
    assert (tmp_path / (contract.EVENTS_FILE + ".discarded")).read_text() == \
        "\n".join(bad) + "\n"
    assert repair(str(path)) == 0
