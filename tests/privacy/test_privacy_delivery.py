"""The two ways a hostile agent reaches a phone, end to end on a virtual Pixel 7 over the real
adb server: a file planted beside the staged agent, and an agent orch itself ships with a few
lines added. Both end with no photo bytes in the store, and the run says what happened.
Also: the agent's Python starts isolated, and on a virtual Termux still finds Termux's numpy,
Pillow and tflite-runtime."""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from attack import assert_no_trace
from runs import build_cache, tiny_photos
from sim_fixtures import ADB, adb_server, phones  # noqa: F401

from device_agent import contract
from orchestrator.links import scripts
from orchestrator.links.adb import AdbLink
from orchestrator.links.local import file_sha256
from orchestrator.runner.devices import register_device
from orchestrator.runner.pipeline import default_builder, run_experiment
from orchestrator.runner.staging import AGENT_PACKAGE, agent_files, tree_hash
from orchestrator.spec import load_spec_text
from orchestrator.store import repo
from orchestrator.store.db import open_session

REPO = Path(__file__).resolve().parents[2]
GALLERY = "/sdcard/DCIM/catsdogs"
SPEC = """
name: hostile
model: {alpha: 0.25, input_size: 96, weights: none}
head: {classes: [cat, dog]}
data: {source: "device:/sdcard/DCIM/catsdogs", train_per_class: 6, test_per_class: 4, seed: 0}
training: {batch_size: 4, head_epochs: 1, finetune_epochs: 1}
variants:
  method1: {finetune_from: null}
delegate: cpu
"""
# What a planted file tries: copy a gallery photo where the result will carry it, and leave
# a mark that it ran.
PLANTED = """
import base64, glob, os
mark = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "PLANTED-RAN")
open(mark, "w").write("ran")
"""
# What a shipped agent adds to result.py: the first gallery photo as delegate.info keys.
LEAK = '''
    import base64, glob, json as _json
    _job = _json.load(open(os.path.join(run_dir, "job.json")))
    _photo = sorted(glob.glob(os.path.join(_job["data"]["root"], "*", "*")))[0]
    _text = base64.urlsafe_b64encode(open(_photo, "rb").read()).decode()
    result.setdefault("delegate", {}).setdefault("info", {}).update(
        {_text[i:i + 46]: True for i in range(0, 46 * 32, 46)})
    write_json_atomic(os.path.join(run_dir, RESULT_FILE), result, "result")
    return result
'''


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return tiny_photos(tmp_path_factory.mktemp("privacy-photos"))


@pytest.fixture(scope="module")
def pixel7(phones, photos):
    return phones("pixel7", name="privacy-pixel7", photos=photos)


@pytest.fixture
def world(pixel7, tmp_path, tmp_path_factory):
    """(phone, link, store session, device, db file, builder, first gallery photo's bytes)."""
    link = AdbLink(pixel7.serial)
    db = tmp_path / "orch.db"
    session = open_session(f"sqlite:///{db}")
    device = register_device(session=session, link=link)
    cache = build_cache(tmp_path_factory)
    gallery = sorted(pixel7.host_path(GALLERY).glob("*/*"))
    yield pixel7, link, session, device, db, default_builder(cache), gallery[0].read_bytes()
    session.close()
    link.close()


def _run(world, **kw):
    _, link, session, device, _, builder, _ = world
    spec = load_spec_text(SPEC, base_dir=Path("."))
    (run,) = run_experiment(spec=spec, variants=["method1"], link=link, session=session,
                            device=device, builder=builder, poll_s=0.1, **kw)
    return run


def _audit(db: Path, run_id: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", "audit", str(run_id), "--db",
                           f"sqlite:///{db}", "--format", "json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_a_file_planted_beside_the_staged_agent_is_removed_and_recorded(world):
    """sitecustomize.py, a .pth file and a numpy.py that would shadow numpy, planted in the
    agent folder on the phone: removed before the launch (the ledger says so), never run, and
    the run finishes with nothing of the gallery in the store."""
    phone, link, session, _, db, _, photo = world
    digest = tree_hash([(rel, file_sha256(p)) for rel, p in agent_files(AGENT_PACKAGE)])
    agent_dir = posixpath.join(link.root, "agent", digest)
    host = phone.host_path(agent_dir)
    host.mkdir(parents=True, exist_ok=True)
    for name in ("sitecustomize.py", "usercustomize.py", "numpy.py", "device_agent/evil.py"):
        (host / name).parent.mkdir(parents=True, exist_ok=True)
        (host / name).write_text(PLANTED)
    (host / "orch.pth").write_text("import sitecustomize\n")

    run = _run(world)

    assert run.status == "finished", run.error
    assert not (phone.host_path(link.root) / "PLANTED-RAN").exists()
    assert not (host / "numpy.py").exists() and not (host / "orch.pth").exists()
    rows = repo.run_transfers(session=session, run_id=run.id)
    (removed,) = [r for r in rows if r.direction == "removed"]
    assert removed.device_path == agent_dir and removed.reason.startswith("5 entries")
    audit = _audit(db, run.id)
    out = json.loads(audit.stdout)
    assert audit.returncode == 0 and out["verdict"]["verdict"] == "pass"
    assert out["bound"]["bytes"] == out["verdict"]["bound_bytes"] > 0
    assert_no_trace(db, photo)


def test_an_agent_shipped_with_a_leak_is_refused_and_the_run_says_so(world, tmp_path):
    """orch ships an agent whose result carries a gallery photo as delegate.info keys: the
    guard refuses it, the run fails saying so, the audit counts the bytes that crossed and
    were destroyed (not a pass), and no piece of the photo is in the store."""
    _, _, session, _, db, _, photo = world
    package = tmp_path / "shipped" / "device_agent"
    shutil.copytree(AGENT_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    result_py = package / "result.py"
    text = result_py.read_text()
    marker = '    result["run_key"] = fields.get("run_key")\n'
    assert marker in text
    result_py.write_text(text.replace(marker, marker + LEAK))

    run = _run(world, agent_package=package)

    assert run.status == "failed" and "Egress guard refused" in run.error
    assert "result.delegate.info: unexpected field" in run.error
    assert run.result == {}
    refused = [r for r in repo.run_transfers(session=session, run_id=run.id)
               if r.direction == "refused"]
    assert len(refused) == 1 and refused[0].bytes > 32 * 46  # the whole result crossed
    audit = _audit(db, run.id)
    out = json.loads(audit.stdout)
    assert audit.returncode != 0 and out["verdict"]["verdict"] == "refused"
    assert out["verdict"]["headline"] == (f"{refused[0].bytes:,} bytes crossed and were "
                                          "refused and destroyed on the host")
    assert_no_trace(db, photo)


def test_the_agent_starts_isolated_from_its_folder_and_environment(tmp_path):
    """PYTHON* variables, a sitecustomize/usercustomize on PYTHONPATH or in the folder the
    agent starts in, and a .pth there: none of them runs; numpy and Pillow still import."""
    agent_dir = tmp_path / "agent"
    shutil.copytree(AGENT_PACKAGE, agent_dir / "device_agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    evil = tmp_path / "evil"
    evil.mkdir()
    mark = tmp_path / "RAN"
    code = f"open({str(mark)!r}, 'a').write(__name__ + '\\n')\n"
    for folder in (evil, agent_dir):
        (folder / "sitecustomize.py").write_text(code)
        (folder / "usercustomize.py").write_text(code)
        (folder / "x.pth").write_text(f"import os; {code}")
    (evil / "startup.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(evil), "PYTHONSTARTUP": str(evil / "startup.py"),
           "PYTHONUSERBASE": str(evil), "PYTHONHOME": "/nonexistent", "PYTHONINSPECT": "1"}
    argv = scripts.agent_argv(sys.executable, str(agent_dir), str(tmp_path / "no-such-run"),
                              False)
    proc = subprocess.run(argv, cwd=agent_dir, env=env, capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == contract.EXIT_BAD_JOB, proc.stderr.decode()
    assert not mark.exists(), mark.read_text()
    deps = subprocess.run([*argv[:4], "-c", f"import sys; sys.path.insert(0, {str(agent_dir)!r});"
                           " import numpy, PIL, device_agent.runtime as r; print(r.__file__)"],
                          cwd=agent_dir, env=env, capture_output=True, text=True, timeout=120)
    assert deps.returncode == 0, deps.stderr
    assert deps.stdout.strip() == str(agent_dir / "device_agent" / "runtime.py")
    assert not mark.exists()


@pytest.fixture(scope="module")
def termux(phones, tmp_path_factory):
    """A virtual stock Pixel 7 with Termux's GitHub build, set up by `orch devices setup`."""
    phone = phones("termux_pixel7", name="privacy-termux")
    home = tmp_path_factory.mktemp("privacy-termux-home")
    env = {**os.environ, "ORCH_HOME": str(home)}
    setup = subprocess.run([sys.executable, "-m", "orchestrator", "devices", "setup",
                            phone.serial, "--yes", "--allow-phantom-setting"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    return phone


def test_termux_python_started_isolated_still_finds_its_packages(termux):
    """On a virtual Termux, the isolated start still imports Termux's numpy, Pillow and
    tflite-runtime (from Termux's own site-packages) and ignores PYTHONPATH."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.address import DeviceAddress
    from orchestrator.links.runas import RunAsShell
    from orchestrator.links.termux import PYTHON

    shell = RunAsShell(Phone(DeviceAddress.parse(termux.serial)))
    probe = ("import numpy, PIL, tflite_runtime.interpreter, sys; "
             "print(tflite_runtime.__name__, '/tmp/elsewhere' in sys.path)")
    rc, out = shell.run_rc(f"PYTHONPATH=/tmp/elsewhere {PYTHON} -I -B -c {scripts.q(probe)}")
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "tflite_runtime False"
