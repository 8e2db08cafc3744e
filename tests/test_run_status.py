"""A run's status as a state machine: the transition table, the one store function that
changes a status, and a check that no other code writes one."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
from store_backends import BACKENDS, backend_url

from orchestrator.errors import TransitionRefused
from orchestrator.store import repo
from orchestrator.store.db import open_session
from orchestrator.store.status import (
    AT_REST,
    ENDED,
    OPEN,
    TRANSITIONS,
    RunStatus,
    allowed,
    sources,
)

REPO = Path(__file__).resolve().parents[1]
PAIRS = [(a, b) for a in RunStatus for b in RunStatus]


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    with backend_url(request.param, tmp_path) as u:
        yield u


def _run(session, status: RunStatus):
    exp = repo.upsert_experiment(session=session, name="exp", spec={}, spec_hash="h")
    return repo.create_run(session=session, experiment_id=exp.id, variant="method1",
                           status=status)


def test_every_allowed_transition_moves_the_run(url):
    """Each pair of the table moves a run in that status to the target, with its fields."""
    with open_session(url) as s:
        for current, target in PAIRS:
            if not allowed(current, target):
                continue
            run = _run(s, current)
            moved = repo.transition_run(session=s, run_id=run.id, to=target,
                                        error=f"{current}->{target}")
            assert (moved.status, moved.error) == (target, f"{current}->{target}")
            assert repo.get_run(session=s, run_id=run.id).status == target


def test_every_forbidden_transition_is_refused_and_changes_nothing(url):
    """A pair outside the table raises TransitionRefused naming both statuses; the row and
    its other fields stay as they were."""
    refused = 0
    with open_session(url) as s:
        for current, target in PAIRS:
            if allowed(current, target):
                continue
            run = _run(s, current)
            with pytest.raises(TransitionRefused) as e:
                repo.transition_run(session=s, run_id=run.id, to=target, error="x")
            assert (e.value.run_id, e.value.current, e.value.target) == (
                run.id, current, target)
            after = repo.get_run(session=s, run_id=run.id)
            assert (after.status, after.error) == (current, None)
            refused += 1
    assert refused == len(PAIRS) - sum(len(v) for v in TRANSITIONS.values())


def test_a_finished_run_never_runs_again(url):
    """finished → running is refused with a one-line message that names the run."""
    with open_session(url) as s:
        run = _run(s, RunStatus.FINISHED)
        with pytest.raises(TransitionRefused) as e:
            repo.transition_run(session=s, run_id=run.id, to=RunStatus.RUNNING)
    assert e.value.one_line() == (f"Run {run.id} is finished; it cannot become running. "
                                  f"See `orch results show {run.id}`.")


def test_only_from_narrows_the_table(url):
    """`only_from` refuses a change the table allows when the run is not in a named status."""
    with open_session(url) as s:
        run = _run(s, RunStatus.RUNNING)
        with pytest.raises(TransitionRefused):
            repo.transition_run(session=s, run_id=run.id, to=RunStatus.INTERRUPTED,
                                only_from=(RunStatus.QUEUED,))
        moved = repo.transition_run(session=s, run_id=run.id, to=RunStatus.INTERRUPTED,
                                    only_from=(RunStatus.RUNNING,))
    assert moved.status == RunStatus.INTERRUPTED


def test_a_writer_with_a_stale_read_is_refused(url):
    """Two sessions: one cancels the run; the other, which read it running, cannot then
    record it finished over the cancel."""
    with open_session(url) as a, open_session(url) as b:
        run = _run(a, RunStatus.RUNNING)
        assert repo.get_run(session=b, run_id=run.id).status == RunStatus.RUNNING
        repo.transition_run(session=a, run_id=run.id, to=RunStatus.CANCELLED)
        with pytest.raises(TransitionRefused) as e:
            repo.transition_run(session=b, run_id=run.id, to=RunStatus.FINISHED)
        assert e.value.current == RunStatus.CANCELLED
        assert repo.get_run(session=b, run_id=run.id).status == RunStatus.CANCELLED


def test_of_writers_racing_to_end_a_run_exactly_one_wins(url):
    """Threads with their own sessions end one running run at once: one succeeds, every
    other is refused (check and write are one statement)."""
    if url == "sqlite://":
        pytest.skip("in-memory SQLite shares one connection between threads")
    with open_session(url) as s:
        run = _run(s, RunStatus.RUNNING)
    ends = [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.FINISHED]
    start = threading.Barrier(len(ends))
    won, lost = [], []

    def end(to: RunStatus) -> None:
        with open_session(url) as mine:
            start.wait()
            try:
                repo.transition_run(session=mine, run_id=run.id, to=to, only_from=OPEN)
                won.append(to)
            except TransitionRefused:
                lost.append(to)

    threads = [threading.Thread(target=end, args=(to,)) for to in ends]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(won) == 1 and len(lost) == len(ends) - 1
    with open_session(url) as s:
        assert repo.get_run(session=s, run_id=run.id).status == won[0]


def test_update_run_refuses_a_status():
    """The general field update cannot be used to change a status."""
    with open_session("sqlite://") as s:
        run = _run(s, RunStatus.RUNNING)
        with pytest.raises(TypeError, match="transition_run"):
            repo.update_run(session=s, run_id=run.id, status="finished")
        assert repo.get_run(session=s, run_id=run.id).status == RunStatus.RUNNING


def test_the_sets_derive_from_the_table():
    """Open statuses are those the table moves on; a finished run has no way out; `sources`
    is the table read backwards; values are the strings stored before the enum."""
    assert OPEN == {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.INTERRUPTED}
    assert ENDED == {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED}
    assert AT_REST == ENDED | {RunStatus.INTERRUPTED}
    assert TRANSITIONS[RunStatus.FINISHED] == frozenset()
    for target in RunStatus:
        assert sources(target) == {s for s in RunStatus if target in TRANSITIONS[s]}
    assert [s.value for s in RunStatus] == list(repo.RUN_STATUSES) == [
        "queued", "running", "finished", "failed", "interrupted", "cancelled"]
    assert f"{RunStatus.FAILED}" == "failed"


# ---------------------------------------------------------------- no other writer


def _sources() -> list[Path]:
    return sorted(p for d in ("orchestrator", "dashboard") for p in (REPO / d).rglob("*.py"))


def _status_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """Lines that write a run's status other than through `repo.transition_run`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                getattr(node.func, "id", None)
            keys = {k.arg for k in node.keywords}
            if name == "update_run" and "status" in keys:
                found.append((node.lineno, "update_run(status=…)"))
            if name == "update" and node.args and getattr(node.args[0], "id", None) == "Run":
                found.append((node.lineno, "update(Run)"))
            if name == "setattr" and len(node.args) > 1 and \
                    isinstance(node.args[1], ast.Constant) and node.args[1].value == "status":
                found.append((node.lineno, "setattr(…, 'status', …)"))
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if isinstance(el, ast.Attribute) and el.attr == "status":
                    found.append((node.lineno, f"{ast.unparse(el)} = …"))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                "update run" in " ".join(node.value.lower().split()):
            found.append((node.lineno, "UPDATE run in SQL text"))
    return found


# Status writes that are not a Run row's: the one transition function, and a public copy
# of a sweep item (the status of its run, read).
ALLOWED = {("orchestrator/store/repo.py", "update(Run)"),
           ("orchestrator/store/sweep_repo.py", "pub.status = …")}


def test_no_module_writes_a_run_status_outside_the_transition_function():
    """Every status write in orch and the dashboard goes through `repo.transition_run`."""
    offenders = []
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        for line, what in _status_writes(ast.parse(path.read_text(), rel)):
            if (rel, what) not in ALLOWED:
                offenders.append(f"{rel}:{line}: {what}")
    assert offenders == []
    repo_src = ast.parse((REPO / "orchestrator/store/repo.py").read_text())
    in_transition = [f for f in ast.walk(repo_src) if isinstance(f, ast.FunctionDef)
                     and any(w == "update(Run)" for _, w in _status_writes(f))]
    assert [f.name for f in in_transition] == ["transition_run"]


def test_the_writer_check_finds_each_kind_of_write():
    """The check above is not blind: each way of writing a status is reported."""
    code = """
repo.update_run(session=s, run_id=1, status="failed")
session.exec(update(Run).where(Run.id == 1).values(status="running"))
setattr(row, "status", "queued")
row.status = "finished"
run.status, run.error = "cancelled", None
session.execute(text("UPDATE run SET status = 'failed'"))
"""
    kinds = [w for _, w in sorted(_status_writes(ast.parse(code)))]
    assert kinds == ["update_run(status=…)", "update(Run)", "setattr(…, 'status', …)",
                     "row.status = …", "run.status = …", "UPDATE run in SQL text"]
