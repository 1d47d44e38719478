use std::time::Duration;

use serde_json::json;
use system_tests::{spawn::Service1, spawn_service1, spawn_service2_with, Behaviour, FakeService1, Hold};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{client, get, get_with};

/// Reads until the server closes the connection (at most 5 s); returns
/// what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let service1 = spawn_service1(&["--http-header-read-timeout", "300ms"]).await;
    let mut slowloris = TcpStream::connect(service1.rest_addr).await.unwrap();

    slowloris.write_all(b"GET /api/v1/name?name=x HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();

    let answer = read_until_closed(&mut slowloris).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn oversized_or_too_many_headers_get_431() {
    let service1 = spawn_service1(&["--http-max-header-bytes", "8192", "--http-max-headers", "16"]).await;
    let url = format!("http://{}/api/v1/name?name=x", service1.rest_addr);

    let big = client().get(&url).header("x-big", "a".repeat(10_000)).send().await.unwrap();
    let many =
        (0..20).fold(client().get(&url), |r, i| r.header(format!("x-h{i}"), "v")).send().await.unwrap();
    let fine = client().get(&url).header("x-small", "a".repeat(1_000)).send().await.unwrap();

    assert_eq!(big.status(), 431);
    assert_eq!(many.status(), 431);
    assert_eq!(fine.status(), 200);
    for answer in [&big, &many] {
        assert_eq!(answer.headers()["content-type"], "application/json");
        assert!(answer.headers().contains_key("x-request-id"));
    }
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_with_503_and_retry_after() {
    let (behaviour, mut hold) = Hold::new();
    let fake = FakeService1::start(behaviour).await;
    let service2 = spawn_service2_with(
        fake.addr,
        &["--http-max-concurrent-requests", "2", "--http-queue-timeout", "100ms"],
    )
    .await;
    let url = service2.url("/api/v1/say-hello?name=x");
    let held: Vec<_> = (0..2).map(|_| tokio::spawn(get_with(client().get(url.clone()), None))).collect();
    hold.next_arrival().await;
    hold.next_arrival().await;

    let shed = client().get(&url).send().await.unwrap();
    let retry_after = shed.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = (shed.status().as_u16(), shed.json::<serde_json::Value>().await.unwrap());
    // The two held calls, and the one after.
    hold.release.add_permits(3);

    assert_eq!((status, body), (503, json!({ "error": "too many requests, try again shortly" })));
    assert_eq!(retry_after.as_deref(), Some("1"));
    for request in held {
        assert_eq!(request.await.unwrap().status, 200, "the admitted requests still complete");
    }
    assert_eq!(get(&url, None).await.status, 200, "and the port serves again");
}

#[tokio::test]
async fn a_request_that_outlasts_the_request_timeout_gets_504() {
    let fake = FakeService1::start(Behaviour::Hang).await;
    let service2 =
        spawn_service2_with(fake.addr, &["--http-request-timeout", "300ms", "--service1-timeout", "60s"])
            .await;

    let reply = get(&service2.url("/api/v1/say-hello?name=x"), Some("slow-1")).await;

    assert_eq!((reply.status, reply.body), (504, json!({ "error": "the request took too long" })));
    assert_eq!(reply.request_id, "slow-1");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let service1 =
        spawn_service1(&["--http-idle-timeout", "400ms", "--http-header-read-timeout", "60s"]).await;
    let mut connection = TcpStream::connect(service1.rest_addr).await.unwrap();

    connection.write_all(GET_NAME).await.unwrap();

    let answer = read_until_closed(&mut connection).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "served first: {answer}");
}

/// Reads one HTTP/1.1 response with a Content-Length (at most 5 s).
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a Content-Length");
                if body.len() >= length {
                    return;
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection: {text}");
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no whole response");
    String::from_utf8_lossy(&received).into_owned()
}

const GET_NAME: &[u8] = b"GET /api/v1/name?name=x HTTP/1.1\r\nHost: x\r\n\r\n";

/// service1 whose request heads must be whole 300 ms after their first
/// byte, with `idle` as its idle timeout, and a raw connection to it.
async fn with_a_300ms_header_timeout(idle: &str) -> (Service1, TcpStream) {
    let service1 =
        spawn_service1(&["--http-header-read-timeout", "300ms", "--http-idle-timeout", idle]).await;
    let connection = TcpStream::connect(service1.rest_addr).await.unwrap();
    (service1, connection)
}

#[tokio::test]
async fn a_busy_connection_whose_first_request_came_late_is_not_cut_off() {
    let (_service1, mut connection) = with_a_300ms_header_timeout("60s").await;

    // A client that thinks before its first request, then asks every
    // 100 ms, well past the time allowed for that first request head.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut answers = Vec::new();
    for _ in 0..8 {
        connection.write_all(GET_NAME).await.unwrap();
        answers.push(read_one_response(&mut connection).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 200"), "every request served on one connection: {answer}");
    }
}

#[tokio::test]
async fn a_keep_alive_connection_may_wait_longer_than_the_header_read_timeout_between_requests() {
    let (_service1, mut connection) = with_a_300ms_header_timeout("60s").await;

    connection.write_all(GET_NAME).await.unwrap();
    let first = read_one_response(&mut connection).await;
    // Idle, as a load balancer's pooled connection is, for twice the time
    // a request head may take (but far less than the idle timeout).
    tokio::time::sleep(Duration::from_millis(600)).await;
    connection.write_all(GET_NAME).await.unwrap();
    let second = read_one_response(&mut connection).await;

    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "the same connection still serves: {second}");
}

#[tokio::test]
async fn a_later_request_head_that_is_never_finished_is_cut_off() {
    let (_service1, mut connection) = with_a_300ms_header_timeout("60s").await;
    connection.write_all(GET_NAME).await.unwrap();
    let first = read_one_response(&mut connection).await;

    connection.write_all(b"GET /api/v1/name?name=y HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();

    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let answer = read_until_closed(&mut connection).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn part_of_a_head_pipelined_behind_a_request_does_not_hold_the_connection_open() {
    let (_service1, mut connection) = with_a_300ms_header_timeout("400ms").await;

    connection
        .write_all(b"GET /api/v1/name?name=x HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/name HTTP/1.1\r\nX-Sl")
        .await
        .unwrap();

    let answer = read_until_closed(&mut connection).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "the whole request is served: {answer}");
}

#[tokio::test]
async fn empty_lines_between_requests_do_not_start_the_header_clock() {
    let (_service1, mut connection) = with_a_300ms_header_timeout("60s").await;
    connection.write_all(GET_NAME).await.unwrap();
    let first = read_one_response(&mut connection).await;

    // Some clients end a request with an extra CRLF; the server must
    // tolerate it (RFC 9112 2.2), and it is not the start of a head.
    connection.write_all(b"\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    connection.write_all(GET_NAME).await.unwrap();
    let second = read_one_response(&mut connection).await;

    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "the same connection still serves: {second}");
}

#[tokio::test]
async fn an_http2_client_that_pings_between_requests_is_not_taken_for_a_slowloris() {
    let (service1, tcp) = with_a_300ms_header_timeout("60s").await;
    let (mut sender, connection) = system_tests::raw_h2::pinging_client(tcp).await;
    let request = || {
        http::Request::get(format!("http://{}/api/v1/name?name=x", service1.rest_addr))
            .body(String::new())
            .unwrap()
    };

    let first = sender.send_request(request()).await.unwrap();
    // Pings, and nothing else, for twice the time a request head may take.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = sender.send_request(request()).await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.expect("the connection still serves").status(), 200);
    assert!(!connection.is_finished());
}

#[tokio::test]
async fn a_client_that_sends_nothing_or_trickles_a_preface_is_cut_off_too() {
    let service1 =
        spawn_service1(&["--http-header-read-timeout", "300ms", "--http-idle-timeout", "60s"]).await;
    let mut silent = TcpStream::connect(service1.rest_addr).await.unwrap();
    let mut trickle = TcpStream::connect(service1.rest_addr).await.unwrap();

    // An HTTP/2 preface, a byte at a time, never finished.
    for byte in b"PRI * HTTP/2.0\r\n" {
        if trickle.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(read_until_closed(&mut silent).await, "");
    assert_eq!(read_until_closed(&mut trickle).await, "");
}

/// An HTTP/1 response as raw text: its status, its headers (names
/// lowercase) and its body.
fn parse_response(text: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no whole head: {text:?}"));
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_head_that_cannot_be_parsed_gets_a_json_error_with_a_request_id_a_log_line_and_a_metric() {
    let service1 = spawn_service1(&["--http-max-headers", "16"]).await;
    let many_headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        (
            "a header line without a colon",
            "Host: x\r\nno colon here\r\n".to_owned(),
            400,
            "the request could not be parsed",
        ),
        ("too many headers", format!("Host: x\r\n{many_headers}"), 431, "the request head is too large"),
    ];

    for (what, headers, status, message) in cases {
        let mut connection = TcpStream::connect(service1.rest_addr).await.unwrap();
        let request = format!("GET /api/v1/name?name=x HTTP/1.1\r\n{headers}\r\n");
        connection.write_all(request.as_bytes()).await.unwrap();

        let (got, headers, body) = parse_response(&read_until_closed(&mut connection).await);
        assert_eq!(got, status, "{what}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"), "{what}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            json!({ "error": message }),
            "{what}"
        );
        let id =
            header(&headers, "x-request-id").unwrap_or_else(|| panic!("{what}: no request id")).to_owned();
        assert_eq!(id.len(), 36, "{what}: a fresh UUID, {id}");
        let line = system_tests::logs()
            .wait_until(&format!("about {what}"), |l| {
                l["request_id"] == id && l["message"] == "http request served"
            })
            .await;
        assert_eq!((&line["status"], &line["route"]), (&json!(status), &json!("<unparsed>")), "{what}");
    }
    let metrics = client().get(format!("http://{}/metrics", service1.admin_addr)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for status in [400, 431] {
        let series =
            format!(r#"http_server_requests_total{{method="other",route="<unparsed>",status="{status}"}}"#);
        assert!(metrics.contains(&series), "no {series} in\n{metrics}");
    }
}

#[tokio::test]
async fn an_http11_request_without_exactly_one_host_header_gets_400() {
    let service1 = spawn_service1(&[]).await;
    let without = "GET /api/v1/name?name=x HTTP/1.1\r\nX-Request-ID: no-host\r\n\r\n";
    let twice = "GET /api/v1/name?name=x HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-ID: two-hosts\r\n\r\n";

    for (request, id) in [(without, "no-host"), (twice, "two-hosts")] {
        let mut connection = TcpStream::connect(service1.rest_addr).await.unwrap();
        connection.write_all(request.as_bytes()).await.unwrap();
        let (status, headers, body) = parse_response(&read_one_response(&mut connection).await);

        assert_eq!(status, 400, "{id}");
        assert_eq!(header(&headers, "x-request-id"), Some(id));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({ "error": "an HTTP/1.1 request needs exactly one Host header" }), "{id}");
    }
    // HTTP/1.0 has no such rule.
    let mut old = TcpStream::connect(service1.rest_addr).await.unwrap();
    old.write_all(b"GET /api/v1/name?name=x HTTP/1.0\r\n\r\n").await.unwrap();
    assert!(read_until_closed(&mut old).await.starts_with("HTTP/1.0 200"));
}
