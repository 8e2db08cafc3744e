"""The shell the launchers send (pure: strings in, strings out).

The same scripts run in the adb shell (direct), under `run-as com.termux` (runas) and through
Termux's sshd (ssh): only POSIX sh and the tools toybox and Termux both have.
"""

from __future__ import annotations

import posixpath
import shlex

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
    args = f"-u -m device_agent run {q(run_dir)}" + (" --resume" if resume else "")
    if standby_s is not None:
        args += f" --standby {standby_s:g}"
    log = q(posixpath.join(run_dir, contract.LOG_FILE))
    pidfile = q(posixpath.join(run_dir, contract.PID_FILE))
    env = f"PYTHONPATH={q(agent_dir)} PYTHONDONTWRITEBYTECODE=1"
    repair = (f"{env} {q(python)} -m device_agent repair {q(run_dir)} >> {log} 2>&1; "
              if resume else "")
    return (f"cd {q(agent_dir)} || exit 1; {repair}{env} "
            f"setsid nohup {q(python)} {args} >> {log} 2>&1 < /dev/null & "
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


def read_range(path: str, offset: int, max_bytes: int) -> str:
    """At most `max_bytes` of a regular file from `offset`; exit 2 when it is not one."""
    return (f"test -f {q(path)} || exit 2; "
            f"tail -c +{offset + 1} {q(path)} 2>/dev/null | head -c {max_bytes}")


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
