//! Connection floods on every port of real service processes, with every
//! limit at its default (issue 26): thousands of idle TCP connections,
//! thousands of keep-alive connections (HTTP/1.1 and HTTP/2), finished mTLS
//! connections and half-finished TLS handshakes. A legitimate say-hello and
//! the probes must still be answered, and each process must stay under
//! [`RSS_BOUND_MIB`], below the chart's 64 MiB memory limit.
//!
//! Each flood stays under its port's default cap, so the legitimate
//! connection still finds a place: past a cap a port refuses everyone
//! (tests/api/connections.rs). The connections count against this
//! process's open files too: about 5,000 here, under the 20,000 this
//! machine allows. These are debug builds, as `make test` builds them,
//! which take about twice a release build's memory at rest (21 MiB against
//! 9 MiB).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use system_tests::{cluster::Replica, grpc_client::client_config, Pki};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The most either process may hold, flooded: the chart's limit is 64 MiB.
const RSS_BOUND_MIB: u64 = 60;

/// Connections of each kind on a REST port (MAX_CONNECTIONS is 2500).
const IDLE: usize = 500;
const HTTP1_KEEP_ALIVE: usize = 500;
const HTTP2_KEEP_ALIVE: usize = 500;
/// On service1's gRPC port, under GRPC_MAX_CONNECTIONS (512): finished
/// mTLS connections that then send
/// nothing more than HTTP/2's preface and SETTINGS, and TCP connections
/// that never finish a handshake (MAX_TLS_HANDSHAKES, 128, are held; the
/// rest are reset).
const MTLS_IDLE: usize = 500;
const HALF_HANDSHAKES: usize = 300;
/// On each admin port, under ADMIN_MAX_CONNECTIONS (256).
const ADMIN_IDLE: usize = 240;

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn address(replica: &Replica, port: &str) -> SocketAddr {
    replica.listening[port].as_str().and_then(|a| a.parse().ok()).expect("an address in the listening line")
}

/// `n` connections that send nothing (those past a cap are reset, which
/// may already show as a failed connect).
async fn idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(tcp) = TcpStream::connect(addr).await {
            held.push(tcp);
        }
    }
    held
}

/// `n` HTTP/1.1 connections that make one request each, then wait.
async fn http1_keep_alive(addr: SocketAddr, path: &str, n: usize) -> Vec<TcpStream> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.expect("TCP connects");
        tcp.write_all(request.as_bytes()).await.expect("the request goes out");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(n)) if n > 0), "a keep-alive connection was not answered");
        held.push(tcp);
    }
    held
}

/// `n` HTTP/2 connections that make one request each, then wait.
async fn http2_keep_alive(
    addr: SocketAddr,
    path: &str,
    n: usize,
) -> Vec<h2::client::SendRequest<bytes::Bytes>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = TcpStream::connect(addr).await.expect("TCP connects");
        let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let mut send = send.ready().await.expect("ready");
        let request = http::Request::get(format!("http://{addr}{path}")).body(()).unwrap();
        let (response, _) = send.send_request(request, true).expect("sent");
        let response = tokio::time::timeout(Duration::from_secs(10), response).await;
        assert!(matches!(response, Ok(Ok(_))), "an HTTP/2 connection was not answered");
        held.push(send);
    }
    held
}

/// `n` mTLS connections as service2 that send the HTTP/2 preface and their
/// SETTINGS, then nothing.
async fn mtls_idle(addr: SocketAddr, pki: &Pki, n: usize) -> Vec<h2::client::SendRequest<bytes::Bytes>> {
    let cert = std::fs::read_to_string(pki.path("service2.crt")).unwrap();
    let key = std::fs::read_to_string(pki.path("service2.key")).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(pki, Some((&cert, &key)))));
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = TcpStream::connect(addr).await.expect("TCP connects");
        let name = rustls::pki_types::ServerName::try_from("service1").unwrap();
        let tls = connector.connect(name, tcp).await.expect("the handshake completes");
        let (send, connection) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
        tokio::spawn(connection);
        held.push(send);
    }
    held
}

/// The status line of one GET on a new connection (at most 10 s).
async fn status_of(addr: SocketAddr, path: &str) -> String {
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.ok()?;
        Some(String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned())
    })
    .await;
    answer.ok().flatten().unwrap_or_else(|| "no answer".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_on_every_port_leave_say_hello_and_the_probes_answered_in_bounded_memory() {
    let pki = Pki::new();
    let service1 = Replica::spawn(
        "service1",
        localhost(),
        &pki,
        &[("BIND_ADDR", "127.0.0.1".into()), ("PORT", "0".into()), ("GRPC_PORT", "0".into())],
    );
    let (s1_rest, s1_grpc, s1_admin) =
        (address(&service1, "rest"), address(&service1, "grpc"), address(&service1, "admin"));
    let service2 = Replica::spawn(
        "service2",
        localhost(),
        &pki,
        &[("BIND_ADDR", "127.0.0.1".into()), ("PORT", "0".into()), ("SERVICE1_CHANNEL", s1_grpc.to_string())],
    );
    let (s2_rest, s2_admin) = (address(&service2, "rest"), address(&service2, "admin"));
    let before = (service1.rss_kib(), service2.rss_kib());

    let say_hello = "/api/v1/say-hello?name=flood";
    let name = "/api/v1/name?name=flood";
    let _held = (
        (idle(s2_rest, IDLE).await, idle(s1_rest, IDLE).await),
        (
            http1_keep_alive(s2_rest, say_hello, HTTP1_KEEP_ALIVE).await,
            http1_keep_alive(s1_rest, name, HTTP1_KEEP_ALIVE).await,
        ),
        (
            http2_keep_alive(s2_rest, say_hello, HTTP2_KEEP_ALIVE).await,
            http2_keep_alive(s1_rest, name, HTTP2_KEEP_ALIVE).await,
        ),
        mtls_idle(s1_grpc, &pki, MTLS_IDLE).await,
        idle(s1_grpc, HALF_HANDSHAKES).await,
        (idle(s1_admin, ADMIN_IDLE).await, idle(s2_admin, ADMIN_IDLE).await),
    );
    let flooded = (service1.rss_kib(), service2.rss_kib());

    let answers = [
        status_of(s2_rest, say_hello).await,
        status_of(s1_admin, "/readyz").await,
        status_of(s1_admin, "/livez").await,
        status_of(s2_admin, "/readyz").await,
        status_of(s2_admin, "/livez").await,
    ];
    let after = (service1.rss_kib(), service2.rss_kib());
    println!(
        "RSS KiB (service1, service2): before {before:?}, flooded {flooded:?}, after the probes {after:?}"
    );

    assert!(answers.iter().all(|a| a == "HTTP/1.1 200 OK"), "{answers:?}");
    for (which, kib) in [("service1", flooded.0.max(after.0)), ("service2", flooded.1.max(after.1))] {
        assert!(kib < RSS_BOUND_MIB * 1024, "{which} holds {} MiB flooded", kib / 1024);
    }
}
