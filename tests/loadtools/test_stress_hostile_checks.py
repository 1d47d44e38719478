"""The verdicts of `make stress`'s hostile-client phase (loadtools/stress/
checks.py) on made-up records: a cap that held passes, one exceeded fails,
a connection released late fails, and a load with one non-200 fails."""

from loadtools.stress.checks import Checks, hostile_checks
from loadtools.stress.limits import CAP_SLACK, MAX_CONNECTIONS, MAX_TLS_HANDSHAKES


def held(closed_after_s):
    return {"closed_after_s": closed_after_s, "error": None}


def sample(t, fds_a, fds_b):
    """One second's reading: open fds of service1[0] and [1], and peak RSS."""
    return {"t": t, "service1[0]": {"hwm_kib": 20 * 1024, "fds": fds_a},
            "service1[1]": {"hwm_kib": 20 * 1024, "fds": fds_b},
            "service2": {"hwm_kib": 30 * 1024, "fds": 20}}


def a_phase_that_held():
    """Every group released in time, the caps held, the load all 200."""
    probes = {"service1[0] /livez": {"ok": 40, "failed": 0, "answers": {"200": 40}},
              "service2 say-hello": {"ok": 40, "failed": 0, "answers": {"200": 40}}}
    return {
        "zero_window_admin": [{"streams": 16, "reset": 16, "released_after_s": 10.1, "error": None}],
        "zero_window_rest": [{"streams": 16, "reset": 16, "released_after_s": 10.2, "error": None}],
        "never_read": [{"closed_after_stall_s": 9.0, "sent_kib": 900, "error": None}],
        "over_cap": [held(10.0), held(0.01), held(0.01)],
        "half_handshakes": [held(10.0)] * MAX_TLS_HANDSHAKES + [held(0.01)],
        "no_preface": [held(20.1)],
        "load": {"completed": 1000, "status_codes": {"200": 1000}, "connection_errors": {}},
        "probes": probes,
        "alive": {"service1[0]": True, "service1[1]": True, "service2": True},
        "fd_bounds": {"service1[1]": {"cap": MAX_CONNECTIONS, "others": 100},
                      "service1[0]": {"cap": MAX_TLS_HANDSHAKES, "others": 100}},
        "samples": [sample(0.0, 13, 13), sample(5.0, 13 + MAX_TLS_HANDSHAKES + 100,
                                                13 + MAX_CONNECTIONS + 100)],
    }


def verdicts(phase):
    checks = Checks()
    hostile_checks(phase, checks)
    return {c["check"]: c["pass"] for c in checks}


def failed(phase):
    return [name for name, ok in verdicts(phase).items() if not ok]


def test_a_phase_where_every_shape_was_held_passes_every_check():
    assert failed(a_phase_that_held()) == []


def test_more_handshakes_held_at_once_than_the_cap_fails():
    phase = a_phase_that_held()
    phase["samples"].append(sample(6.0, 13 + MAX_TLS_HANDSHAKES + 100 + CAP_SLACK + 1, 13))

    assert any("half-finished TLS handshakes" in name and "past the cap" in name
               for name in failed(phase))


def test_a_cap_that_refused_nobody_fails():
    phase = a_phase_that_held()
    phase["over_cap"] = [held(10.0), held(10.0)]

    assert any("silent connections" in name and "past the cap" in name for name in failed(phase))


def test_a_zero_window_stream_never_released_fails():
    phase = a_phase_that_held()
    phase["zero_window_rest"].append({"streams": 16, "reset": 0, "released_after_s": None,
                                      "error": None})

    assert any("zero-window" in name and "service2" in name for name in failed(phase))


def test_one_non_200_under_the_load_fails():
    phase = a_phase_that_held()
    phase["load"]["status_codes"] = {"200": 999, "503": 1}

    assert any("full load" in name for name in failed(phase))


def test_a_process_over_the_charts_memory_limit_fails():
    phase = a_phase_that_held()
    phase["samples"][1]["service2"]["hwm_kib"] = 70 * 1024

    assert any("service2 peak RSS" in name for name in failed(phase))
