"""Sweep parts without phones: phone selectors, health gates on an injected clock, and the
queue's claims on a real SQLite file shared by threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from store_backends import backend_url

from orchestrator.errors import SpecError
from orchestrator.links.base import HealthSample
from orchestrator.spec import HealthSpec
from orchestrator.store import repo, sweep_repo
from orchestrator.store.db import open_session
from orchestrator.store.public import DevicePublic
from orchestrator.sweep.health import unmet, wait_until_ready
from orchestrator.sweep.phones import matches, parse_cli_devices, sdk_matches
from orchestrator.sweep.spec import DeviceSelector

# ------------------------------------------------------------------ selectors


def device(model: str, sdk: int, maker: str) -> DevicePublic:
    now = datetime.now(UTC)
    return DevicePublic(id=1, serial="S", model=model, sdk=sdk, manufacturer=maker,
                        first_seen=now, last_seen=now)


@pytest.mark.parametrize("rule, sdk, ok", [
    (">=30", 34, True), (">=30", 29, False), ("<33", 32, True), ("34", 34, True),
    ("==34", 33, False), (">29", None, False)])
def test_sdk_rules(rule, sdk, ok):
    """`sdk:` compares the phone's API level; an unknown level never matches."""
    assert sdk_matches(rule, sdk) is ok


def test_selector_fields_must_all_match():
    """Model and manufacturer are case-insensitive globs; every set field must match."""
    pixel, nokia = device("Pixel 7", 34, "Google"), device("Nokia 2.3", 29, "HMD Global")
    sel = DeviceSelector(model="pixel*", sdk=">=30")

    assert matches(sel, pixel) and not matches(sel, nokia)
    assert matches(DeviceSelector(), nokia)  # `all`
    assert not matches(DeviceSelector(model="Pixel*", manufacturer="samsung"), pixel)


def test_cli_devices_are_names_or_a_selector():
    """`--devices` takes names (comma-separated or repeated), `all`, or selector fields."""
    assert parse_cli_devices(["pixel7,R5CT@10.0.0.5:5037", "galaxy"]) == [
        "pixel7", "R5CT@10.0.0.5:5037", "galaxy"]
    sel = parse_cli_devices(["model=Pixel*", "sdk=>=30", "servers=local,10.0.0.5:5037"])
    assert (sel.model, sel.sdk, sel.servers) == ("Pixel*", ">=30", ["local", "10.0.0.5:5037"])
    assert parse_cli_devices(["all"]) == DeviceSelector()
    with pytest.raises(SpecError):
        parse_cli_devices(["pixel7", "model=Pixel*"])


# ------------------------------------------------------------------ health gates


class FakeClock:
    """Time that moves only when the gate sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_gate_waits_for_battery_then_passes_and_records_samples():
    """A phone charging from 20 % passes the 30 % gate once it gets there."""
    clock, seen = FakeClock(), []
    levels = iter([20, 25, 31])
    result = wait_until_ready(
        health=HealthSpec(min_battery=30), since_last_run_s=None, clock=clock,
        sleep=clock.sleep, poll_s=10, on_sample=seen.append,
        sample=lambda: HealthSample(battery=next(levels), temperature=30.0))

    assert result.ok and result.samples == 3 and result.waited_s == 20
    assert [s.battery for s in seen] == [20, 25, 31]


def test_gate_cools_down_after_the_last_run_then_gives_up_on_heat():
    """Cool-down is what is left of `cooldown_s`; a phone that stays hot fails the gate
    after max_wait_s, with the reason."""
    clock = FakeClock()
    result = wait_until_ready(
        health=HealthSpec(max_temperature=40, cooldown_s=60, max_wait_s=30),
        since_last_run_s=15, clock=clock, sleep=clock.sleep, poll_s=10,
        sample=lambda: HealthSample(battery=90, temperature=45.5))

    assert not result.ok and result.cooldown_s == 45
    assert result.waited_s == 45 + 30 and "temperature 45.5 °C > 40.0 °C" in result.reason


def test_unknown_readings_do_not_hold_a_run_back():
    """A phone that reports no temperature passes a temperature gate."""
    assert unmet(HealthSpec(max_temperature=40), HealthSample(battery=50)) is None
    assert unmet(HealthSpec(min_battery=60), HealthSample(battery=50)) == "battery 50 % < 60 %"


# ------------------------------------------------------------------ the queue


@pytest.fixture(params=["sqlite-file", "postgresql"])
def store(request, tmp_path):
    with backend_url(request.param, tmp_path) as url, open_session(url) as s:
        yield url, s


def queue(s, phones: dict[str, tuple[str, int]]):
    """A sweep whose phones (serial → (model, runs)) each have their own queued runs."""
    exp = repo.upsert_experiment(session=s, name="exp", spec={}, spec_hash="h")
    devs = {serial: repo.upsert_device(session=s, serial=serial, model=model)
            for serial, (model, _) in phones.items()}
    sw = sweep_repo.create_sweep(session=s, name="sw", experiment_id=exp.id, spec={})
    for serial, (_, n) in phones.items():
        dev = devs[serial]
        for i in range(n):
            run = repo.create_run(session=s, experiment_id=exp.id, variant=f"v{i}",
                                  device_id=dev.id, sweep_id=sw.id)
            sweep_repo.add_item(session=s, sweep_id=sw.id, run_id=run.id, label=f"v{i}",
                                variant="v", point={}, repetition=0, spec={},
                                device_id=dev.id, phone=dev.serial, model=dev.model)
    sweep_repo.commit_items(session=s)
    return sw, devs


def _finish(s, run_id: int) -> None:
    """Run a claimed item to its end (a released or stale one is taken up first)."""
    if repo.get_run(session=s, run_id=run_id).status != "running":
        repo.transition_run(session=s, run_id=run_id, to="running")
    repo.transition_run(session=s, run_id=run_id, to="finished")


def test_claims_by_many_threads_never_take_an_item_twice(store):
    """Eight phones of one model, each in its own thread and session, share the runs a
    ninth released: every run is taken exactly once."""
    url, s = store
    phones = {"A": ("Pixel 7", 24)} | {f"B{i}": ("Pixel 7", 0) for i in range(8)}
    sw, devs = queue(s, phones)
    sweep_repo.release_items(session=s, sweep_id=sw.id, device_id=devs["A"].id, note="away")
    got: list[int] = []
    lock = threading.Lock()

    def worker(dev: DevicePublic) -> None:
        with open_session(url) as mine:
            while (item := sweep_repo.claim_next(
                    session=mine, sweep_id=sw.id, device_id=dev.id, phone=dev.serial,
                    model=dev.model)) is not None:
                with lock:
                    got.append(item.id)
                _finish(mine, item.run_id)

    threads = [threading.Thread(target=worker, args=(devs[f"B{i}"],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(got) == len(set(got)) == 24


def test_a_phone_takes_its_own_stale_runs_first_then_queued_then_released(store):
    """Order of work: runs a stopped host left, own queue, runs released by its model."""
    _, s = store
    sw, devs = queue(s, {"A": ("Pixel 7", 2), "B": ("Pixel 7", 2), "C": ("SM-S911B", 2)})
    items = sweep_repo.list_items(session=s, sweep_id=sw.id)
    a_items = [i for i in items if i.device_id == devs["A"].id]
    b_items = [i for i in items if i.device_id == devs["B"].id]
    repo.transition_run(session=s, run_id=b_items[1].run_id, to="interrupted")
    sweep_repo.release_items(session=s, sweep_id=sw.id, device_id=devs["A"].id, note="away")

    def claim(serial: str):
        dev = devs[serial]
        return sweep_repo.claim_next(session=s, sweep_id=sw.id, device_id=dev.id,
                                     phone=serial, model=dev.model)

    order = []
    for _ in range(4):
        item = claim("B")
        order.append(item.id)
        _finish(s, item.run_id)

    assert order == [b_items[1].id, b_items[0].id, a_items[0].id, a_items[1].id]
    assert claim("C").model == "SM-S911B"  # its own; never a Pixel's released run
    assert not sweep_repo.may_need(session=s, sweep_id=sw.id, device_id=devs["B"].id,
                                   model="Pixel 7")
