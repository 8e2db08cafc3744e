"""`runas`: `adb shell run-as com.termux files/usr/bin/bash -c '…'` in Termux's environment.

Only Termux's GitHub builds are debuggable, which run-as requires; its refusals (`run-as:
package not debuggable: com.termux`, unknown package, …) become one DeviceError that says
which build to install or which launcher to use instead.
"""

from __future__ import annotations

import shlex

from orchestrator.errors import DeviceError
from orchestrator.links.direct import AdbShell
from orchestrator.links.termux_env import PACKAGE, prelude

GITHUB_RELEASES = "https://github.com/termux/termux-app/releases"


def install_github_hint(serial: str) -> str:
    return (f"Install Termux's GitHub build ({GITHUB_RELEASES}; uninstall an F-Droid or Play "
            "build first, their signatures differ), or use the ssh launcher (any build): "
            f"`orch devices set {serial} --launcher ssh`.")


def refusal(serial: str, out: str) -> DeviceError | None:
    """The DeviceError for run-as's own refusal in `out` (pure), or None."""
    line = next((x.strip() for x in out.splitlines() if x.startswith("run-as: ")), None)
    if line is None:
        return None
    if "not debuggable" in line:
        return DeviceError(f"Termux on {serial} is not debuggable (an F-Droid or Google Play "
                           f"build), so `run-as {PACKAGE}` refuses it.",
                           hint=install_github_hint(serial))
    if "unknown package" in line:
        return DeviceError(f"Termux is not installed on {serial}.",
                           hint=install_github_hint(serial))
    return DeviceError(f"`run-as {PACKAGE}` failed on {serial}: {line}",
                       hint=f"Check with `orch devices doctor {serial} --launcher runas`.")


class RunAsShell(AdbShell):
    """Scripts as the Termux app (its uid, its folder, its environment), through run-as."""

    launcher = "runas"

    def wrap(self, script: str) -> str:
        return f"run-as {PACKAGE} files/usr/bin/bash -c {shlex.quote(prelude() + script)}"

    def check(self, rc: int, out: str) -> None:
        if rc == 127 and "run-as" in out and "not found" in out:
            raise DeviceError(f"{self.name} has no run-as command.",
                              hint=f"Use the ssh launcher: `orch devices set {self.name} "
                                   "--launcher ssh`.")
        error = refusal(self.name, out) if rc == 1 else None
        if error is not None:
            raise error
