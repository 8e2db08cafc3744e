"""`--device NAME` resolution (pure): alias, serial, model substring, remote names."""

from __future__ import annotations

import pytest

from orchestrator.devices.adb import Attached
from orchestrator.devices.address import AdbServer, DeviceAddress
from orchestrator.devices.resolve import match_device
from orchestrator.errors import DeviceAmbiguous, DeviceNotFound, DeviceOffline


def phone(serial: str, model: str | None, state: str = "device") -> Attached:
    tags = {"model": model.replace(" ", "_")} if model else {}
    return Attached(DeviceAddress.parse(serial), state, tags)


FARM = [
    phone("127.0.0.1:5600", "Pixel 7"),
    phone("127.0.0.1:5602", "Pixel 6a"),
    phone("R5CT1234", "SM-A525F"),
    phone("ZY22", "moto g", state="unauthorized"),
]


def test_alias_wins_over_model_and_is_case_insensitive():
    """An alias names its serial even when the alias is also a model substring."""
    aliases = {"Pixel": "127.0.0.1:5602"}
    assert match_device("pixel", FARM, aliases).name == "127.0.0.1:5602"


def test_serial_and_unique_model_substring():
    """A serial is exact; 'pixel 7' and 'a525' each match one phone's model."""
    assert match_device("R5CT1234", FARM, {}).model == "SM-A525F"
    assert match_device("pixel 7", FARM, {}).name == "127.0.0.1:5600"
    assert match_device("a525", FARM, {}).name == "R5CT1234"


def test_model_matching_several_is_ambiguous_and_lists_them():
    """`Pixel` matches two phones: refused, both named."""
    with pytest.raises(DeviceAmbiguous) as e:
        match_device("Pixel", FARM, {})
    assert "127.0.0.1:5600" in e.value.message and "127.0.0.1:5602" in e.value.message
    assert "R5CT1234" not in e.value.message


def test_unknown_name_lists_what_is_attached():
    """A name matching nothing is DeviceNotFound naming every attached phone and its state."""
    with pytest.raises(DeviceNotFound) as e:
        match_device("nokia", FARM, {})
    assert all(a.name in e.value.message for a in FARM)
    assert "unauthorized" in e.value.message


def test_alias_of_a_missing_phone_is_not_found():
    """An alias whose phone is unplugged says so, with its serial."""
    with pytest.raises(DeviceNotFound, match="serial GONE1"):
        match_device("lab1", FARM, {"lab1": "GONE1"})


def test_unauthorized_phone_by_serial_is_offline_with_a_fix():
    """Naming an unauthorized phone tells the user to accept the USB debugging prompt."""
    with pytest.raises(DeviceOffline) as e:
        match_device("ZY22", FARM, {})
    assert "USB debugging" in (e.value.hint or "")


def test_models_of_unusable_phones_do_not_match():
    """An unauthorized phone's model is not a match candidate."""
    with pytest.raises(DeviceNotFound):
        match_device("moto", FARM, {})


def test_remote_address_parsing():
    """SERIAL@HOST:PORT names a remote adb server; tcp serials stay whole."""
    remote = DeviceAddress.parse("R5CT1234@lab-host:5037")
    tcp = DeviceAddress.parse("127.0.0.1:5600")
    assert remote.serial == "R5CT1234" and remote.server == AdbServer("lab-host", 5037)
    assert remote.name == "R5CT1234@lab-host:5037"
    assert tcp.serial == "127.0.0.1:5600" and tcp.server is None
    assert DeviceAddress.parse("odd@name").server is None
