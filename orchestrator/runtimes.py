"""TFLite runtimes to run the agent on: the host's LiteRT, or a cached Python environment
with another runtime, built once through pip (virtual phones, tests and benchmarks use it).

`python_for(name)` returns the path of a Python whose `tflite_runtime` (or `ai_edge_litert`)
is that runtime. An environment lives in ~/.cache/orch/runtimes/<key>/ (XDG_CACHE_HOME
moves it), keyed by the host Python and the pip requirements; it is built into a temporary
folder and renamed, so a concurrent builder never sees half of one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestrator.errors import BuildError

LITERT = "litert"  # the host's ai-edge-litert, no environment of its own
# name → pip requirements. Termux builds python-tflite-runtime from TensorFlow 2.20.0; the
# nearest PyPI build is this nightly, which needs numpy<2 (numpy 2 fails at load).
RUNTIMES: dict[str, tuple[str, ...]] = {
    "tflite-runtime-2.20": ("tflite-runtime-nightly==2.20.0.dev20250409", "numpy<2", "Pillow"),
    "tflite-runtime-2.14": ("tflite-runtime==2.14.0", "numpy<2", "Pillow"),
}
NAMES = (LITERT, *RUNTIMES)
READY = ".orch-ready"  # written last: a folder without it is not a finished environment


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orch" / "runtimes"


def key(name: str) -> str:
    """The cache key: the runtime's requirements and the host Python they install into."""
    parts = [name, *RUNTIMES[name], platform.python_implementation(), platform.python_version(),
             platform.machine(), sys.platform]
    return f"{name}-{hashlib.sha256(' '.join(parts).encode()).hexdigest()[:12]}"


def env_dir(name: str) -> Path:
    return cache_root() / key(name)


def python_for(name: str, *, build: bool = True) -> Path:
    """The Python of runtime `name` (building its environment on first use).

    Raises BuildError naming the runtime and pip's last line when it cannot be built
    (offline, no wheel for this Python), or when `build` is false and it is not built yet.
    """
    if name == LITERT:
        return Path(sys.executable)
    if name not in RUNTIMES:
        raise BuildError(f"Unknown runtime {name!r}.", hint=f"Use one of {', '.join(NAMES)}.")
    folder = env_dir(name)
    if (folder / READY).is_file():
        return folder / "bin" / "python"
    if not build:
        raise BuildError(f"The {name} environment is not built yet.",
                         hint="Build it with `python -m orchestrator.runtimes " + name + "`.")
    _build(name, folder)
    return folder / "bin" / "python"


def _build(name: str, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    tmp.chmod(0o755)  # a virtual phone's app user runs this Python too
    try:
        _run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], name, "venv")
        # The host's pip installs into the new environment: no bootstrap download of pip.
        _run([sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python"), "install",
              "-q", "--disable-pip-version-check", *RUNTIMES[name]], name, "pip")
        (tmp / READY).write_text(" ".join(RUNTIMES[name]) + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:  # another builder finished first: theirs is as good
            if not (folder / READY).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(argv: list[str], name: str, what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines()
                 if ln.strip() and not ln.startswith("WARNING")]
        raise BuildError(f"Cannot build the {name} environment: {what} exit {proc.returncode}: "
                         f"{lines[-1] if lines else 'no output'}",
                         hint="It needs PyPI once (then it is cached under "
                              f"{cache_root()}).")


if __name__ == "__main__":  # python -m orchestrator.runtimes NAME…: build ahead of time
    try:
        for arg in sys.argv[1:] or list(RUNTIMES):
            print(python_for(arg))
    except BuildError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        sys.exit(int(e.exit_code))
