"""Starting the services as shipped (release build, mTLS, JSON logs to
files, free loopback ports), waiting until they are ready, stopping them,
and compressing their logs."""

import gzip
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from loadtools.common import BASELINE_RELEASE, GO_BIN, RELEASE, SetupError, logger, read_text

log = logger("bench")  # bench's message; stress prints it the same way


def http_get(url, timeout=1.0):
    """(status, body) of one GET; raises OSError when there is no answer."""
    req = urllib.request.Request(url, headers={"X-Request-ID": "bench-probe"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def free_port(hosts, taken, attempts=50):
    """A TCP port free on every address in `hosts` right now (bounded tries)."""
    for _ in range(attempts):
        socks = []
        try:
            first = socket.socket()
            socks.append(first)
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            if port in taken:
                continue
            for host in hosts[1:]:
                s = socket.socket()
                socks.append(s)
                s.bind((host, port))
            taken.add(port)
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SetupError(f"no free port on {hosts} after {attempts} tries")


class Launch:
    """How to start a topology's processes: which pair (`ours`, the tonic +
    axum `baseline` of bench/baseline/ or the `go` pair of bench/baseline-go/),
    WORKER_THREADS for each process (GOMAXPROCS for the Go pair; None: the
    binary's default), and `wrap(label)`, a command prefix (callgrind)."""

    def __init__(self, pair="ours", worker_threads=None, wrap=None):
        self.pair, self.worker_threads, self.wrap = pair, worker_threads, wrap


class Service:
    """One service process, its addresses and its log file. `kind` is
    service1 or service2 for both pairs; the baseline has no admin port."""

    def __init__(self, label, binary, env, addr, port, admin_port, logfile, kind=None,
                 prefix=(), pair="ours"):
        self.label, self.addr, self.port, self.admin_port = label, addr, port, admin_port
        self.logfile = logfile
        self.kind = kind or binary.name
        self.pair = pair
        self._out = open(logfile, "wb")
        self.proc = subprocess.Popen(
            [*prefix, str(binary)], env=env, stdout=self._out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=str(logfile.parent),
            start_new_session=True,  # Ctrl-C reaches us, and we stop them in order
        )
        self.pid = self.proc.pid
        self.exit_code = None

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, lines=15):
        self._out.flush()
        text = read_text(self.logfile)
        return "\n".join(text.splitlines()[-lines:])

    def close(self):
        self._out.close()


def stop_all(services, grace=15.0):
    """SIGTERM to every process, SIGKILL to those still up after `grace`."""
    for s in services:
        if s.alive():
            try:
                s.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for s in services:
        try:
            s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{s.label} (pid {s.pid}) still up {grace:g}s after SIGTERM: SIGKILL")
            s.proc.kill()
            s.proc.wait(timeout=10)
        s.exit_code = s.proc.returncode
        s.close()


def service_env(extra):
    """The shipped settings, plus `extra`; nothing from our own environment but PATH."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LOG_FORMAT": "json",
        "RUST_LOG": "info",
        "TLS_MODE": "mtls",
        "DRAIN_DELAY": "0s",
    }
    env.update(extra)
    return env


def tls_env(certs, name):
    return {"TLS_CERT": str(certs / f"{name}.crt"), "TLS_KEY": str(certs / f"{name}.key"),
            "TLS_CA": str(certs / "ca.crt")}


# The pairs written from the docs, measured beside ours (bench/baseline*/).
SIMPLE_PAIRS = ("baseline", "go")


def baseline_env(extra):
    """The simple pairs read only what they have a setting for; nothing of ours but PATH."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_LOG": "info"}
    env.update(extra)
    return env


def launch(label, kind, how, env, addr, port, admin, logfile):
    """One process of either pair, with its pair's binary and environment."""
    threads = "WORKER_THREADS"
    if how.pair == "baseline":
        binary, env = BASELINE_RELEASE / f"baseline-{kind}", baseline_env(env)
    elif how.pair == "go":
        # Go's counterpart of a runtime's worker threads: the Ps that run Go code.
        binary, env, threads = GO_BIN / kind, baseline_env(env), "GOMAXPROCS"
    else:
        binary, env = RELEASE / kind, service_env(env)
    if how.worker_threads:
        env[threads] = str(how.worker_threads)
    prefix = how.wrap(label) if how.wrap else ()
    return Service(label, binary, env, addr, port, admin, logfile, kind=kind, prefix=prefix,
                   pair=how.pair)


def start_service1(i, addr, grpc_port, taken, certs, logdir, how):
    port = free_port([addr], taken)
    env = {"BIND_ADDR": addr, "PORT": str(port), "GRPC_PORT": str(grpc_port),
           **tls_env(certs, "service1")}
    if how.pair in SIMPLE_PAIRS:
        label = f"{how.pair}-service1"
        return launch(label, "service1", how, env, addr, port, None, logdir / f"{label}.log")
    admin = free_port([addr], taken)
    env["ADMIN_PORT"] = str(admin)
    service = launch(f"service1[{i}]", "service1", how, env, addr, port, admin,
                     logdir / f"service1-{i}.log")
    service.grpc_port = grpc_port
    return service


def start_service2(service1_addrs, grpc_port, taken, certs, logdir, how):
    """service2 on 127.0.0.1; ours balances over every service1 (static:///),
    the simple pairs' one channel (tonic Channel, grpc.NewClient) takes host:port."""
    addr = "127.0.0.1"
    port = free_port([addr], taken)
    env = {"BIND_ADDR": addr, "PORT": str(port), "TLS_SERVER_NAME": "service1",
           **tls_env(certs, "service2")}
    if how.pair in SIMPLE_PAIRS:
        env["SERVICE1_CHANNEL"] = f"{service1_addrs[0]}:{grpc_port}"
        label = f"{how.pair}-service2"
        return launch(label, "service2", how, env, addr, port, None, logdir / f"{label}.log")
    admin = free_port([addr], taken)
    env["ADMIN_PORT"] = str(admin)
    env["SERVICE1_CHANNEL"] = "static:///" + ",".join(f"{a}:{grpc_port}" for a in service1_addrs)
    return launch("service2", "service2", how, env, addr, port, admin, logdir / "service2.log")


def start_topology(target, replicas, certs, logdir, cfg, how=None):
    """Start service1 x replicas (+ service2 for say-hello), wait until they
    are ready and answer one request; return (services, url)."""
    how = how or Launch()
    taken = set()
    addrs = [f"127.0.0.{2 + i}" for i in range(replicas)]
    grpc_port = free_port(addrs, taken)
    services = []
    try:
        for i, addr in enumerate(addrs):
            services.append(start_service1(i, addr, grpc_port, taken, certs, logdir, how))
        if target == "say-hello":
            s2 = start_service2(addrs, grpc_port, taken, certs, logdir, how)
            services.append(s2)
            url = f"http://{s2.addr}:{s2.port}/api/v1/say-hello?name={cfg['name']}"
        else:
            url = f"http://{addrs[0]}:{services[0].port}/api/v1/name?name={cfg['name']}"
        wait_ready(services, replicas, cfg["ready_timeout_s"])
        check_contract(url, target, cfg["name"])
        return services, url
    except BaseException:
        stop_all(services)
        raise


def expected_body(target, name):
    """The REST contract every pair must keep (README, "API"): say-hello answers
    the JSON string "Hello, NAME!", /api/v1/name {"name": NAME}, upper-cased."""
    return f"Hello, {name.upper()}!" if target == "say-hello" else {"name": name.upper()}


def check_contract(url, target, name):
    """One request before the load: a 200 with the contract's body, so a pair that
    answers something else is not measured at all."""
    code, body = http_get(url, timeout=5.0)
    if code != 200:
        raise SetupError(f"first request {url} answered {code}: {body[:200]!r}")
    try:
        got = json.loads(body)
    except ValueError:
        got = body[:200]
    if got != expected_body(target, name):
        raise SetupError(f"first request {url} answered {got!r}, not "
                         f"{expected_body(target, name)!r}")


def rest_answers(s, last):
    """A simple pair's readiness: its REST port answers at all (it has no /readyz)."""
    try:
        code, _ = http_get(f"http://{s.addr}:{s.port}/", timeout=0.5)
    except OSError as e:
        last[s.label] = str(e)
        return False
    last[s.label] = f"HTTP {code}"
    return True


def is_ready(s, replicas, last):
    """/readyz answers 200 (service2: with every service1 replica ready)."""
    if s.admin_port is None:
        return rest_answers(s, last)
    try:
        code, body = http_get(f"http://{s.addr}:{s.admin_port}/readyz", timeout=0.5)
    except OSError as e:
        last[s.label] = str(e)
        return False
    last[s.label] = body[:300]
    if code != 200:
        return False
    if s.kind == "service2":
        return json.loads(body).get("service1_endpoints", {}).get("ready") == replicas
    return True


def wait_ready(services, replicas, timeout):
    deadline = time.monotonic() + timeout
    pending = list(services)
    last = {}
    while pending:
        for s in list(pending):
            if not s.alive():
                raise SetupError(f"{s.label} exited with {s.proc.returncode} before ready:\n"
                                 f"{s.log_tail()}")
            if is_ready(s, replicas, last):
                pending.remove(s)
        if not pending:
            return
        if time.monotonic() > deadline:
            detail = "; ".join(f"{s.label}: {last.get(s.label)!r}" for s in pending)
            raise SetupError(f"not ready after {timeout:g}s: {detail}")
        time.sleep(0.1)


def metrics_counts(service):
    """service2's say-hello responses by status, from /metrics on its admin port."""
    try:
        code, body = http_get(f"http://{service.addr}:{service.admin_port}/metrics",
                              timeout=5.0)
    except OSError:
        return None
    if code != 200:
        return None
    counts, dropped = {}, None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("http_server_requests_total{") and 'route="/api/v1/say-hello"' in line:
            labels, _, value = line.rpartition(" ")
            status = labels.split('status="')[1].split('"')[0] if 'status="' in labels else "?"
            counts[status] = counts.get(status, 0) + int(float(value))
        elif line.startswith("log_lines_dropped"):
            try:
                dropped = int(float(line.split()[-1]))
            except ValueError:
                pass
    return {"say_hello_by_status": counts, "log_lines_dropped": dropped}


# Access lines: ours, the tonic + axum pair's (bench/baseline/src/bin/), the Go
# pair's (slog's key is "msg").
ACCESS_MESSAGES = (b'"http request served"', b'"grpc call served"',
                   b'"message":"http request"', b'"message":"grpc request"',
                   b'"msg":"http request"', b'"msg":"grpc request"')


def count_and_gzip(path):
    """Count a log's lines and access lines, then replace it with path.gz."""
    lines = access = 0
    size = path.stat().st_size
    with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb", compresslevel=1) as dst:
        for line in src:
            lines += 1
            if any(m in line for m in ACCESS_MESSAGES):
                access += 1
            dst.write(line)
    path.unlink()
    return {"log_lines": lines, "access_lines": access, "log_bytes": size,
            "log_file": f"{path.name}.gz"}
