"""Shared fixtures: where the reference data lives, an isolated ORCH_HOME per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ORCH_SHARED_DATA", REPO.parent / "shared" / "data"))
CATSDOGS = SHARED_DATA / "catsdogs"
WEIGHTS_025 = SHARED_DATA / "weights" / "mobilenet_2_5_224_tf_no_top.h5"


def _real_phone_attached() -> bool:
    return bool(os.environ.get("ORCH_TEST_DEVICE"))


def pytest_collection_modifyitems(config, items):
    if _real_phone_attached():
        return
    skip = pytest.mark.skip(reason="needs a real phone: set ORCH_TEST_DEVICE=SERIAL")
    for item in items:
        if "device" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ORCH_HOME, so no test touches the user's store or cache."""
    home = tmp_path / "orch-home"
    monkeypatch.setenv("ORCH_HOME", str(home))
    monkeypatch.delenv("ORCH_DB", raising=False)
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def home(isolated_home, tmp_path_factory) -> Path:
    """The test's ORCH_HOME, its model build cache shared by the session's tests."""
    from runs import with_build_cache

    return with_build_cache(isolated_home, tmp_path_factory)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """Tiny synthetic cat and dog photos (10 per class, 96 px), made once per session."""
    from runs import tiny_photos

    return tiny_photos(tmp_path_factory.mktemp("synth"))


@pytest.fixture
def shared_catsdogs() -> Path:
    if not (CATSDOGS / "cat").is_dir():
        pytest.skip("reference photographs (../shared/data/catsdogs) are absent")
    return CATSDOGS


@pytest.fixture
def shared_weights() -> Path:
    if not WEIGHTS_025.is_file():
        pytest.skip("reference weights (../shared/data/weights) are absent")
    return WEIGHTS_025


# The agent's compatibility matrix: the host's LiteRT and the phone's tflite-runtime 2.20
# (Termux's build; its PyPI twin in a cached environment, orchestrator/runtimes.py).
AGENT_RUNTIMES = ("litert", "tflite-runtime-2.20")


def runtime_python(name: str) -> str:
    """The Python of runtime `name`; skips (saying why) when its environment cannot be built."""
    from orchestrator.errors import BuildError
    from orchestrator.runtimes import python_for

    try:
        return str(python_for(name))
    except BuildError as e:
        pytest.skip(f"{name} cannot be set up here: {e.one_line()}")


@pytest.fixture(params=AGENT_RUNTIMES)
def agent_python(request) -> str:
    """A Python for the agent, once per runtime of the matrix."""
    return runtime_python(request.param)
