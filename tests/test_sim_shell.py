"""A virtual phone through the real adb server: identity, shell v1/v2, streams, sensors."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
from sim_fixtures import ADB, sim_session, virtual_phone  # noqa: F401

from orchestrator.devices.facts import facts_from_props
from orchestrator.devices.health import HEALTH_COMMAND, health_from_text
from orchestrator.devices.parsers import parse_battery, parse_df, parse_getprop
from orchestrator.sim.profile import PROFILES_DIR


@pytest.fixture(scope="module")
def pixel(sim_session):  # noqa: F811
    return sim_session("pixel7", name="shell-pixel7")


def adb_cli(serial: str, *args: str, input: str | None = None, timeout: float = 30):
    return subprocess.run([ADB, "-s", serial, *args], capture_output=True, text=True,
                          input=input, timeout=timeout)


def test_adb_devices_lists_the_profile_model(pixel):
    """`adb devices -l` shows the phone online with its profile's model and product."""
    out = subprocess.run([ADB, "devices", "-l"], capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith(pixel.serial + " "))
    assert " device " in line and "model:Pixel_7" in line and "product:panther" in line


def test_getprop_over_the_adb_cli(pixel):
    """`adb shell getprop ro.product.model` prints the profile's model, as on the phone."""
    r = adb_cli(pixel.serial, "shell", "getprop", "ro.product.model")
    assert (r.returncode, r.stdout) == (0, "Pixel 7\n")


def test_getprop_listing_parses_into_facts(pixel):
    """`getprop` lists every property as `[key]: [value]`; the project's parser reads it."""
    props = parse_getprop(pixel.adb().shell("getprop"))
    facts = facts_from_props(props)
    assert (facts.model, facts.sdk, facts.soc, facts.abi) == ("Pixel 7", 34, "GS201", "arm64-v8a")
    assert props["ro.serialno"] and props["sys.boot_completed"] == "1"


def test_getprop_works_inside_a_pipeline(pixel):
    """getprop is a command on the phone's PATH, so it composes with pipes and defaults."""
    out = pixel.adb().shell("getprop | grep -c 'ro.product.model'; getprop no.such.key fallback")
    assert out.split() == ["1", "fallback"]


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize(("command", "code"), [("true", 0), ("false", 1), ("no-such-cmd", 127)])
def test_shell2_exit_codes(pixel, v2, command, code):
    """shell2 returns the command's exit code, with and without shell v2."""
    r = pixel.adb().shell2(command, v2=v2)
    assert r.returncode == code


def test_shell_v2_separates_stdout_and_stderr(pixel):
    """Over shell v2 stdout and stderr arrive apart, and `exit 3` is the exit code."""
    r = pixel.adb().shell2("echo out; echo err >&2; exit 3", v2=True)
    assert (r.stdout, r.stderr, r.returncode) == ("out\n", "err\n", 3)


def test_adb_cli_shell_exit_code_and_stdin(pixel):
    """The adb CLI gets exit codes (shell v2) and can feed a shell commands on stdin."""
    assert adb_cli(pixel.serial, "shell", "exit 7").returncode == 7
    r = adb_cli(pixel.serial, "shell", input="echo from-stdin\nexit 4\n")
    assert (r.returncode, r.stdout) == (4, "from-stdin\n")


def test_shell_environment_is_a_phones(pixel):
    """The shell starts in / with a phone's environment and the profile's Python on PATH."""
    out = pixel.adb().shell("pwd; echo $HOME $TMPDIR $ANDROID_DATA $EXTERNAL_STORAGE; "
                            "command -v python3").splitlines()
    assert out == ["/", "/ /data/local/tmp /data /sdcard", "/data/local/tmp/python/bin/python3"]


def _wait_for(cond, timeout: float = 60.0) -> None:
    """Poll `cond` until it holds (a generous timeout: only a failure waits for it)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_long_command_streams_output_as_it_runs(pixel):
    """Output of a long-running command reaches the host line by line, not at the end: each
    tick arrives while the command still waits for the host's go for the next one."""
    dev = pixel.adb()
    dev.shell("rm -f /data/local/tmp/go*")
    conn = dev.shell("for i in 1 2 3; do echo tick $i; "
                     "while [ ! -e /data/local/tmp/go$i ]; do sleep 0.05; done; done",
                     stream=True)
    got = b""
    for i in (1, 2, 3):
        while f"tick {i}".encode() not in got:  # arrives before the command may go on
            chunk = conn.conn.recv(100)
            assert chunk, "the stream closed early"
            got += chunk
        dev.shell(f"touch /data/local/tmp/go{i}")
    got += conn.read_until_close(encoding=None)
    conn.close()
    assert got.decode().split() == ["tick", "1", "tick", "2", "tick", "3"]


def test_eight_concurrent_streams_on_one_phone(pixel):
    """Eight shells at once on one phone each get their own output and exit code; they run
    concurrently: each waits until all eight have started (one after another would hang)."""
    results: dict[int, tuple[int, str]] = {}
    pixel.adb().shell("rm -rf /data/local/tmp/started && mkdir /data/local/tmp/started")

    def run(i: int) -> None:
        r = pixel.adb().shell2(
            f"touch /data/local/tmp/started/{i}; n=0; "
            "while [ $(ls /data/local/tmp/started | wc -l) -lt 8 ] && [ $n -lt 1200 ]; do "
            "sleep 0.05; n=$((n+1)); done; "
            f"[ $n -lt 1200 ] || exit 99; head -c 100000 /dev/zero | wc -c; echo n{i}; "
            f"exit {i}", v2=True)
        results[i] = (r.returncode, r.stdout)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {i: (i, f"100000\nn{i}\n") for i in range(8)}


def test_unknown_and_reboot_services_are_refused(pixel):
    """`reboot:` and unknown services are answered with CLSE: adb reports the refusal."""
    r = adb_cli(pixel.serial, "reboot")
    assert r.returncode != 0 and "closed" in r.stderr
    assert adb_cli(pixel.serial, "get-state").stdout.strip() == "device"


def test_background_job_with_nohup_outlives_the_session(pixel):
    """`setsid nohup … &` with redirected output survives the shell, as the agent must."""
    dev = pixel.adb()
    dev.shell("rm -f /data/local/tmp/bg.txt /data/local/tmp/bg.go; setsid nohup sh -c "
              "'while [ ! -e /data/local/tmp/bg.go ]; do sleep 0.05; done; echo alive > "
              "/data/local/tmp/bg.txt' > /dev/null 2>&1 < /dev/null &")
    dev.shell("touch /data/local/tmp/bg.go")  # the session above has ended by now
    _wait_for(lambda: dev.shell("cat /data/local/tmp/bg.txt 2>/dev/null") == "alive")


def test_health_sample_parses_dumpsys_output(pixel):
    """dumpsys battery / thermalservice print Android's formats; the health parser reads them."""
    sample = health_from_text(pixel.adb().shell(HEALTH_COMMAND))
    assert sample.battery is not None and 0 < sample.battery <= 100
    assert sample.plugged is True and sample.thermal_status == 0
    assert 20 < sample.temperature < 45 and 20 < sample.battery_temperature < 45


def test_busy_process_heats_the_soc_and_drains_the_battery(virtual_phone, tmp_path):  # noqa: F811
    """A CPU-second of a child process heats the SoC above its idle temperature and drain
    an unplugged battery (a profile given as a file)."""
    text = (PROFILES_DIR / "pixel7.yaml").read_text().replace("plugged: usb", "plugged: none")
    (tmp_path / "unplugged.yaml").write_text(text)
    dev = virtual_phone(str(tmp_path / "unplugged.yaml")).adb()

    def read() -> tuple[float, int, str]:
        thermal = dev.shell("dumpsys thermalservice | grep 'mName=BIG'")
        battery = dev.shell("dumpsys battery")
        counter = next(ln for ln in battery.splitlines() if "Charge counter" in ln)
        return (float(thermal.split("mValue=")[1].split(",")[0]), int(counter.split(":")[1]),
                parse_battery(battery).status)

    temp0, charge0, status = read()
    burn = "import time; t = time.process_time()\nwhile time.process_time() - t < 1: pass"
    assert dev.shell2(f"python3 -c '{burn}'", v2=True).returncode == 0
    deadline = time.monotonic() + 60  # the phone samples its load once a second
    while (temp1 := read()[0]) <= temp0 and time.monotonic() < deadline:
        time.sleep(0.2)
    _, charge1, _ = read()
    assert status == "discharging"
    assert temp0 == 33.0 and temp1 > temp0
    assert charge1 < charge0


def test_df_reports_the_storage(pixel):
    """df shows /data and /storage/emulated in toybox format; the project's parser reads it."""
    rows = {r.mount: r for r in parse_df(pixel.adb().shell("df"))}
    assert set(rows) == {"/data", "/storage/emulated"}
    assert rows["/data"].total_bytes > rows["/data"].free_bytes > 0


def test_phone_python_runs_pushed_code_not_the_checkout(pixel, tmp_path):
    """The phone's Python has numpy/Pillow/LiteRT, runs a pushed package, and cannot see the
    repository: only what was pushed exists on the phone."""
    pkg = tmp_path / "agent" / "hello_agent"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys, numpy, PIL, ai_edge_litert\n"
        "print('ran', sys.argv[1], numpy.__name__, PIL.__name__)\n")
    dev = pixel.adb()
    dev.sync.push(pkg / "__init__.py", "/data/local/tmp/orch/agent/hello_agent/__init__.py")
    dev.sync.push(pkg / "__main__.py", "/data/local/tmp/orch/agent/hello_agent/__main__.py")
    r = dev.shell2("cd /data/local/tmp/orch/agent && python3 -u -m hello_agent JOB", v2=True)
    assert (r.returncode, r.stdout) == (0, "ran JOB numpy PIL\n")
    r = dev.shell2("python3 -c 'import orchestrator'", v2=True)
    assert r.returncode == 1 and "No module named 'orchestrator'" in r.stderr
    r = dev.shell2("ls /work", v2=True)
    assert r.returncode != 0


def test_forced_terminal_gives_a_pty(pixel):
    """`adb shell -tt` runs the command on a terminal, as an interactive session would."""
    r = adb_cli(pixel.serial, "shell", "-tt", "tty; echo $TERM")
    assert r.returncode == 0
    tty, term = r.stdout.replace("\r", "").split()
    assert tty.startswith("/dev/pts/") and term


def test_adb_forward_reaches_a_port_through_the_phone(pixel):
    """`adb forward tcp:X tcp:Y` carries bytes to port Y and back through the phone's tcp:
    service (how an sshd on the phone is reached)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    target = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo, daemon=True).start()
    local = int(adb_cli(pixel.serial, "forward", "tcp:0", f"tcp:{target}").stdout.strip())
    try:
        with socket.create_connection(("127.0.0.1", local), timeout=10) as c:
            c.sendall(b"hello phone")
            assert c.recv(100) == b"HELLO PHONE"
    finally:
        adb_cli(pixel.serial, "forward", "--remove", f"tcp:{local}")
        server.close()


def test_nnapi_library_hook(virtual_phone, tmp_path):  # noqa: F811
    """A profile's nnapi_lib appears as /system/lib64/libneuralnetworks.so and processes
    learn its path from ORCH_NNAPI_LIB."""
    lib = tmp_path / "libfake_nnapi.so"
    lib.write_bytes(b"\x7fELF fake")
    text = (PROFILES_DIR / "galaxy_s23.yaml").read_text() + f"nnapi_lib: {lib}\n"
    (tmp_path / "s23-nnapi.yaml").write_text(text)
    dev = virtual_phone(str(tmp_path / "s23-nnapi.yaml")).adb()
    out = dev.shell("echo $ORCH_NNAPI_LIB; cat /system/lib64/libneuralnetworks.so")
    assert out == f"/system/lib64/libneuralnetworks.so\n{lib.read_text()}"


def test_closing_a_session_hangs_up_its_command(pixel):
    """When the host closes a shell stream, its command gets SIGHUP and stops, as under adbd."""
    dev = pixel.adb()
    dev.shell("rm -f /data/local/tmp/hup.txt")
    dev.shell("rm -f /data/local/tmp/hup.go /data/local/tmp/hup.pid")
    conn = dev.shell("echo $$ > /data/local/tmp/hup.pid; "
                     "while [ ! -e /data/local/tmp/hup.go ]; do sleep 0.05; done; "
                     "echo survived > /data/local/tmp/hup.txt", stream=True)
    _wait_for(lambda: dev.shell("cat /data/local/tmp/hup.pid 2>/dev/null").strip() != "")
    pid = dev.shell("cat /data/local/tmp/hup.pid").strip()
    conn.close()
    _wait_for(lambda: dev.shell2(f"kill -0 {pid}", v2=True).returncode != 0)  # hung up
    dev.shell("touch /data/local/tmp/hup.go")
    assert dev.shell("cat /data/local/tmp/hup.txt 2>&1") == (
        "cat: /data/local/tmp/hup.txt: No such file or directory")
