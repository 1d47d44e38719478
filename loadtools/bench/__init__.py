"""`make bench`: the load benchmark (bench/README.md). Run as
`python3 -m loadtools.bench` from the repository root."""
