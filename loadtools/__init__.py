"""The load tools as one package (standard library only): so far
`python3 -m loadtools.stress`, run from the repository root. The modules at
this level are shared; `stress/` holds the stress check's own. See
loadtools/README.md."""
