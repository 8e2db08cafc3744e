"""Which launcher a phone uses, and the device link for it.

Stored per phone (the Device row's `launcher`, set by `orch devices set DEV --launcher X`,
`orch devices setup` or the first `orch devices doctor`); a phone with none stored is
`direct`, as before launchers existed. `detect` finds what works on a phone right now.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from orchestrator.devices.adb import Phone
from orchestrator.devices.address import DeviceAddress
from orchestrator.errors import DeviceError
from orchestrator.launchers.base import LAUNCHERS, AgentShell, unknown_launcher
from orchestrator.runner.link import DeviceLink

DEFAULT = "direct"


def stored_launcher(session: Session | None, serial: str) -> str | None:
    if session is None:
        return None
    from orchestrator.store import repo

    dev = repo.find_device(session=session, serial=serial)
    return dev.launcher if dev is not None and dev.launcher in LAUNCHERS else None


def remember_launcher(session: Session, serial: str, launcher: str) -> None:
    from orchestrator.store import repo

    if launcher not in LAUNCHERS:
        raise unknown_launcher(launcher)
    repo.upsert_device(session=session, serial=serial, launcher=launcher)


def termux_shell(phone: Phone, launcher: str) -> AgentShell:
    from orchestrator.launchers.runas import RunAsShell
    from orchestrator.launchers.ssh import SshShell

    if launcher == "runas":
        return RunAsShell(phone)
    if launcher == "ssh":
        return SshShell(phone)
    raise unknown_launcher(launcher)


def make_link(address: DeviceAddress, launcher: str) -> DeviceLink:
    """The device link for `launcher` on the phone at `address`."""
    from orchestrator.runner.adb_link import AdbLink

    if launcher == "direct":
        return AdbLink(address)
    from orchestrator.launchers.termux_link import TermuxLink

    phone = Phone(address)
    return TermuxLink(phone, termux_shell(phone, launcher))


def open_device_link(address: DeviceAddress, *, session: Session | None = None,
                     launcher: str | None = None) -> DeviceLink:
    """The link for a resolved phone: the given launcher, else the stored one, else direct."""
    return make_link(address, launcher or stored_launcher(session, address.name) or DEFAULT)


def staged_in_use(address: DeviceAddress, *, session: Session | None) -> list[str]:
    """Staging paths that live agents inside Termux use, for `orch devices clean` (the adb
    shell cannot look into Termux's run folders); [] for a direct phone."""
    launcher = stored_launcher(session, address.name)
    if launcher not in ("runas", "ssh"):
        return []
    from orchestrator.launchers.termux_link import TermuxLink

    link = make_link(address, launcher)
    assert isinstance(link, TermuxLink)
    try:
        return link.staged_in_use()
    finally:
        link.close()
        link.shell.close()


@dataclass(frozen=True)
class Detection:
    launcher: str | None  # one that works now, best first (direct, runas, ssh)
    recommended: str  # the one to set up when none works
    why: str


def detect(phone: Phone) -> Detection:
    """What works on `phone` now: a Python on the shell's PATH (direct), run-as into
    Termux (runas: GitHub builds), or Termux's sshd with orch's key (ssh)."""
    from orchestrator.launchers.termux_facts import read_termux_facts

    rc, _ = phone.run_rc("command -v python3 || command -v python", what="python check")
    if rc == 0:
        return Detection("direct", "direct", "a Python is on the adb shell's PATH")
    facts = read_termux_facts(phone)
    if not facts.installed:
        return Detection(None, "runas", "no Python on the shell's PATH and no Termux")
    if facts.package is not None and facts.package.debuggable:
        return Detection("runas", "runas", "Termux is a debuggable (GitHub) build")
    try:
        shell = termux_shell(phone, "ssh")
        try:
            shell.run_rc("true", what="ssh check")
        finally:
            shell.close()
    except DeviceError as e:
        return Detection(None, "ssh", f"Termux is not debuggable; ssh: {e.message}")
    return Detection("ssh", "ssh", "Termux's sshd accepts orch's key")
