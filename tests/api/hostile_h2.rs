//! HTTP/2 clients that misbehave on purpose, on every HTTP/2 port.

use std::{net::SocketAddr, time::Duration};

use tokio::task::JoinHandle;

use h2::Reason;
use system_tests::{
    raw_h2::{self, grpc_request, H2},
    spawn::Service1,
    spawn_service1, Pki,
};

/// Sends requests the server must reset, one after the other, until the
/// connection ends or `bound` were sent; returns how the connection ended.
/// `shape` makes each request.
async fn flood(h2: H2, bound: usize, shape: impl Fn() -> (http::Request<()>, bool)) -> Option<h2::Error> {
    let H2 { mut send, connection, .. } = h2;
    for _ in 0..bound {
        let Ok(ready) = send.ready().await else { break };
        send = ready;
        let (request, end_of_stream) = shape();
        let Ok((response, _body)) = send.send_request(request, end_of_stream) else { break };
        // The server resets the stream, or the whole connection.
        let _ = response.await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    match ended {
        Ok(joined) => joined.expect("the connection task does not panic").err(),
        Err(_) => panic!("the server kept the connection open after {bound} bad streams"),
    }
}

/// A request that says it has a body and then ends at once: the server
/// must reset the stream (RFC 9113 8.1.1).
fn lying_content_length(authority: SocketAddr, path: &'static str) -> impl Fn() -> (http::Request<()>, bool) {
    move || {
        let mut request = grpc_request(authority, path);
        request.headers_mut().insert("content-length", http::HeaderValue::from_static("5"));
        (request, true)
    }
}

/// A request whose header block decodes past the server's header list
/// limit (16 KiB): h2 answers 431 on its own, and the service never sees it.
fn oversized_headers(authority: SocketAddr, path: &'static str) -> impl Fn() -> (http::Request<()>, bool) {
    move || {
        let mut request = grpc_request(authority, path);
        let padding = http::HeaderValue::from_str(&"x".repeat(20 * 1024)).expect("a valid value");
        request.headers_mut().insert("x-padding", padding);
        (request, true)
    }
}

/// Floods service1's REST and admin ports with `shape` (given each port's
/// address and a path it serves), one connection each; returns how each
/// connection ended.
async fn flood_rest_and_admin<S>(
    service1: &Service1,
    bound: usize,
    shape: fn(SocketAddr, &'static str) -> S,
) -> Vec<Option<h2::Error>>
where
    S: Fn() -> (http::Request<()>, bool),
{
    let ports = [(service1.rest_addr, "/api/v1/name"), (service1.admin_addr, "/grpc.health.v1.Health/Check")];
    let mut ended = Vec::new();
    for (addr, path) in ports {
        ended.push(flood(raw_h2::connect(addr).await, bound, shape(addr, path)).await);
    }
    ended
}

fn assert_goaway_enhance_your_calm(ended: Option<h2::Error>) {
    let error = ended.expect("the connection ended with an error, not quietly");
    assert!(error.is_go_away(), "{error:?}");
    assert_eq!(error.reason(), Some(Reason::ENHANCE_YOUR_CALM), "{error:?}");
}

#[tokio::test]
async fn too_many_locally_reset_streams_get_goaway_on_the_grpc_port() {
    let service1 = spawn_service1(&["--http2-max-local-reset-streams", "16"]).await;
    let h2 = raw_h2::connect_mtls(service1.grpc_addr, Pki::shared(), "service2").await;

    let ended =
        flood(h2, 200, lying_content_length(service1.grpc_addr, "/app.grpc.Service1/ProcessName")).await;

    assert_goaway_enhance_your_calm(ended);
}

#[tokio::test]
async fn too_many_locally_reset_streams_get_goaway_on_the_rest_and_admin_ports() {
    let service1 = spawn_service1(&["--http2-max-local-reset-streams", "16"]).await;

    let ended = flood_rest_and_admin(&service1, 200, lying_content_length).await;

    ended.into_iter().for_each(assert_goaway_enhance_your_calm);
}

#[tokio::test]
async fn oversized_header_blocks_get_goaway_on_the_grpc_port() {
    let service1 =
        spawn_service1(&["--http2-max-local-reset-streams", "16", "--grpc-max-concurrent-streams", "8"])
            .await;
    let h2 = raw_h2::connect_mtls(service1.grpc_addr, Pki::shared(), "service2").await;

    let ended = flood(h2, 500, oversized_headers(service1.grpc_addr, "/app.grpc.Service1/ProcessName")).await;

    assert_goaway_enhance_your_calm(ended);
}

#[tokio::test]
async fn oversized_header_blocks_get_goaway_on_the_rest_and_admin_ports() {
    let service1 =
        spawn_service1(&["--http2-max-local-reset-streams", "16", "--http2-max-concurrent-streams", "8"])
            .await;

    let ended = flood_rest_and_admin(&service1, 500, oversized_headers).await;

    ended.into_iter().for_each(assert_goaway_enhance_your_calm);
}

#[tokio::test]
async fn a_long_lived_connection_with_many_served_calls_stays_open() {
    // Served streams never count against the cap, however many there are.
    let service1 = spawn_service1(&["--http2-max-local-reset-streams", "16"]).await;
    let H2 { mut send, connection, .. } = raw_h2::connect(service1.rest_addr).await;

    for _ in 0..200 {
        send = send.ready().await.expect("the connection still takes requests");
        let request = http::Request::get(format!("http://{}/api/v1/name?name=x", service1.rest_addr))
            .body(())
            .expect("a valid request");
        let (response, _) = send.send_request(request, true).expect("the request goes out");
        assert_eq!(response.await.expect("an answer").status(), 200);
    }

    assert!(!connection.is_finished(), "the server closed a connection that only made good requests");
}

/// Sends up to `n` PINGs, each once the previous one is answered and
/// `gap` after it; returns the connection, still open or not.
async fn ping(h2: H2, n: usize, gap: Duration) -> (SendRequest, JoinHandle<Result<(), h2::Error>>) {
    let H2 { send, connection, mut ping } = h2;
    for _ in 0..n {
        if ping.ping(h2::Ping::opaque()).await.is_err() {
            break;
        }
        tokio::time::sleep(gap).await;
    }
    (send, connection)
}

type SendRequest = h2::client::SendRequest<bytes::Bytes>;

#[tokio::test]
async fn a_client_that_pings_too_often_gets_goaway_too_many_pings() {
    let service1 = spawn_service1(&[]).await;
    let h2 = raw_h2::connect_mtls(service1.grpc_addr, Pki::shared(), "service2").await;

    let (_send, connection) = ping(h2, 10, Duration::ZERO).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;

    let error = ended.expect("the server closed the connection").unwrap().expect_err("with an error");
    assert!(error.is_go_away(), "{error:?}");
    assert_eq!(error.reason(), Some(Reason::ENHANCE_YOUR_CALM), "{error:?}");
}

#[tokio::test]
async fn a_client_that_pings_within_the_policy_keeps_its_connection() {
    let service1 = spawn_service1(&["--grpc-min-ping-interval", "10ms"]).await;
    let h2 = raw_h2::connect_mtls(service1.grpc_addr, Pki::shared(), "service2").await;

    // Each ping well after the interval: no strike.
    let (_send, connection) = ping(h2, 5, Duration::from_millis(50)).await;

    assert!(!connection.is_finished(), "the server closed a connection that pinged within the policy");
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_the_idle_timeout() {
    let service1 =
        spawn_service1(&["--http-idle-timeout", "400ms", "--http-header-read-timeout", "60s"]).await;
    let tcp = tokio::net::TcpStream::connect(service1.rest_addr).await.unwrap();
    // A client that pings often, as some pools do to keep connections warm.
    let (mut sender, connection) = system_tests::raw_h2::pinging_client(tcp).await;
    let request =
        http::Request::get(format!("http://{}/api/v1/name?name=x", service1.rest_addr)).body(String::new());

    let served = sender.send_request(request.unwrap()).await.unwrap();
    // Then nothing but pings.
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;

    assert_eq!(served.status(), 200);
    assert!(closed.is_ok(), "the server kept an HTTP/2 connection that only pings open");
}
