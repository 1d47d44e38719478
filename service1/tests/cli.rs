//! service1 as a process: configuration errors and signals.

use process_tests as process;

const BIN: &str = env!("CARGO_BIN_EXE_service1");
const LOCAL: [(&str, &str); 5] = [
    ("BIND_ADDR", "127.0.0.1"),
    ("PORT", "0"),
    ("GRPC_PORT", "0"),
    ("ADMIN_PORT", "0"),
    ("DRAIN_DELAY", "0s"),
];

#[test]
fn invalid_config_is_one_line_on_stderr_and_exit_code_2() {
    for env in [
        [("PORT", "http")],
        [("LOG_FORMAT", "xml")],
        [("SHUTDOWN_GRACE", "soon")],
        [("RUST_LOG", "a=b=c")],
        [("HTTP_IDLE_TIMEOUT", "0s")],
        [("TLS_RELOAD_INTERVAL", "0s")],
        [("GRPC_CALL_TIMEOUT", "0s")],
        [("GRPC_MAX_CALLS_PER_IDENTITY_PERCENT", "0")],
        [("HEALTH_MAX_WATCHES", "0")],
        [("HTTP2_MAX_LOCAL_RESET_STREAMS", "0")],
    ] {
        let (status, stdout, stderr) = process::run(BIN, &env, &[]);
        assert_eq!(status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.starts_with("error: invalid configuration: "), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
}

#[test]
fn a_connection_may_not_be_allowed_every_call_slot() {
    let env = [("TLS_MODE", "insecure"), ("GRPC_MAX_CONCURRENT_STREAMS", "2048")];

    let (status, _, stderr) = process::run(BIN, &env, &[]);

    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("GRPC_MAX_CONCURRENT_STREAMS (2048) must be below"), "{stderr}");
}

#[test]
fn help_lists_every_setting_with_its_environment_variable_and_default() {
    let (status, stdout, _) = process::run(BIN, &[], &["--help"]);
    assert!(status.success());
    for expected in [
        "[env: BIND_ADDR=]",
        "[env: PORT=]",
        "[default: 8080]",
        "[env: GRPC_PORT=]",
        "[default: 50051]",
        "[env: MAX_NAME_BYTES=]",
        "[env: SHUTDOWN_GRACE=]",
        "[env: LOG_FORMAT=]",
    ] {
        assert!(stdout.contains(expected), "--help lacks {expected}:\n{stdout}");
    }
}

#[test]
fn sigterm_stops_service1_with_exit_code_0() {
    let (_dir, tls) = process::dev_certs("service1");
    let child = process::start_until(BIN, &process::env(&LOCAL, &tls), "service1 listening");

    assert_eq!(process::terminate(child).code(), Some(0));
}

#[test]
fn without_tls_files_service1_refuses_to_start_unless_tls_is_turned_off() {
    process::check_tls_is_required(BIN, &LOCAL);
}

#[test]
fn unreadable_tls_files_stop_service1_with_one_clear_line() {
    process::check_unreadable_tls_files_stop_the_start(BIN, "service1", &LOCAL);
}

#[test]
fn a_port_in_use_stops_service1_with_one_clear_line() {
    process::check_a_port_in_use_stops_the_start(BIN, &LOCAL);
}

#[test]
fn the_readme_limits_table_states_service1s_defaults() {
    assert!(process::check_readme_limits_match(BIN) >= 8, "the table covers the HTTP limits");
}

#[test]
fn a_certificate_not_issued_by_tls_ca_stops_service1_with_one_clear_line() {
    let (dir, tls) = process::dev_certs("service1");
    let stranger = certgen::Authority::new("someone else's CA").unwrap();
    let leaf = stranger.issue(&certgen::LeafSpec::server("service1", &["localhost"])).unwrap();
    std::fs::write(dir.path().join("service1.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("service1.key"), &leaf.key_pem).unwrap();

    let (status, _, stderr) = process::run(BIN, &process::env(&LOCAL, &tls), &[]);

    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("service1.crt: not issued by a CA in"), "{stderr}");
}

#[test]
fn with_rest_enabled_false_service1_binds_no_rest_port() {
    let (_dir, tls) = process::dev_certs("service1");
    // A port free now; service1 would bind it if REST were on.
    let port = process::unused_port([127, 0, 0, 1].into()).to_string();
    let local: Vec<(&str, &str)> = LOCAL
        .iter()
        .copied()
        .filter(|(k, _)| *k != "PORT")
        .chain([("PORT", port.as_str()), ("REST_ENABLED", "false")])
        .collect();
    let child = process::start_until(BIN, &process::env(&local, &tls), "service1 listening");

    let refused = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()));

    assert!(refused.is_err(), "something answers on the REST port");
    assert_eq!(process::terminate(child).code(), Some(0));
}
