"""Which runs `make bench` plans and how BENCH_* settings choose them
(loadtools/bench/runs.py, settings.py)."""

import pytest
from conftest import config

from loadtools.bench import settings as bench_settings
from loadtools.bench.runs import plan
from loadtools.common import SetupError


def test_each_one_replica_run_of_ours_is_followed_by_tonic_then_go_at_the_same_load():
    ids = [r["id"] for r in plan(config())]
    assert ids[:6] == ["name-1x-c10", "baseline-name-1x-c10", "go-name-1x-c10",
                       "name-1x-c100", "baseline-name-1x-c100", "go-name-1x-c100"]
    assert "go-say-hello-1x-2000rps" in ids
    # The other pairs have no balancing: no 3-replica runs of theirs.
    assert [i for i in ids if "3x" in i] == ["say-hello-3x-c10", "say-hello-3x-c100",
                                            "say-hello-3x-2000rps"]
    # Ours: name, say-hello x1 and x3 at three loads; each other pair: name and say-hello.
    assert len(ids) == 3 * 3 + 2 * 2 * 3


@pytest.mark.parametrize("env, pairs", [
    ({}, ["baseline", "go"]),
    ({"BENCH_BASELINES": "go"}, ["go"]),
    ({"BENCH_BASELINES": "go,tonic"}, ["baseline", "go"]),
    ({"BENCH_BASELINES": "none"}, []),
    ({"BENCH_BASELINE": "0"}, []),
])
def test_bench_baselines_chooses_the_other_pairs(monkeypatch, env, pairs):
    for k in ("BENCH_BASELINES", "BENCH_BASELINE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = bench_settings.settings()
    assert cfg["baselines"] == pairs
    assert cfg["baseline"] == ("baseline" in pairs)


@pytest.mark.parametrize("value", ["rust", "go,go", ",", "tonic,none"])
def test_an_unknown_pair_is_a_setup_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("BENCH_BASELINES", value)
    with pytest.raises(SetupError, match="BENCH_BASELINES"):
        bench_settings.settings()


def test_smoke_mode_is_one_round_of_one_second_runs_unless_told_otherwise(monkeypatch):
    for k in ("BENCH_ROUNDS", "BENCH_DURATION", "BENCH_WARMUP"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BENCH_SMOKE", "1")
    cfg = bench_settings.settings()
    assert (cfg["smoke"], cfg["rounds"], cfg["duration_s"], cfg["warmup_s"]) == (True, 1, 1.0, 0.5)
    monkeypatch.setenv("BENCH_ROUNDS", "2")
    assert bench_settings.settings()["rounds"] == 2


def test_prepare_only_builds_and_installs_then_measures_nothing(monkeypatch, tmp_path):
    from loadtools.bench import __main__ as bench_main
    monkeypatch.setenv("BENCH_PREPARE_ONLY", "1")
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path / "results"))
    prepared = []
    monkeypatch.setattr(bench_main, "prepare",
                        lambda cfg: prepared.append(cfg["baselines"]) or ("oha", "oha 1.16.0"))

    def measured(*_):
        raise AssertionError("BENCH_PREPARE_ONLY=1 ran a measurement")
    monkeypatch.setattr(bench_main, "run_all", measured)
    assert bench_main.main() == 0
    assert prepared == [["baseline", "go"]]
    assert not (tmp_path / "results").exists()
