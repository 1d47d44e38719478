"""The load tools behind `make bench` and `make stress`, as one package
(standard library only): `python3 -m loadtools.bench` and
`python3 -m loadtools.stress`, run from the repository root. The modules
at this level are shared; `bench/` and `stress/` hold each tool's own.
See loadtools/README.md."""
