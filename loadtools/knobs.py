"""Settings from environment variables (BENCH_*, STRESS_*), checked: a bad
value is a SetupError that names the variable and what it should be."""

import os

from loadtools.common import SetupError


def env_seconds(name, default, lo=0.5, hi=3600.0):
    """Seconds, written `10`, `10s` or `500ms`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    text = raw[:-1] if raw.endswith("s") and not raw.endswith("ms") else raw
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    try:
        value = float(text) * scale
    except ValueError:
        raise SetupError(f"{name}={raw!r}: expected seconds, e.g. 10 or 10s")
    if not lo <= value <= hi:
        raise SetupError(f"{name}={raw!r}: must be between {lo:g}s and {hi:g}s")
    return value


def env_ints(name, default, lo, hi):
    """A comma-separated list of integers, each within [lo, hi]."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        values = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise SetupError(f"{name}={raw!r}: expected integers separated by commas")
    if not values or any(not lo <= v <= hi for v in values):
        raise SetupError(f"{name}={raw!r}: each value must be between {lo} and {hi}")
    return values


def env_int(name, default, lo, hi):
    return env_ints(name, [default], lo, hi)[0]


def env_float(name, default, lo, hi):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SetupError(f"{name}={raw!r}: expected a number")
    if not lo <= value <= hi:
        raise SetupError(f"{name}={raw!r}: must be between {lo:g} and {hi:g}")
    return value
