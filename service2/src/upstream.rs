//! The call to service1: one channel made at start and shared by every
//! request, a deadline on each call, and gRPC failures turned into errors a
//! REST caller can act on.

use std::time::{Duration, Instant};

use plumbing::{
    proto::{service1_client::Service1Client, ProcessNameRequest},
    request_id,
    tls::client::Connector,
    ApiError, ErrorKind, RequestId,
};
use tonic::{
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

/// Where service1 is, as given in `SERVICE1_CHANNEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, hosts may be names, IPv4 or bracketed IPv6.
    authority: String,
}

// === impl Target ===

impl Target {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected host:port, such as service1:50051";
        let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("{text:?}: {expected}"))?;
        let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
        let host_ok = !host.is_empty() && !host.contains(['/', '@', ' ']);
        if !port_ok || !host_ok {
            return Err(format!("{text:?}: {expected}"));
        }
        Ok(Self { authority: text.to_owned() })
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// service1 as service2 sees it.
#[derive(Debug, Clone)]
pub struct Service1 {
    client: Service1Client<Channel>,
    deadline: Duration,
}

// === impl Service1 ===

impl Service1 {
    /// Makes the channel without connecting: service2 starts, and stays
    /// ready, whether or not service1 is up yet.
    /// `connector` does TCP and, unless TLS is off, the mTLS handshake;
    /// `connect_timeout` bounds both.
    pub fn new(
        target: &Target,
        connector: Connector,
        connect_timeout: Duration,
        deadline: Duration,
    ) -> Result<Self, String> {
        // The scheme only tells tonic the protocol; TLS is the connector's.
        let endpoint = Endpoint::from_shared(format!("http://{}", target.authority()))
            .map_err(|e| format!("SERVICE1_CHANNEL: {e}"))?
            .connect_timeout(connect_timeout);
        let channel = endpoint.connect_with_connector_lazy(connector);
        Ok(Self { client: Service1Client::new(channel), deadline })
    }

    /// Asks service1 to process `name` on behalf of request `id`.
    pub async fn process_name(&self, name: String, id: &RequestId) -> Result<String, ApiError> {
        let mut request = tonic::Request::new(ProcessNameRequest { name });
        // Sent as `grpc-timeout`, so service1 knows when to give up too.
        request.set_timeout(self.deadline);
        if let Ok(value) = MetadataValue::try_from(id.as_str()) {
            request.metadata_mut().insert(request_id::METADATA_KEY, value);
        }
        let started = Instant::now();
        let mut client = self.client.clone();
        match tokio::time::timeout(self.deadline, client.process_name(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner().name),
            Ok(Err(status)) => {
                // Whatever ends a call at its deadline is a timeout, even if
                // service1's own deadline fired first and said so differently.
                let kind = if started.elapsed() >= self.deadline {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::from_upstream(status.code())
                };
                tracing::warn!(grpc_status = ?status.code(), detail = status.message(), "call to service1 failed");
                Err(caller_error(kind))
            }
            Err(_elapsed) => {
                tracing::warn!(deadline = ?self.deadline, "call to service1 ran out of time");
                Err(caller_error(ErrorKind::Timeout))
            }
        }
    }
}

/// What a REST caller is told; the gRPC detail stays in the log line.
fn caller_error(kind: ErrorKind) -> ApiError {
    let message = match kind {
        ErrorKind::InvalidInput => "service1 rejected the name",
        ErrorKind::Unavailable => "service1 is unavailable",
        ErrorKind::Timeout => "service1 did not answer in time",
        ErrorKind::Overloaded => "service1 is overloaded, try again later",
        _ => "service1 failed to process the name",
    };
    ApiError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_host_and_port() {
        for good in ["localhost:50051", "service1:50051", "127.0.0.1:1", "[::1]:50051"] {
            assert_eq!(Target::parse(good).map(|t| t.authority().to_owned()), Ok(good.to_owned()));
        }
        for bad in ["", "localhost", "localhost:", ":50051", "host:0", "host:70000", "http://h:1/x"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
