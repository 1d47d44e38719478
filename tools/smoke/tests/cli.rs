//! The `smoke` checker as a process (the chart's `helm test` runs it), and
//! the one rule about how it is built.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_smoke");

/// A loopback port nothing listens on (bound, then released).
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn smoke_fails_at_once_on_a_refused_connection_without_connect_wait() {
    let url = format!("http://127.0.0.1:{}/", refused_port());

    let out = Command::new(BIN).args([url.as_str(), "\"ok\""]).output().unwrap();

    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Connection refused"), "{out:?}");
}

#[test]
fn smoke_with_connect_wait_keeps_trying_until_the_port_opens_then_judges_the_answer() {
    let port = refused_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/say-hello?name=helm");
    let mut smoke = Command::new(BIN)
        .args(["--connect-wait", "60", url.as_str(), "\"Hello, HELM!\""])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // smoke says when it was refused: only then does the port open.
    let mut stderr = BufReader::new(smoke.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("refuses connections; trying again"), "{line}");

    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut head = [0u8; 1024];
    let n = conn.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("GET /api/v1/say-hello?name=helm HTTP/1.1\r\n"));
    let body = "\"Hello, HELM!\"";
    write!(conn, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
    drop(conn);

    let out = smoke.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn smoke_refuses_a_connect_wait_that_is_not_whole_seconds() {
    let out = Command::new(BIN).args(["--connect-wait", "5s", "http://127.0.0.1:1/", "x"]).output().unwrap();

    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn smoke_depends_on_the_standard_library_only() {
    // Dev-dependencies are fine: they never reach the binary in the image.
    let manifest = include_str!("../Cargo.toml");
    let dependency_tables: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('[') && line.contains("dependencies"))
        .filter(|line| !line.contains("dev-dependencies"))
        .collect();

    assert!(dependency_tables.is_empty(), "tools/smoke/Cargo.toml has {dependency_tables:?}");
}
