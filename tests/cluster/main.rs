//! A local cluster with real processes: three service1 replicas on
//! 127.0.0.2, .3 and .4 (one port, like pods), a DNS server on a loopback
//! port answering one A record per replica, and service2 balancing over
//! them with mTLS. Load loops are bounded in count and time.

use process_tests::unused_port;
use std::{net::IpAddr, time::Duration};

use system_tests::{
    cluster::{Load, Replica},
    dns::TestDns,
    spawn::Service2,
    spawn_service2_with, Pki,
};

const NAME: &str = "service1.test";

struct Cluster {
    pki: Pki,
    dns: TestDns,
    port: u16,
    replicas: Vec<Replica>,
    service2: Service2,
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

impl Cluster {
    /// Three replicas, all in DNS; `drain_delay` for their SIGTERM.
    async fn start(drain_delay: &str) -> Self {
        Self::start_with(drain_delay, &[]).await
    }

    /// The same, with `extra` flags for service2.
    async fn start_with(drain_delay: &str, extra: &[&str]) -> Self {
        let pki = Pki::new();
        let dns = TestDns::start(1).await;
        let port = unused_port(ip(2));
        let replicas: Vec<_> = [2, 3, 4].map(|last| Replica::start(ip(last), port, &pki, drain_delay)).into();
        dns.set(NAME, &replicas.iter().map(|r| r.ip).collect::<Vec<_>>());
        let target = format!("dns://{}/{NAME}:{port}", dns.addr());
        let tls = pki.args("service2");
        let mut flags: Vec<&str> =
            vec!["--service1-channel", &target, "--service1-resolve-interval", "200ms"];
        flags.extend(tls.iter().map(String::as_str));
        flags.extend(extra);
        let service2 = spawn_service2_with("127.0.0.1:1".parse().unwrap(), &flags).await;
        Self { pki, dns, port, replicas, service2 }
    }

    fn url(&self) -> String {
        self.service2.url("/api/v1/say-hello?name=cluster")
    }

    fn served(&self) -> Vec<usize> {
        self.replicas.iter().map(Replica::calls_served).collect()
    }

    /// Waits (at most 5 s) until the replicas have logged `total` calls:
    /// a call's access line is written just after its response.
    async fn wait_for_logged_calls(&self, total: usize) -> Vec<usize> {
        for _ in 0..500 {
            if self.served().iter().sum::<usize>() >= total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.served()
    }

    /// Waits (at most `seconds`) until service2's metrics show `line`.
    async fn wait_for_metric(&self, line: &str, seconds: u64) {
        for _ in 0..seconds * 100 {
            if self.service2.metrics.render().lines().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "service2's metrics did not show {line} within {seconds} s:\n{}",
            self.service2.metrics.render()
        );
    }

    /// Waits until service2 has asked DNS twice more: by then it has seen
    /// whatever the table said before this call.
    async fn wait_for_reresolution(&self) {
        let seen = self.dns.queries();
        for _ in 0..500 {
            if self.dns.queries() >= seen + 4 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("service2 did not look up {NAME} again within 5 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_across_the_three_replicas() {
    let cluster = Cluster::start("0s").await;

    let load = Load::start(cluster.url(), 6, 100);
    let (ok, failures) = load.stop_after_all().await;

    assert_eq!((ok, failures.len()), (600, 0), "{failures:?}");
    let served = cluster.wait_for_logged_calls(600).await;
    for (replica, calls) in cluster.replicas.iter().zip(&served) {
        let share = *calls as f64 / 600.0;
        // A share each, not an equal one: selection weighs latency, and a
        // replica with one slow answer on a busy machine gets fewer calls
        // for a while.
        assert!((0.10..=0.60).contains(&share), "{} served {calls} of 600: {served:?}", replica.ip);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_under_load_fails_no_request() {
    let mut cluster = Cluster::start("0s").await;
    let load = Load::start(cluster.url(), 4, 500);
    load.wait_for_successes(100).await;

    cluster.replicas[0].kill();
    load.wait_for_successes(300).await;
    let (ok, failures) = load.stop().await;

    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        ok as usize + failures.len()
    );
    assert!(ok >= 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request() {
    let mut cluster = Cluster::start("300ms").await;
    let load = Load::start(cluster.url(), 4, 2_000);
    load.wait_for_successes(50).await;

    for i in 0..cluster.replicas.len() {
        let ip = cluster.replicas[i].ip;
        // What Kubernetes does: the pod gets SIGTERM and, while it drains,
        // its address leaves the headless Service's DNS records.
        let others: Vec<_> = cluster.replicas.iter().map(|r| r.ip).filter(|other| *other != ip).collect();
        cluster.dns.set(NAME, &others);
        assert_eq!(cluster.replicas[i].terminate(), Some(0), "{ip} exits cleanly");
        cluster.replicas[i] = Replica::start(ip, cluster.port, &cluster.pki, "300ms");
        cluster.dns.set(NAME, &cluster.replicas.iter().map(|r| r.ip).collect::<Vec<_>>());
        load.wait_for_successes(50).await;
    }
    let (ok, failures) = load.stop().await;

    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        ok as usize + failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_removed_from_dns_gets_no_new_calls_and_an_added_one_does() {
    let cluster = Cluster::start("0s").await;
    let (first, last) = (cluster.replicas[0].ip, cluster.replicas[2].ip);
    cluster.dns.set(NAME, &[cluster.replicas[1].ip, last]);
    cluster.wait_for_reresolution().await;

    let before = cluster.wait_for_logged_calls(0).await;
    let (ok, failures) = Load::start(cluster.url(), 3, 50).stop_after_all().await;
    assert_eq!((ok, failures.len()), (150, 0));
    let after = cluster.wait_for_logged_calls(before.iter().sum::<usize>() + 150).await;
    assert_eq!(
        after[0], before[0],
        "{first} was removed from DNS but still got calls: {before:?} -> {after:?}"
    );

    cluster.dns.set(NAME, &[first, cluster.replicas[1].ip, last]);
    cluster.wait_for_reresolution().await;
    let (ok, _) = Load::start(cluster.url(), 3, 50).stop_after_all().await;
    assert_eq!(ok, 150);
    let rejoined = cluster.wait_for_logged_calls(after.iter().sum::<usize>() + 150).await;
    assert!(
        rejoined[0] > after[0],
        "{first} was added back to DNS but got no calls: {after:?} -> {rejoined:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_replica_down_say_hello_fails_fast_with_503_and_recovers_when_they_return() {
    let mut cluster = Cluster::start("0s").await;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build().unwrap();
    assert_eq!(client.get(cluster.url()).send().await.unwrap().status(), 200);

    for replica in &mut cluster.replicas {
        replica.kill();
    }
    // Twice: once while service2 still holds connections to the dead
    // replicas, once when it knows none is ready. Both within 1.5 s.
    for _ in 0..2 {
        let reply = client.get(cluster.url()).send().await.expect("an answer within 1.5 s, not the deadline");
        assert_eq!(reply.status(), 503);
    }

    for i in 0..3 {
        let ip = cluster.replicas[i].ip;
        cluster.replicas[i] = Replica::start(ip, cluster.port, &cluster.pki, "0s");
    }
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let status = client.get(cluster.url()).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        statuses.push(status);
        if status == 200 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_empty_dns_answer_does_not_drop_every_replica_but_two_in_a_row_do() {
    let cluster = Cluster::start("0s").await;
    let replicas: Vec<_> = cluster.replicas.iter().map(|r| r.ip).collect();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    assert_eq!(client.get(cluster.url()).send().await.unwrap().status(), 200);

    // One empty answer, as a stray upstream nameserver would give, then the
    // records again: no call fails in between.
    let doubted = |l: &serde_json::Value| {
        l["message"].as_str().is_some_and(|m| m.starts_with("DNS says service1 has no replicas"))
    };
    let before = system_tests::logs().count(doubted);
    cluster.dns.set(NAME, &[]);
    system_tests::logs().wait_for_more("doubting the empty answer", before, doubted).await;
    cluster.dns.set(NAME, &replicas);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(client.get(cluster.url()).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let port = format!(":{}", cluster.port);
    let removed = system_tests::logs().count(|l| {
        l["message"] == "service1 replica removed; it gets no new calls"
            && l["endpoint"].as_str().is_some_and(|e| e.ends_with(&port))
    });
    assert_eq!(removed, 0, "one empty answer dropped replicas");

    // Empty for good: the replicas go, and calls fail fast with 503.
    cluster.dns.set(NAME, &[]);
    cluster.wait_for_reresolution().await;
    assert_eq!(client.get(cluster.url()).send().await.unwrap().status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_fails_no_request_delays_none_past_2_s_and_is_ejected_until_it_answers_again() {
    // Defaults but for the ejection's length, so that it ends within the test.
    let cluster = Cluster::start_with("0s", &["--service1-eject-time", "1s"]).await;
    let load = Load::start(cluster.url(), 4, 50_000);
    load.wait_for_successes(100).await;

    cluster.replicas[0].freeze();
    cluster.wait_for_metric(r#"service1_ejections_total{reason="unresponsive"} 1"#, 10).await;
    load.wait_for_successes(200).await;
    cluster.replicas[0].resume();
    cluster.wait_for_metric("service1_ejection_returns_total 1", 20).await;
    load.wait_for_successes(100).await;
    let longest = load.longest();
    let (ok, failures) = load.stop().await;

    eprintln!("frozen replica: {ok} requests, {} failed, longest {longest:?}", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        ok as usize + failures.len()
    );
    // The attempt timeout (1 s) plus one backoff (at most 200 ms), with room
    // for a busy machine.
    assert!(longest < Duration::from_secs(2), "the longest request took {longest:?}");
    let served_after = cluster.replicas[0].calls_served();
    assert!(served_after > 0, "the resumed replica serves calls again");
}
