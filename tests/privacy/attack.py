"""What the privacy tests share: a photo to smuggle, its encodings, a guard on a real local
device folder with a real SQLite ledger, and a check that the store holds no trace of it."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image

from device_agent import contract
from orchestrator.egress import EgressGuard, EgressLimits
from orchestrator.links.local import LocalLink
from orchestrator.store import repo
from orchestrator.store.db import open_session

RUN_KEY = "7-abc123"
CLASSES = ("cat", "dog")
LIMITS = EgressLimits(epochs=2, classes=CLASSES, head_epochs=1, train_per_class=4,
                      test_per_class=20)
TRACE = 25  # a stored run of this many characters of an encoded photo is a leak (> 24, the
            # longest string the schema admits)


def photo(size: int = 48) -> bytes:
    """A real JPEG of noise (incompressible, so any stored piece of it is recognisable)."""
    pixels = np.random.default_rng(7).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def encodings(data: bytes) -> list[str]:
    return [base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode().rstrip("="),
            data.hex()]


def keys_of(data: bytes, width: int = 46) -> list[str]:
    """The photo as base64url dictionary keys of `width` characters (the reported attack)."""
    text = base64.urlsafe_b64encode(data).decode().rstrip("=")
    return [text[i:i + width] for i in range(0, len(text), width)]


def store_text(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def assert_no_trace(db: Path, data: bytes) -> None:
    """No TRACE-character piece of the photo, in any usual encoding, is in the store."""
    text = store_text(db)
    for enc in encodings(data):
        pieces = [enc[i:i + TRACE] for i in range(0, len(enc) - TRACE, TRACE)]
        found = [p for p in pieces if p in text]
        assert not found, f"{len(found)} pieces of the photo are in the store"


def good_result(**over) -> dict:
    res = {"schema": 1, "run_key": RUN_KEY, "status": "finished", "accuracy": 0.75,
           "per_class_accuracy": {"cat": 0.5, "dog": 1.0},
           "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.69, "train_acc": 0.5,
                       "test_loss": 0.68, "test_acc": 0.5, "seconds": 0.3},
                      {"phase": "finetune", "epoch": 2, "train_loss": 0.5, "train_acc": 0.75,
                       "test_loss": 0.6, "test_acc": 0.75, "seconds": 0.4}],
           "timing": {"decode": 1.0, "features": 2.0, "train": 0.7, "eval": 0.1, "total": 4.0,
                      "train_per_epoch": [0.3, 0.4]},
           "peak_memory_mb": 120.5,
           "delegate": {"requested": "nnapi", "used": "cpu",
                        "reason": {"code": "nnapi_unavailable"},
                        "info": {"xnnpack": True, "threads": 2}},
           "versions": {"agent": contract.AGENT_VERSION, "interpreter": "ai_edge_litert",
                        "python": "3.11.7", "numpy": "2.1.0"},
           "counts": {"train": 8, "test": 8, "skipped_corrupt": 0,
                      "per_class_train": {"cat": 4, "dog": 4},
                      "per_class_test": {"cat": 4, "dog": 4}},
           "phases": {"head": {"epochs": 1, "ran": 1}, "finetune": {"epochs": 1, "ran": 1}}}
    res.update(over)
    return res


def event(seq: int, kind: str, **fields) -> bytes:
    return (json.dumps({"seq": seq, "t": 1.7e9 + seq, "kind": kind, **fields},
                       separators=(",", ":")) + "\n").encode()


def make_guard(tmp_path: Path, link: LocalLink | None = None):
    """(guard, session, run id, run folder, db file) for one run in a local device folder."""
    link = link or LocalLink(tmp_path / "device")
    db = tmp_path / "orch.db"
    session = open_session(f"sqlite:///{db}")
    exp = repo.upsert_experiment(session=session, name="e", spec={}, spec_hash="x")
    run = repo.create_run(session=session, experiment_id=exp.id, variant="method2")
    run_dir = os.path.join(link.root, "runs", RUN_KEY)
    os.makedirs(run_dir, exist_ok=True)
    guard = EgressGuard(link=link, session=session, run_id=run.id, run_dir=run_dir,
                        run_key=RUN_KEY, limits=LIMITS)
    return guard, session, run.id, Path(run_dir), db
