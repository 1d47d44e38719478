use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use certgen::{Authority, LeafSpec, Usage};
use serde_json::json;
use system_tests::{
    grpc_client::{client_config, grpc_client, handshake, plaintext_is_answered},
    logs,
    pki::{expired, not_yet_valid, SERVICE1_SANS},
    secret_volume::SecretVolume,
    spawn_service1, spawn_service2_with, Pki,
};
use tonic::Code;

use crate::get;

/// Waits for service1's log line about the handshake from `peer`.
async fn handshake_failure_logged_for(peer: std::net::SocketAddr) -> String {
    let peer = peer.to_string();
    let line = logs()
        .wait_until(&format!("about a failed handshake from {peer}"), |l| {
            l["message"] == "TLS handshake failed" && l["peer"] == peer
        })
        .await;
    line["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_client_with_the_right_certificate_completes_a_tls13_handshake() {
    let pki = Pki::shared();
    let service1 = spawn_service1(&[]).await;
    let leaf = pki.issue(LeafSpec::client("service2"));

    let outcome =
        handshake(service1.grpc_addr, client_config(pki, Some((&leaf.cert_pem, &leaf.key_pem)))).await;

    assert!(outcome.accepted);
    assert_eq!(outcome.protocol, Some(rustls::ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn a_client_without_a_certificate_fails_the_handshake() {
    let service1 = spawn_service1(&[]).await;

    let outcome = handshake(service1.grpc_addr, client_config(Pki::shared(), None)).await;

    assert!(!outcome.accepted);
    let error = handshake_failure_logged_for(outcome.local_addr).await;
    assert!(error.contains("peer sent no certificates"), "{error}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let service1 = spawn_service1(&[]).await;
    let stranger = Authority::new("someone else's CA").unwrap().issue(&LeafSpec::client("service2")).unwrap();

    let outcome = handshake(
        service1.grpc_addr,
        client_config(Pki::shared(), Some((&stranger.cert_pem, &stranger.key_pem))),
    )
    .await;

    assert!(!outcome.accepted);
    let error = handshake_failure_logged_for(outcome.local_addr).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
}

/// Presents a client certificate valid only between `from` and `until` to
/// service1, checks it is refused, and returns the failure service1 logs.
async fn handshake_failure_with_a_client_valid_between(
    from: std::time::SystemTime,
    until: std::time::SystemTime,
) -> String {
    let pki = Pki::shared();
    let service1 = spawn_service1(&[]).await;
    let leaf = pki.issue(LeafSpec::client("service2").valid_between(from, until));

    let outcome =
        handshake(service1.grpc_addr, client_config(pki, Some((&leaf.cert_pem, &leaf.key_pem)))).await;

    assert!(!outcome.accepted);
    handshake_failure_logged_for(outcome.local_addr).await
}

#[tokio::test]
async fn an_expired_client_certificate_fails_the_handshake() {
    let (from, until) = expired();

    let error = handshake_failure_with_a_client_valid_between(from, until).await;

    assert!(error.contains("expired"), "{error}");
}

#[tokio::test]
async fn a_client_presenting_more_certificates_than_the_cap_is_refused_before_they_are_verified() {
    let pki = Pki::shared();
    let service1 = spawn_service1(&["--tls-max-client-chain", "4"]).await;
    let leaf = pki.issue(LeafSpec::client("service2"));
    // Fake intermediates named like a CA, which nobody needs a CA key to make.
    let bait: String = (0..10).map(|_| Authority::new("grpc-services test CA").unwrap().cert_pem()).collect();
    let chain = format!("{}{bait}", leaf.cert_pem);

    let refused = handshake(service1.grpc_addr, client_config(pki, Some((&chain, &leaf.key_pem)))).await;
    let honest =
        handshake(service1.grpc_addr, client_config(pki, Some((&leaf.cert_pem, &leaf.key_pem)))).await;

    assert!(!refused.accepted);
    let error = handshake_failure_logged_for(refused.local_addr).await;
    assert!(error.contains("presented 11 certificates, more than TLS_MAX_CLIENT_CHAIN (4)"), "{error}");
    assert!(honest.accepted);
}

#[tokio::test]
async fn a_client_that_completes_the_handshake_but_sends_no_http2_preface_is_cut_off() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::shared();
    let service1 = spawn_service1(&["--tls-handshake-timeout", "300ms"]).await;
    let leaf = pki.issue(LeafSpec::client("service2"));
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(pki, Some((&leaf.cert_pem, &leaf.key_pem)))));
    let tcp = tokio::net::TcpStream::connect(service1.grpc_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("service1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("the handshake completes");

    // Silent from here on: the server may send its SETTINGS, but must not
    // keep the connection.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;

    assert!(closed.is_ok(), "the connection is still open after 10 s");
}

#[tokio::test]
async fn a_not_yet_valid_client_certificate_fails_the_handshake() {
    let (from, until) = not_yet_valid();

    let error = handshake_failure_with_a_client_valid_between(from, until).await;

    assert!(error.contains("not valid yet"), "{error}");
}

#[tokio::test]
async fn a_plaintext_client_fails_the_handshake() {
    let service1 = spawn_service1(&[]).await;

    let (local_addr, answered) = plaintext_is_answered(service1.grpc_addr).await;

    assert!(!answered, "service1 spoke HTTP/2 to a plaintext client");
    handshake_failure_logged_for(local_addr).await;
}

#[tokio::test]
async fn a_valid_certificate_whose_identity_is_not_allowed_gets_permission_denied() {
    let pki = Pki::new();
    pki.write_leaf("intruder", &pki.issue(LeafSpec::client("intruder")));
    let service1 = spawn_service1(&strs(&pki.args("service1"))).await;
    let mut client = grpc_client(service1.grpc_addr, &pki, "intruder").await;
    let id = crate::unique_id("intruder");
    let mut request = tonic::Request::new(wire::proto::ProcessNameRequest { name: "x".into() });
    request.metadata_mut().insert("request_id", id.parse().unwrap());

    let status = client.process_name(request).await.unwrap_err();

    assert_eq!(status.code(), Code::PermissionDenied);
    let lines = logs().wait_for(&id, |l| l["message"] == "grpc call served").await;
    let refusal = lines.iter().find(|l| l["level"] == "WARN").expect("a warning with the caller's identity");
    assert_eq!(refusal["identities"], "DNS:intruder");
}

/// A client certificate of `pki`'s CA with these SANs, written as `name`,
/// calling a service1 that allows only `allowed`: the status it gets.
async fn call_with_sans(name: &str, dns: &[&str], uris: &[&str], allowed: &str) -> Code {
    let pki = Pki::new();
    let mut spec = LeafSpec::client(name);
    spec.dns_names.extend(dns.iter().map(|d| d.to_string()));
    spec.uris.extend(uris.iter().map(|u| u.to_string()));
    pki.write_leaf(name, &pki.issue(spec));
    let mut flags = pki.args("service1");
    flags.extend(["--tls-allowed-clients".into(), allowed.into()]);
    let service1 = spawn_service1(&strs(&flags)).await;
    let mut client = grpc_client(service1.grpc_addr, &pki, name).await;
    let request = wire::proto::ProcessNameRequest { name: "x".into() };
    match client.process_name(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_dns_san_spelled_like_an_allowed_spiffe_id_does_not_pass_a_spiffe_allow_list() {
    let spiffe = "spiffe://cluster.local/ns/default/sa/service2";

    assert_eq!(call_with_sans("impostor", &[spiffe], &[], spiffe).await, Code::PermissionDenied);
    assert_eq!(call_with_sans("genuine", &[], &[spiffe], spiffe).await, Code::Ok);
}

#[tokio::test]
async fn a_uri_san_spelled_like_an_allowed_dns_name_does_not_pass_a_dns_allow_list() {
    assert_eq!(call_with_sans("impostor", &[], &["service2"], "service2").await, Code::PermissionDenied);
    assert_eq!(call_with_sans("genuine", &["service2"], &[], "service2").await, Code::Ok);
}

#[tokio::test]
async fn a_refused_certificate_with_hundreds_of_sans_logs_a_bounded_line() {
    let pki = Pki::new();
    let mut spec = LeafSpec::client("noisy");
    spec.dns_names.extend((0..600).map(|i| format!("name-{i:0>50}.example")));
    pki.write_leaf("noisy", &pki.issue(spec));
    let service1 = spawn_service1(&strs(&pki.args("service1"))).await;
    let mut client = grpc_client(service1.grpc_addr, &pki, "noisy").await;
    let id = crate::unique_id("noisy");
    let mut request = tonic::Request::new(wire::proto::ProcessNameRequest { name: "x".into() });
    request.metadata_mut().insert("request_id", id.parse().unwrap());

    assert_eq!(client.process_name(request).await.unwrap_err().code(), Code::PermissionDenied);

    let lines = logs().wait_for(&id, |l| l["message"] == "grpc call served").await;
    let refusal = lines.iter().find(|l| l["level"] == "WARN").expect("the refusal");
    let identities = refusal["identities"].as_str().unwrap();
    assert!(identities.starts_with("DNS:noisy, DNS:name-"), "{identities}");
    assert!(identities.ends_with("(+597 more)"), "{identities}");
    assert!(refusal.to_string().len() < 2048, "{} bytes", refusal.to_string().len());
}

#[tokio::test]
async fn a_uri_san_listed_in_the_allowed_clients_may_call() {
    let pki = Pki::new();
    let spiffe = "spiffe://cluster.local/ns/shop/sa/checkout";
    pki.write_leaf("checkout", &pki.issue(LeafSpec::client("checkout").with_uri(spiffe)));
    let mut flags = pki.args("service1");
    flags.extend(["--tls-allowed-clients".into(), format!("service2,{spiffe}")]);
    let service1 = spawn_service1(&strs(&flags)).await;
    let mut client = grpc_client(service1.grpc_addr, &pki, "checkout").await;

    let reply = client.process_name(wire::proto::ProcessNameRequest { name: "x".into() }).await;

    assert_eq!(reply.unwrap().into_inner().name, "X");
}

#[tokio::test]
async fn service2_refuses_a_service1_certificate_without_the_expected_name() {
    let pki = Pki::new();
    pki.write_leaf("service1", &pki.issue(LeafSpec::server("elsewhere", &["localhost", "127.0.0.1"])));
    let service1 = spawn_service1(&strs(&pki.args("service1"))).await;
    let service2 = spawn_service2_with(service1.grpc_addr, &strs(&pki.args("service2"))).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    assert_eq!((reply.status, reply.body), (503, json!({ "error": "service1 is unavailable" })));
}

#[tokio::test]
async fn service2_refuses_a_service1_certificate_from_another_ca() {
    let pki = Pki::new();
    let stranger = Authority::new("someone else's CA").unwrap();
    pki.write_leaf("service1", &stranger.issue(&LeafSpec::server("service1", SERVICE1_SANS)).unwrap());
    // service1 trusts both CAs (it would not start with a certificate its
    // own TLS_CA does not vouch for, and it accepts service2's); service2
    // trusts only its own.
    pki.write("stranger-ca.crt", &format!("{}{}", pki.ca.cert_pem(), stranger.cert_pem()));
    let mut flags = pki.args("service1");
    flags.extend(["--tls-ca".into(), pki.path("stranger-ca.crt").display().to_string()]);
    let service1 = spawn_service1(&strs(&flags)).await;
    let service2 = spawn_service2_with(service1.grpc_addr, &strs(&pki.args("service2"))).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    assert_eq!(reply.status, 503);
}

/// service1 with a certificate that names it by DNS and by SPIFFE ID, and
/// service2 requiring `identity` of it.
async fn say_hello_requiring(identity: &str) -> u16 {
    let pki = Pki::new();
    let spiffe = "spiffe://cluster.local/ns/demo/sa/service1".to_owned();
    pki.write_leaf(
        "service1",
        &pki.issue(LeafSpec { uris: vec![spiffe], ..LeafSpec::server("service1", SERVICE1_SANS) }),
    );
    let service1 = spawn_service1(&strs(&pki.args("service1"))).await;
    let tls = pki.args("service2");
    let mut flags = strs(&tls);
    flags.extend(["--tls-server-identity", identity, "--service1-startup-wait", "0s"]);
    let service2 = spawn_service2_with(service1.grpc_addr, &flags).await;
    get(&service2.url("/api/v1/say-hello?name=test"), None).await.status
}

#[tokio::test]
async fn service2_calls_a_service1_whose_certificate_carries_the_required_identity() {
    assert_eq!(say_hello_requiring("spiffe://cluster.local/ns/demo/sa/service1").await, 200);
}

#[tokio::test]
async fn service2_refuses_a_service1_whose_certificate_lacks_the_required_identity() {
    // A certificate for the right DNS name from the right CA, but another
    // workload's: what a shared issuer would hand any namespace.
    assert_eq!(say_hello_requiring("spiffe://cluster.local/ns/other/sa/service1").await, 503);
}

#[tokio::test]
async fn with_tls_turned_off_on_both_sides_the_services_talk_plaintext() {
    let service1 = spawn_service1(&["--tls-mode", "insecure"]).await;
    let service2 = spawn_service2_with(service1.grpc_addr, &["--tls-mode", "insecure"]).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    assert_eq!(reply.body, json!("Hello, TEST!"));
    logs()
        .wait_until("warning that TLS is off", |l| {
            l["level"] == "WARN" && l["message"].as_str().unwrap_or_default().starts_with("TLS_MODE=insecure")
        })
        .await;
}

#[tokio::test]
async fn a_certificate_rotated_by_a_symlink_swap_is_used_for_new_handshakes_and_no_request_fails() {
    let pki = Pki::new();
    let old = pki.issue(LeafSpec::server("service1", SERVICE1_SANS));
    let new = pki.issue(LeafSpec::server("service1", SERVICE1_SANS));
    let ca = pki.ca.cert_pem();
    let volume = SecretVolume::create(
        &pki.dir().join("service1-tls"),
        &[("tls.crt", &old.cert_pem), ("tls.key", &old.key_pem), ("ca.crt", &ca)],
    );
    let service1 = spawn_service1(&volume_flags(&volume, "100ms")).await;
    let service2 = spawn_service2_with(service1.grpc_addr, &strs(&pki.args("service2"))).await;
    let client2 = pki.issue(LeafSpec::client("service2"));
    let fresh_handshake =
        || handshake(service1.grpc_addr, client_config(&pki, Some((&client2.cert_pem, &client2.key_pem))));
    assert_eq!(serial_of(&fresh_handshake().await), old.serial_hex);

    // Steady traffic through service2 while the certificate changes.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let traffic = tokio::spawn({
        let (stop, ok, failed, url) =
            (stop.clone(), ok.clone(), failed.clone(), service2.url("/api/v1/say-hello?name=r"));
        async move {
            let client = crate::client();
            for _ in 0..5_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let status = client.get(&url).send().await.map(|r| r.status().as_u16());
                let counter = if status.is_ok_and(|s| s == 200) { &ok } else { &failed };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    volume.update(&[("tls.crt", &new.cert_pem), ("tls.key", &new.key_pem), ("ca.crt", &ca)]);

    let mut rotated = false;
    for _ in 0..100 {
        if serial_of(&fresh_handshake().await) == new.serial_hex {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served_before_stop = ok.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();

    assert!(rotated, "a new handshake got the new certificate within 5 s");
    assert_eq!(failed.load(Ordering::SeqCst), 0, "requests failed during the rotation");
    assert!(served_before_stop > 0);
    logs()
        .wait_until("about the reload", |l| {
            l["message"].as_str().is_some_and(|m| m.starts_with("TLS material reloaded"))
                && l["serial"] == new.serial_hex
        })
        .await;
}

#[tokio::test]
async fn a_broken_replacement_is_refused_and_the_old_certificate_stays_in_use() {
    let pki = Pki::new();
    let old = pki.issue(LeafSpec::server("service1", SERVICE1_SANS));
    let ca = pki.ca.cert_pem();
    let volume = SecretVolume::create(
        &pki.dir().join("service1-tls"),
        &[("tls.crt", &old.cert_pem), ("tls.key", &old.key_pem), ("ca.crt", &ca)],
    );
    let service1 = spawn_service1(&volume_flags(&volume, "100ms")).await;
    let client2 = pki.issue(LeafSpec::client("service2"));
    let other_key = pki.issue(LeafSpec::server("service1", SERVICE1_SANS)).key_pem;
    let (from, until) = expired();
    let stale = pki.issue(LeafSpec::server("service1", SERVICE1_SANS).valid_between(from, until));
    let replacements: [(&str, &[(&str, &str)]); 4] = [
        ("garbage", &[("tls.crt", "garbage"), ("tls.key", &old.key_pem), ("ca.crt", &ca)]),
        ("mismatched key", &[("tls.crt", &old.cert_pem), ("tls.key", &other_key), ("ca.crt", &ca)]),
        ("expired", &[("tls.crt", &stale.cert_pem), ("tls.key", &stale.key_pem), ("ca.crt", &ca)]),
        // The new version lacks the key: its symlink dangles.
        ("unreadable", &[("tls.crt", &old.cert_pem), ("ca.crt", &ca)]),
    ];

    for (why, files) in replacements {
        let refused = |l: &serde_json::Value| l["level"] == "ERROR" && l["serial_in_use"] == old.serial_hex;
        let failures_before = logs().count(refused);
        volume.update(files);
        logs().wait_for_more(&format!("refusing the {why} replacement"), failures_before, refused).await;

        let outcome =
            handshake(service1.grpc_addr, client_config(&pki, Some((&client2.cert_pem, &client2.key_pem))))
                .await;
        assert!(outcome.accepted, "{why}");
        assert_eq!(serial_of(&outcome), old.serial_hex, "{why}");
    }
    // Operators see it without reading logs: /readyz on the admin port.
    let ready = get(&format!("http://{}/readyz", service1.admin_addr), None).await;
    assert_eq!(ready.body["tls"]["serial"], old.serial_hex);
    assert_eq!(ready.body["tls"]["reload_failures"], 4);
    assert!(ready.body["tls"]["last_reload_error"].as_str().is_some_and(|e| e.contains("tls.key")));
}

pub(crate) fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn volume_flags(volume: &SecretVolume, interval: &str) -> Vec<&'static str> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        "--tls-cert",
        leak(volume.path("tls.crt").display().to_string()),
        "--tls-key",
        leak(volume.path("tls.key").display().to_string()),
        "--tls-ca",
        leak(volume.path("ca.crt").display().to_string()),
        "--tls-reload-interval",
        leak(interval.to_owned()),
    ]
}

fn serial_of(outcome: &system_tests::grpc_client::Handshake) -> String {
    let der = outcome.server_cert.as_ref().expect("the handshake completed");
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of an unlabelled counter in `metrics`.
fn counter(metrics: &observability::Metrics, name: &str) -> u64 {
    let text = metrics.render();
    let line = text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).expect("the counter is there");
    line.trim().parse().expect("a number")
}

#[tokio::test]
async fn a_replacement_the_peer_would_refuse_is_refused_and_the_old_certificate_stays_in_use() {
    let pki = Pki::new();
    let old = pki.issue(LeafSpec::server("service1", SERVICE1_SANS));
    let ca = pki.ca.cert_pem();
    let volume = SecretVolume::create(
        &pki.dir().join("service1-tls"),
        &[("tls.crt", &old.cert_pem), ("tls.key", &old.key_pem), ("ca.crt", &ca)],
    );
    let mut flags = volume_flags(&volume, "100ms");
    flags.extend(["--tls-server-name", "service1"]);
    let service1 = spawn_service1(&flags).await;
    let client2 = pki.issue(LeafSpec::client("service2"));
    let stranger = Authority::new("someone else's CA")
        .unwrap()
        .issue(&LeafSpec::server("service1", SERVICE1_SANS))
        .unwrap();
    let client_only =
        pki.issue(LeafSpec { usage: Usage::Client, ..LeafSpec::server("service1", SERVICE1_SANS) });
    let elsewhere = pki.issue(LeafSpec::server("elsewhere", &["elsewhere", "localhost", "127.0.0.1"]));
    let replacements = [
        ("signed by another CA", &stranger, "not issued by a CA in"),
        ("without serverAuth", &client_only, "lacks the serverAuth extended key usage"),
        ("not covering TLS_SERVER_NAME", &elsewhere, "does not cover \"service1\""),
    ];

    for (why, leaf, reason) in replacements {
        let refused = |l: &serde_json::Value| {
            l["level"] == "ERROR"
                && l["serial_in_use"] == old.serial_hex
                && l["error"].as_str().is_some_and(|e| e.contains(reason))
        };
        let seen = logs().count(refused);
        volume.update(&[("tls.crt", &leaf.cert_pem), ("tls.key", &leaf.key_pem), ("ca.crt", &ca)]);
        logs().wait_for_more(&format!("refusing the replacement {why}"), seen, refused).await;

        let ready = get(&format!("http://{}/readyz", service1.admin_addr), None).await;
        assert_eq!(ready.body["tls"]["serial"], old.serial_hex, "{why}");
        let error = ready.body["tls"]["last_reload_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(reason), "{why}: {error}");
        let outcome =
            handshake(service1.grpc_addr, client_config(&pki, Some((&client2.cert_pem, &client2.key_pem))))
                .await;
        assert!(outcome.accepted, "{why}");
        assert_eq!(serial_of(&outcome), old.serial_hex, "{why}");
    }
    let ready = get(&format!("http://{}/readyz", service1.admin_addr), None).await;
    assert_eq!(ready.body["tls"]["reload_failures"], 3);
    assert_eq!(counter(&service1.metrics, "tls_reload_failures_total"), 3);

    // A pair from a new CA, with a bundle of the old and the new CA: good.
    let next_ca = Authority::new("next CA").unwrap();
    let next = next_ca.issue(&LeafSpec::server("service1", SERVICE1_SANS)).unwrap();
    let bundle = format!("{ca}{}", next_ca.cert_pem());
    volume.update(&[("tls.crt", &next.cert_pem), ("tls.key", &next.key_pem), ("ca.crt", &bundle)]);
    logs()
        .wait_until("about the reload to the new CA", |l| {
            l["message"].as_str().is_some_and(|m| m.starts_with("TLS material reloaded"))
                && l["serial"] == next.serial_hex
        })
        .await;
}

#[tokio::test]
async fn service2_refuses_a_replacement_client_certificate_without_client_auth() {
    let pki = Pki::new();
    let old = pki.issue(LeafSpec::client("service2"));
    let ca = pki.ca.cert_pem();
    let volume = SecretVolume::create(
        &pki.dir().join("service2-tls"),
        &[("tls.crt", &old.cert_pem), ("tls.key", &old.key_pem), ("ca.crt", &ca)],
    );
    let closed = process_tests::closed_addr();
    let service2 = spawn_service2_with(closed, &volume_flags(&volume, "100ms")).await;
    let server_only = pki.issue(LeafSpec { usage: Usage::Server, ..LeafSpec::client("service2") });
    let refused = |l: &serde_json::Value| {
        l["serial_in_use"] == old.serial_hex
            && l["error"].as_str().is_some_and(|e| e.contains("lacks the clientAuth extended key usage"))
    };

    volume.update(&[("tls.crt", &server_only.cert_pem), ("tls.key", &server_only.key_pem), ("ca.crt", &ca)]);

    logs().wait_for_more("refusing a client certificate without clientAuth", 0, refused).await;
    let ready = get(&format!("http://{}/readyz", service2.admin_addr), None).await;
    assert_eq!(ready.body["tls"]["serial"], old.serial_hex);
    assert_eq!(ready.body["tls"]["reload_failures"], 1);
}

#[tokio::test]
async fn a_certificate_the_peer_would_refuse_stops_the_start() {
    use clap::Parser as _;
    let pki = Pki::new();
    let stranger = Authority::new("someone else's CA").unwrap();
    pki.write_leaf("stranger", &stranger.issue(&LeafSpec::server("service1", SERVICE1_SANS)).unwrap());
    pki.write_leaf(
        "client-only",
        &pki.issue(LeafSpec { usage: Usage::Client, ..LeafSpec::server("service1", SERVICE1_SANS) }),
    );
    pki.write_leaf("elsewhere", &pki.issue(LeafSpec::server("elsewhere", &["elsewhere"])));
    pki.write_leaf(
        "server-only",
        &pki.issue(LeafSpec { usage: Usage::Server, ..LeafSpec::client("service2") }),
    );
    let local = ["--bind-addr", "127.0.0.1", "--port", "0", "--admin-port", "0"];
    let service1 = |name: &str| {
        let tls = pki.args(name);
        let base = ["service1", "--grpc-port", "0", "--tls-server-name", "service1"];
        service1::Config::try_parse_from([&base[..], &local, &strs(&tls)].concat()).unwrap()
    };
    let service2 = |name: &str| {
        let tls = pki.args(name);
        service2::Config::try_parse_from([&["service2"][..], &local, &strs(&tls)].concat()).unwrap()
    };

    let errors = [
        (
            "stranger",
            service1::Application::build(service1("stranger"), Default::default()).await.err(),
            "not issued by a CA in",
        ),
        (
            "client-only",
            service1::Application::build(service1("client-only"), Default::default()).await.err(),
            "lacks the serverAuth",
        ),
        (
            "elsewhere",
            service1::Application::build(service1("elsewhere"), Default::default()).await.err(),
            "does not cover \"service1\"",
        ),
        (
            "server-only",
            service2::Application::build(service2("server-only"), Default::default()).await.err(),
            "lacks the clientAuth",
        ),
    ];

    for (name, error, reason) in errors {
        let error = error.unwrap_or_else(|| panic!("{name}: the service started")).to_string();
        assert!(error.contains(&format!("{name}.crt")) && error.contains(reason), "{name}: {error}");
    }
}
