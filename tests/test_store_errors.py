"""Store failures through the real CLI: a missing database driver and a store that cannot be
written each give one line and exit 8 (STORE), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session

from orchestrator.errors import ExitCode
from orchestrator.store import repo, sweep_repo
from orchestrator.store.db import make_engine

REPO = Path(__file__).resolve().parents[1]


def _orch(args: list[str], home: Path, prelude: str = "") -> subprocess.CompletedProcess:
    code = (f"import sys\n{prelude}\nfrom orchestrator.cli.app import main\n"
            f"main({args!r})\n")
    env = {**os.environ, "ORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)


def test_postgres_url_without_a_driver_names_the_extra(tmp_path):
    """No psycopg: one line naming `pip install 'orch[postgres]'`, exit 8, password hidden."""
    r = _orch(["results", "list", "--db", "postgresql://me:s3cret@db.example/orch"], tmp_path,
              prelude="sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None")
    assert r.returncode == ExitCode.STORE, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "pip install 'orch[postgres]'" in r.stderr
    assert "s3cret" not in r.stderr


def test_store_that_cannot_be_written_is_one_line(tmp_path):
    """A store opened read-only fails on the first write: exit 8 and one line, no
    sqlite3.OperationalError traceback."""
    db = tmp_path / "orch.db"
    engine = make_engine(f"sqlite:///{db}")
    with Session(engine) as s:
        exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="h")
        sweep = sweep_repo.create_sweep(session=s, name="sw", experiment_id=exp.id, spec={})
    engine.dispose()
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    r = _orch(["sweep", "cancel", str(sweep.id), "--db", ro], tmp_path)
    assert r.returncode == ExitCode.STORE, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "readonly" in r.stderr and "writable" in r.stderr


def test_store_folder_that_is_a_file_is_one_line(tmp_path):
    """A store path under a file cannot be created: exit 8 and one line."""
    (tmp_path / "afile").write_text("x")
    r = _orch(["results", "list", "--db", f"sqlite:///{tmp_path / 'afile' / 'orch.db'}"],
              tmp_path)
    assert r.returncode == ExitCode.STORE, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
