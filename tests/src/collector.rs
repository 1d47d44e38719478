//! An OTLP/gRPC trace collector inside the test: what the services export
//! lands here, for tests to look at.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::{any_value::Value, AnyValue, KeyValue},
    trace::v1::Span,
};
use tokio::net::TcpListener;
use tonic::{transport::server::TcpIncoming, Request, Response, Status};

use crate::Running;

/// A span as received, with the `service.name` of the process that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// An attribute's value as text (numbers too), if present.
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    _running: Running,
}

struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let receiver = Receiver { spans: spans.clone() };
        let running = Running::start(move |stop| async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop.cancelled_owned())
                .await
                .map_err(std::io::Error::other)
        });
        Self { addr, spans, _running: running }
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until `accept` holds for the spans received.
    pub async fn wait_for(&self, what: &str, accept: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        for _ in 0..1000 {
            let spans = self.spans();
            if accept(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the collector did not receive {what} within 10 s; it has {:#?}", self.spans());
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
            let service = attribute(&resource, "service.name").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(ReceivedSpan { service: service.clone(), span });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}
