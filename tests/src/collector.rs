//! OTLP trace collectors inside the test, one per protocol the services
//! speak: OTLP/gRPC (opentelemetry-proto's `TraceService`) and
//! OTLP/HTTP with protobuf bodies (`POST`, gzip or not), each over plain
//! TCP or TLS, optionally requiring a client certificate. What the services
//! export lands here, with the path and headers of every export request,
//! for tests to look at.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::{any_value::Value, AnyValue, KeyValue},
    trace::v1::Span,
};
use prost::Message as _;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tonic::{codec::CompressionEncoding, Request as GrpcRequest, Response as GrpcResponse, Status};

use crate::{Pki, Running};

/// The OTLP protocols a collector can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    /// OTLP/HTTP, protobuf bodies, on any path (tests check the path).
    HttpProtobuf,
}

/// A span as received, with the `service.name` of the process that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    /// The attributes of the resource that sent it.
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }

    pub fn parent_span_id(&self) -> String {
        hex::encode(&self.span.parent_span_id)
    }

    /// An attribute's value as text (numbers too), if present.
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<String> {
        attribute(&self.resource, key)
    }
}

/// The head of one export request: where it was sent, with what headers
/// (for gRPC, the HTTP/2 headers that carry the metadata).
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub path: String,
    pub headers: HeaderMap,
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value {
        AnyValue { value: Some(Value::StringValue(s)) } => Some(s.clone()),
        AnyValue { value: Some(Value::IntValue(i)) } => Some(i.to_string()),
        AnyValue { value: Some(Value::BoolValue(b)) } => Some(b.to_string()),
        AnyValue { value: Some(Value::DoubleValue(d)) } => Some(d.to_string()),
        _ => None,
    }
}

/// A collector's certificate and, to require client certificates, the CA
/// they must chain to.
pub struct CollectorTls {
    cert_pem: String,
    key_pem: String,
    client_ca_pem: Option<String>,
}

impl CollectorTls {
    /// A server certificate for `127.0.0.1` and `localhost`, issued by `pki`'s CA.
    pub fn issued_by(pki: &Pki) -> Self {
        let leaf = pki.issue(certgen::LeafSpec::server("otel-collector", &["127.0.0.1", "localhost"]));
        Self { cert_pem: leaf.cert_pem, key_pem: leaf.key_pem, client_ca_pem: None }
    }

    /// Also refuses clients without a certificate from `pki`'s CA (mTLS).
    pub fn requiring_client_certificates(self, pki: &Pki) -> Self {
        Self { client_ca_pem: Some(pki.ca.cert_pem()), ..self }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<_> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<_, _>>().expect("PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("PEM key");
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(cert.expect("PEM")).expect("a CA certificate");
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).expect("the certificate and its key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// What a collector has received, and a signal each time that changes.
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: Mutex<Vec<ExportRequest>>,
    failed_handshakes: Mutex<Vec<String>>,
    changed: watch::Sender<u64>,
}

impl Received {
    fn new() -> Self {
        Self {
            spans: Mutex::default(),
            requests: Mutex::default(),
            failed_handshakes: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }

    fn record_spans(&self, request: ExportTraceServiceRequest) {
        let mut received = self.spans.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
            let service = attribute(&resource, "service.name").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(ReceivedSpan {
                        service: service.clone(),
                        resource: resource.clone(),
                        span,
                    });
                }
            }
        }
        drop(received);
        self.changed.send_modify(|n| *n += 1);
    }
}

pub struct Collector {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    tls: bool,
    received: Arc<Received>,
    _running: Running,
}

impl Collector {
    /// OTLP/gRPC over plain TCP.
    pub async fn start() -> Self {
        Self::start_with(Protocol::Grpc, None).await
    }

    /// A collector of `protocol` on 127.0.0.1, over TLS when `tls` is given.
    pub async fn start_with(protocol: Protocol, tls: Option<CollectorTls>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let received = Arc::new(Received::new());
        let router = match protocol {
            Protocol::Grpc => {
                let grpc = TraceServiceServer::new(Receiver { received: received.clone() })
                    .accept_compressed(CompressionEncoding::Gzip);
                Router::new()
                    .route_service("/opentelemetry.proto.collector.trace.v1.TraceService/Export", grpc)
            }
            Protocol::HttpProtobuf => Router::new().fallback(export_over_http).with_state(received.clone()),
        };
        let router = router.layer(middleware::from_fn_with_state(received.clone(), record_head));
        let acceptor = tls.as_ref().map(CollectorTls::acceptor);
        let state = received.clone();
        let running = Running::start(move |stop| async move {
            loop {
                let tcp = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    accepted = listener.accept() => accepted?.0,
                };
                let (router, acceptor, stop, state) =
                    (router.clone(), acceptor.clone(), stop.clone(), state.clone());
                tokio::spawn(async move {
                    let io = match acceptor {
                        None => Either::Left(tcp),
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(tls) => Either::Right(tls),
                            Err(error) => {
                                state.failed_handshakes.lock().unwrap().push(error.to_string());
                                state.changed.send_modify(|n| *n += 1);
                                return;
                            }
                        },
                    };
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection =
                        builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
                    tokio::select! {
                        _ = connection => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, protocol, tls: tls.is_some(), received, _running: running }
    }

    /// `http://` or `https://` and the address: the generic endpoint.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<ExportRequest> {
        self.received.requests.lock().unwrap().clone()
    }

    pub fn failed_handshakes(&self) -> Vec<String> {
        self.received.failed_handshakes.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until `accept` holds for the spans received.
    pub async fn wait_for(&self, what: &str, accept: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        self.wait_until(what, || {
            let spans = self.spans();
            accept(&spans).then_some(spans)
        })
        .await
    }

    /// Waits (at most 10 s) for a TLS handshake that failed.
    pub async fn wait_for_failed_handshake(&self) -> String {
        self.wait_until("a failed TLS handshake", || self.failed_handshakes().into_iter().next()).await
    }

    /// Waits (at most 10 s), woken by each change, until `done` gives a value.
    async fn wait_until<T>(&self, what: &str, done: impl Fn() -> Option<T>) -> T {
        let mut changed = self.received.changed.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(value) = done() {
                return value;
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                panic!(
                    "the collector did not receive {what} within 10 s; it has {:#?}, failed handshakes {:?}",
                    self.spans(),
                    self.failed_handshakes()
                );
            }
        }
    }
}

/// Records every request's path and headers before it is served.
async fn record_head(State(received): State<Arc<Received>>, request: Request, next: Next) -> Response {
    let head = ExportRequest { path: request.uri().path().to_owned(), headers: request.headers().clone() };
    received.requests.lock().unwrap().push(head);
    next.run(request).await
}

/// OTLP/HTTP: a protobuf `ExportTraceServiceRequest`, gzipped or not.
async fn export_over_http(
    State(received): State<Arc<Received>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if headers.get(header::CONTENT_TYPE).is_none_or(|t| t != "application/x-protobuf") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let body = match headers.get(header::CONTENT_ENCODING).map(|e| e.as_bytes()) {
        None => body.to_vec(),
        Some(b"gzip") => {
            let mut plain = Vec::new();
            let unzipped =
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain);
            if unzipped.is_err() {
                return (StatusCode::BAD_REQUEST, "not gzip").into_response();
            }
            plain
        }
        Some(_) => return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response(),
    };
    match ExportTraceServiceRequest::decode(&body[..]) {
        Ok(request) => {
            received.record_spans(request);
            let reply = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
            ([(header::CONTENT_TYPE, "application/x-protobuf")], reply).into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
}

struct Receiver {
    received: Arc<Received>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: GrpcRequest<ExportTraceServiceRequest>,
    ) -> Result<GrpcResponse<ExportTraceServiceResponse>, Status> {
        self.received.record_spans(request.into_inner());
        Ok(GrpcResponse::new(ExportTraceServiceResponse { partial_success: None }))
    }
}
