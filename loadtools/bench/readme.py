"""The README's benchmark figures, written from one `make bench` run:

    python3 -m loadtools.bench.readme [RESULTS_JSON]   (default results/latest/results.json)

Replaces what lies between README.md's `<!-- bench:begin -->` and
`<!-- bench:end -->` lines with that run's header (commit, machine, load at
the start), ours beside the other pairs, the Targets table and our own runs,
as results.md has them. So the README's tables cannot be retyped wrong or
outlive the code they describe without saying which commit they are from.

Refused (exit 2, one line, README untouched): a smoke run, whose timings mean
nothing; a run from a tree with uncommitted changes, which no commit
describes; a README without exactly one pair of markers.
"""

import json
import sys
from pathlib import Path

from loadtools.bench.report import baseline_table, header, runs_table, targets_table
from loadtools.common import REPO

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


class Refused(Exception):
    pass


def demoted(lines):
    """results.md's `##` sections sit under the README's `## Performance`."""
    return ["#" + line if line.startswith("## ") else line for line in lines]


def figures(doc, source):
    """The lines that go between the markers."""
    if doc["settings"].get("smoke"):
        raise Refused(f"{source} is a smoke run (BENCH_SMOKE=1): its timings mean nothing")
    if doc["machine"].get("git_dirty"):
        raise Refused(f"{source} was measured with uncommitted changes: no commit describes it")
    # The header without its "# Benchmark" title and blank line.
    head = header(doc)[2:]
    ours = [r for r in doc["runs"] if r.get("pair", "ours") == "ours"]
    return ([f"Written by `python3 -m loadtools.bench.readme` from run {doc['timestamp']} "
             "(UTC); do not edit by hand.", ""] + head
            + demoted(baseline_table(doc["runs"]) + targets_table(doc))
            + [line.replace("## Runs", "### Ours, every run") for line in runs_table(ours)])


def rewrite(readme_text, lines):
    begin, end = BEGIN + "\n", END + "\n"
    if readme_text.count(begin) != 1 or readme_text.count(end) != 1 or (
            readme_text.index(end) < readme_text.index(begin)):
        raise Refused(f"README.md needs exactly one {BEGIN} line followed by one {END} line")
    before, _, rest = readme_text.partition(begin)
    _, _, after = rest.partition(end)
    return before + begin + "\n".join(lines) + "\n" + end + after


def main(argv):
    source = Path(argv[1]) if len(argv) > 1 else REPO / "results" / "latest" / "results.json"
    readme = REPO / "README.md"
    try:
        doc = json.loads(source.read_text())
        readme.write_text(rewrite(readme.read_text(), figures(doc, source)))
    except (OSError, ValueError, Refused) as e:
        print(f"bench readme: {e}", file=sys.stderr)
        return 2
    print(f"bench readme: README.md's figures are now run {doc['timestamp']}'s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
