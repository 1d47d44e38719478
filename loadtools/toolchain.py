"""What a run is built from and runs on: the release build, throw-away
certificates, and the machine's description for the results."""

import os
import subprocess
import sys

from loadtools.common import BASELINE_DIR, GO_BIN, GO_DIR, RELEASE, REPO, SetupError, logger, read_text, run_bounded
from loadtools.procfs import loadavg

# These steps were bench's first, and both tools print them under its name.
log = logger("bench")


def build(cfg):
    cmd = [cfg["cargo"], "build", "--release", "-p", "service1", "-p", "service2", "-p", "certgen"]
    log(" ".join(cmd))
    code, _, _ = run_bounded(cmd, 3600, cwd=REPO)
    if code != 0:
        raise SetupError(f"cargo build failed (exit {code})")


def build_baseline(cfg):
    """The straightforward pair (bench/baseline/), release, into the
    workspace's target directory (its binaries are named baseline-*)."""
    cmd = [cfg["cargo"], "build", "--release", "--manifest-path",
           str(BASELINE_DIR / "Cargo.toml"), "--target-dir", str(REPO / "target")]
    log(" ".join(cmd))
    code, _, _ = run_bounded(cmd, 3600, cwd=REPO)
    if code != 0:
        raise SetupError(f"cargo build of the baseline failed (exit {code})")


def build_go(cfg):
    """The Go pair (bench/baseline-go/) into bench/baseline-go/bin, with the Go
    toolchain on PATH (`GO` to choose another); Go's module and build caches
    are its usual ones, so a second build is quick."""
    cmd = [cfg["go"], "build", "-trimpath", "-o", str(GO_BIN) + "/", "./cmd/..."]
    log(" ".join(cmd) + f"  (in {GO_DIR.relative_to(REPO)})")
    try:
        code, _, _ = run_bounded(cmd, 3600, cwd=GO_DIR)
    except FileNotFoundError:
        raise SetupError(f"{cfg['go']}: not found; the Go pair needs Go 1.26 "
                         "(or BENCH_BASELINES=tonic to leave it out)")
    if code != 0:
        raise SetupError(f"go build of the Go pair failed (exit {code})")


def go_version(cfg):
    try:
        code, out, _ = run_bounded([cfg["go"], "version"], 60, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        return out.strip() if code == 0 else ""
    except (OSError, SetupError):
        return ""


def make_certs(certs):
    """Throw-away CA and service certificates in the directory `certs`."""
    code, _, _ = run_bounded([str(RELEASE / "certgen"), "--out", str(certs)], 60,
                             stdout=subprocess.DEVNULL)
    if code != 0:
        raise SetupError("certgen failed")


def git(*args):
    """A git command's output in the repository, or "" if it fails."""
    try:
        code, out, _ = run_bounded(["git", *args], 30, cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return out.strip() if code == 0 else ""
    except (OSError, SetupError):
        return ""


def cpu_model():
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def mem_total():
    text = ""
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            text = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    return text


def machine_info(oha_version):
    uname = os.uname()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "mem_total": mem_total(),
        "oha_version": oha_version,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": sys.version.split()[0],
        "loadavg_at_start": loadavg(),
    }
