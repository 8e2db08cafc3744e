"""Every `orch` command and subcommand with hostile arguments (huge and negative ids, empty
strings, unicode, missing paths, a folder for a file): no traceback, no hang, and each refusal
one line with a named exit code."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from cli_sweep import preload, run_forked
from fuzz_counts import count, flush

from orchestrator.cli.app import app

HUGE = "99999999999999999999"
HOSTILE = [HUGE, "-1", "", "ünïcødé ✓", "/nonexistent/orch/x", "{dir}", "../x"]

# One baseline per command: arguments that get past the parser but fail early (a missing spec,
# an adb server that refuses), so each hostile value replaces one of them at a time.
BASELINES: dict[str, list[str]] = {
    "validate": ["validate", "{spec}"],
    "demo": ["demo", "--no-serve", "--data", "/nonexistent/orch/photos"],
    "run": ["run", "{spec}", "--device", "nophone"],
    "audit": ["audit", "1"],
    "dashboard": ["dashboard", "--host", "127.0.0.1", "--port", "{busy}"],
    "results list": ["results", "list"],
    "results show": ["results", "show", "1"],
    "results compare": ["results", "compare", "paper-table1"],
    "devices list": ["devices", "list"],
    "devices info": ["devices", "info", "nophone"],
    "devices alias": ["devices", "alias", "lab7", "SERIAL1"],
    "devices doctor": ["devices", "doctor", "nophone"],
    "devices setup": ["devices", "setup", "nophone", "--yes"],
    "devices set": ["devices", "set", "nophone", "--launcher", "runas"],
    "devices clean": ["devices", "clean", "nophone", "--dry-run"],
    "sim start": ["sim", "start", "--profile", "/nonexistent/orch/profile.yaml"],
    "sim list": ["sim", "list"],
    "sim stop": ["sim", "stop", "nophone"],
    "sim fault": ["sim", "fault", "nophone", "drop_in=0"],
    "sim profiles": ["sim", "profiles"],
    "sim image build": ["sim", "image", "build", "x86"],
    "sim image show": ["sim", "image", "show", "x86"],
    "model build": ["model", "build", "{spec}", "--variant", "nosuch", "--out", "{tmp}/out"],
    "sweep run": ["sweep", "run", "{sweep}", "--dry-run", "--devices", "nophone"],
    "sweep resume": ["sweep", "resume", "1"],
    "sweep status": ["sweep", "status", "1"],
    "sweep cancel": ["sweep", "cancel", "1"],
    "sweep list": ["sweep", "list"],
    "sweep worker": ["sweep", "worker", "--devices", "nophone", "--exit-when-idle"],
    "data synth": ["data", "synth", "{tmp}/synth", "--per-class", "1", "--size", "32"],
    "data fetch": ["data", "fetch", "nosuchset", "{tmp}/fetch"],
}

# Options whose hostile values are not refused but would start something long: a server that
# listens, a download. Their hostile values are tried where the baseline fails early instead.
SKIP = {("dashboard", "--db"), ("dashboard", "--token"), ("data fetch", "--url")}
# Options every store command shares, opened by the same code: swept on these commands only.
SHARED = {"--db": {"results list", "run", "sweep status"}}

SPEC = """\
name: sweep-spec
model: {alpha: 0.25, input_size: 96, weights: none}
data: {source: "host:/nonexistent/orch/photos", train_per_class: 2, test_per_class: 2}
training: {head_epochs: 1, finetune_epochs: 0}
variants: {method1: {finetune_from: null}}
"""


def _leaves() -> dict[str, list]:
    """Every leaf command of the CLI by its path, with its parameters."""
    out: dict[str, list] = {}

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = list(cmd.params)

    walk(typer.main.get_command(app), [])
    return out


def cases(tmp: Path, busy_port: int) -> list[tuple[str, list[str]]]:
    """(command, argv) pairs: each baseline, and each hostile value in each non-flag parameter."""
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC)
    (tmp / "sweep.yaml").write_text("base: spec.yaml\ngrid: {training.lr: [0.1]}\n")
    (tmp / "adir").mkdir(exist_ok=True)
    fill = {"{spec}": str(spec), "{sweep}": str(tmp / "sweep.yaml"), "{tmp}": str(tmp),
            "{dir}": str(tmp / "adir"), "{busy}": str(busy_port)}

    def sub(arg: str) -> str:
        for k, v in fill.items():
            arg = arg.replace(k, v)
        return arg

    out = []
    for command, params in _leaves().items():
        base = [sub(a) for a in BASELINES[command]]
        out.append((command, base))
        n_cmd = len(command.split())
        positional = [p for p in params if p.param_type_name == "argument"]
        for value in HOSTILE:
            value = sub(value)
            for i in range(len(positional)):
                argv = list(base)
                if n_cmd + i < len(argv):
                    argv[n_cmd + i] = value
                else:
                    argv.append(value)
                out.append((command, argv))
            for p in params:
                if p.param_type_name != "option" or getattr(p, "is_flag", False):
                    continue
                opt = p.opts[0]
                if (command, opt) in SKIP or opt in ("--help", "--format", "-f"):
                    continue
                if opt in SHARED and command not in SHARED[opt]:
                    continue
                argv = [a for a in base]
                if opt in argv:
                    argv[argv.index(opt) + 1] = value
                else:
                    argv += [opt, value]
                out.append((command, argv))
    return out


@pytest.mark.parametrize("argv", [["results", "show", HUGE], ["audit", HUGE],
                                  ["run", "--resume", HUGE], ["sweep", "status", HUGE]])
def test_a_huge_id_is_not_found(tmp_path, argv):
    """An id beyond the store's integers names no row: exit 9 (NOT_FOUND), one line."""
    preload()
    outcome = run_forked(argv, env={"ORCH_HOME": str(tmp_path)}, timeout=60)
    assert outcome.code == 9 and not outcome.problems(), outcome
    assert HUGE in outcome.stderr


def test_every_command_has_a_baseline():
    """A new command joins the sweep: the table above names every leaf command."""
    assert set(_leaves()) == set(BASELINES)


def test_hostile_arguments_get_one_line_and_a_named_exit_code(tmp_path):
    """No traceback, no hang; every refusal is one line with a named exit code."""
    env = {"ORCH_HOME": str(tmp_path / "home"), "ORCH_ADB_HOST": "127.0.0.2",
           "ORCH_ADB_PORT": "9", "COLUMNS": "200", "NO_COLOR": "1"}
    work = tmp_path / "work" / "here"  # `../x` stays inside tmp_path
    work.mkdir(parents=True)
    preload()
    failures = []
    with socket.socket() as busy:  # a port in use: `orch dashboard` must refuse it, not serve
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        todo = cases(tmp_path, busy.getsockname()[1])
        for _command, argv in todo:
            outcome = run_forked(argv, env=env, cwd=str(work), timeout=20)
            count("cli_cases")
            problems = outcome.problems()
            if "traceback" in problems:
                count("cli_tracebacks")
            if problems:
                tail = (outcome.stderr or outcome.stdout).strip().splitlines()[-3:]
                failures.append(f"orch {' '.join(argv)!r}: {', '.join(problems)} "
                                f"(exit {outcome.code}): {' | '.join(tail)}")
    flush()
    assert len(todo) > 250
    assert not failures, f"{len(failures)} of {len(todo)} cases:\n" + "\n".join(failures)
