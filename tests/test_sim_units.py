"""The virtual phone's pure parts: wire format, profiles, faults, sensor model, df, storage."""

from __future__ import annotations

import errno
import os

import pytest

from orchestrator.devices.parsers import parse_battery, parse_df, parse_getprop, parse_thermal
from orchestrator.errors import NotFound, SpecError
from orchestrator.sim import phone_df, sensors
from orchestrator.sim.faults import Faults, Throttle, make_faults, parse_assignments, parse_size
from orchestrator.sim.phone import shell_environment
from orchestrator.sim.profile import load_profile, parse_profile, profile_names
from orchestrator.sim.protocol import (
    A_CNXN,
    A_WRTE,
    HEADER_SIZE,
    ProtocolError,
    banner,
    pack,
    service_name,
    unpack_header,
)
from orchestrator.sim.services import parse_service
from orchestrator.sim.storage import Storage


def pixel7():
    return load_profile("pixel7")[0]


# -- wire format

def test_packet_header_round_trip():
    """A packed header has the magic adb checks and unpacks to the same fields."""
    data = pack(A_WRTE, 7, 9, b"hello")
    head = unpack_header(data[:HEADER_SIZE])
    assert (head.name, head.arg0, head.arg1, head.length) == ("WRTE", 7, 9, 5)
    assert data[HEADER_SIZE:] == b"hello"


def test_bad_magic_and_oversized_payload_are_protocol_errors():
    """A header with a wrong magic or a payload above the limit is refused."""
    bad = bytearray(pack(A_CNXN, 1, 2))
    bad[20] ^= 0xFF
    with pytest.raises(ProtocolError, match="magic"):
        unpack_header(bytes(bad))
    with pytest.raises(ProtocolError, match="exceeds"):
        unpack_header(pack(A_WRTE, 1, 2, b"x" * 10)[:HEADER_SIZE], max_payload=4)


def test_banner_carries_identity_and_features():
    """The CNXN banner names product, model, device and features; separators are escaped."""
    text = banner({"ro.product.name": "panther", "ro.product.model": "a;b:c",
                   "ro.product.device": "panther"}, ("shell_v2", "stat_v2")).decode()
    assert text == ("device::ro.product.name=panther;ro.product.model=a_b_c;"
                    "ro.product.device=panther;features=shell_v2,stat_v2")


def test_service_names_parse():
    """OPEN payloads parse into their parts."""
    assert service_name(b"shell,v2,TERM=xterm,raw:ls -l\0") == "shell,v2,TERM=xterm,raw:ls -l"
    assert parse_service("shell,v2,TERM=xterm,raw:ls -l") == (
        "shell", ["v2", "TERM=xterm", "raw"], "ls -l")
    assert parse_service("sync:") == ("sync", [], "")
    assert parse_service("tcp:8022") == ("tcp", [], "8022")


# -- profiles

def test_every_shipped_profile_loads_and_lists_as_getprop():
    """Each shipped profile validates, and its properties render as Android's getprop list."""
    assert {"pixel7", "galaxy_s23", "nokia23"} <= set(profile_names())
    for name in profile_names():
        prof, _ = load_profile(name)
        props = prof.all_props("p1")
        listing = "".join(f"[{k}]: [{v}]\n" for k, v in props.items())
        assert parse_getprop(listing) == props
        assert list(props) == sorted(props)


def test_pixel7_profile_values():
    """Pixel 7 reports the model, SDK and SoC of the real phone."""
    props = pixel7().all_props("x")
    assert (props["ro.product.model"], props["ro.build.version.sdk"], props["ro.soc.model"]) == (
        "Pixel 7", "34", "GS201")


def test_android10_profile_has_no_soc_properties():
    """Android 10 predates ro.soc.*; the low-end profile names its board instead."""
    props = load_profile("nokia23")[0].all_props("x")
    assert "ro.soc.model" not in props and props["ro.board.platform"] == "mt6761"
    assert props["ro.build.version.sdk"] == "29"


def test_serial_number_is_stable_per_name_and_differs_between_phones():
    """ro.serialno is derived from the phone's name: stable across starts, unique per phone."""
    p = pixel7()
    assert p.all_props("a")["ro.serialno"] == p.all_props("a")["ro.serialno"]
    assert p.all_props("a")["ro.serialno"] != p.all_props("b")["ro.serialno"]


def test_profile_errors_name_the_field():
    """A profile with a typo, missing props or a bad Python path is a SpecError per field."""
    with pytest.raises(SpecError) as e:
        parse_profile("id: x\nprops: {ro.product.model: M}\npyton: /system/bin/python3\n")
    assert [p.field for p in e.value.problems] == ["pyton"]
    with pytest.raises(SpecError, match="props lack ro.product.manufacturer"):
        parse_profile("id: x\nprops: {ro.product.model: M}\n")
    text = (load_profile("pixel7")[1]).read_text().replace(
        "python: /data/local/tmp/python/bin/python3", "python: /usr/bin/python3")
    with pytest.raises(SpecError, match="python"):
        parse_profile(text)
    with pytest.raises(NotFound) as missing:
        load_profile("no-such-phone")
    assert "pixel7" in missing.value.one_line()


def test_profile_runtime_chooses_the_tflite_runtime():
    """`runtime:` is LiteRT unless named; the Termux profiles run the real tflite-runtime
    2.20; an unknown runtime is a SpecError naming the field and the choices."""
    assert load_profile("pixel7")[0].runtime == "litert"
    assert {load_profile(p)[0].runtime for p in ("termux_pixel7", "termux_fdroid")} == {
        "tflite-runtime-2.20"}
    text = load_profile("pixel7")[1].read_text() + "runtime: tflite-runtime-9.9\n"
    with pytest.raises(SpecError) as e:
        parse_profile(text)
    assert [p.field for p in e.value.problems] == ["runtime"]
    assert "tflite-runtime-2.20" in e.value.problems[0].message


def test_shell_environment_puts_the_profiles_python_on_path():
    """The phone's PATH starts with the profile's Python folder; NNAPI sets its variable."""
    prof = pixel7().model_copy(update={"nnapi_lib": None})
    env = shell_environment(prof, prof.all_props("x"))
    assert env["PATH"].split(":")[0] == "/data/local/tmp/python/bin"
    assert env["TMPDIR"] == "/data/local/tmp" and "ORCH_NNAPI_LIB" not in env
    prof2 = prof.model_copy(update={"nnapi_lib": "/x.so"})
    assert shell_environment(prof2, {})["ORCH_NNAPI_LIB"] == "/system/lib64/libneuralnetworks.so"


# -- faults

@pytest.mark.parametrize(("text", "value"), [("512", 512), ("4K", 4096), ("64M", 64 << 20),
                                             ("1.5G", 3 << 29), ("2MiB", 2 << 20)])
def test_sizes_parse(text, value):
    """Sizes take binary K/M/G suffixes or plain bytes."""
    assert parse_size(text) == value


def test_fault_assignments_validate():
    """--fault items become validated Faults; drop_in is relative to now."""
    got = parse_assignments(["disk_size=1M", "throttle_mbps=2.5", "drop_in=10", "offline=yes"],
                            now=1000.0)
    faults = make_faults(None, got)
    assert faults == Faults(disk_size=1 << 20, throttle_mbps=2.5, drop_at=1010.0, offline=True)
    with pytest.raises(SpecError, match="warp") as e:
        make_faults(None, parse_assignments(["warp=9"]))
    assert "drop_after_bytes" in e.value.one_line()
    with pytest.raises(SpecError):
        parse_assignments(["disk_size=lots"])
    with pytest.raises(SpecError):
        make_faults(None, {"throttle_mbps": -1})


def test_throttle_paces_bytes_to_the_rate():
    """At 10 MB/s, 1 MB takes 0.1 s; with no rate it takes no time (on a simulated clock,
    so a loaded machine cannot change the answer)."""
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    t = Throttle(clock=lambda: now[0], sleep=sleep)
    t.pace(1_000_000)
    assert slept == []
    t.set_rate(10)
    for _ in range(10):
        t.pace(100_000)
    assert sum(slept) == pytest.approx(0.1) and len(slept) == 10
    now[0] += 5  # an idle link does not bank time: the next chunk waits its own share
    t.pace(100_000)
    assert slept[-1] == pytest.approx(0.01)


# -- sensor model

def test_sensor_model_is_deterministic():
    """The same load history gives the same state, to the last bit."""
    prof = pixel7()

    def run():
        s = sensors.initial_state(prof)
        for load in [0, 1, 2, 2, 0.5, 0] * 50:
            s = sensors.step(prof, s, 1.0, load)
        return s

    assert run() == run()


def test_load_heats_and_drains_relative_to_idle():
    """Ten busy minutes leave the SoC hotter and the battery lower than ten idle ones."""
    prof = pixel7().model_copy(update={"battery": pixel7().battery.model_copy(
        update={"plugged": "none"})})
    idle = busy = sensors.initial_state(prof)
    for _ in range(600):
        idle = sensors.step(prof, idle, 1.0, 0.0)
        busy = sensors.step(prof, busy, 1.0, 2.0)
    assert idle.soc_c == pytest.approx(prof.thermal.idle_c)
    assert busy.soc_c == pytest.approx(prof.thermal.idle_c + 2 * prof.thermal.rise_per_core_c,
                                       abs=0.01)
    drain = prof.battery.busy_drain_pct_h * 2 * 600 / 3600
    assert idle.level - busy.level == pytest.approx(drain)
    assert sensors.battery_status(prof, busy) == 3


def test_heavy_load_reaches_thermal_throttling():
    """All cores busy long enough push skin past the first thresholds (status ≥ 1)."""
    prof = load_profile("nokia23")[0]
    s = sensors.initial_state(prof)
    assert sensors.thermal_status(prof, s) == 0
    for _ in range(300):
        s = sensors.step(prof, s, 1.0, prof.cores)
    assert sensors.thermal_status(prof, s) >= 1


def test_rendered_dumpsys_reads_back_with_the_project_parsers():
    """dumpsys battery / thermalservice text parses back to the model's values."""
    prof = pixel7()
    s = sensors.step(prof, sensors.initial_state(prof), 30.0, 1.0)
    b = parse_battery(sensors.render_battery(prof, s))
    assert b.level_pct == int(s.level) and b.plugged is True and b.status == "charging"
    assert b.temperature_c == pytest.approx(sensors.battery_c(prof, s), abs=0.06)
    t = parse_thermal(sensors.render_thermal(prof, s))
    assert t.status == 0 and t.hottest("cpu") == pytest.approx(s.soc_c, abs=0.006)
    assert t.temperature_c == pytest.approx(sensors.skin_c(prof, s), abs=0.006)


# -- df and storage

def test_df_render_parses_back():
    """The phone's df output (both forms) reads back with the project's df parser."""
    rows = [("/dev/block/dm-46", 8 << 30, 3 << 30, 5 << 30, "/data"),
            ("/dev/fuse", 8 << 30, 3 << 30, 5 << 30, "/storage/emulated")]
    parsed = parse_df(phone_df.render(rows, readable=False))
    assert [(d.mount, d.total_bytes, d.used_bytes, d.free_bytes) for d in parsed] == [
        ("/data", 8 << 30, 3 << 30, 5 << 30), ("/storage/emulated", 8 << 30, 3 << 30, 5 << 30)]
    human = parse_df(phone_df.render(rows, readable=True))
    assert human[0].total_bytes == 8 << 30


def test_storage_refuses_paths_outside_its_roots(tmp_path):
    """Writes are allowed under the roots only, after `..` and symlinks are resolved."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "out").symlink_to(tmp_path)
    st = Storage(writable=(str(data),), usage=(str(data),))
    st.check_writable(str(data / "new" / "file"))
    for bad in (data / ".." / "x", data / "out" / "x", tmp_path / "x"):
        with pytest.raises(PermissionError):
            st.check_writable(str(bad))


def test_storage_capacity_charges_and_refuses(tmp_path):
    """With a capacity, bytes already stored plus a write must fit, else ENOSPC."""
    (tmp_path / "f").write_bytes(b"x" * 600)
    st = Storage(writable=(str(tmp_path),), usage=(str(tmp_path),))
    st.charge(10**9)  # no capacity: anything goes
    st.set_capacity(1000)
    st.charge(300)
    with pytest.raises(OSError) as e:
        st.charge(200)
    assert e.value.errno == errno.ENOSPC and os.strerror(errno.ENOSPC) in str(e.value)
    st.remove_for_replace(str(tmp_path / "f"))
    st.charge(200)


def test_starting_a_phone_without_root_says_why(monkeypatch, tmp_path):
    """Without root (no private mount namespace) start fails with a clear message."""
    from orchestrator.errors import DeviceError
    from orchestrator.sim import manager

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DeviceError, match="needs root") as e:
        manager.start_phone(profile="pixel7", home=tmp_path)
    assert "unshare" in e.value.one_line() and not (tmp_path / "sim").exists()
