"""The STRESS_* knobs (stress/README.md, "Knobs"), and the open-file limit
the storm needs."""

import os
import resource
from pathlib import Path

from loadtools.common import REPO, SetupError, logger
from loadtools.knobs import env_float, env_int, env_seconds
from loadtools.stress.limits import IDLE_SLACK_S, IDLE_TIMEOUT_S, MAX_HEADER_BYTES, SHUTDOWN_LIMIT_S

log = logger("stress")


def phase_knobs():
    """Lengths of the phases, and the load of the storm and exhaustion groups."""
    return {
        "storm_s": env_seconds("STRESS_STORM_SECONDS", 60.0, lo=20.0, hi=3600.0),
        "soak_s": env_seconds("STRESS_SOAK_SECONDS", 600.0, lo=10.0, hi=86400.0),
        "exhaust_s": env_float("STRESS_EXHAUST_SECONDS", 100.0, 0.0, 3600.0),
        "idle_h2": env_int("STRESS_IDLE_H2", 1000, 0, 20000),
        "watches": env_int("STRESS_WATCHES", 2000, 0, 100000),
        "held_conns": env_int("STRESS_HELD_CONNS", 100, 0, 2000),
        "rss_per_stream_kib": env_float("STRESS_RSS_PER_STREAM_KIB", 8.0, 0.0, 1024.0),
        "connections": env_int("STRESS_CONNECTIONS", 2000, 10, 20000),
        "slowloris": env_int("STRESS_SLOWLORIS", 200, 0, 2000),
        "slowloris_interval_s": env_float("STRESS_SLOWLORIS_INTERVAL", 1.0, 0.1, 5.0),
        "variants": os.environ.get("STRESS_SLOWLORIS_VARIANTS", "1") != "0",
        "variant_conns": 10,
        "oversized": env_int("STRESS_OVERSIZED", 20, 0, 200),
        "oversized_bytes": env_int("STRESS_OVERSIZED_BYTES", 64 * 1024, MAX_HEADER_BYTES + 1,
                                   1024 * 1024),
        "good_clients": env_int("STRESS_GOOD_CLIENTS", 10, 1, 100),
        "good_rate": env_float("STRESS_GOOD_RATE", 50.0, 1.0, 1000.0),
        "good_attempts": env_int("STRESS_GOOD_ATTEMPTS", 3, 1, 10),
        "good_deadline_s": env_float("STRESS_GOOD_DEADLINE", 10.0, 1.0, 60.0),
        "phases": env_phases(),
        # The hostile-client phase (hostile.py).
        "hostile_s": env_seconds("STRESS_HOSTILE_SECONDS", 40.0, lo=30.0, hi=3600.0),
        "hostile_zero_window_conns": env_int("STRESS_HOSTILE_ZERO_WINDOW", 100, 0, 200),
        "hostile_never_read_conns": env_int("STRESS_HOSTILE_NEVER_READ", 50, 0, 1000),
        "hostile_over_cap": env_int("STRESS_HOSTILE_OVER_CAP", 200, 1, 5000),
        "hostile_no_preface_conns": env_int("STRESS_HOSTILE_NO_PREFACE", 100, 0, 300),
        "hostile_load_conns": env_int("STRESS_HOSTILE_LOAD_CONNECTIONS", 50, 1, 1000),
        # The gray-failure phase (gray.py).
        "gray_s": env_seconds("STRESS_GRAY_SECONDS", 30.0, lo=20.0, hi=3600.0),
        "gray_freeze_s": env_seconds("STRESS_GRAY_FREEZE_SECONDS", 20.0, lo=5.0, hi=600.0),
        "gray_connections": env_int("STRESS_GRAY_CONNECTIONS", 50, 1, 2000),
        "gray_slow_ms": env_float("STRESS_GRAY_SLOW_MS", 200.0, 10.0, 5000.0),
    }


PHASES = ("storm", "exhaust", "hostile", "soak", "gray")


def env_phases():
    """STRESS_PHASES: the phases to run, comma-separated, in their fixed
    order (`storm` includes recovery); default all."""
    raw = os.environ.get("STRESS_PHASES", "").strip()
    if not raw:
        return list(PHASES)
    asked = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in asked if p not in PHASES]
    if unknown or not asked:
        raise SetupError(f"STRESS_PHASES={raw!r}: a comma-separated list of {', '.join(PHASES)}")
    return [p for p in PHASES if p in asked]


def target_knobs():
    """Targets, the soak's load, timeouts, and where things are."""
    return {
        "good_target_pct": env_float("STRESS_GOOD_TARGET", 99.0, 0.0, 100.0),
        "rss_base_mib": env_float("STRESS_RSS_BASE_MIB", 32.0, 4.0, 4096.0),
        "rss_per_conn_kib": env_float("STRESS_RSS_PER_CONN_KIB", 40.0, 0.0, 1024.0),
        "soak_rate": env_int("STRESS_SOAK_RATE", 500, 1, 100000),
        "soak_concurrency": env_int("STRESS_SOAK_CONCURRENCY", 20, 1, 1000),
        "soak_tolerance_mib": env_float("STRESS_SOAK_RSS_TOLERANCE_MIB", 5.0, 0.0, 1024.0),
        "gray_p99_ms": env_float("STRESS_GRAY_P99_MS", 100.0, 1.0, 60000.0),
        "gray_slow_share_pct": env_float("STRESS_GRAY_SLOW_SHARE_PCT", 1.0, 0.0, 100.0),
        "recovery_timeout_s": env_seconds("STRESS_RECOVERY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "ready_timeout_s": env_seconds("STRESS_READY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "results_dir": Path(os.environ.get("STRESS_RESULTS_DIR", str(REPO / "results"))),
        "cargo": os.environ.get("CARGO", "cargo"),
        "oha": os.environ.get("OHA", ""),
        "name": "test",  # start_topology's smoke request
    }


def settings():
    s = {**phase_knobs(), **target_knobs()}
    # RSS every 10 s in a long soak; at least ~10 samples in a short one.
    s["soak_sample_s"] = min(10.0, max(1.0, s["soak_s"] / 10))
    # The idle connections must have time to be closed: timeout + slack + 5 s.
    if 0 < s["exhaust_s"] < IDLE_TIMEOUT_S + IDLE_SLACK_S + 5:
        raise SetupError(f"STRESS_EXHAUST_SECONDS={s['exhaust_s']:g}: 0 (leave the phase out) or at "
                         f"least {IDLE_TIMEOUT_S + IDLE_SLACK_S + 5:g}")
    s["shutdown_limit_s"] = SHUTDOWN_LIMIT_S
    # Warm-up before the soak's "start" RSS: a tenth of it, 5-60 s.
    s["soak_warmup_s"] = min(60.0, max(5.0, s["soak_s"] / 10))
    return s


def raise_soft_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; (soft before, hard, soft now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft, hard, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return soft, hard, soft
    return soft, hard, want


def raise_fd_limit(cfg):
    """Raise the open-file limit (inherited by services and oha); lower the
    flood's connections, loudly, if it is still too low for them."""
    soft, hard, new = raise_soft_nofile()
    # service2 holds one fd per client connection: the flood, the slowloris
    # and the rest, plus its own; 2,500 leaves room for everything else.
    needed = cfg["connections"] + 2500
    info = {"soft_before": soft, "hard": hard, "soft": new, "needed": needed,
            "connections_requested": cfg["connections"], "reduced": False}
    if new != resource.RLIM_INFINITY and new < needed:
        cfg["connections"] = max(10, int(new) - 2500)
        info["reduced"] = True
        info["warning"] = (f"open-file limit {new} (hard {hard}) is below {needed}: the flood uses "
                           f"{cfg['connections']} connections instead of "
                           f"{info['connections_requested']}")
        log("WARNING " + "!" * 20)
        log("WARNING " + info["warning"])
        log("WARNING " + "!" * 20)
    else:
        log(f"open-file limit {'raised from ' + str(soft) + ' to' if new != soft else 'already at'} "
            f"{new} (hard {hard}), for the services and oha too")
    info["connections_used"] = cfg["connections"]
    return info
