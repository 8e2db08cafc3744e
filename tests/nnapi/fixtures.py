"""pytest fixtures for NNAPI tests. Import the ones a module uses:

    from nnapi.fixtures import fake_lib, nnapi_env, split_trunk  # noqa: F401

The simulated libneuralnetworks.so stands in for a phone's NNAPI driver, the one part that
cannot exist on a build machine; everything else (LiteRT, the trunk, ctypes) is real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nnapi.build import build_fake_nnapi
from nnapi.trunks import TrunkFiles, trunk_files

FAKE_KNOBS = ("FAKE_NNAPI_DEVICES", "FAKE_NNAPI_UNSUPPORTED", "FAKE_NNAPI_FAIL",
              "FAKE_NNAPI_CORRUPT", "FAKE_NNAPI_VERBOSE")


def _needs_cc() -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) to build the simulated NNAPI library")


@pytest.fixture(scope="session")
def fake_lib(tmp_path_factory) -> Path:
    """The simulated libneuralnetworks.so (API 34 runtime), built once."""
    _needs_cc()
    return build_fake_nnapi(tmp_path_factory.getbasetemp() / "fake-nnapi")


@pytest.fixture(scope="session")
def fake_lib_api28(tmp_path_factory) -> Path:
    """The simulated library as an Android 9 runtime: no device list, compute() or timing."""
    _needs_cc()
    return build_fake_nnapi(tmp_path_factory.getbasetemp() / "fake-nnapi", api_level=28)


@pytest.fixture
def nnapi_env(fake_lib, monkeypatch):
    """ORCH_NNAPI_LIB → the simulated library, every FAKE_NNAPI_* knob cleared."""
    monkeypatch.setenv("ORCH_NNAPI_LIB", str(fake_lib))
    for knob in FAKE_KNOBS:
        monkeypatch.delenv(knob, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def split_trunk(tmp_path_factory) -> TrunkFiles:
    """The frozen trunk of method 2: split at layer B (conv_pw_11), features [6, 6, 128]."""
    return trunk_files("split", tmp_path_factory.getbasetemp() / "trunks",
                       finetune_from="conv_pw_11")


@pytest.fixture(scope="session")
def pooled_trunk(tmp_path_factory) -> TrunkFiles:
    """The frozen trunk of method 1 (head only): the pooled vector [256]."""
    return trunk_files("pooled", tmp_path_factory.getbasetemp() / "trunks", finetune_from=None)
