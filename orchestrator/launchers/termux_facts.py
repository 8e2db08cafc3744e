"""What the adb shell can learn about Termux without entering it: installed or not, which
build (`dumpsys package com.termux`: versionName, installer, DEBUGGABLE flag), its storage
permission, and Android's phantom-process setting. Parsers are pure, for captured text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.devices.adb import Phone
from orchestrator.links.termux_env import PACKAGE

STORAGE_PERMISSION = "android.permission.READ_EXTERNAL_STORAGE"
PHANTOM_SETTING = "settings_enable_monitor_phantom_procs"  # global, Android 12L (SDK 32)+
# Installer package → where the build came from. GitHub builds are sideloaded (a package
# installer or none) and are the only debuggable ones.
INSTALLERS = {"org.fdroid.fdroid": "fdroid", "org.fdroid.basic": "fdroid",
              "com.aurora.store": "play", "com.android.vending": "play"}


@dataclass(frozen=True)
class TermuxPackage:
    """`dumpsys package com.termux`, parsed."""

    version: str | None
    installer: str | None
    debuggable: bool
    uid: int | None
    storage_granted: bool | None  # None: the dump lists no such runtime permission
    target_sdk: int | None

    @property
    def source(self) -> str:
        """github | fdroid | play | unknown."""
        if self.debuggable:
            return "github"
        if self.installer in INSTALLERS:
            return INSTALLERS[self.installer]
        version = (self.version or "").lower()
        if "googleplay" in version:
            return "play"
        return "unknown"

    def describe(self) -> str:
        where = {"github": "GitHub build (debuggable)", "fdroid": "F-Droid build",
                 "play": "Google Play build", "unknown": "unknown source, not debuggable"}
        return f"{self.version or 'version ?'}, {where[self.source]}"


def installed(pm_list: str, package: str = PACKAGE) -> bool:
    """`pm list packages com.termux` names the package exactly (not just com.termux.api)."""
    return any(line.strip() == f"package:{package}" for line in pm_list.splitlines())


def _field(text: str, key: str) -> str | None:
    m = re.search(rf"^\s*{re.escape(key)}=(\S*)", text, re.MULTILINE)
    return m.group(1) if m and m.group(1) not in ("", "null") else None


def parse_dumpsys_package(text: str) -> TermuxPackage | None:
    """The package section of `dumpsys package PKG`; None when the package is absent."""
    if "Package [" not in text:
        return None
    flags = re.search(r"^\s*flags=\[([^\]]*)\]", text, re.MULTILINE)
    grant = re.search(rf"{re.escape(STORAGE_PERMISSION)}: granted=(true|false)", text)
    target = re.search(r"targetSdk=(\d+)", text)
    uid = _field(text, "userId")
    return TermuxPackage(
        version=_field(text, "versionName"), installer=_field(text, "installerPackageName"),
        debuggable=bool(flags and "DEBUGGABLE" in flags.group(1).split()),
        uid=int(uid) if uid and uid.isdigit() else None,
        storage_granted=None if grant is None else grant.group(1) == "true",
        target_sdk=int(target.group(1)) if target else None)


def phantom_limited(sdk: int | None, setting: str, max_phantom: str) -> bool | None:
    """Does Android kill heavy background child processes here? (pure)

    Android 12 (SDK 31) caps them by `device_config activity_manager max_phantom_processes`
    (32 by default); 12L+ lets `settings_enable_monitor_phantom_procs false` turn the
    monitor off. None when the answer is not known.
    """
    if sdk is None:
        return None
    if sdk < 31:
        return False
    if sdk >= 32 and setting.strip() == "false":
        return False
    value = max_phantom.strip()
    if value.isdigit() and int(value) >= 1 << 20:
        return False
    return True


_SPLIT = "=====ORCH-TERMUX====="


def gather_command() -> str:
    """One adb shell command for every fact above."""
    return (f"pm list packages {PACKAGE}; echo {_SPLIT}; dumpsys package {PACKAGE}; "
            f"echo {_SPLIT}; settings get global {PHANTOM_SETTING}; echo {_SPLIT}; "
            "device_config get activity_manager max_phantom_processes; true")


@dataclass(frozen=True)
class AndroidTermuxFacts:
    installed: bool
    package: TermuxPackage | None
    phantom_setting: str
    max_phantom: str


def parse_gathered(text: str) -> AndroidTermuxFacts:
    parts = (text.split(_SPLIT) + ["", "", "", ""])[:4]
    pkg = parse_dumpsys_package(parts[1])
    return AndroidTermuxFacts(installed=installed(parts[0]) or pkg is not None, package=pkg,
                              phantom_setting=parts[2].strip(), max_phantom=parts[3].strip())


def read_termux_facts(phone: Phone) -> AndroidTermuxFacts:
    rc, out = phone.run_rc(gather_command(), what="Termux facts")
    return parse_gathered(out)
