"""The push ledger writes a photo folder's rows in batches, and keeps what crossed when a
push fails midway (a real SQLite file and the host link; nothing is mocked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.links.local import LocalLink
from orchestrator.runner import ledger as ledger_mod
from orchestrator.runner.ledger import PushLedger
from orchestrator.runner.staging import StageTally, _push_all
from orchestrator.store import repo
from orchestrator.store.db import open_session


def _files(tmp_path: Path, n: int) -> list[tuple[str, Path]]:
    src = tmp_path / "src"
    src.mkdir()
    out = []
    for i in range(n):
        (src / f"{i}.jpg").write_bytes(bytes([i % 256]) * (i + 1))
        out.append((f"cat/{i}.jpg", src / f"{i}.jpg"))
    return out


def test_rows_are_batched_and_all_written(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_mod, "BATCH_ROWS", 4)
    files = _files(tmp_path, 10)
    with open_session(f"sqlite:///{tmp_path / 'o.db'}") as s:
        exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="h")
        r = repo.create_run(session=s, experiment_id=exp.id, variant="v")
        commits: list[int] = []
        real = repo.record_transfers

        def counted(**kw):
            commits.append(len(kw["rows"]))
            real(**kw)

        monkeypatch.setattr(repo, "record_transfers", counted)
        _push_all(LocalLink(tmp_path / "phone"), PushLedger(s, r.id, None, "local"),
                  StageTally(), str(tmp_path / "phone" / "data"), files, "images")
        rows = repo.run_transfers(session=s, run_id=r.id)
    assert commits == [4, 4, 2]
    assert [t.device_path.rsplit("/", 1)[1] for t in rows] == [f"{i}.jpg" for i in range(10)]
    assert all(t.direction == "push" and t.kind == "images" for t in rows)
    assert [t.bytes for t in rows] == list(range(1, 11))


def test_a_failed_push_keeps_the_rows_of_what_crossed(tmp_path):
    files = _files(tmp_path, 5)
    files[3] = ("cat/missing.jpg", tmp_path / "src" / "missing.jpg")
    with open_session(f"sqlite:///{tmp_path / 'o.db'}") as s:
        exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="h")
        r = repo.create_run(session=s, experiment_id=exp.id, variant="v")
        with pytest.raises(FileNotFoundError):
            _push_all(LocalLink(tmp_path / "phone"), PushLedger(s, r.id, None, "local"),
                      StageTally(), str(tmp_path / "phone" / "data"), files, "images")
        rows = repo.run_transfers(session=s, run_id=r.id)
    assert [t.device_path.rsplit("/", 1)[1] for t in rows] == ["0.jpg", "1.jpg", "2.jpg"]
