"""The quick start, as a newcomer on a fresh Debian machine meets it:

- `make test` first checks that python3 can make the tests' venv, and says
  in one line what to install when it cannot (scripts/check-python.sh);
- `make run` names a port another process holds, and the variable that
  moves ours; moved ports work, service2 following service1's gRPC port
  (scripts/run-local.sh).

Loopback only; every wait is bounded and polls a readiness signal.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_python(tmp_path, has_ensurepip):
    """A python3 on PATH that fails `import ensurepip` as Debian's does
    without python3-venv, or passes it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "python3"
    failing = '''case "$*" in *ensurepip*) echo "No module named 'ensurepip'" >&2; exit 1;; esac'''
    script.write_text(f"#!/bin/sh\n{'' if has_ensurepip else failing}\nexit 0\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "VENV_DIR": str(tmp_path / "no-venv-yet")}


def check_python(env):
    return subprocess.run([str(ROOT / "scripts" / "check-python.sh")], env=env, capture_output=True, text=True,
                          timeout=30)


def test_make_test_says_in_one_line_to_install_python3_venv_when_ensurepip_is_missing(tmp_path):
    result = check_python(fake_python(tmp_path, has_ensurepip=False))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "apt-get install python3-venv" in result.stderr


def test_make_test_goes_on_when_python3_can_make_a_venv(tmp_path):
    assert check_python(fake_python(tmp_path, has_ensurepip=True)).returncode == 0


def port_env(ports):
    names = ["SERVICE1_REST_PORT", "SERVICE1_GRPC_PORT", "SERVICE1_ADMIN_PORT", "SERVICE2_REST_PORT",
             "SERVICE2_ADMIN_PORT"]
    return {**{k: v for k, v in os.environ.items() if k not in ("PORT", "GRPC_PORT", "ADMIN_PORT")},
            **{name: str(port) for name, port in zip(names, ports)}}


def test_make_run_names_the_port_in_use_and_the_variable_that_moves_it():
    ports = [free_port() for _ in range(5)]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[3]))
        holder.listen()

        result = subprocess.run([str(ROOT / "scripts" / "run-local.sh")], env=port_env(ports),
                                capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {ports[3]} (service2 REST) is in use" in lines[0]
    assert f"SERVICE2_REST_PORT={ports[3] + 10000} make run" in lines[0]


def get(url):
    with urllib.request.urlopen(url, timeout=2) as reply:
        return reply.status, reply.read()


def test_make_run_serves_say_hello_on_moved_ports():
    for binary in ("service1", "service2", "certgen"):
        if not (ROOT / "target" / "debug" / binary).exists():
            pytest.fail(f"target/debug/{binary} is missing: cargo build --workspace --bins")
    # What `make run` does first when certs/dev is missing (a usable set is left alone).
    subprocess.run([str(ROOT / "target" / "debug" / "certgen"), "--out", str(ROOT / "certs" / "dev")],
                   check=True, capture_output=True, timeout=60)
    ports = [free_port() for _ in range(5)]
    run = subprocess.Popen([str(ROOT / "scripts" / "run-local.sh")], env=port_env(ports),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        ready = None
        while time.monotonic() < deadline and run.poll() is None:
            try:
                ready = json.loads(get(f"http://127.0.0.1:{ports[4]}/readyz")[1])
                if ready.get("service1_endpoints", {}).get("ready") == 1:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert run.poll() is None, run.stdout.read().decode()[-2000:]

        status, body = get(f"http://127.0.0.1:{ports[3]}/api/v1/say-hello?name=moved")
        name_status, name_body = get(f"http://127.0.0.1:{ports[0]}/api/v1/name?name=moved")
    finally:
        # Ctrl-C, as a terminal sends it: to the whole process group.
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=30)

    assert (status, body) == (200, b'"Hello, MOVED!"'), ready
    assert (name_status, json.loads(name_body)) == (200, {"name": "MOVED"})
    # Ctrl-C stops both services, not only the script.
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after Ctrl-C"
