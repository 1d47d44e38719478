//! service2 as a process: configuration errors and signals.

use process_tests as process;

const BIN: &str = env!("CARGO_BIN_EXE_service2");
const LOCAL: [(&str, &str); 4] =
    [("BIND_ADDR", "127.0.0.1"), ("PORT", "0"), ("ADMIN_PORT", "0"), ("DRAIN_DELAY", "0s")];

#[test]
fn invalid_config_is_one_line_on_stderr_and_exit_code_2() {
    for env in [
        [("SERVICE1_CHANNEL", "service1")],
        [("SERVICE1_TIMEOUT", "10")],
        [("PORT", "-1")],
        [("LISTEN_BACKLOG", "0")],
        [("SERVICE1_RESOLVE_INTERVAL", "0s")],
        [("TLS_SERVER_IDENTITY", " ")],
        [("SERVICE1_KEEPALIVE_INTERVAL", "0s")],
    ] {
        let (status, _, stderr) = process::run(BIN, &env, &[]);
        assert_eq!(status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.starts_with("error: invalid configuration: "), "{stderr}");
    }
}

#[test]
fn help_lists_every_setting_with_its_environment_variable_and_default() {
    let (status, stdout, _) = process::run(BIN, &[], &["--help"]);
    assert!(status.success());
    for expected in [
        "[env: PORT=]",
        "[default: 8081]",
        "[env: SERVICE1_CHANNEL=]",
        "[default: localhost:50051]",
        "[env: SERVICE1_TIMEOUT=]",
        "[default: 10s]",
        "[env: SERVICE1_CONNECT_TIMEOUT=]",
    ] {
        assert!(stdout.contains(expected), "--help lacks {expected}:\n{stdout}");
    }
}

#[test]
fn sigterm_stops_service2_with_exit_code_0() {
    let (_dir, tls) = process::dev_certs("service2");
    let child = process::start_until(BIN, &process::env(&LOCAL, &tls), "service2 listening");

    assert_eq!(process::terminate(child).code(), Some(0));
}

#[test]
fn without_tls_files_service2_refuses_to_start_unless_tls_is_turned_off() {
    process::check_tls_is_required(BIN, &LOCAL);
}

#[test]
fn unreadable_tls_files_stop_service2_with_one_clear_line() {
    process::check_unreadable_tls_files_stop_the_start(BIN, "service2", &LOCAL);
}

#[test]
fn a_port_in_use_stops_service2_with_one_clear_line() {
    process::check_a_port_in_use_stops_the_start(BIN, &LOCAL);
}

#[test]
fn the_readme_limits_table_states_service2s_defaults() {
    assert!(process::check_readme_limits_match(BIN) >= 8, "the table covers the HTTP limits");
}
