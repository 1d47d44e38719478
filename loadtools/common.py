"""What every load tool needs: paths, errors, signals, logging, bounded
subprocesses and waits, and number formatting."""

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
# The baseline pair (bench/baseline/): its own workspace, built into its own target dir.
BASELINE_DIR = REPO / "bench" / "baseline"
# The baseline builds into the workspace's target directory: the
# dependencies both resolve alike are then compiled once, not twice.
BASELINE_RELEASE = REPO / "target" / "release"
# The Go pair (bench/baseline-go/): its own Go module, built into bin/ there.
GO_DIR = REPO / "bench" / "baseline-go"
GO_BIN = GO_DIR / "bin"
MIB = 1024 * 1024


class SetupError(Exception):
    """The run cannot go on (build, load generator, a service, a setting): exit status 2."""


class Stop(BaseException):
    """SIGTERM/SIGHUP while running: unwind so `finally` stops the services."""


def logger(tool):
    """A function that prints `<tool>: <message>` on stderr."""

    def log(msg):
        print(f"{tool}: {msg}", file=sys.stderr, flush=True)

    return log


def stop_on_signals():
    """SIGTERM and SIGHUP raise Stop, so `finally` blocks stop the services."""

    def on_signal(signum, _frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def run_main(main, log):
    """Exits with main()'s status; 2 on SetupError, 130 when interrupted."""
    try:
        sys.exit(main())
    except SetupError as e:
        log(f"error: {e}")
        sys.exit(2)
    except (KeyboardInterrupt, Stop) as e:
        log(f"interrupted ({e or 'SIGINT'}); services stopped")
        sys.exit(130)


def run_bounded(cmd, timeout, **kw):
    """subprocess.run with a time limit that also kills the child if we unwind."""
    proc = subprocess.Popen(cmd, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise SetupError(f"{cmd[0]} took longer than {timeout:g}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, out, err


def read_text(path, default=""):
    try:
        return Path(path).read_text()
    except OSError:
        return default


def fmt(v, digits=2):
    """A number for a table: thousands separators, `–` for none."""
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def utc_stamp():
    """The UTC time that names a results directory, e.g. 20261129T101500Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def settings_doc(cfg, leave_out):
    """The settings as results.json / stress.json record them (paths as text)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items()
            if k not in leave_out}


async def wait_all(tasks, timeout):
    """Waits at most `timeout` s for `tasks`, cancels those still running, and
    raises what the first finished one that failed raised."""
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()
