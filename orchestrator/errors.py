"""The host side's exception tree; the CLI turns each into one line and a named exit code.

    OrchError                      (exit 1, GENERIC)
    ├── SpecError                  (exit 2, SPEC)      problems: list of SpecProblem
    ├── DataError                  (exit 3, DATA)      data source missing, class too small, …
    ├── BuildError                 (exit 4, BUILD)     model cannot be built or converted
    ├── DeviceError                (exit 5, DEVICE)
    │   ├── DeviceNotFound         no attached phone matches (lists what is attached)
    │   ├── DeviceAmbiguous        several phones match
    │   ├── DeviceOffline          the phone went away
    │   ├── DeviceBusy             another run holds the phone (`--no-wait`): run_id
    │   └── DeviceCommandFailed    returncode, output
    ├── RunError                   (exit 6, RUN)       the agent failed or the run was interrupted
    │   └── RunInterrupted         resumable: `orch run --resume RUN`
    ├── TransitionRefused          (exit 6, RUN)       a run may not move to that status now
    ├── EgressRefused              (exit 7, EGRESS)    the egress guard refused a read
    ├── AuditFailed                (exit 7, EGRESS)    a run's ledger does not prove privacy
    ├── StoreError                 (exit 8, STORE)     database cannot be opened or is inconsistent
    └── NotFound                   (exit 9, NOT_FOUND) run / experiment / sweep id unknown

models/ raises its own errors (it imports nothing of the host); `from_models` maps them to
this tree where the orchestrator calls models/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

from models.errors import ModelError


class ExitCode(IntEnum):
    OK = 0
    GENERIC = 1
    SPEC = 2
    DATA = 3
    BUILD = 4
    DEVICE = 5
    RUN = 6
    EGRESS = 7
    STORE = 8
    NOT_FOUND = 9
    INTERRUPTED = 130


class OrchError(Exception):
    """Base of every expected failure; `hint` says what the user can do about it."""

    exit_code: ExitCode = ExitCode.GENERIC

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """Message and hint on one line, each ending in one full stop (a reason that ends in
        one itself must not make it "..")."""
        text = f"{_tidy(self.message)} {_tidy(self.hint)}" if self.hint else _tidy(self.message)
        return " ".join(text.split())


def _tidy(text: str) -> str:
    text = text.strip()
    while text.endswith("..") and not text.endswith("..."):
        text = text[:-1]
    return text


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec: dotted field path, 1-based line in the file (if known), text."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.field} (line {self.line})" if self.line else self.field
        return f"{where}: {self.message}"


class SpecError(OrchError):
    exit_code = ExitCode.SPEC

    def __init__(self, problems: list[SpecProblem], *, source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        text = "; ".join(str(p) for p in problems)
        super().__init__(f"{head}{text}", hint="Fix the spec and run `orch validate` again.")


class DataError(OrchError):
    exit_code = ExitCode.DATA


class BuildError(OrchError):
    exit_code = ExitCode.BUILD


class DeviceError(OrchError):
    exit_code = ExitCode.DEVICE


class DeviceNotFound(DeviceError):
    pass


class DeviceAmbiguous(DeviceError):
    pass


class DeviceOffline(DeviceError):
    pass


class DeviceBusy(DeviceError):
    def __init__(self, message: str, *, run_id: int | None = None, hint: str | None = None):
        self.run_id = run_id
        super().__init__(message, hint=hint)


class DeviceCommandFailed(DeviceError):
    def __init__(self, command: str, returncode: int, output: str, *, hint: str | None = None):
        self.command = command
        self.returncode = returncode
        self.output = output
        tail = output.strip().splitlines()[-1] if output.strip() else "no output"
        super().__init__(f"`{command}` failed on the device (exit {returncode}): {tail}", hint=hint)


class RunError(OrchError):
    exit_code = ExitCode.RUN


class RunInterrupted(RunError):
    def __init__(self, message: str, *, run_id: int | None = None, hint: str | None = None):
        self.run_id = run_id
        if hint is None and run_id is not None:
            hint = f"Reconnect the phone, then `orch run --resume {run_id}`."
        super().__init__(message, hint=hint)


class TransitionRefused(OrchError):
    """The run is not in a status it may move to `target` from (store/status.py); another
    process may have moved it first. Not a RunError: nothing about the run itself failed."""

    exit_code = ExitCode.RUN

    def __init__(self, *, run_id: int, current: str, target: str):
        self.run_id, self.current, self.target = run_id, str(current), str(target)
        super().__init__(f"Run {run_id} is {self.current}; it cannot become {self.target}.",
                         hint=f"See `orch results show {run_id}`.")


class EgressRefused(OrchError):
    exit_code = ExitCode.EGRESS

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"Egress guard refused to read {path}: {reason}.")


class AuditFailed(OrchError):
    exit_code = ExitCode.EGRESS


class StoreError(OrchError):
    exit_code = ExitCode.STORE


class NotFound(OrchError):
    exit_code = ExitCode.NOT_FOUND


@contextmanager
def from_models() -> Iterator[None]:
    """Calls into models/: its BuildError (any ModelError) becomes this tree's BuildError,
    message and hint unchanged."""
    try:
        yield
    except ModelError as e:
        raise BuildError(e.message, hint=e.hint) from e
