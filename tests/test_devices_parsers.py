"""Parsers of getprop / dumpsys battery / dumpsys thermalservice / df, on captured text."""

from __future__ import annotations

from orchestrator.devices.facts import facts_from_props
from orchestrator.devices.health import HEALTH_COMMAND, health_from_text
from orchestrator.devices.parsers import parse_battery, parse_df, parse_getprop, parse_thermal

GETPROP_PIXEL7 = """\
[dalvik.vm.heapsize]: [512m]
[ro.build.fingerprint]: [google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys]
[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.product.manufacturer]: [Google]
[ro.product.model]: [Pixel 7]
[ro.product.name]: [panther]
[ro.soc.manufacturer]: [Google]
[ro.soc.model]: [GS201]
[persist.sys.motd]: [first line
second line]
[ro.empty]: []
"""

GETPROP_OLD = """\
[ro.board.platform]: [msm8953]
[ro.build.version.release]: [8.1.0]
[ro.build.version.sdk]: [27]
[ro.hardware]: [qcom]
[ro.product.cpu.abi]: [armeabi-v7a]
[ro.product.model]: [Moto G (5S) Plus]
"""

BATTERY_USB = """\
Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Dock powered: false
  Max charging current: 500000
  Max charging voltage: 5000000
  Charge counter: 3021000
  status: 2
  health: 2
  present: true
  level: 73
  scale: 100
  voltage: 4102
  temperature: 291
  technology: Li-ion
"""

BATTERY_SCALED = """\
Current Battery Service state:
  (UPDATES STOPPED -- use 'reset' to restart)
  AC powered: false
  USB powered: false
  Wireless powered: false
  status: 3
  level: 120
  scale: 200
  temperature: 345
"""

THERMAL_A12 = """\
IsStatusOverride: false
ThermalEventListeners:
\tcallbacks: 1
\tkilled: false
\tbroadcasts count: -1
ThermalStatusListeners:
\tcallbacks: 3
\tkilled: false
\tbroadcasts count: -1
Thermal Status: 2
Cached temperatures:
\tTemperature{mValue=49.5, mType=3, mName=skin, mStatus=0}
\tTemperature{mValue=0.0, mType=2, mName=SUBBAT, mStatus=0}
HAL Ready: true
HAL connection:
\tThermalHAL 2.0 connected: yes
Current temperatures from HAL:
\tTemperature{mValue=41.2, mType=0, mName=cpu0, mStatus=1}
\tTemperature{mValue=44.8, mType=0, mName=cpu7, mStatus=2}
\tTemperature{mValue=31.4, mType=2, mName=battery, mStatus=0}
\tTemperature{mValue=36.9, mType=3, mName=skin, mStatus=2}
\tTemperature{mValue=-99.9, mType=5, mName=pa, mStatus=0}
\tTemperature{mValue=0.0, mType=4, mName=usb, mStatus=0}
Current cooling devices from HAL:
\tCoolingDevice{mValue=2, mType=2, mName=cpu0}
Temperature static thresholds from HAL:
\tTemperatureThreshold{mType=3, mName=skin, mHotThrottlingThresholds=[39.0, 43.0]}
"""

THERMAL_CACHED_ONLY = """\
Thermal Status: 0
Cached temperatures:
\tTemperature{mValue=28.5, mType=2, mName=battery, mStatus=0}
\tTemperature{mValue=33.0, mType=0, mName=CPU, mStatus=0}
HAL Ready: false
"""

DF_TOYBOX = """\
Filesystem                  1K-blocks     Used Available Use% Mounted on
/dev/block/dm-46            115600920 29176892  86293100  26% /data
"""

DF_WRAPPED_512 = """\
Filesystem           512-blocks      Used Available Capacity Mounted on
/dev/block/platform/soc/1da4000.ufshc/by-name/userdata
                       2000000    500000   1500000  25% /data
"""

DF_TOOLBOX = """\
Filesystem               Size     Used     Free   Blksize
/data                   25.5G    10.2G    15.3G   4096
"""


def test_getprop_reads_values_multiline_and_empty():
    """Every `[key]: [value]` is read, a two-line value whole, an empty value as ''."""
    props = parse_getprop(GETPROP_PIXEL7)
    assert props["ro.product.model"] == "Pixel 7"
    assert props["persist.sys.motd"] == "first line\nsecond line"
    assert props["ro.empty"] == ""
    assert len(props) == 12


def test_facts_from_modern_and_old_phones():
    """Android 14 names its SoC in ro.soc.model; Android 8 falls back to the board."""
    new = facts_from_props(parse_getprop(GETPROP_PIXEL7))
    old = facts_from_props(parse_getprop(GETPROP_OLD))
    assert (new.model, new.sdk, new.release, new.soc, new.abi) == (
        "Pixel 7", 34, "14", "GS201", "arm64-v8a")
    assert (old.model, old.sdk, old.soc, old.manufacturer) == (
        "Moto G (5S) Plus", 27, "msm8953", None)
    assert new.store_fields()["facts"]["product"] == "panther"


def test_battery_level_temperature_and_power():
    """Level is scaled to percent, temperature from tenths of a degree, USB counts as plugged."""
    usb = parse_battery(BATTERY_USB)
    scaled = parse_battery(BATTERY_SCALED)
    assert (usb.level_pct, usb.temperature_c, usb.status, usb.plugged) == (
        73.0, 29.1, "charging", True)
    assert (scaled.level_pct, scaled.temperature_c, scaled.status, scaled.plugged) == (
        60.0, 34.5, "discharging", False)


def test_battery_absent_fields_are_none():
    """Text without battery fields yields None, not zeros."""
    b = parse_battery("Can't find service: battery\n")
    assert (b.level_pct, b.temperature_c, b.status, b.plugged) == (None, None, None, None)


def test_thermal_prefers_live_readings_and_drops_absent_sensors():
    """Live HAL readings win over the stale cache; 0.0 and -99.9 placeholders are dropped."""
    t = parse_thermal(THERMAL_A12)
    assert t.status == 2
    assert t.temperature_c == 36.9  # skin, not the cached 49.5
    assert t.hottest("cpu") == 44.8
    assert sorted(s.name for s in t.sensors) == ["battery", "cpu0", "cpu7", "skin"]


def test_thermal_falls_back_to_cache_then_to_nothing():
    """Without a live block the cache is used; old Android (no service) gives None."""
    cached = parse_thermal(THERMAL_CACHED_ONLY)
    none = parse_thermal("Can't find service: thermalservice\n")
    assert (cached.status, cached.temperature_c) == (0, 33.0)
    assert (none.status, none.temperature_c, none.sensors) == (None, None, [])


def test_df_formats():
    """toybox 1K blocks, a wrapped long device name in 512-byte blocks, old toolbox suffixes."""
    (toy,) = parse_df(DF_TOYBOX)
    (wrapped,) = parse_df(DF_WRAPPED_512)
    (tool,) = parse_df(DF_TOOLBOX)
    assert (toy.mount, toy.free_bytes, toy.total_bytes) == ("/data", 86293100 * 1024,
                                                           115600920 * 1024)
    assert (wrapped.mount, wrapped.free_bytes) == ("/data", 1500000 * 512)
    assert wrapped.filesystem.endswith("userdata")
    assert (tool.mount, tool.free_bytes) == ("/data", int(15.3 * 1024**3))


def test_health_sample_combines_battery_and_thermal():
    """One combined dump gives battery %, skin temperature and thermal status."""
    text = BATTERY_USB + HEALTH_COMMAND.split("echo ")[1].split(" ")[0] + "\n" + THERMAL_A12
    h = health_from_text(text)
    assert (h.battery, h.temperature, h.battery_temperature, h.thermal_status) == (
        73.0, 36.9, 29.1, 2)


def test_health_without_thermalservice_uses_battery_temperature():
    """Before Android 10 the battery's temperature is the phone's temperature."""
    h = health_from_text(BATTERY_SCALED)
    assert (h.battery, h.temperature, h.thermal_status) == (60.0, 34.5, None)
