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
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

use super::ClientReloader;

#[derive(Clone)]
pub struct Connector {
    tls: Option<(Arc<ClientReloader>, ServerName<'static>)>,
}

// === impl Connector ===

impl Connector {
    /// Plaintext: only when TLS is explicitly turned off.
    pub fn plaintext() -> Self {
        Self { tls: None }
    }

    /// mTLS, expecting the server certificate to name `server_name`.
    pub fn mtls(reloader: Arc<ClientReloader>, server_name: &str) -> Result<Self, String> {
        Ok(Self { tls: Some((reloader, Self::check_server_name(server_name)?)) })
    }

    pub fn check_server_name(server_name: &str) -> Result<ServerName<'static>, String> {
        ServerName::try_from(server_name.to_owned())
            .map_err(|_| format!("{server_name:?} is not a valid DNS name or IP address"))
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
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let stream = match tls {
                None => Stream::Plain(tcp),
                Some((reloader, name)) => {
                    let connector = TlsConnector::from(reloader.current());
                    Stream::Tls(Box::new(connector.connect(name, tcp).await?))
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// A connection to the server: TLS, or plaintext when TLS is turned off.
pub enum Stream {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
