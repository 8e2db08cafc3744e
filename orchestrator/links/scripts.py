"""The shell the launchers send (pure: strings in, strings out).

The same scripts run in the adb shell (direct), under `run-as com.termux` (runas) and through
Termux's sshd (ssh): only POSIX sh and the tools toybox and Termux both have.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

from device_agent import contract


def q(path: str) -> str:
    return shlex.quote(path)


def pid_guard(run_dir: str) -> str:
    """Shell that defines `alive` and sets $pid to this run's live agent, or exits 1.

    The pid must still run this job (its command line names the run folder: pids are
    reused), and a zombie counts as dead.
    """
    pidfile = q(posixpath.join(run_dir, contract.PID_FILE))
    return ("alive() { kill -0 \"$pid\" 2>/dev/null && "
            "! grep -q '^State:[[:space:]]*Z' /proc/$pid/status 2>/dev/null; }; "
            f"pid=$(cat {pidfile} 2>/dev/null) || exit 1; "
            "case \"$pid\" in ''|*[!0-9]*) exit 1;; esac; "
            "alive || exit 1; "
            f"tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF -- {q(run_dir)} "
            "|| exit 1; ")


def agent_argv(python: str, agent_dir: str, run_dir: str, resume: bool, *,
               command: str = "run", standby_s: float | None = None) -> list[str]:
    """The agent's command line (`run` or `repair`): Python isolated (-I: no PYTHON*
    variables, no user site, no current folder; -B: no bytecode written), the staged bundle
    put first on sys.path by hand. Only the interpreter's own site-packages (Termux's numpy,
    Pillow, tflite-runtime) come from outside the bundle."""
    boot = (f"import sys; sys.path.insert(0, {agent_dir!r}); "
            "from device_agent.__main__ import main; sys.exit(main(sys.argv[1:]))")
    return [python, "-I", "-B", "-u", "-c", boot, command, run_dir] + (
        ["--resume"] if resume else []) + (
        ["--standby", f"{standby_s:g}"] if standby_s is not None else [])


def prune(folder: str, keep: list[str]) -> str:
    """Remove every entry of `folder` that is not in `keep` (relative paths of the files orch
    pushed, and their folders); prints `removed` per entry, then `left N LINKS`."""
    dirs = {posixpath.dirname(p) for p in keep}
    for d in list(dirs):
        while d:
            dirs.add(d)
            d = posixpath.dirname(d)
    names = sorted(set(keep) | (dirs - {""}))
    patterns = "|".join(q("./" + n) for n in names) or "''"
    return (f"cd {q(folder)} 2>/dev/null || {{ echo 'left 0 0'; exit 0; }}; "
            "find . -mindepth 1 -depth | while IFS= read -r f; do case \"$f\" in "
            f"{patterns}) [ -L \"$f\" ] || continue;; esac; rm -rf -- \"$f\" && echo removed; "
            "done; "
            "echo \"left $(find . -mindepth 1 | wc -l) $(find . -mindepth 1 -type l | wc -l)\"")


def start(*, python: str, agent_dir: str, run_dir: str, resume: bool,
          standby_s: float | None = None) -> str:
    """Launch the agent detached; prints its pid. `standby_s`: a warm agent that waits that
    long for job.json (device_agent/standby.py).

    setsid + nohup: the agent leaves the session that started it, so it keeps training when
    the cable is pulled. The background job is one simple command, so `$!` is the agent
    itself (setsid and nohup exec), not a subshell around it. A resume first repairs the
    events file in the foreground (`device_agent repair`), so the host never reads it
    before the repair.
    """
    argv = " ".join(q(a) for a in agent_argv(python, agent_dir, run_dir, resume,
                                             standby_s=standby_s))
    log = q(posixpath.join(run_dir, contract.LOG_FILE))
    pidfile = q(posixpath.join(run_dir, contract.PID_FILE))
    repair = (" ".join(q(a) for a in agent_argv(python, agent_dir, run_dir, False,
                                                command="repair"))
              + f" >> {log} 2>&1; " if resume else "")
    return (f"cd {q(agent_dir)} || exit 1; {repair}"
            f"setsid nohup {argv} >> {log} 2>&1 < /dev/null & "
            f"echo $! > {pidfile} && echo $!")


def alive(run_dir: str) -> str:
    return pid_guard(run_dir) + "exit 0"


def stop(run_dir: str, grace_s: float) -> str:
    """SIGTERM the agent's process group (it checkpoints and exits), SIGKILL after grace."""
    ticks = max(1, int(grace_s * 10))
    return (pid_guard(run_dir)
            + "kill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\"; i=0; "
            f"while alive && [ $i -lt {ticks} ]; do sleep 0.1; "
            "i=$((i+1)); done; kill -KILL -\"$pid\" 2>/dev/null; exit 0")


def _reader_source() -> str:
    """orchestrator/read_once.py without its docstring: what the phone's Python runs."""
    from orchestrator import read_once as module

    text = Path(module.__file__).read_text()
    return text.split('"""', 2)[2].strip() + "\n"


READER = _reader_source()


def read_once(python: str, path: str, offset: int, max_bytes: int, cap: int) -> str:
    """One bounded no-follow read of `path` (header line, then the bytes), by `python`
    started isolated and without site: nothing of the agent's folder or environment runs."""
    return (f"{q(python)} -I -S -c {q(READER)} {q(path)} {int(offset)} {int(max_bytes)} "
            f"{int(cap)}")


def stat(path: str) -> str:
    """`none`, or `KIND SIZE REALPATH` with KIND file | link | other."""
    p = q(path)
    return (f"if test -L {p}; then t=link; elif test -f {p}; then t=file; "
            f"elif test -e {p}; then t=other; else echo none; exit 0; fi; "
            f"echo \"$t $(stat -c %s {p}) $(readlink -f {p})\"")


def exists(path: str) -> str:
    return f"test -e {q(path)} || test -L {q(path)}"


def sha256(path: str) -> str:
    return f"test -f {q(path)} && test ! -L {q(path)} && sha256sum {q(path)}"


def mkdirs(path: str, mode: str = "700") -> str:
    return f"mkdir -p {q(path)} && chmod {mode} {q(path)}"
