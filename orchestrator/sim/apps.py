"""Apps on a virtual phone: what a start lays out (permissions of a stock phone, the package
manager's commands and state, a Termux install) and what runs once the phone is up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.sim import identity, packages, termux
from orchestrator.sim.profile import Profile

if TYPE_CHECKING:
    from orchestrator.sim.phone import Phone


def prepare(storage: Path, system: Path, profile: Profile) -> None:
    """Host side, after /system is written and before the phone's root is built."""
    identity.prepare_permissions(storage, profile)
    identity.write_toybox(system, profile)
    packages.write_commands(system)
    app = termux.install(storage, profile)
    packages.prepare_state(storage, profile, [app] if app else [])


def boot(phone: Phone) -> None:
    """Inside the phone, once it listens: the apps' background processes."""
    termux.boot(phone)
