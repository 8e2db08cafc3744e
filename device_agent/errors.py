"""The agent's expected failures: each has an event code, a one-line message and an exit code.

    AgentError                 (EXIT_ERROR, code "error")
    ├── BadJob                 (EXIT_BAD_JOB, "bad_job")     job.json or the models are unusable
    ├── DataProblem            (EXIT_DATA, "data")           data root / class folder / too few
    ├── DiskFull               (EXIT_DISK_FULL, "disk_full") ENOSPC writing cache or checkpoint
    ├── Cancelled              (EXIT_CANCELLED, "cancelled") SIGTERM
    └── RunLocked              (EXIT_LOCKED, "run_locked")   a live agent holds the folder

Only the code and its numeric slots go to the host (contract.ERRORS); the message stays in
agent.log on the phone, and never contains an image's file name either.
"""

from __future__ import annotations

import re

from device_agent.contract import (
    EXIT_BAD_JOB,
    EXIT_CANCELLED,
    EXIT_DATA,
    EXIT_DISK_FULL,
    EXIT_ERROR,
    EXIT_LOCKED,
)


class AgentError(Exception):
    """Base of the agent's expected failures."""

    code = "error"
    exit_code = EXIT_ERROR

    def __init__(self, message: str, code: str | None = None, args: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message  # for agent.log on the phone; the host gets code and args
        self.args_ = tuple(args)  # the numeric slots of the code's template (contract.ERRORS)
        if code is not None:
            self.code = code


class BadJob(AgentError):
    code = "bad_job"
    exit_code = EXIT_BAD_JOB


class DataProblem(AgentError):
    code = "data"
    exit_code = EXIT_DATA


class DiskFull(AgentError):
    code = "disk_full"
    exit_code = EXIT_DISK_FULL


class Cancelled(AgentError):
    code = "cancelled"
    exit_code = EXIT_CANCELLED


class RunLocked(AgentError):
    code = "run_locked"
    exit_code = EXIT_LOCKED

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


_PATH = re.compile(r"(?<![\w.])~?/[^\s'\"(),;]+")
_MEDIA = ("jpg|jpeg|jpe|jfif|png|gif|bmp|webp|heic|heif|tif|tiff|dng|raw|avif|mp4|mov|3gp|"
          "mkv|webm|npy|npz")
_FILE = re.compile(r"[^\s/\\'\"]+\.(?:" + _MEDIA + r")(?!\w)", re.IGNORECASE)
MESSAGE_MAX = 280


# Platform folders: a path in them (a missing NNAPI library) says nothing about the user.
SYSTEM_PREFIXES = ("/system/", "/vendor/", "/apex/", "/product/", "/odm/")


def redact(text: str) -> str:
    """One line, short, with paths and file names removed: safe to send to the host."""
    line = " ".join(str(text).split())
    line = _PATH.sub(lambda m: m.group(0) if m.group(0).startswith(SYSTEM_PREFIXES)
                     else "<path>", line)
    line = _FILE.sub("<file>", line)
    return line[:MESSAGE_MAX]
