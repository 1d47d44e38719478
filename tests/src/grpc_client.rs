//! Clients that talk to service1's gRPC port the way service2 does, or in
//! the ways an attacker or a misconfigured peer would.

use std::{net::SocketAddr, sync::Arc};

use rustls::{pki_types::ServerName, ClientConfig, RootCertStore};
use serving::tls::{client::Connector, ClientReloader, TlsFiles};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::transport::{Channel, Endpoint};
use wire::proto::service1_client::Service1Client;

use crate::Pki;

/// A connector presenting `NAME.crt` from `pki`, as service2's does,
/// expecting service1's certificate to name `service1`.
pub fn mtls_connector(pki: &Pki, name: &str) -> Connector {
    let files = TlsFiles {
        cert: pki.path(&format!("{name}.crt")),
        key: pki.path(&format!("{name}.key")),
        ca: pki.path("ca.crt"),
    };
    let reloader = ClientReloader::client(files).expect("client certificates load");
    Connector::mtls(reloader, "service1").expect("valid name")
}

/// A lazy gRPC channel to `addr` through [`mtls_connector`].
pub fn mtls_channel(addr: SocketAddr, pki: &Pki, name: &str) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("valid uri");
    endpoint.connect_with_connector_lazy(mtls_connector(pki, name))
}

/// A gRPC client presenting `NAME.crt` from `pki`, expecting service1's
/// certificate to name `service1`.
pub async fn grpc_client(addr: SocketAddr, pki: &Pki, name: &str) -> Service1Client<Channel> {
    Service1Client::new(mtls_channel(addr, pki, name))
}

/// The outcome of a raw TLS handshake with service1's gRPC port.
pub struct Handshake {
    /// The client's own address, as the server logs it.
    pub local_addr: SocketAddr,
    /// Whether the server went on to speak HTTP/2 (so it accepted us).
    pub accepted: bool,
    /// The server's certificate, DER, when the handshake completed.
    pub server_cert: Option<Vec<u8>>,
    pub protocol: Option<rustls::ProtocolVersion>,
}

/// Runs a TLS handshake with `config`, then waits for the server's first
/// HTTP/2 frame: with TLS 1.3 a rejected client certificate only shows up
/// as an alert after the client thinks it is done.
pub async fn handshake(addr: SocketAddr, config: ClientConfig) -> Handshake {
    let tcp = TcpStream::connect(addr).await.expect("TCP connects");
    let local_addr = tcp.local_addr().expect("bound");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("service1").expect("valid");
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return Handshake { local_addr, accepted: false, server_cert: None, protocol: None };
    };
    let (_, session) = tls.get_ref();
    let server_cert = session.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    let protocol = session.protocol_version();
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut first = [0u8; 9];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut first)).await;
    let accepted = matches!(read, Ok(Ok(n)) if n > 0);
    Handshake { local_addr, accepted, server_cert, protocol }
}

/// A client config trusting `pki`'s CA and presenting `cert` (PEM cert and
/// key), or no certificate at all.
pub fn client_config(pki: &Pki, cert: Option<(&str, &str)>) -> ClientConfig {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca.cert_pem().as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>().unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// Sends bytes in the clear to a port that expects TLS; true if the server
/// answered with anything but closing the connection.
pub async fn plaintext_is_answered(addr: SocketAddr) -> (SocketAddr, bool) {
    let mut tcp = TcpStream::connect(addr).await.expect("TCP connects");
    let local_addr = tcp.local_addr().expect("bound");
    let _ = tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf)).await;
    // A TLS server answers a non-TLS hello with an alert record (0x15) or
    // just closes; an HTTP/2 server would send a SETTINGS frame.
    let answered = matches!(read, Ok(Ok(n)) if n > 0 && buf[0] != 0x15);
    (local_addr, answered)
}
