"""Virtual phones for tests, reached through the real adb server (port 5037) and adbutils.

Import the fixtures into a test module (the name a test asks for must be in its module):

    from sim_fixtures import virtual_phone  # noqa: F401

    def test_model(virtual_phone):
        phone = virtual_phone("pixel7")            # started, `adb connect`ed, in state device
        assert phone.adb().prop.model == "Pixel 7"
        phone.set_faults(drop_in=0)                # run-time faults (see orchestrator.sim.faults)

`virtual_phone` stops its phones after the test; `sim_session` is the same factory for the
whole session (phones are shared: do not leave faults set). Both disconnect the adb server
from every phone they started, and each phone's state lives under a pytest tmp folder.
Phones are tethered to the test process: if it is killed, they stop by themselves.
Needs root (the phone's shell gets a private mount namespace); skips otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.testing import free_port  # noqa: F401  (a port free on loopback now)

ADB = "/usr/bin/adb"


class VirtualPhone:
    """A started phone: `.serial`, `.root` (its storage on the host), `.port`, `.adb()`."""

    def __init__(self, info: Any, home: Path) -> None:
        self.info = info
        self.home = home

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def serial(self) -> str:
        return self.info.serial

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def root(self) -> Path:
        return self.info.root

    @property
    def state_dir(self) -> Path:
        return self.info.state_dir

    def host_path(self, phone_path: str) -> Path:
        return self.info.host_path(phone_path)

    def adb(self, timeout: float = 60.0):
        return self.info.adb(timeout=timeout)

    def set_faults(self, *, clear: bool = False, **changes: Any):
        """Change faults at run time, e.g. drop_in=0, throttle_mbps=5, disk_size=1 << 20."""
        from orchestrator.sim import manager
        from orchestrator.sim.faults import parse_assignments

        items = [f"{k}={v}" for k, v in changes.items()]
        return manager.set_faults(self.name, parse_assignments(items), clear=clear,
                                  home=self.home)

    def reconnect(self, timeout: float = 15.0) -> None:
        """`adb connect` again (after a dropped link) and wait for state `device`."""
        from orchestrator.sim import adbctl

        adbctl.connect(self.serial, timeout=timeout)

    def log(self) -> str:
        return (self.state_dir / "phone.log").read_text(errors="replace")


def _can_run_phones() -> str | None:
    if os.geteuid() != 0:
        return "virtual phones need root (private mount namespaces)"
    if not Path(ADB).exists() and not os.environ.get("ADBUTILS_ADB_PATH"):
        return "Debian's adb is not installed"
    return None


def _factory(home: Path) -> tuple[Callable[..., VirtualPhone], list[VirtualPhone]]:
    from orchestrator.sim import manager

    started: list[VirtualPhone] = []

    def start(profile: str = "pixel7", *, name: str | None = None, photos: Path | None = None,
              faults: dict[str, Any] | None = None) -> VirtualPhone:
        reason = _can_run_phones()
        if reason:
            pytest.skip(reason)
        os.environ.setdefault("ADBUTILS_ADB_PATH", ADB)
        name = name or f"{Path(profile).stem}-{len(started)}"
        info = manager.start_phone(profile=profile, name=name, photos=photos, faults=faults,
                                   home=home, tethered=True)
        phone = VirtualPhone(info, home)
        started.append(phone)
        return phone

    return start, started


def _stop(home: Path, phones: list[VirtualPhone]) -> None:
    from orchestrator.sim import manager

    for phone in phones:
        try:
            manager.stop_phone(phone.name, home=home)
        except Exception as e:  # keep stopping the others
            print(f"could not stop virtual phone {phone.name}: {e}")


@pytest.fixture
def virtual_phone(tmp_path_factory) -> Iterator[Callable[..., VirtualPhone]]:
    """Start virtual phones for one test: `virtual_phone(profile="pixel7", name=…, …)`."""
    home = tmp_path_factory.mktemp("sim-home")
    start, started = _factory(home)
    yield start
    _stop(home, started)


@pytest.fixture(scope="session")
def sim_session(tmp_path_factory) -> Iterator[Callable[..., VirtualPhone]]:
    """Like `virtual_phone`, but the phones live for the whole test session."""
    home = tmp_path_factory.mktemp("sim-session")
    start, started = _factory(home)
    yield start
    _stop(home, started)


@pytest.fixture(scope="module")
def phones(adb_server, tmp_path_factory) -> Iterator[Callable[..., VirtualPhone]]:
    """Start virtual phones for the module on its private adb server:
    `phones("pixel7", name=…, photos=…)`."""
    home = tmp_path_factory.mktemp("sim-module")
    start, started = _factory(home)
    yield start
    _stop(home, started)


@pytest.fixture(scope="module")
def adb_server() -> Iterator[int]:
    """A private adb server for the module (ORCH_ADB_PORT), so other suites' phones stay out
    of `--device` resolution; killed at the end."""
    import subprocess

    from orchestrator.settings import get_settings

    if not Path(ADB).exists():
        pytest.skip("Debian's adb is not installed")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORCH_ADB_PORT", str(port))
        mp.setenv("ADBUTILS_ADB_PATH", ADB)
        get_settings.cache_clear()
        subprocess.run([ADB, "-P", str(port), "start-server"], capture_output=True,
                       timeout=30, check=True)
        yield port
        subprocess.run([ADB, "-P", str(port), "kill-server"], capture_output=True, timeout=30)
    get_settings.cache_clear()


def cut_at_checkpoint(phone: VirtualPhone, runs_dir: str, epoch: int, found: list,
                      then: Callable[[str], None] | None = None) -> None:
    """Watch `runs_dir` on the phone for a new run's checkpoint `epoch`, then pull the cable
    (every link drops until the fault is cleared; the phone and its processes live on), run
    `then(run folder name)` if given, and append the folder name to `found`."""
    import time

    from device_agent import contract

    runs = phone.host_path(runs_dir)
    known = set(runs.iterdir()) if runs.exists() else set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for folder in set(runs.iterdir()) - known if runs.exists() else ():
            events = folder / contract.EVENTS_FILE
            text = events.read_text(errors="replace") if events.exists() else ""
            if f'"kind":"checkpoint","epoch":{epoch}' in text.replace(" ", ""):
                phone.set_faults(drop_after_bytes=0, drop_in=0)
                if then is not None:
                    then(folder.name)
                found.append(folder.name)
                return
        time.sleep(0.005)
