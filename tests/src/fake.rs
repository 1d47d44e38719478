//! A stand-in for service1 that answers as a test tells it to, and records
//! what it was sent.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serving::tls::{
    server::{incoming, PortCaps, StreamLimits},
    ServerReloader, TlsFiles,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, Semaphore},
};
use tonic::{Code, Request, Response, Status};
use wire::proto::{
    service1_server::{Service1, Service1Server},
    ProcessNameRequest, ProcessNameResponse,
};

use crate::{Pki, Running};

/// The stand-in counts no served streams, so it must not cap unserved ones.
const NO_STREAM_CAP: StreamLimits =
    StreamLimits { per_connection: u32::MAX, unserved: u32::MAX, pings: None };

/// Nor does it cap connections.
const NO_CONNECTION_CAP: PortCaps =
    PortCaps { max_connections: 100_000, max_handshakes: 100_000, lifetime: None };

#[derive(Clone)]
pub enum Behaviour {
    /// Upper-cases, like the real one.
    Reply,
    /// Fails every call with this code.
    Fail(Code),
    /// Never answers; the caller's deadline must end the call.
    Hang,
    /// Answers like the real one, this much later.
    Delay(Duration),
    /// Sends on `arrived`, then answers once `release` has a permit.
    Hold { arrived: mpsc::UnboundedSender<()>, release: Arc<Semaphore> },
}

/// What one call carried.
#[derive(Debug, Clone)]
pub struct SeenCall {
    pub name: String,
    pub request_id: Option<String>,
    pub grpc_timeout: Option<String>,
    /// The caller's address: one per connection.
    pub peer: Option<SocketAddr>,
}

/// A held call's handles: wait on `arrived`, release with `release`.
pub struct Hold {
    pub arrived: mpsc::UnboundedReceiver<()>,
    pub release: Arc<Semaphore>,
}

impl Hold {
    pub fn new() -> (Behaviour, Self) {
        let (tx, arrived) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        (Behaviour::Hold { arrived: tx, release: release.clone() }, Self { arrived, release })
    }

    /// Waits (at most 5 s) for the next held call to arrive.
    pub async fn next_arrival(&mut self) {
        let arrived = tokio::time::timeout(std::time::Duration::from_secs(5), self.arrived.recv()).await;
        assert!(matches!(arrived, Ok(Some(()))), "a call reaches the fake service1 within 5 s");
    }
}

pub struct FakeService1 {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<SeenCall>>>,
    _running: Running,
}

struct Handler {
    behaviour: Behaviour,
    calls: Arc<Mutex<Vec<SeenCall>>>,
}

impl FakeService1 {
    /// A fake with service1's test certificate, requiring mTLS like the
    /// real one.
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_with(behaviour, Pki::shared()).await
    }

    /// The same, with `pki`'s service1 certificate.
    pub async fn start_with(behaviour: Behaviour, pki: &Pki) -> Self {
        Self::start_serving(behaviour, pki, None).await
    }

    /// A fake that tells its clients (SETTINGS_MAX_HEADER_LIST_SIZE) it
    /// accepts header lists of at most `bytes`.
    pub async fn start_with_header_list_limit(behaviour: Behaviour, bytes: u32) -> Self {
        Self::start_serving(behaviour, Pki::shared(), Some(bytes)).await
    }

    async fn start_serving(behaviour: Behaviour, pki: &Pki, header_list: Option<u32>) -> Self {
        let files = TlsFiles {
            cert: pki.path("service1.crt"),
            key: pki.path("service1.key"),
            ca: pki.path("ca.crt"),
        };
        let tls = ServerReloader::server(files, None).expect("test certificates load");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let handler = Handler { behaviour, calls: calls.clone() };
        let running = Running::start(move |stop| async move {
            tonic::transport::Server::builder()
                .http2_max_header_list_size(header_list)
                .add_service(Service1Server::new(handler))
                .serve_with_incoming_shutdown(
                    incoming(
                        listener,
                        Some(tls),
                        Duration::from_secs(5),
                        NO_STREAM_CAP,
                        NO_CONNECTION_CAP,
                        &observability::Metrics::new(),
                        stop.clone(),
                    ),
                    stop.cancelled_owned(),
                )
                .await
                .map_err(std::io::Error::other)
        });
        Self { addr, calls, _running: running }
    }

    pub fn calls(&self) -> Vec<SeenCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl Service1 for Handler {
    async fn process_name(
        &self,
        request: Request<ProcessNameRequest>,
    ) -> Result<Response<ProcessNameResponse>, Status> {
        let text = |key: &str| request.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let name = request.get_ref().name.clone();
        self.calls.lock().unwrap().push(SeenCall {
            name: name.clone(),
            request_id: text("request_id"),
            grpc_timeout: text("grpc-timeout"),
            peer: request.extensions().get::<serving::tls::server::PeerInfo>().map(|p| p.remote_addr),
        });
        match &self.behaviour {
            Behaviour::Reply => {}
            Behaviour::Fail(code) => return Err(Status::new(*code, "fake failure at 10.1.2.3:50051")),
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::Delay(delay) => tokio::time::sleep(*delay).await,
            Behaviour::Hold { arrived, release } => {
                let _ = arrived.send(());
                if let Ok(permit) = release.acquire().await {
                    permit.forget();
                }
            }
        }
        // No ObjectId: as the original service1, which predates the field.
        Ok(Response::new(ProcessNameResponse { name: name.to_uppercase(), id: None }))
    }
}
