"""Which launcher a phone uses: stored, remembered, or detected on the phone now.

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
from orchestrator.links.make import make_link, termux_shell
from orchestrator.links.shell import LAUNCHERS, unknown_launcher
from orchestrator.runner.devices import stored_launcher


def remember_launcher(session: Session, serial: str, launcher: str) -> None:
    from orchestrator.store import repo

    if launcher not in LAUNCHERS:
        raise unknown_launcher(launcher)
    repo.upsert_device(session=session, serial=serial, launcher=launcher)


def staged_in_use(address: DeviceAddress, *, session: Session | None) -> list[str]:
    """Staging paths that live agents inside Termux use, for `orch devices clean` (the adb
    shell cannot look into Termux's run folders); [] for a direct phone."""
    launcher = stored_launcher(session, address.name)
    if launcher not in ("runas", "ssh"):
        return []
    from orchestrator.links.termux import TermuxLink

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
