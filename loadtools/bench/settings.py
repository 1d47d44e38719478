"""The BENCH_* knobs (bench/README.md, "Knobs")."""

import os
from pathlib import Path

from loadtools.common import REPO, SetupError
from loadtools.knobs import env_int, env_ints, env_seconds


def settings():
    s = {
        "duration_s": env_seconds("BENCH_DURATION", 10.0),
        "warmup_s": env_seconds("BENCH_WARMUP", 2.0, lo=0.0, hi=600.0),
        "concurrency": env_ints("BENCH_CONCURRENCY", [10, 100], 1, 1000),
        "rate": env_int("BENCH_RATE", 2000, 1, 1_000_000),
        "rate_concurrency": env_int("BENCH_RATE_CONCURRENCY", 100, 1, 1000),
        "replicas": env_ints("BENCH_REPLICAS", [1, 3], 1, 3),
        "rounds": env_int("BENCH_ROUNDS", 3, 1, 20),
        "ready_timeout_s": env_seconds("BENCH_READY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "name": os.environ.get("BENCH_NAME", "test"),
        "baseline": os.environ.get("BENCH_BASELINE", "1") != "0",
        "worker_threads": env_int("BENCH_WORKER_THREADS", 1, 1, 256),
        "instructions_only": os.environ.get("BENCH_INSTRUCTIONS_ONLY", "") == "1",
        "instructions": os.environ.get("BENCH_INSTRUCTIONS", "") == "1"
        or os.environ.get("BENCH_INSTRUCTIONS_ONLY", "") == "1",
        "instructions_requests": env_int("BENCH_INSTRUCTIONS_REQUESTS", 2000, 10, 1_000_000),
        "strict": os.environ.get("BENCH_STRICT", "") == "1",
        "results_dir": Path(os.environ.get("BENCH_RESULTS_DIR", str(REPO / "results"))),
        "cargo": os.environ.get("CARGO", "cargo"),
        "oha": os.environ.get("OHA", ""),
    }
    if not s["name"] or len(s["name"].encode()) > 1024:
        raise SetupError("BENCH_NAME must be 1-1024 bytes")
    return s
