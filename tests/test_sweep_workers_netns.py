"""Two hosts' `orch sweep worker`s sharing one PostgreSQL, each host a network namespace
with its own adb server and virtual phone; a third namespace holds the database. Addresses
exist inside the namespaces only (veth pairs database ↔ host); the test reads the store
through the server's Unix socket. One worker is killed (-9) mid-run: the other takes its
runs after the lease, and every run of the sweep finishes exactly once.

Needs root, iproute2, Debian's postgresql and adb; skipped otherwise.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.datasets.synth import synthesize
from orchestrator.runner.pipeline import default_builder
from orchestrator.store import repo, sweep_repo, worker_repo
from orchestrator.store.db import open_session
from orchestrator.sweep.queue import plan_sweep

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "experiments" / "paper_table1.yaml"
ADB = "/usr/bin/adb"
PG_PORT = 5432  # inside the database's namespace: nothing else listens there
HOSTS = {"w1": ("10.77.1.1", "10.77.1.2", 5600), "w2": ("10.77.2.1", "10.77.2.2", 5602)}

SWEEP = f"""\
name: farm-workers
base: {PAPER}
variants: [method2]
set:
  name: farm-workers
  model.alpha: 0.25
  model.input_size: 96
  model.weights: none
  data.train_per_class: 6
  data.test_per_class: 4
  training.head_epochs: 1
  training.finetune_epochs: 30
grid: {{data.seed: [0, 1, 2, 3, 4, 5]}}
health: {{min_battery: 5, max_temperature: 90, cooldown_s: 0}}
"""


def sh(*args: str, check: bool = True, timeout: float = 60) -> str:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces and virtual phones need root"
    if not shutil.which("ip"):
        return "iproute2 is not installed"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "Debian's postgresql is not installed"
    if not Path(ADB).exists():
        return "Debian's adb is not installed"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install 'orch[postgres]'"
    return None


class Net:
    """The namespaces, the database server and the hosts' adb servers and phones."""

    def __init__(self, base: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = {"db": f"orch-db-{tag}", "w1": f"orch-w1-{tag}", "w2": f"orch-w2-{tag}"}
        self.base = base
        # Outside pytest's folders: those are root's alone, and the server runs as postgres.
        self.pg_dir = Path(tempfile.mkdtemp(prefix="orch-netns-pg-"))
        self.pg_bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.serials: dict[str, str] = {}
        self.homes: dict[str, Path] = {}

    def in_ns(self, host: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[host], *args]

    def env(self, host: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("ORCH_ADB_PORT", "ORCH_ADB_HOST", "ORCH_DB", "ANDROID_ADB_SERVER_PORT")}
        env.update(ORCH_HOME=str(self.homes[host]), ADBUTILS_ADB_PATH=ADB,
                   PYTHONPATH=os.environ.get("PYTHONPATH", str(REPO)))
        return env

    def up(self, photos: Path, cache: Path) -> None:
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for host, (db_ip, host_ip, _) in HOSTS.items():
            sh("ip", "link", "add", f"to{host}", "netns", self.ns["db"], "type", "veth",
               "peer", "name", "todb", "netns", self.ns[host])
            sh("ip", "-n", self.ns["db"], "addr", "add", f"{db_ip}/24", "dev", f"to{host}")
            sh("ip", "-n", self.ns[host], "addr", "add", f"{host_ip}/24", "dev", "todb")
            sh("ip", "-n", self.ns["db"], "link", "set", f"to{host}", "up")
            sh("ip", "-n", self.ns[host], "link", "set", "todb", "up")
        self._postgres()
        for host, (_, _, port) in HOSTS.items():
            home = self.homes[host] = self.base / f"home-{host}"
            home.mkdir()
            (home / "cache").symlink_to(cache)
            subprocess.run(self.in_ns(host, ADB, "start-server"), capture_output=True,
                           timeout=30, check=True, env=self.env(host))
            out = subprocess.run(
                self.in_ns(host, sys.executable, "-m", "orchestrator", "sim", "start",
                           "--profile", "pixel7", "--name", f"phone-{host}", "--port",
                           str(port), "--photos", str(photos), "--format", "json"),
                capture_output=True, text=True, timeout=120, env=self.env(host), cwd=REPO)
            assert out.returncode == 0, out.stderr[-2000:]
            self.serials[host] = json.loads(out.stdout)["serial"]

    def _postgres(self) -> None:
        shutil.chown(self.pg_dir, "postgres", "postgres")
        data = self.pg_dir / "data"
        sh("runuser", "-u", "postgres", "--", str(self.pg_bin / "initdb"), "-D", str(data),
           "-U", "postgres", "-A", "trust", "--no-sync", timeout=120)
        with (data / "pg_hba.conf").open("a") as f:
            f.write("host all all 10.77.0.0/16 trust\n")
        listen = ",".join(db_ip for db_ip, _, _ in HOSTS.values())
        sh(*self.in_ns("db", "runuser", "-u", "postgres", "--", str(self.pg_bin / "pg_ctl"),
                       "-D", str(data), "-l", str(self.pg_dir / "log"), "-w", "-t", "60",
                       "start", "-o", f"-c listen_addresses={listen} -p {PG_PORT} "
                       f"-k {self.pg_dir} -c fsync=off"), timeout=90)
        sh("runuser", "-u", "postgres", "--", str(self.pg_bin / "createdb"), "-h",
           str(self.pg_dir), "-p", str(PG_PORT), "-U", "postgres", "orch")

    def local_url(self) -> str:
        """The store as the test reads it: the server's Unix socket (no network here)."""
        return f"postgresql://postgres@/orch?host={self.pg_dir}&port={PG_PORT}"

    def url_from(self, host: str) -> str:
        return f"postgresql://postgres@{HOSTS[host][0]}:{PG_PORT}/orch"

    def down(self) -> None:
        """Stop everything, each step on its own (one that hangs or fails stops no other):
        the phones politely, then whatever is left in the namespaces, then the namespaces."""
        def quietly(cmd: list[str], **kw) -> None:
            try:
                subprocess.run(cmd, capture_output=True, timeout=60, **kw)
            except (subprocess.TimeoutExpired, OSError):
                pass

        for host in HOSTS:
            if host in self.homes:
                quietly(self.in_ns(host, sys.executable, "-m", "orchestrator", "sim", "stop",
                                   "--all"), env=self.env(host), cwd=REPO)
                quietly(self.in_ns(host, ADB, "kill-server"), env=self.env(host))
        if (self.pg_dir / "data").exists():
            quietly(["runuser", "-u", "postgres", "--", str(self.pg_bin / "pg_ctl"), "-D",
                     str(self.pg_dir / "data"), "-m", "immediate", "stop"])
        for ns in self.ns.values():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:  # anything left in the namespace (an agent, a killed host's)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.pg_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("netns-farm")
    photos = base / "photos"
    synthesize(photos, per_class=10, size=96, names=["cat", "dog"])
    cache = tmp_path_factory.getbasetemp() / "runner-build-cache"
    cache.mkdir(exist_ok=True)
    n = Net(base)
    try:
        n.up(photos, cache)
        yield n
    finally:
        n.down()


def _worker(net: Net, host: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        net.in_ns(host, sys.executable, "-m", "orchestrator", "sweep", "worker", "--db",
                  net.url_from(host), "--lease", "6", "--format", "json"),
        env=net.env(host), cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def _wait(check, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for p, log in procs:
            assert p.poll() is None, f"a worker ended early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_hosts_share_one_queue_and_survive_a_killed_worker(net, tmp_path):
    """Six runs queued once; workers on two hosts take them; the first host's worker is
    killed mid-run (after finishing one); after its lease the second runs the rest. Every
    run finishes exactly once, the killed run is cancelled saying why, and the dead worker
    is marked expired."""
    path = tmp_path / "farm.yaml"
    path.write_text(SWEEP)
    _planner, planned = plan_sweep(path, cli_sets=[])
    default_builder(net.homes["w1"] / "cache")(planned[0].spec, planned[0].variant)
    queued = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", str(path),
                             "--queue-only", "--db", net.local_url(), "--format", "json"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert queued.returncode == 0, queued.stderr[-2000:]
    sweep_id = json.loads(queued.stdout)["sweep"]["id"]
    url = net.local_url()
    logs = {h: tmp_path / f"worker-{h}.log" for h in HOSTS}
    w1 = _worker(net, "w1", logs["w1"])
    w2 = _worker(net, "w2", logs["w2"])
    procs = [(w1, logs["w1"]), (w2, logs["w2"])]
    try:
        def w1_mid_run() -> bool:
            with open_session(url) as s:
                dev = repo.find_device(session=s, serial=net.serials["w1"])
                done = [r for r in repo.list_runs(session=s, sweep_id=sweep_id)
                        if r.status == "finished" and dev and r.device_id == dev.id]
                mid = [r for r in repo.list_runs(session=s, sweep_id=sweep_id, status="running")
                       if dev and r.device_id == dev.id and (r.progress.get("epoch") or 0) >= 2]
                return bool(done) and bool(mid)

        _wait(w1_mid_run, 600, "a run finished and one mid-way on the first host", procs)
        w1.kill()
        w1.wait(30)

        def sweep_done() -> bool:
            with open_session(url) as s:
                return sweep_repo.get_sweep(session=s, sweep_id=sweep_id).status == "finished"

        _wait(sweep_done, 900, "the sweep to finish", procs[1:])
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()

    assert w2.returncode == 0, logs["w2"].read_text()[-3000:]
    summary = json.loads(w2.stdout.read())
    with open_session(url) as s:
        items = sweep_repo.list_items(session=s, sweep_id=sweep_id)
        runs = repo.list_runs(session=s, sweep_id=sweep_id)
        workers = {w.name: w for w in worker_repo.list_workers(session=s)}
        devs = {h: repo.find_device(session=s, serial=serial)
                for h, serial in net.serials.items()}
    assert len(items) == 6 and {i.status for i in items} == {"finished"}
    finished = [r for r in runs if r.status == "finished"]
    assert sorted(r.id for r in finished) == sorted(i.run_id for i in items)  # once each
    assert len({r.variant for r in finished}) == 6
    cancelled = [r for r in runs if r.status != "finished"]
    assert cancelled and all(r.status == "cancelled" and "lost its lease" in r.error
                             for r in cancelled)
    assert all(r.device_id == devs["w1"].id for r in cancelled)
    assert {r.device_id for r in finished} == {devs["w1"].id, devs["w2"].id}
    assert summary["handed_back"] >= 1
    assert sorted(w.state for w in workers.values()) == ["alive", "expired"]
