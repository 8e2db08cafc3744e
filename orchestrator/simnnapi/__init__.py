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
# An arm64 phone's library is cross-compiled, so its ctypes binding meets the phone's ABI.
# No fused multiply-add contraction: the simulated accelerator then computes the same floats
# on aarch64 as on x86-64 (where -O2 emits no FMA).
CROSS = {"arm64": ("CC_AARCH64", "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu",
                   ("-ffp-contract=off",))}


def _compiler(arch: str) -> str:
    if arch == "host":
        cc, package = os.environ.get("CC") or "cc", "gcc"
    else:
        env, default, package, _ = CROSS[arch]
        cc = os.environ.get(env) or default
    path = shutil.which(cc)
    if path is None:
        raise BuildError(
            f"No C compiler ({cc!r}) found to build the simulated NNAPI library"
            + ("." if arch == "host" else f" for {arch}."),
            hint=f"Install one (`apt-get install {package}`)"
                 + (" or set CC to a C compiler." if arch == "host" else "."),
        )
    return path


def build_library(cache_dir: Path, *, api_level: int = DEFAULT_API_LEVEL,
                  arch: str = "host") -> Path:
    """Compile fake_nnapi.c once into `cache_dir` (keyed by source hash) and return the .so path;
    `arch="arm64"` cross-compiles it for aarch64.

    Raises BuildError when no C compiler exists or the compilation fails.
    """
    flags = (*CFLAGS, f"-DFAKE_NNAPI_API={api_level}", *(CROSS[arch][3] if arch in CROSS else ()))
    tag = " ".join(flags) + ("" if arch == "host" else f" {arch}")
    key = hashlib.sha256(SOURCE.read_bytes() + tag.encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"fake-nnapi-{key}" / LIBRARY_NAME
    if out.is_file():
        return out
    cc = _compiler(arch)
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
                hint=f"Check that the C compiler works (`{Path(cc).name} --version`).",
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
