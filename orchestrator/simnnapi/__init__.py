"""The simulated `libneuralnetworks.so` for build machines and virtual phones, built on demand.

`fake_nnapi.c` (beside this file) implements the NNAPI subset the agent uses with float32
reference kernels on the host CPU; its devices are named `sim-…` and it exports
`OrchFakeNnapi_isSimulated`, so every result obtained through it is labelled simulated.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from orchestrator.errors import BuildError

SOURCE = Path(__file__).with_name("fake_nnapi.c")
LIBRARY_NAME = "libneuralnetworks.so"
CFLAGS = ("-shared", "-fPIC", "-O2")
# Runtimes below API 29 have no device enumeration, compute() or timing: the agent must use
# startCompute + Event_wait there. `api_level=28` builds such a library.
DEFAULT_API_LEVEL = 34
# A virtual phone profile with `nnapi_lib: simulated` ships this library (built on demand).
SIMULATED = "simulated"


def _compiler() -> str:
    cc = os.environ.get("CC") or "cc"
    path = shutil.which(cc)
    if path is None:
        raise BuildError(
            f"No C compiler ({cc!r}) found to build the simulated NNAPI library.",
            hint="Install one (`apt-get install gcc`) or set CC to a C compiler.",
        )
    return path


def build_library(cache_dir: Path, *, api_level: int = DEFAULT_API_LEVEL) -> Path:
    """Compile fake_nnapi.c once into `cache_dir` (keyed by source hash) and return the .so path.

    Raises BuildError when no C compiler exists or the compilation fails.
    """
    flags = (*CFLAGS, f"-DFAKE_NNAPI_API={api_level}")
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"fake-nnapi-{key}" / LIBRARY_NAME
    if out.is_file():
        return out
    cc = _compiler()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename, so concurrent builders never see half a file.
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, *flags, "-o", tmp, str(SOURCE), "-lm"],
            capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(
                f"Building the simulated NNAPI library failed "
                f"({cc} exit {proc.returncode}): {tail}",
                hint="Check that the C compiler works (`cc --version`).",
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
