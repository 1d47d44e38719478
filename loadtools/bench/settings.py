"""The BENCH_* knobs (bench/README.md, "Knobs")."""

import os
from pathlib import Path

from loadtools.common import REPO, SetupError
from loadtools.knobs import env_int, env_ints, env_seconds

# The pairs measured beside ours: `tonic` is bench/baseline/ (its runs are
# `baseline-*`, as before the Go pair came), `go` is bench/baseline-go/.
PAIRS = {"tonic": "baseline", "go": "go"}


def baselines():
    """BENCH_BASELINES as the pairs' names in the plan; BENCH_BASELINE=0 (the
    older switch) means none."""
    if os.environ.get("BENCH_BASELINE", "1") == "0":
        return []
    raw = os.environ.get("BENCH_BASELINES", "tonic,go").strip()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if raw == "none":
        return []
    unknown = [n for n in names if n not in PAIRS]
    if unknown or not names or len(set(names)) != len(names):
        raise SetupError(f"BENCH_BASELINES={raw!r}: expected tonic, go, both "
                         "separated by a comma, or none")
    return [PAIRS[n] for n in ("tonic", "go") if n in names]


def settings():
    # BENCH_SMOKE=1 (CI): every run once, briefly; each knob set explicitly still wins.
    smoke = os.environ.get("BENCH_SMOKE", "") == "1"
    pairs = baselines()
    s = {
        "smoke": smoke,
        "duration_s": env_seconds("BENCH_DURATION", 1.0 if smoke else 10.0),
        "warmup_s": env_seconds("BENCH_WARMUP", 0.5 if smoke else 2.0, lo=0.0, hi=600.0),
        "concurrency": env_ints("BENCH_CONCURRENCY", [10, 100], 1, 1000),
        "rate": env_int("BENCH_RATE", 2000, 1, 1_000_000),
        "rate_concurrency": env_int("BENCH_RATE_CONCURRENCY", 100, 1, 1000),
        "replicas": env_ints("BENCH_REPLICAS", [1, 3], 1, 3),
        "rounds": env_int("BENCH_ROUNDS", 1 if smoke else 3, 1, 20),
        "ready_timeout_s": env_seconds("BENCH_READY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "name": os.environ.get("BENCH_NAME", "test"),
        "baselines": pairs,
        # The tonic + axum pair alone: BENCH_INSTRUCTIONS and `make profile` use it.
        "baseline": "baseline" in pairs,
        "worker_threads": env_int("BENCH_WORKER_THREADS", 1, 1, 256),
        "instructions_only": os.environ.get("BENCH_INSTRUCTIONS_ONLY", "") == "1",
        "instructions": os.environ.get("BENCH_INSTRUCTIONS", "") == "1"
        or os.environ.get("BENCH_INSTRUCTIONS_ONLY", "") == "1",
        "instructions_requests": env_int("BENCH_INSTRUCTIONS_REQUESTS", 2000, 10, 1_000_000),
        "strict": os.environ.get("BENCH_STRICT", "") == "1",
        # CI builds ahead, in the background, while its cluster tests leave
        # the CPU idle; the smoke later finds everything built.
        "prepare_only": os.environ.get("BENCH_PREPARE_ONLY", "") == "1",
        "results_dir": Path(os.environ.get("BENCH_RESULTS_DIR", str(REPO / "results"))),
        "cargo": os.environ.get("CARGO", "cargo"),
        "go": os.environ.get("GO", "go"),
        "oha": os.environ.get("OHA", ""),
    }
    if not s["name"] or len(s["name"].encode()) > 1024:
        raise SetupError("BENCH_NAME must be 1-1024 bytes")
    return s
