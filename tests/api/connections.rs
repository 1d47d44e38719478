//! What a port holds for its clients: connections and TLS handshakes at
//! once, responses a client does not take, and connections past their age
//! (issue 26: item 1, shapes 2.1, 2.2 and 2.4).

use std::{net::SocketAddr, time::Duration};

use h2::Reason;
use system_tests::{raw_h2, spawn_service1, Pki};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const GET_NAME: &[u8] = b"GET /api/v1/name?name=x HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_LIVEZ: &[u8] = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";

/// One request on a new keep-alive connection; the connection and the
/// status line, or `None` if the server closed the connection instead of
/// answering (within 5 s).
async fn ask(addr: SocketAddr, request: &[u8]) -> Option<(TcpStream, String)> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    // The server may have reset the connection before this write.
    tcp.write_all(request).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    let n = read.expect("the server answers or closes within 5 s").ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    (n > 0).then(|| (tcp, text.lines().next().unwrap_or_default().to_owned()))
}

/// Asks on new connections until one is answered (at most 5 s), for a
/// place the server frees in its own time.
async fn answered_soon(addr: SocketAddr, request: &[u8]) -> Option<String> {
    for _ in 0..100 {
        if let Some((_, status)) = ask(addr, request).await {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn each_port_holds_at_most_its_connections_and_resets_the_next_at_once() {
    let service1 = spawn_service1(&["--max-connections", "3", "--admin-max-connections", "2"]).await;
    let (rest, admin) = (service1.rest_addr, service1.admin_addr);

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ask(rest, GET_NAME).await.expect("within the limit: served"));
    }
    let over = ask(rest, GET_NAME).await;
    // The REST port's connections are not the admin port's.
    let probe = ask(admin, GET_LIVEZ).await;
    let second_probe = ask(admin, GET_LIVEZ).await;
    let third_probe = ask(admin, GET_LIVEZ).await;
    held.truncate(2);
    let after_one_closed = answered_soon(rest, GET_NAME).await;

    assert!(held.iter().all(|(_, status)| status == "HTTP/1.1 200 OK"));
    assert!(over.is_none(), "a fourth connection was served: {:?}", over.map(|o| o.1));
    assert_eq!(probe.map(|p| p.1).as_deref(), Some("HTTP/1.1 200 OK"), "the admin port has room of its own");
    assert!(second_probe.is_some(), "the admin port holds two");
    assert!(third_probe.is_none(), "and resets a third");
    assert_eq!(after_one_closed.as_deref(), Some("HTTP/1.1 200 OK"), "a closed connection frees its place");
}

#[tokio::test]
async fn the_grpc_port_resets_connections_beyond_its_tls_handshakes_and_serves_once_they_end() {
    let service1 = spawn_service1(&["--max-tls-handshakes", "2", "--tls-handshake-timeout", "60s"]).await;
    let grpc = service1.grpc_addr;
    // Half-finished handshakes: connected, and not a byte of a ClientHello.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(grpc).await.unwrap());
    }
    // The server takes them in its own time; one more is reset once it has.
    let mut third = TcpStream::connect(grpc).await.unwrap();
    let mut buf = [0u8; 16];
    let reset = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;

    drop(silent);
    let mut client = system_tests::grpc_client::grpc_client(grpc, Pki::shared(), "service2").await;
    let mut answered = None;
    for _ in 0..100 {
        let request = wire::proto::ProcessNameRequest { name: "x".into() };
        if let Ok(response) = client.process_name(request).await {
            answered = Some(response.into_inner().name);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let metrics = crate::client().get(format!("http://{}/metrics", service1.admin_addr)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();

    assert!(matches!(reset, Ok(Ok(0) | Err(_))), "a third handshake was let in: {reset:?}");
    assert_eq!(answered.as_deref(), Some("X"), "the handshakes that ended freed their places");
    let counted =
        format!(r#"connections_refused_total{{port="{}",reason="handshake_limit"}} 1"#, grpc.port());
    assert!(metrics.contains(&counted), "no {counted} in:\n{metrics}");
}

/// Sends `streams` GET requests for `path` on one connection whose client
/// never opens its window. The connection lives as long as the handle.
async fn requests_on_a_closed_window(
    addr: SocketAddr,
    path: &str,
    streams: usize,
) -> (tokio::task::JoinHandle<Result<(), h2::Error>>, Vec<h2::client::ResponseFuture>) {
    let raw_h2::H2 { mut send, connection, .. } = raw_h2::connect_with_a_closed_window(addr).await;
    let mut responses = Vec::new();
    for _ in 0..streams {
        send = send.ready().await.expect("the connection takes another stream");
        let request = http::Request::get(format!("http://{addr}{path}")).body(()).unwrap();
        responses.push(send.send_request(request, true).expect("the request goes out").0);
    }
    (connection, responses)
}

/// Opens `streams` requests for `path` on a connection whose client never
/// opens its window, and waits (at most 5 s each) for how each body ends.
async fn bodies_of_a_closed_window(addr: SocketAddr, path: &str, streams: usize) -> Vec<Option<Reason>> {
    let (_connection, responses) = requests_on_a_closed_window(addr, path, streams).await;
    let mut ended = Vec::new();
    for response in responses {
        let mut body = response.await.expect("the response head needs no window").into_body();
        let data = tokio::time::timeout(Duration::from_secs(5), body.data()).await;
        ended.push(match data {
            Ok(Some(Err(error))) => error.reason(),
            Ok(other) => panic!("the body moved without a window: {other:?}"),
            Err(_) => None,
        });
    }
    ended
}

#[tokio::test]
async fn responses_a_client_never_opens_its_window_for_are_reset_after_the_write_timeout() {
    let service1 = spawn_service1(&["--http-write-timeout", "300ms"]).await;

    let metrics = bodies_of_a_closed_window(service1.admin_addr, "/metrics", 8).await;
    let names = bodies_of_a_closed_window(service1.rest_addr, "/api/v1/name?name=x", 8).await;

    for ended in [metrics, names] {
        assert_eq!(ended, vec![Some(Reason::CANCEL); 8], "each stalled response is reset, not kept");
    }
}

#[tokio::test]
async fn a_rest_port_offers_http2_max_concurrent_streams_per_connection() {
    let service1 = spawn_service1(&["--http2-max-concurrent-streams", "8"]).await;
    let raw_h2::H2 { send, connection: _connection, .. } = raw_h2::connect(service1.rest_addr).await;
    // One exchange, so the server's SETTINGS are in.
    let mut send = send.ready().await.unwrap();
    let request = http::Request::get(format!("http://{}/api/v1/name?name=x", service1.rest_addr)).body(());
    let response = send.send_request(request.unwrap(), true).unwrap().0.await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(send.current_max_send_streams(), 8);
}

#[tokio::test]
async fn an_http1_client_that_never_reads_its_responses_is_closed_after_the_write_timeout() {
    // One admin connection at a time: a new one is served only once the
    // server has let go of the client that does not read.
    let service1 = spawn_service1(&["--http-write-timeout", "300ms", "--admin-max-connections", "1"]).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut greedy = socket.connect(service1.admin_addr).await.unwrap();
    // Far more response bytes than the kernel buffers between the two hold.
    let requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let (_reader, mut writer) = greedy.split();
    let sent = tokio::time::timeout(Duration::from_secs(5), writer.write_all(&requests)).await;

    let probe = answered_soon(service1.admin_addr, GET_LIVEZ).await;

    assert!(sent.is_ok(), "the server stopped reading requests");
    assert_eq!(probe.as_deref(), Some("HTTP/1.1 200 OK"), "the stalled connection still holds its place");
}

#[tokio::test]
async fn a_grpc_connection_past_its_age_gets_goaway_then_is_cut_after_the_grace() {
    // The call timeout outlasts the test: only the age and grace end things.
    let service1 = spawn_service1(&[
        "--max-connection-age",
        "300ms",
        "--max-connection-age-grace",
        "600s",
        "--grpc-call-timeout",
        "600s",
    ])
    .await;
    let (h2, seen) = raw_h2::connect_mtls_watched(service1.grpc_addr, Pki::shared(), "service2").await;
    let held = raw_h2::hold_calls(h2, service1.grpc_addr, "/grpc.health.v1.Health/Check", 1).await;

    let goaway = seen.wait_for(raw_h2::GOAWAY, Duration::from_secs(5)).await;

    assert!(goaway, "no GOAWAY at MAX_CONNECTION_AGE");
    assert!(!held.h2.connection.is_finished(), "the call in flight keeps its grace");
}

#[tokio::test]
async fn a_grpc_connection_with_a_call_in_flight_is_cut_at_its_age_and_grace() {
    let service1 = spawn_service1(&[
        "--max-connection-age",
        "200ms",
        "--max-connection-age-grace",
        "300ms",
        "--grpc-call-timeout",
        "600s",
    ])
    .await;
    let h2 = raw_h2::connect_mtls(service1.grpc_addr, Pki::shared(), "service2").await;
    let held = raw_h2::hold_calls(h2, service1.grpc_addr, "/grpc.health.v1.Health/Check", 1).await;

    let ended = tokio::time::timeout(Duration::from_secs(5), held.h2.connection).await;

    assert!(ended.is_ok(), "the connection outlived its age and grace");
}

/// Sends `streams` requests for `path` on a connection that never opens its
/// window; how each was answered: a status, or `None` for a reset stream.
async fn heads_of_a_closed_window(addr: SocketAddr, path: &str, streams: usize) -> Vec<Option<u16>> {
    let (_connection, responses) = requests_on_a_closed_window(addr, path, streams).await;
    let mut heads = Vec::new();
    for response in responses {
        let head = tokio::time::timeout(Duration::from_secs(5), response).await.expect("answered or reset");
        heads.push(head.ok().map(|r| r.status().as_u16()));
    }
    heads
}

#[tokio::test]
async fn metrics_responses_beyond_the_cap_get_503_while_others_wait_for_their_client() {
    let service1 =
        spawn_service1(&["--admin-max-metrics-responses", "2", "--http-write-timeout", "600s"]).await;

    let heads = heads_of_a_closed_window(service1.admin_addr, "/metrics", 4).await;

    assert_eq!(heads, [Some(200), Some(200), Some(503), Some(503)]);
}

#[tokio::test]
async fn a_port_keeps_at_most_twice_its_request_slots_of_http2_streams_alive() {
    let service1 = spawn_service1(&[
        "--http-max-concurrent-requests",
        "2",
        "--http2-max-concurrent-streams",
        "16",
        "--http-write-timeout",
        "600s",
    ])
    .await;

    // Each answered at once and never taken: four streams alive, then an
    // empty 503 at once.
    let heads = heads_of_a_closed_window(service1.rest_addr, "/api/v1/name?name=x", 6).await;

    assert_eq!(heads, [Some(200), Some(200), Some(200), Some(200), Some(503), Some(503)]);
}
