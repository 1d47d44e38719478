"""Every setting is explained where users look: values.yaml and the chart
README, whose values table helm-docs generates from values.yaml's `# --`
comments (tests/chart/helm-docs-tool/helm-docs.sh), so it cannot drift."""

import os
import re
import shutil
import subprocess

import pytest

import yaml

from chart_helpers import CHART

KEY = re.compile(r"^(\s*)([A-Za-z0-9_.\-]+):")


def test_every_key_in_values_yaml_has_a_comment_above_it():
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if not KEY.match(line):
            continue
        above = next((l.strip() for l in reversed(lines[:number]) if l.strip()), "")
        if not above.startswith("#"):
            undocumented.append(f"{number + 1}: {line.strip()}")
    assert undocumented == []


def leaf_paths(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def readme_table_keys():
    text = (CHART / "README.md").read_text()
    return set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", text, flags=re.M))


def test_every_value_is_in_the_readme_table():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = readme_table_keys()
    missing = []
    for path in leaf_paths(values):
        parts = path.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if not prefixes & documented:
            missing.append(path)
    assert missing == []


def test_the_readme_table_documents_no_value_that_does_not_exist():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = set()
    for leaf in leaf_paths(values):
        parts = leaf.split(".")
        paths |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    assert readme_table_keys() - paths == set()


def test_the_readme_values_table_is_what_helm_docs_makes_from_values_yaml():
    """Fails when values.yaml or README.md.gotmpl changed and README.md was
    not regenerated. Builds helm-docs from its Go module the first time."""
    if shutil.which("go") is None and not os.environ.get("CI"):
        # make test needs only Rust and python3; the tests above still hold
        # the table to values.yaml, and CI (which has Go) runs this one.
        pytest.skip("needs Go to build helm-docs; CI runs it")
    script = CHART.parents[1] / "tests" / "chart" / "helm-docs-tool" / "helm-docs.sh"
    result = subprocess.run([script, "--check"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_row_of_the_values_table_says_what_the_value_does():
    rows = re.findall(r"^\| `([A-Za-z0-9_.]+)` \|[^|]*\|[^|]*\| (.*) \|$", (CHART / "README.md").read_text(), flags=re.M)
    assert len(rows) > 100
    assert [key for key, meaning in rows if not meaning.strip()] == []
