//! The OTLP span exporter, built from [`Otlp`] settings and nothing else.
//!
//! The gRPC channel and the HTTP client are made here, with hyper and
//! rustls (ring): the endpoint, timeout, headers, compression and TLS the
//! settings say, passed to the SDK's builders explicitly, so neither its
//! own reading of the environment nor its choice of TLS stack decides
//! anything. (The SDK still merges the `..._HEADERS` variable into what it
//! is given; it parses it to the same names and values, and
//! [`crate::otel_env`] has refused it already if it could not.)
//!
//! TLS: with `..._CERTIFICATE`, the collector must chain to those CA
//! certificates alone, as other OpenTelemetry SDKs do; without it, to the
//! system's roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
//! The files are read once, at start.

use std::{collections::HashMap, sync::Arc};

use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_http::{hyper::HyperClient, HttpClient};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, RootCertStore,
};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use crate::otel_env::{Compression, FileSetting, Otlp, Protocol};

/// Builds the exporter; the error names the variable at fault. Must run on
/// the Tokio runtime: the gRPC channel starts its worker there.
pub fn span_exporter(otlp: &Otlp) -> Result<SpanExporter, String> {
    match otlp.protocol {
        Protocol::Grpc => grpc(otlp),
        Protocol::HttpProtobuf => http(otlp),
    }
}

fn grpc(otlp: &Otlp) -> Result<SpanExporter, String> {
    let url = otlp.endpoint.url.to_string();
    let endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| format!("{}={}: {e}", otlp.endpoint.from, otlp.endpoint.url))?
        .timeout(otlp.timeout)
        .connect_timeout(otlp.timeout);
    let channel = if otlp.endpoint.is_https() {
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(otlp)?)
            .https_only()
            .enable_http2()
            .wrap_connector(tcp(otlp));
        endpoint.connect_with_connector_lazy(connector)
    } else {
        endpoint.connect_lazy()
    };
    let mut metadata = MetadataMap::new();
    for (name, value) in &otlp.headers {
        // otel_env has checked both: a header name without -bin, printable ASCII.
        let key = MetadataKey::from_bytes(name.as_str().as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        let value = MetadataValue::try_from(value.as_str()).map_err(|e| format!("{name}: {e}"))?;
        metadata.insert(key, value);
    }
    let mut builder = SpanExporter::builder()
        .with_tonic()
        .with_channel(channel)
        .with_metadata(metadata)
        .with_timeout(otlp.timeout);
    if otlp.compression == Compression::Gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder.build().map_err(|e| e.to_string())
}

fn http(otlp: &Otlp) -> Result<SpanExporter, String> {
    let client: Arc<dyn HttpClient> = if otlp.endpoint.is_https() {
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(otlp)?)
            .https_only()
            .enable_http1()
            .wrap_connector(tcp(otlp));
        Arc::new(HyperClient::new(connector, otlp.timeout, None))
    } else {
        Arc::new(HyperClient::new(tcp(otlp), otlp.timeout, None))
    };
    let headers: HashMap<String, String> =
        otlp.headers.iter().map(|(name, value)| (name.as_str().to_owned(), value.clone())).collect();
    let mut builder = SpanExporter::builder()
        .with_http()
        .with_shared_http_client(client)
        .with_endpoint(otlp.endpoint.url.to_string())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(otlp.timeout)
        .with_headers(headers);
    if otlp.compression == Compression::Gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder.build().map_err(|e| e.to_string())
}

fn tcp(otlp: &Otlp) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    // The TLS connector wrapping it handles https.
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(otlp.timeout));
    tcp
}

/// The collector's CA (or the system's roots) and, for mTLS, our identity.
fn tls_config(otlp: &Otlp) -> Result<ClientConfig, String> {
    let roots = match &otlp.tls.certificate {
        Some(file) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(file)? {
                roots.add(cert).map_err(|e| file_error(file, format!("not a usable CA certificate: {e}")))?;
            }
            roots
        }
        None => system_roots(otlp)?,
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    match &otlp.tls.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(&key.path)
                .map_err(|e| file_error(key, format!("no usable PEM private key in it: {e}")))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| file_error(key, format!("does not go with {}: {e}", cert.variable)))
        }
    }
}

fn certificates(file: &FileSetting) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(&file.path).map_err(|e| file_error(file, format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(file, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn system_roots(otlp: &Otlp) -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(format!(
            "{}={}: no system root certificates were found{why}; set OTEL_EXPORTER_OTLP_CERTIFICATE \
             to the collector's CA",
            otlp.endpoint.from, otlp.endpoint.url
        ));
    }
    Ok(roots)
}

fn file_error(file: &FileSetting, reason: impl std::fmt::Display) -> String {
    format!("{}={}: {reason}", file.variable, file.path.display())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn ca_file(path: impl Into<PathBuf>) -> FileSetting {
        FileSetting { variable: "OTEL_EXPORTER_OTLP_CERTIFICATE", path: path.into() }
    }

    #[test]
    fn a_ca_file_that_cannot_be_read_is_one_error_naming_the_variable_and_the_path() {
        let error = certificates(&ca_file("/nonexistent/ca.pem")).unwrap_err();

        assert!(
            error.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem: cannot read it"),
            "{error}"
        );
    }

    #[test]
    fn a_ca_file_without_a_pem_certificate_is_refused() {
        let path = std::env::temp_dir().join(format!("otlp-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();

        let error = certificates(&ca_file(&path)).unwrap_err();

        let _ = std::fs::remove_file(&path);
        assert!(error.ends_with("holds no PEM certificate"), "{error}");
    }
}
