"""The Targets table of `make bench` (loadtools/bench/targets.py): every
target has its rows whatever the settings, a missing run is NOT MEASURED and
a miss, the p99 target holds in every round."""

from conftest import config

from loadtools.bench.targets import check_targets


def by_target(rows):
    return {(t["target"], t["run"]): t for t in rows}


def statuses(rows):
    return {t["status"] for t in rows}


def test_a_run_meeting_every_target_passes_every_row(measured):
    cfg = config()
    runs, _ = measured(cfg)
    rows = check_targets(runs, cfg)
    assert statuses(rows) == {"PASS"}
    assert all(t["pass"] for t in rows)


def test_every_target_of_issue_25_has_its_rows():
    rows = check_targets([], config())
    names = [(t["target"], t["run"]) for t in rows]
    assert names == [
        ("say-hello CPU/request ours ÷ Go", "say-hello-1x-c10"),
        ("say-hello CPU/request ours ÷ Go", "say-hello-1x-c100"),
        ("say-hello CPU/request ours ÷ tonic + axum", "say-hello-1x-c10"),
        ("say-hello CPU/request ours ÷ tonic + axum", "say-hello-1x-c100"),
        ("name CPU/request ours ÷ Go", "name-1x-c10"),
        ("name CPU/request ours ÷ Go", "name-1x-c100"),
        ("p99 at 2,000 req/s, 3 replicas, every round", "say-hello-3x-2000rps"),
        ("service1 RSS after the run", "–"),
        ("service2 RSS after the run", "–"),
        ("zero errors (non-200 + connection), every pair", "all runs"),
    ]
    # Nothing measured: nothing passes.
    assert statuses(rows) == {"NOT MEASURED"}
    assert not any(t["pass"] for t in rows)


def test_leaving_out_the_go_pair_makes_its_rows_not_measured(measured):
    cfg = config(baselines=["baseline"])
    rows = check_targets(measured(cfg)[0], cfg)
    go = [t for t in rows if "÷ Go" in t["target"]]
    assert len(go) == 4 and statuses(go) == {"NOT MEASURED"}
    assert not all(t["pass"] for t in rows)


def test_no_other_pair_leaves_every_ratio_not_measured(measured):
    cfg = config(baselines=[], baseline=False)
    rows = check_targets(measured(cfg)[0], cfg)
    ratios = [t for t in rows if "÷" in t["target"]]
    assert len(ratios) == 6 and statuses(ratios) == {"NOT MEASURED"}


def test_one_replica_only_leaves_the_p99_target_not_measured(measured):
    cfg = config(replicas=[1])
    rows = by_target(check_targets(measured(cfg)[0], cfg))
    assert rows[("p99 at 2,000 req/s, 3 replicas, every round",
                 "say-hello-3x-2000rps")]["status"] == "NOT MEASURED"


def test_another_fixed_rate_leaves_the_p99_target_not_measured(measured):
    cfg = config(rate=1000)
    rows = by_target(check_targets(measured(cfg)[0], cfg))
    assert rows[("p99 at 2,000 req/s, 3 replicas, every round",
                 "say-hello-3x-2000rps")]["status"] == "NOT MEASURED"


def test_concurrency_10_only_leaves_the_c100_ratios_not_measured(measured):
    cfg = config(concurrency=[10])
    rows = check_targets(measured(cfg)[0], cfg)
    c100 = [t for t in rows if t["run"].endswith("-c100")]
    c10 = [t for t in rows if t["run"].endswith("-c10")]
    assert len(c100) == 3 and statuses(c100) == {"NOT MEASURED"}
    assert statuses(c10) == {"PASS"}


def test_p99_fails_when_one_round_misses_though_the_median_meets_it(measured):
    cfg = config()
    # The README's own run had rounds at 1.13, 0.79 and 0.80 ms.
    p99s = {1: 1.13, 2: 0.79, 3: 0.80}

    def tweak(run, round_no):
        return {"p99": p99s[round_no]} if run["id"] == "say-hello-3x-2000rps" else {}

    runs, _ = measured(cfg, tweak)
    merged = next(r for r in runs if r["id"] == "say-hello-3x-2000rps")
    assert merged["latency_ms"]["p99"] == 0.80  # the median alone would pass
    row = by_target(check_targets(runs, cfg))[("p99 at 2,000 req/s, 3 replicas, every round",
                                               "say-hello-3x-2000rps")]
    assert row["status"] == "FAIL"
    assert row["value"] == 1.13
    assert row["rounds"] == [1.13, 0.79, 0.80]


def test_p99_of_a_single_round_is_checked_too(measured):
    cfg = config(rounds=1)
    runs, _ = measured(cfg, lambda run, i: {"p99": 1.5} if run["rate"] else {})
    row = [t for t in check_targets(runs, cfg) if t["target"].startswith("p99")][0]
    assert (row["status"], row["value"]) == ("FAIL", 1.5)


def test_ratios_are_taken_within_a_round_and_their_median_checked(measured):
    cfg = config()
    # Go's say-hello at c10 varies by round; ours ÷ Go per round: 0.3, 0.5, 0.6.
    go_cpu = {1: 100.0, 2: 60.0, 3: 50.0}

    def tweak(run, round_no):
        if run["id"] == "go-say-hello-1x-c10":
            return {"cpu": go_cpu[round_no]}
        return {}

    runs, _ = measured(cfg, tweak)
    row = by_target(check_targets(runs, cfg))[("say-hello CPU/request ours ÷ Go",
                                               "say-hello-1x-c10")]
    assert row["value"] == 0.5
    assert row["status"] == "FAIL"  # limit 0.40


def test_say_hello_over_the_tonic_pair_is_checked_against_0_55(measured):
    cfg = config()
    runs, _ = measured(cfg, lambda run, i: {"cpu": 50.0} if run["id"] == "say-hello-1x-c100"
                       else {})
    rows = by_target(check_targets(runs, cfg))
    tonic = rows[("say-hello CPU/request ours ÷ tonic + axum", "say-hello-1x-c100")]
    go = rows[("say-hello CPU/request ours ÷ Go", "say-hello-1x-c100")]
    assert (round(tonic["value"], 3), tonic["status"]) == (0.833, "FAIL")
    assert (go["value"], go["status"]) == (0.5, "FAIL")


def test_an_error_in_a_go_run_fails_the_errors_target(measured):
    cfg = config()
    runs, _ = measured(cfg, lambda run, i: {"errors": 2} if run["id"] == "go-name-1x-c100"
                       and i == 2 else {})
    row = [t for t in check_targets(runs, cfg) if t["target"].startswith("zero errors")][0]
    assert (row["status"], row["value"], row["run"]) == ("FAIL", 2, "go-name-1x-c100")


def test_rss_counts_ours_only_and_takes_the_largest(measured):
    cfg = config()

    def tweak(run, i):
        if run["pair"] == "go":
            return {"rss": 40.0}  # the Go pair's size is not our target
        if run["id"] == "say-hello-3x-c100" and i == 3:
            return {"rss": 17.0}
        return {}

    rows = check_targets(measured(cfg, tweak)[0], cfg)
    rss = {t["target"].split()[0]: t for t in rows if "RSS" in t["target"]}
    assert (rss["service1"]["value"], rss["service1"]["status"]) == (17.0, "FAIL")
    assert rss["service1"]["run"].startswith("say-hello-3x-c100")


def test_short_runs_are_noted_as_non_default_settings(measured):
    cfg = config(rounds=1, duration_s=1.0)
    rows = check_targets(measured(cfg)[0], cfg)
    assert all(t.get("note") == "non-default settings" for t in rows)
