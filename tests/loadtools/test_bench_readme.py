"""The README's benchmark figures (loadtools/bench/readme.py): written from
one run's results, between the markers only, and never from a run whose
figures describe no commit or mean nothing."""

import pytest
from conftest import config
from test_bench_smoke_and_report import MACHINE, doc_of

from loadtools.bench import readme

README = "# Title\n\n## Performance\n\nprose kept\n\n<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n\n## Next\n"


def clean(doc):
    doc["machine"] = dict(MACHINE, git_dirty=False)
    return doc


def test_the_figures_replace_only_what_lies_between_the_markers(measured):
    cfg = config()
    doc = clean(doc_of(cfg, measured(cfg)[0]))
    text = readme.rewrite(README, readme.figures(doc, "results.json"))
    assert text.startswith("# Title\n\n## Performance\n\nprose kept\n\n<!-- bench:begin -->\n")
    assert text.endswith("<!-- bench:end -->\n\n## Next\n")
    assert "old figures" not in text
    assert "- Commit: `aaaaaaaaaaaa`, clean tree" in text
    assert "### Ours beside the other pairs" in text and "### Targets" in text
    assert "| say-hello | c10 | 30.0 | 60.0 | 100.0 | **0.50** | **0.30** |" in text
    # Our own runs only: the other pairs are in the table beside ours.
    assert "| say-hello-3x-2000rps |" in text and "| go-say-hello-1x-c10 |" not in text


def test_a_smoke_run_or_a_dirty_tree_is_refused(measured):
    cfg = config(rounds=1, smoke=True)
    with pytest.raises(readme.Refused, match="smoke run"):
        readme.figures(clean(doc_of(cfg, measured(cfg)[0])), "results.json")
    cfg = config()
    with pytest.raises(readme.Refused, match="uncommitted changes"):
        readme.figures(doc_of(cfg, measured(cfg)[0]), "results.json")


@pytest.mark.parametrize("text", [
    "no markers\n",
    README + README,
    README.replace("<!-- bench:begin -->\n", "<!-- bench:begin -->\n<!-- bench:begin -->\n"),
    "<!-- bench:end -->\n<!-- bench:begin -->\n",
], ids=["none", "two pairs", "two begins", "end first"])
def test_a_readme_without_exactly_one_pair_of_markers_is_refused(text):
    with pytest.raises(readme.Refused, match="exactly one"):
        readme.rewrite(text, ["figures"])
