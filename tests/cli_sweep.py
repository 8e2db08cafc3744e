"""Runs `orch` commands in forked children of an already-imported process (fast, isolated, with
a timeout), for the CLI sweep test and scripts/reliability.py."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

from orchestrator.errors import ExitCode

NAMED_CODES = {int(c) for c in ExitCode}


@dataclass
class Outcome:
    argv: list[str]
    code: int | None  # None: still running at the timeout (then killed)
    stdout: str
    stderr: str
    seconds: float

    def problems(self) -> list[str]:
        """What is wrong with this outcome for a hostile input; empty if it is a clean answer."""
        out = []
        text = self.stdout + self.stderr
        if "Traceback (most recent call last)" in text:
            out.append("traceback")
        if self.code is None:
            out.append("hung")
        elif self.code not in NAMED_CODES:
            out.append(f"exit {self.code} is not a named exit code")
        # `orch validate` reports its problems on stdout, one ✗ line each
        lines = [ln for ln in (self.stderr or self.stdout).splitlines() if ln.strip()]
        if self.code not in (None, 0):
            if not lines:
                out.append("refused without a message")
            elif len(lines) > 1 and not all(ln.startswith("✗") for ln in lines):
                out.append(f"refusal of {len(lines)} lines")
        if any(ln.rstrip().endswith("..") and not ln.rstrip().endswith("...")
               for ln in text.splitlines()):
            out.append('a line ends in ".."')
        return out


def preload() -> None:
    """Import what most commands import, once, so each forked child starts warm."""
    import dashboard.app  # noqa: F401
    import orchestrator.cli.app  # noqa: F401
    import orchestrator.spec  # noqa: F401
    import orchestrator.store.db  # noqa: F401
    import orchestrator.store.queries  # noqa: F401


def run_forked(argv: list[str], *, timeout: float = 20.0, env: dict[str, str] | None = None,
               cwd: str | None = None) -> Outcome:
    """`orch ARGV` in a forked child: the parent's imports are shared, nothing else is."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setsid()  # its own process group: killed with everything it started
            os.dup2(out_f.fileno(), 1)
            os.dup2(err_f.fileno(), 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            sys.stdin = open(os.devnull)  # noqa: SIM115
            if env:
                os.environ.update(env)
            if cwd:
                os.chdir(cwd)
            from orchestrator.cli.app import main
            from orchestrator.settings import get_settings

            get_settings.cache_clear()
            try:
                main(argv)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    code: int | None = None
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            _kill_group(pid)
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    texts = []
    for f in (out_f, err_f):
        f.seek(0)
        texts.append(f.read().decode("utf-8", "replace"))
        f.close()
    return Outcome(argv, code, texts[0], texts[1], seconds)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
