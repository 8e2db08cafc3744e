"""What the run, sweep and phone tests share: the session's model build cache, an
ORCH_HOME that uses it, tiny synthetic photo sets, the `orch` CLI in a subprocess and the
store of an ORCH_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.datasets.synth import synthesize
from orchestrator.store.db import open_session

REPO = Path(__file__).resolve().parents[1]


def build_cache(tmp_path_factory) -> Path:
    """The session's model build cache: each configuration builds once for all tests."""
    cache = tmp_path_factory.getbasetemp() / "runner-build-cache"
    cache.mkdir(exist_ok=True)
    return cache


def with_build_cache(home: Path, tmp_path_factory) -> Path:
    """`home` as an ORCH_HOME whose cache is the session's build cache."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(build_cache(tmp_path_factory))
    return home


def tiny_photos(root: Path, per_class: int = 10) -> Path:
    """Synthetic cat and dog photos, 96 px, `per_class` of each, under `root`."""
    synthesize(root, per_class=per_class, size=96, names=["cat", "dog"])
    return root


def orch(*args: str, timeout: float = 600, home: Path | None = None
         ) -> subprocess.CompletedProcess:
    """The CLI as a user runs it; ORCH_HOME is the test's own unless `home` is given."""
    env = None if home is None else {**os.environ, "ORCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def store(home: Path):
    """A session on the SQLite store of ORCH_HOME `home`."""
    return open_session(f"sqlite:///{home / 'orch.db'}")
