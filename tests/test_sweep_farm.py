"""`orch sweep` on a farm of four virtual phones over real adb servers: three on a private
local server, one on a second adb server standing for another host (loopback only). Runs
are the paper spec at small settings (alpha 0.25, input 96, no weights, 6 + 4 photos per
class from each phone's own gallery); one model build, shared with the runner's tests.

A grid of 2 × 2 points on four phones, a phone that drops mid-run, a phone that stays away
(its run moves to the other Pixel), the driving process killed and resumed, cancel, and a
selector that matches nothing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from runs import REPO, orch, store, tiny_photos
from sim_fixtures import ADB, VirtualPhone, _factory, _stop, free_port

from orchestrator.runner.pipeline import default_builder
from orchestrator.settings import get_settings
from orchestrator.store import repo, sweep_repo
from orchestrator.store.tables import LEFT_RUNNING
from orchestrator.sweep.display import SweepDisplay
from orchestrator.sweep.driver import DriveOptions, drive
from orchestrator.sweep.queue import create_sweep

PAPER = REPO / "experiments" / "paper_table1.yaml"

SWEEP = """\
name: {name}
base: {base}
variants: [method2]
set:
  name: {name}
  model.alpha: 0.25
  model.input_size: 96
  model.weights: none
  data.train_per_class: 6
  data.test_per_class: 4
  training.head_epochs: 1
  training.finetune_epochs: {epochs}
grid: {grid}
health: {{min_battery: 5, max_temperature: 90, cooldown_s: {cooldown}}}
reassign_after_s: {reassign}
"""


def _adb(port: int, *args: str) -> str:
    r = subprocess.run([ADB, "-P", str(port), *args], capture_output=True, text=True,
                       timeout=30)
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def servers():
    """A private local adb server (ORCH_ADB_PORT) and a second one, as on another host."""
    if not Path(ADB).exists():
        pytest.skip("Debian's adb is not installed")
    ports = (free_port(), free_port())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORCH_ADB_PORT", str(ports[0]))
        mp.setenv("ADBUTILS_ADB_PATH", ADB)
        get_settings.cache_clear()
        for p in ports:
            _adb(p, "start-server")
        yield ports
        for p in ports:
            _adb(p, "kill-server")
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def farm(servers, tmp_path_factory) -> dict[str, VirtualPhone | str]:
    """pa, pb (Pixel 7), g (Galaxy S23) on the local server; `remote`, a Nokia 2.3 known
    only to the second server, named SERIAL@127.0.0.1:PORT."""
    from orchestrator.sim import manager

    photos = tiny_photos(tmp_path_factory.mktemp("sweep-photos"))
    home = tmp_path_factory.mktemp("sim-sweep")
    start, started = _factory(home)
    phones: dict[str, VirtualPhone | str] = {
        name: start(profile, name=name, photos=photos)
        for name, profile in (("pa", "pixel7"), ("pb", "pixel7"), ("g", "galaxy_s23"))}
    info = manager.start_phone(profile="nokia23", name="nokia", photos=photos, home=home,
                               connect=False)
    started.append(VirtualPhone(info, home))
    assert "connected to" in _adb(servers[1], "connect", info.serial)
    deadline = time.monotonic() + 20
    while f"{info.serial}\tdevice" not in _adb(servers[1], "devices"):
        assert time.monotonic() < deadline, "the second adb server did not see the phone"
        time.sleep(0.2)
    phones["remote"] = f"{info.serial}@127.0.0.1:{servers[1]}"
    yield phones
    _adb(servers[1], "disconnect", info.serial)
    _stop(home, started)


def sweep_file(tmp_path: Path, name: str, *, grid: str = "{data.seed: [0]}",
               epochs: int = 1, cooldown: float = 0, reassign: float = 300) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(SWEEP.format(name=name, base=PAPER, grid=grid, epochs=epochs,
                              cooldown=cooldown, reassign=reassign))
    return p


def serials(farm, *names: str) -> list[str]:
    return [farm[n] if isinstance(farm[n], str) else farm[n].serial for n in names]


def drive_here(home: Path, path: Path, devices: list[str], **opts) -> tuple:
    """Create and drive a sweep in this process; (final status, the lines it printed)."""
    out = io.StringIO()
    url = f"sqlite:///{home / 'orch.db'}"
    with store(home) as s:
        sw = create_sweep(session=s, path=path, cli_sets=[], devices=devices)
    options = DriveOptions(builder=default_builder(home / "cache"), poll_s=0.1,
                           idle_s=0.3, reconnect_s=0.5, health_poll_s=0.5, **opts)
    with SweepDisplay(Console(file=out, width=200), live=False) as display:
        status = drive(url=url, sweep_id=sw.id, display=display, options=options)
    return status, out.getvalue()


class Watcher(threading.Thread):
    """Polls the store until `check(session)` holds, then does `action()`; `result()` joins
    and re-raises what went wrong in the thread."""

    def __init__(self, home: Path, check: Callable, action: Callable, timeout: float) -> None:
        super().__init__(daemon=True)
        self.home, self.check, self.action, self.timeout = home, check, action, timeout
        self.fired = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                with store(self.home) as s:
                    if self.check(s):
                        self.fired = True
                        self.action()
                        return
                time.sleep(0.05)
        except BaseException as e:
            self.error = e

    def result(self, timeout: float = 60) -> bool:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.fired


def when(home: Path, check: Callable, action: Callable, *, timeout: float = 240) -> Watcher:
    """In a thread: poll the store until `check(session)` holds, then `action()`."""
    store(home).close()  # the schema is created here, not by two threads at once
    w = Watcher(home, check, action, timeout)
    w.start()
    return w


def running_at_epoch(device_serial: str, epoch: int) -> Callable:
    def check(s) -> bool:
        dev = repo.find_device(session=s, serial=device_serial)
        runs = repo.list_runs(session=s, device_id=dev.id, status="running") if dev else []
        return any((r.progress.get("epoch") or 0) >= epoch for r in runs)

    return check


# ------------------------------------------------------------------ the farm


def test_grid_of_four_points_on_four_phones_on_two_servers(farm, home, tmp_path):
    """`orch sweep FILE` runs 2 × 2 points on 4 phones (one behind a second adb server):
    16 runs, each stored once and finished; status counts 4 done per phone; compare keeps
    every point × phone apart; each run waited at the health gate and sampled the phone."""
    path = sweep_file(tmp_path, "farm-grid", grid="{delegate: [nnapi, cpu], "
                                                  "data.seed: [0, 1]}", cooldown=2)
    phones = serials(farm, "pa", "pb", "g", "remote")

    r = orch("sweep", str(path), "--devices", ",".join(phones), "--format", "json")

    assert r.returncode == 0, r.stderr[-3000:]
    status = json.loads(r.stdout)
    assert status["counts"]["finished"] == 16 and status["sweep"]["status"] == "finished"
    assert sorted(p["serial"] for p in status["phones"]) == sorted(phones)
    assert all(p["counts"]["finished"] == 4 for p in status["phones"])
    watched = orch("sweep", "status", str(status["sweep"]["id"]))
    assert watched.returncode == 0 and "16" in watched.stdout
    compare = json.loads(orch("results", "compare", "farm-grid", "--format", "json").stdout)
    assert len(compare) == 16 and all(c["runs"] == 1 for c in compare)
    assert {c["variant"] for c in compare} == {
        "method2(nnapi,seed=0)", "method2(cpu,seed=0)", "method2(nnapi,seed=1)",
        "method2(cpu,seed=1)"}
    with store(home) as s:
        runs = repo.list_runs(session=s, sweep_id=status["sweep"]["id"])
        samples = {r.id: repo.run_samples(session=s, run_id=r.id) for r in runs}
        remote = repo.find_device(session=s, serial=farm["remote"])
    assert len(runs) == 16 and {r.status for r in runs} == {"finished"}
    assert len({(r.variant, r.device_id) for r in runs}) == 16
    assert sum(r.device_id == remote.id for r in runs) == 4
    assert all(i["run_ids"] == [i["run_id"]] for i in status["items"])
    assert all("health_wait" in r.timing for r in runs)
    assert all(any(x.step == 0 and x.battery for x in samples[r.id]) for r in runs)
    # Cool-down between runs on one phone: every phone's later runs waited for it.
    cooled = [r for r in runs if r.timing.get("cooldown", 0) > 0]
    assert len(cooled) >= 12


def test_runs_after_the_first_start_warm_and_no_agent_is_left_waiting(farm, home, tmp_path):
    """Three runs on one phone: the first starts the agent's Python, the next two get the
    warm agent that waited in its own folder; when the sweep ends, the unused waiting agent
    is stopped and its folder removed."""
    g = farm["g"]
    path = sweep_file(tmp_path, "farm-warm", grid="{data.seed: [0, 1, 2]}")
    runs_dir = g.host_path("/data/local/tmp/orch/runs")

    def standby_folders() -> set[str]:
        return {p.name for p in runs_dir.iterdir() if p.name.startswith("s-")} \
            if runs_dir.exists() else set()

    before = standby_folders()  # earlier tests' runs on this phone
    status, lines = drive_here(home, path, [g.serial])
    assert status.sweep.status == "finished" and status.counts["finished"] == 3, lines
    with store(home) as s:
        runs = sorted(repo.list_runs(session=s, sweep_id=status.sweep.id), key=lambda r: r.id)
    folders = [r.device_run_dir.rsplit("/", 1)[1] for r in runs]
    assert not folders[0].startswith("s-") and all(f.startswith("s-") for f in folders[1:])
    # The one started after the last run was stopped, then its folder removed.
    assert standby_folders() - before == set(folders[1:])


def test_a_phone_that_drops_mid_run_is_resumed_when_it_returns(farm, home, tmp_path):
    """The link to pa is cut at epoch 2 and restored 3 s later: the run is resumed from the
    phone (not started again) and finishes, its metrics stored once; g is undisturbed."""
    pa = farm["pa"]
    path = sweep_file(tmp_path, "farm-drop", epochs=80)

    def cut() -> None:
        pa.set_faults(drop_after_bytes=0, drop_in=0)
        time.sleep(3)
        pa.set_faults(clear=True)
        pa.reconnect()

    watcher = when(home, running_at_epoch(pa.serial, 2), cut)
    status, lines = drive_here(home, path, serials(farm, "pa", "g"))
    assert watcher.result(30)
    assert status.sweep.status == "finished" and status.counts["finished"] == 2, lines
    assert "lost the phone" in lines and "the phone is back" in lines
    (item,) = [i for i in status.items if i.phone == pa.serial]
    assert item.run_ids == [item.run_id] and item.attempts == 0
    with store(home) as s:
        run = repo.get_run(session=s, run_id=item.run_id)
        metrics = repo.run_metrics(session=s, run_id=item.run_id)
    assert run.status == "finished" and run.error is None
    assert set(Counter(m.key for m in metrics).values()) == {81}  # each key once per epoch


def test_a_phone_that_stays_away_hands_its_run_to_the_same_model(farm, home, tmp_path):
    """pa drops for good mid-run: after reassign_after_s its run moves to pb (the other
    Pixel 7) as a new run that finishes; the old row says where it went."""
    pa = farm["pa"]
    path = sweep_file(tmp_path, "farm-move", epochs=60, reassign=2)
    watcher = when(home, running_at_epoch(pa.serial, 2),
                   lambda: pa.set_faults(drop_after_bytes=0, drop_in=0))
    try:
        status, lines = drive_here(home, path, serials(farm, "pa", "pb"))
    finally:
        fired = watcher.result(30)
        pa.set_faults(clear=True)
        pa.reconnect()

    assert fired and status.sweep.status == "finished" and status.counts["finished"] == 2, lines
    moved = [i for i in status.items if len(i.run_ids) == 2]
    assert len(moved) == 1 and moved[0].phone == farm["pb"].serial
    with store(home) as s:
        old = repo.get_run(session=s, run_id=moved[0].run_ids[0])
        new = repo.get_run(session=s, run_id=moved[0].run_ids[1])
        pb = repo.find_device(session=s, serial=farm["pb"].serial)
    assert old.status == "cancelled" and f"moved to run {new.id}" in old.error
    assert old.progress.get(LEFT_RUNNING) is True  # its agent on pa is stopped by pa's next run
    assert new.status == "finished" and new.device_id == pb.id
    assert new.variant == old.variant and "released" in lines


def test_killed_driver_is_resumed_without_repeating_finished_runs(farm, home, tmp_path):
    """`orch sweep` is killed (-9) with runs finished and running; `orch sweep resume`
    reattaches to the agents, runs the rest, and leaves every finished run as it was."""
    path = sweep_file(tmp_path, "farm-kill", grid="{data.seed: [0, 1, 2]}", epochs=40)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", str(path),
                             "--devices", ",".join(serials(farm, "g", "remote"))],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def midway(s) -> bool:
        runs = [r for sw in sweep_repo.list_sweeps(session=s)
                for r in repo.list_runs(session=s, sweep_id=sw.id)]
        return (any(r.status == "finished" for r in runs)
                and any(r.status == "running" and r.device_run_dir for r in runs))

    killer = when(home, midway, lambda: os.kill(proc.pid, signal.SIGKILL))
    assert killer.result(300)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    with store(home) as s:
        (sw,) = sweep_repo.list_sweeps(session=s)
        before = {r.id: r for r in repo.list_runs(session=s, sweep_id=sw.id)}
    done_before = {i: (r.finished, r.events_seen, r.accuracy) for i, r in before.items()
                   if r.status == "finished"}

    resumed = orch("sweep", "resume", str(sw.id), "--format", "json")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["counts"]["finished"] == 6
    with store(home) as s:
        after = {r.id: r for r in repo.list_runs(session=s, sweep_id=sw.id)}
        metrics = {i: repo.run_metrics(session=s, run_id=i) for i in after}
    assert set(after) == set(before) and len(after) == 6
    assert {r.status for r in after.values()} == {"finished"}
    assert done_before and all((after[i].finished, after[i].events_seen, after[i].accuracy)
                               == v for i, v in done_before.items())
    for run_id, m in metrics.items():  # each key once per epoch of the run, none missing
        epochs = max(x.step for x in m)
        assert set(Counter(x.key for x in m).values()) == {epochs}, run_id
        assert {x.step for x in m} == set(range(1, epochs + 1)), run_id


def test_cancel_stops_the_running_agent_and_the_queue(farm, home, tmp_path):
    """`orch sweep cancel` while a run trains: its agent stops (cancelled), the queued
    runs are cancelled, and the driving process ends."""
    path = sweep_file(tmp_path, "farm-cancel", grid="{data.seed: [0, 1, 2]}", epochs=300)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", str(path),
                             "--devices", farm["g"].serial], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = when(home, running_at_epoch(farm["g"].serial, 3), lambda: None)
    assert started.result(300)
    with store(home) as s:
        (sw,) = sweep_repo.list_sweeps(session=s)

    cancel = orch("sweep", "cancel", str(sw.id))
    _, err = proc.communicate(timeout=120)

    assert cancel.returncode == 0 and "cancelled" in cancel.stdout, cancel.stderr
    with store(home) as s:
        runs = repo.list_runs(session=s, sweep_id=sw.id)
        final = sweep_repo.get_sweep(session=s, sweep_id=sw.id)
    assert final.status == "cancelled" and {r.status for r in runs} == {"cancelled"}, err
    stopped = [r for r in runs if r.events_seen]
    assert len(stopped) == 1 and stopped[0].progress["epoch"] < 301


def test_a_run_that_fails_twice_is_marked_failed_and_the_sweep_goes_on(farm, home,
                                                                        tmp_path):
    """A point whose photo folder is missing fails, is tried once more in a new run, then
    stays failed with its reason; the other point finishes; exit 6 with one line."""
    path = sweep_file(tmp_path, "farm-fail", grid="{data.source: [device:/sdcard/DCIM/"
                                                  "catsdogs, device:/sdcard/DCIM/missing]}")

    r = orch("sweep", str(path), "--devices", farm["g"].serial)

    assert r.returncode == 6 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Sweep") and "1 of 2 runs failed" in last
    with store(home) as s:
        (sw,) = sweep_repo.list_sweeps(session=s)
        items = sweep_repo.list_items(session=s, sweep_id=sw.id)
        runs = {r.id: r for r in repo.list_runs(session=s, sweep_id=sw.id)}
    ok, bad = sorted(items, key=lambda i: "missing" in i.label)
    assert ok.status == "finished" and len(ok.run_ids) == 1
    assert bad.status == "failed" and bad.attempts == 2 and len(bad.run_ids) == 2
    assert all(runs[i].status == "failed" and runs[i].error for i in bad.run_ids)
    assert "gave up after 2 failed attempts" in bad.note and sw.status == "finished"
    # The folder appears: --retry-failed runs only the failed point again, as a new run.
    shutil.copytree(farm["g"].host_path("/sdcard/DCIM/catsdogs"),
                    farm["g"].host_path("/sdcard/DCIM/missing"))
    again = orch("sweep", "resume", str(sw.id), "--retry-failed")
    assert again.returncode == 0, again.stderr[-2000:]
    with store(home) as s:
        ok2, bad2 = sorted(sweep_repo.list_items(session=s, sweep_id=sw.id),
                           key=lambda i: "missing" in i.label)
    assert ok2.run_ids == ok.run_ids and ok2.status == "finished"
    assert bad2.status == "finished" and bad2.run_ids[:2] == bad.run_ids
    assert len(bad2.run_ids) == 3


def test_a_phone_too_hot_for_the_gate_fails_the_run_with_the_reading(farm, home, tmp_path):
    """A temperature gate the phone cannot meet within max_wait_s: the run fails before
    anything is staged, naming the reading; the wait and the samples are recorded."""
    path = sweep_file(tmp_path, "farm-hot")
    path.write_text(path.read_text().replace(
        "health: {min_battery: 5, max_temperature: 90, cooldown_s: 0}",
        "health: {max_temperature: 1, max_wait_s: 1}"))

    r = orch("sweep", str(path), "--devices", farm["pb"].serial)

    assert r.returncode == 6 and "health gate: temperature" in r.stderr.splitlines()[-1]
    with store(home) as s:
        (run,) = [x for sw in sweep_repo.list_sweeps(session=s)
                  for x in repo.list_runs(session=s, sweep_id=sw.id)]
        samples = repo.run_samples(session=s, run_id=run.id)
        pushed = repo.run_transfers(session=s, run_id=run.id)
    assert run.status == "failed" and "> 1.0 °C after waiting" in run.error
    assert run.timing["health_wait"] >= 1 and len(samples) >= 2 and not pushed
    assert all(x.temperature and x.temperature > 1 for x in samples)


def test_selectors_find_phones_on_both_adb_servers(farm, home, tmp_path, servers):
    """`--dry-run` with selectors: `all` is the local server's three phones; a model glob
    over both servers finds the Nokia behind the second one; nothing is queued."""
    path = str(sweep_file(tmp_path, "farm-select", grid="{data.seed: [0, 1]}"))

    def phones(*devices: str) -> dict:
        args = [a for d in devices for a in ("--devices", d)]
        r = orch("sweep", path, *args, "--dry-run", "--format", "json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    local = phones("all")
    nokia = phones("model=nokia*", f"servers=local,127.0.0.1:{servers[1]}")
    pixels = phones("model=Pixel*", "sdk=>=30", "manufacturer=Google")

    assert sorted(local["phones"]) == sorted(serials(farm, "pa", "pb", "g"))
    assert local["runs"] == 6 and local["points"] == ["method2(seed=0)", "method2(seed=1)"]
    assert nokia["phones"] == [farm["remote"]]
    assert sorted(pixels["phones"]) == sorted(serials(farm, "pa", "pb"))
    assert json.loads(orch("sweep", "list", "--format", "json").stdout) == []


def test_a_selector_matching_no_phone_is_a_one_line_error(farm, home, tmp_path):
    """`--devices model=iPhone*` matches none of the attached phones: exit 5, one line
    naming what is attached, and nothing queued."""
    r = orch("sweep", str(sweep_file(tmp_path, "farm-none")), "--devices", "model=iPhone*")

    assert r.returncode == 5 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: No attached phone matches") and "iPhone*" in last
    assert farm["pa"].serial in last
    listed = orch("sweep", "list", "--format", "json")
    assert json.loads(listed.stdout) == []
