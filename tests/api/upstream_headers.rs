//! service2 keeps to the header list size service1 says it accepts
//! (issue 26, shape 7): a request over it fails in service2, before it is
//! sent, and is not held against the replica or its connection.

use system_tests::{spawn_service2_with, Behaviour, FakeService1};

use crate::get;

/// What service2's call with a request id of `id_bytes` costs in header
/// list bytes is about 405 + `id_bytes` (RFC 9113 6.5.2: the four
/// pseudo-headers, te, content-type, grpc-timeout and request_id, 32 bytes
/// each besides): a short id fits this limit, the longest id service2
/// passes on (128 bytes) does not.
const LIMIT: u32 = 470;

#[tokio::test]
async fn a_call_over_service1_s_header_list_size_fails_before_it_is_sent_and_ejects_no_one() {
    let fake = FakeService1::start_with_header_list_limit(Behaviour::Reply, LIMIT).await;
    // One failure would eject a replica, if this one counted.
    let service2 = spawn_service2_with(fake.addr, &["--service1-eject-after-failures", "1"]).await;
    let url = service2.url("/api/v1/say-hello?name=x");
    let first = get(&url, Some("short-1")).await;

    let longest_id = "x".repeat(128);
    let over = get(&url, Some(longest_id.as_str())).await;
    let after = get(&url, Some("short-2")).await;

    assert_eq!((first.status, after.status), (200, 200));
    assert_eq!(over.status, 502, "{}", over.body);
    let seen = fake.calls();
    let ids: Vec<_> = seen.iter().map(|c| c.request_id.as_deref().unwrap_or_default()).collect();
    assert_eq!(ids, ["short-1", "short-2"], "the oversized call never reached service1");
    assert_eq!(seen[0].peer, seen[1].peer, "on the same connection, which was never dropped");
    let metrics = service2.metrics.render();
    let ejections: Vec<_> = metrics.lines().filter(|l| l.starts_with("service1_ejections_total")).collect();
    assert!(ejections.iter().all(|l| l.ends_with(" 0")), "{ejections:?}");
}
