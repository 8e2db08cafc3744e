"""The device link for a launcher name (direct, runas, ssh) on a phone."""

from __future__ import annotations

from orchestrator.devices.adb import Phone
from orchestrator.devices.address import DeviceAddress
from orchestrator.links.base import DeviceLink
from orchestrator.links.shell import AgentShell, unknown_launcher


def termux_shell(phone: Phone, launcher: str) -> AgentShell:
    """The shell into Termux for `runas` or `ssh`."""
    from orchestrator.links.runas import RunAsShell
    from orchestrator.links.ssh import SshShell

    if launcher == "runas":
        return RunAsShell(phone)
    if launcher == "ssh":
        return SshShell(phone)
    raise unknown_launcher(launcher)


def make_link(address: DeviceAddress, launcher: str) -> DeviceLink:
    """The device link for `launcher` on the phone at `address`."""
    from orchestrator.links.adb import AdbLink

    if launcher == "direct":
        return AdbLink(address)
    from orchestrator.links.termux import TermuxLink

    phone = Phone(address)
    return TermuxLink(phone, termux_shell(phone, launcher))
