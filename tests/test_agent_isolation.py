"""device_agent runs on a phone's Python: no host packages, and Python 3.9 syntax."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "device_agent"
SOURCES = sorted(AGENT.rglob("*.py"))
HOST_PACKAGES = ("tensorflow", "keras", "typer", "sqlmodel", "sqlalchemy", "fastapi",
                 "pydantic", "orchestrator", "models", "dashboard")


def test_every_agent_module_imports_with_host_packages_blocked(tmp_path):
    """Each device_agent module imports while host packages raise ImportError."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = {HOST_PACKAGES!r}\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n")
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in SOURCES
               if p.name != "__main__.py"]
    code = ("import importlib, sys\n"
            "try:\n    import tensorflow\nexcept ImportError:\n    pass\n"
            "else:\n    sys.exit('blocker inactive')\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {HOST_PACKAGES!r}]\n"
            "sys.exit(f'host modules loaded: {bad}' if bad else 0)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _has_annotations(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = args.posonlyargs + args.args + args.kwonlyargs + [
                a for a in (args.vararg, args.kwarg) if a is not None]
            if node.returns is not None or any(a.annotation is not None for a in every):
                return True
    return False


def test_every_annotated_module_defers_annotations():
    """Annotated modules use `from __future__ import annotations`: `X | None` never runs."""
    missing = []
    for p in SOURCES:
        text = p.read_text()
        if _has_annotations(ast.parse(text)) and "from __future__ import annotations" not in text:
            missing.append(str(p.relative_to(REPO)))
    assert not missing


def _python39() -> str | None:
    """A Python 3.9 interpreter: ORCH_PYTHON39, python3.9 on PATH, or a pyenv 3.9."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [os.environ.get("ORCH_PYTHON39"), shutil.which("python3.9"),
                  *map(str, sorted(root.glob("versions/3.9*/bin/python3.9")))]
    for exe in filter(None, candidates):
        try:
            ok = subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                                capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok:
            return exe
    return None


def test_sources_parse_as_python_39():
    """Every device_agent file parses under Python 3.9 (Termux's floor): no match, no 3.10+."""
    exe = _python39()
    if exe is None:  # the grammar check of this interpreter, best effort
        for p in SOURCES:
            ast.parse(p.read_text(), str(p), feature_version=(3, 9))
        pytest.skip("no python3.9 here; checked with feature_version=(3, 9) only")
    code = ("import ast, sys\n"
            "for f in sys.argv[1:]:\n"
            "    ast.parse(open(f, encoding='utf-8').read(), f)\n")
    proc = subprocess.run([exe, "-c", code, *map(str, SOURCES)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
