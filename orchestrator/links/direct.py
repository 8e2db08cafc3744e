"""`direct`: the agent runs from the adb shell itself (a Python on its PATH or at a configured
path: virtual phones, rooted phones). `AdbShell` is also the base of `runas`, which only
wraps each script in `run-as`."""

from __future__ import annotations

from orchestrator.devices.adb import Phone, adb_errors


class AdbShell:
    """Scripts in the phone's adb shell, exit codes checked by `Phone`."""

    launcher = "direct"

    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    @property
    def name(self) -> str:
        return self.phone.name

    def wrap(self, script: str) -> str:
        """The adb shell command that runs `script` (where the agent runs)."""
        return script

    def check(self, rc: int, out: str) -> None:
        """Raise when the wrapper itself failed (not the script)."""

    def run_rc(self, script: str, *, timeout: float | None = None,
               what: str | None = None) -> tuple[int, str]:
        rc, out = self.phone.run_rc(self.wrap(script), timeout=timeout,
                                    what=what or (script.split() or ["shell"])[0])
        self.check(rc, out)
        return rc, out

    def read_bytes(self, script: str, *, what: str) -> tuple[int, bytes]:
        """Only the bytes the script prints cross the cable, undecoded."""
        with adb_errors(what, self.name):
            rc, stdout, output = self.phone.exec_raw(self.wrap(script))
        if rc != 0:
            self.check(rc, output.decode(errors="replace"))
        return rc, stdout

    def close(self) -> None:
        pass
