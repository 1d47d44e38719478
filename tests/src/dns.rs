//! A tiny authoritative DNS server on a loopback port, for tests.
//!
//! service2 re-resolves service1's name while running, so the tests need a
//! DNS server whose answers they can change mid-test and whose queries they
//! can count. Running one in-process on 127.0.0.1 with an ephemeral port
//! means `make test` needs no system package (dnsmasq, bind, …) and no root.
//! It speaks plain DNS over UDP and TCP on the same port, like a real
//! server, so the client under test uses its ordinary code path.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A DNS server on 127.0.0.1 (UDP and TCP, same ephemeral port) that answers
/// A and AAAA queries from a table tests can change at any time.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl TestDns {
    /// Binds 127.0.0.1:0 for UDP, then TCP on the same port (retrying with
    /// a new UDP port if that TCP port is taken), and starts serving in the
    /// background. Records are served with TTL `ttl_secs`.
    pub async fn start(ttl_secs: u32) -> TestDns {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("local address of the DNS UDP socket");
        let state =
            Arc::new(State { ttl: ttl_secs, names: Mutex::new(HashMap::new()), answered: AtomicU64::new(0) });

        let mut server = Server::new(Handler(state.clone()));
        server.register_socket(udp);
        // Resolvers keep TCP connections open between queries; the timeout
        // only bounds how long an idle one lingers.
        server.register_listener(tcp, Duration::from_secs(10), 32);
        let shutdown = server.shutdown_token().clone();
        let task = tokio::spawn(async move {
            if let Err(error) = server.block_until_done().await {
                tracing::warn!(%error, "test DNS server stopped");
            }
        });
        tracing::debug!(%addr, "test DNS server listening");

        TestDns { addr, state, shutdown, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the addresses of `name` (e.g. "service1.test."; with or
    /// without the trailing dot, case-insensitive). An empty list makes the
    /// name answer NXDOMAIN.
    pub fn set(&self, name: &str, addrs: &[IpAddr]) {
        let mut names = self.state.lock_names();
        if addrs.is_empty() {
            names.remove(&key(name));
        } else {
            names.insert(key(name), addrs.to_vec());
        }
    }

    /// How many queries have been answered so far (any name), so a test can
    /// wait for a client to re-resolve.
    pub fn queries(&self) -> u64 {
        self.state.answered.load(Ordering::SeqCst)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        // Cancelling stops the listeners; aborting drops the `Server`, whose
        // JoinSet aborts any connection still being served.
        self.shutdown.cancel();
        self.task.abort();
    }
}

/// Binds UDP first because the OS picks the port there; TCP then has to win
/// the same port, which another process may hold, so try a few times.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut last_error = None;
    for _ in 0..10 {
        let udp = UdpSocket::bind(loopback).await.expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().expect("local address of a UDP socket").port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(tcp) => return (udp, tcp),
            Err(error) => last_error = Some(error),
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1: {last_error:?}");
}

/// Table keys ignore case and the trailing dot, as DNS names do.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

struct State {
    ttl: u32,
    names: Mutex<HashMap<String, Vec<IpAddr>>>,
    answered: AtomicU64,
}

impl State {
    fn lock_names(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<IpAddr>>> {
        // The table is replaced wholesale per name, so a panic elsewhere
        // while it was locked cannot have left it half-written.
        self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The response code and answer records for one question.
    fn lookup(&self, name: &Name, qtype: RecordType) -> (ResponseCode, Vec<Record>) {
        let names = self.lock_names();
        let Some(addrs) = names.get(&key(&name.to_ascii())) else {
            return (ResponseCode::NXDomain, Vec::new());
        };
        // Answer with the name as asked: resolvers using 0x20 case
        // randomisation reject answers whose case differs.
        let records = addrs
            .iter()
            .filter_map(|ip| match (qtype, ip) {
                (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(*v4))),
                (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            })
            .map(|rdata| Record::from_rdata(name.clone(), self.ttl, rdata))
            .collect();
        (ResponseCode::NoError, records)
    }

    /// RFC 2308: the SOA in a negative answer tells caches how long to
    /// remember it (the lesser of its TTL and MINIMUM). Without one, hickory's
    /// cache keeps NXDOMAIN/NODATA for `negative_min_ttl` (0 by default) and
    /// glibc keeps no cache at all; with it, caching resolvers treat a name
    /// that disappears and comes back like a changed address: seen after `ttl`.
    /// The root as zone apex is true enough: this server answers for every name.
    fn soa(&self) -> Record {
        let soa = SOA::new(Name::root(), Name::root(), 1, 60, 60, 60, self.ttl);
        Record::from_rdata(Name::root(), self.ttl, RData::SOA(soa))
    }
}

struct Handler(Arc<State>);

impl Handler {
    async fn answer<R: ResponseHandler>(&self, request: &Request, mut response_handle: R) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;

        let (code, answers) = match request.request_info() {
            Err(error) => {
                tracing::warn!(%error, "test DNS: malformed query");
                (ResponseCode::FormErr, Vec::new())
            }
            Ok(_) if request.metadata.op_code != OpCode::Query => (ResponseCode::NotImp, Vec::new()),
            Ok(info) if info.query.query_class() != DNSClass::IN => (ResponseCode::Refused, Vec::new()),
            Ok(info) => self.0.lookup(info.query.original().name(), info.query.query_type()),
        };
        metadata.response_code = code;

        let negative = answers.is_empty() && matches!(code, ResponseCode::NoError | ResponseCode::NXDomain);
        let soa = negative.then(|| self.0.soa());

        let response = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            answers.iter(),
            [],
            soa.iter(),
            [],
        );
        match response_handle.send_response(response).await {
            Ok(info) => {
                self.0.answered.fetch_add(1, Ordering::SeqCst);
                info
            }
            Err(error) => {
                tracing::warn!(%error, "test DNS: could not send the response");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}

// `RequestHandler` is declared with `#[async_trait]`; system-tests does not
// depend on that crate, so this is the signature the macro would generate.
impl RequestHandler for Handler {
    fn handle_request<'a, 'b, 'c, R, T>(
        &'a self,
        request: &'b Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'c>>
    where
        'a: 'c,
        'b: 'c,
        R: ResponseHandler + 'c,
        T: Time + 'c,
        Self: 'c,
    {
        Box::pin(self.answer(request, response_handle))
    }
}
