"""`make stress`: the overload, exhaustion and soak check (stress/README.md).
Run as `python3 -m loadtools.stress` from the repository root."""
