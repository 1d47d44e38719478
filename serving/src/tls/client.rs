//! The client side: a connector for tonic channels that dials TCP and, with
//! TLS on, runs the handshake with the current config, checking the server
//! certificate against a fixed name rather than the address dialled (pods
//! are dialled by IP).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{client::TlsStream, TlsConnector};
use tokio_util::either::Either;

use super::ClientReloader;

#[derive(Clone)]
pub struct Connector {
    tls: Option<(Arc<ClientReloader>, ServerName<'static>)>,
    /// A name (such as a SPIFFE ID) the server's certificate must also
    /// carry among its SANs: under a shared issuer, TLS_SERVER_NAME alone
    /// would be satisfied by any workload that may get that DNS name.
    identity: Option<Arc<str>>,
}

/// A connection to the server: TLS, or plaintext when TLS is turned off.
///
/// `Either` forwards `poll_write_vectored` and `is_write_vectored`, so
/// HTTP/2 hands each batch of frames to TLS (and the socket) in one write
/// instead of copying it into one buffer first. The TLS stream is boxed: it
/// is large, and plaintext is the rare case.
pub type Stream = Either<Box<TlsStream<TcpStream>>, TcpStream>;

/// The server name is not one a certificate can be checked against.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a valid DNS name or IP address")]
pub struct InvalidServerName(String);

// === impl Connector ===

impl Connector {
    /// Plaintext: only when TLS is explicitly turned off.
    pub fn plaintext() -> Self {
        Self { tls: None, identity: None }
    }

    /// mTLS, expecting the server certificate to name `server_name`.
    pub fn mtls(reloader: Arc<ClientReloader>, server_name: &str) -> Result<Self, InvalidServerName> {
        Ok(Self { tls: Some((reloader, Self::check_server_name(server_name)?)), identity: None })
    }

    /// Also requires `identity` (a DNS or URI SAN, such as a SPIFFE ID) in
    /// the server's certificate; a server without it is refused after the
    /// handshake, before any request.
    pub fn requiring_identity(mut self, identity: &str) -> Self {
        self.identity = Some(identity.into());
        self
    }

    pub fn check_server_name(server_name: &str) -> Result<ServerName<'static>, InvalidServerName> {
        ServerName::try_from(server_name.to_owned()).map_err(|_| InvalidServerName(server_name.to_owned()))
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, identity) = (self.tls.clone(), self.identity.clone());
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let stream = match tls {
                None => Either::Right(tcp),
                Some((reloader, name)) => {
                    let connector = TlsConnector::from(reloader.current());
                    let stream = connector.connect(name, tcp).await?;
                    if let Some(identity) = identity {
                        check_identity(&stream, &identity)?;
                    }
                    Either::Left(Box::new(stream))
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// The server's certificate must name `identity`, as a SAN of its type (a
/// URI SAN for `spiffe://…`, else a DNS SAN).
fn check_identity(stream: &TlsStream<TcpStream>, identity: &str) -> io::Result<()> {
    let wanted = super::Identity::from_entry(identity);
    let names = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(super::identities);
    if names.unwrap_or_default().contains(&wanted) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("the server's certificate does not name {identity} (TLS_SERVER_IDENTITY)"),
    ))
}

#[cfg(test)]
mod tests {
    use certgen::{Authority, LeafSpec};
    use tokio::{io::AsyncWrite, net::TcpListener};
    use tokio_rustls::TlsAcceptor;
    use tower::Service as _;

    use super::*;
    use crate::tls::{ServerReloader, TlsFiles};

    /// `identity`'s certificate and key, and the CA, written to `dir`.
    fn write_files(dir: &std::path::Path, ca: &Authority, identity: &LeafSpec) -> TlsFiles {
        let leaf = ca.issue(identity).unwrap();
        let files = TlsFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key"), ca: dir.join("ca.crt") };
        std::fs::write(&files.cert, &leaf.cert_pem).unwrap();
        std::fs::write(&files.key, &leaf.key_pem).unwrap();
        std::fs::write(&files.ca, ca.cert_pem()).unwrap();
        files
    }

    #[tokio::test]
    async fn a_tls_connection_forwards_vectored_writes() {
        let ca = Authority::new("ca").unwrap();
        let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server = ServerReloader::server(
            write_files(server_dir.path(), &ca, &LeafSpec::server("service1", &["service1"])),
            None,
        )
        .unwrap();
        let client =
            ClientReloader::client(write_files(client_dir.path(), &ca, &LeafSpec::client("service2")))
                .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            TlsAcceptor::from(server.current()).accept(tcp).await.unwrap()
        };

        let (stream, _server_side) = tokio::join!(
            async { Connector::mtls(client, "service1").unwrap().call(uri).await.unwrap() },
            accept
        );

        assert!(matches!(stream.inner(), Either::Left(_)), "TLS is on");
        assert!(stream.inner().is_write_vectored(), "else h2 copies each batch of frames");
    }

    #[tokio::test]
    async fn a_plaintext_connection_forwards_vectored_writes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();

        let stream = Connector::plaintext().call(uri).await.unwrap();

        assert!(stream.inner().is_write_vectored());
    }

    #[test]
    fn a_server_name_that_is_neither_a_dns_name_nor_an_ip_address_is_refused_with_one_clear_line() {
        let error = Connector::check_server_name("not a name").unwrap_err();

        assert_eq!(error.to_string(), r#""not a name" is not a valid DNS name or IP address"#);
    }
}
