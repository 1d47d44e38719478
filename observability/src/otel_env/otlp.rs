//! The OTLP exporter's settings: protocol, endpoint (with the path each
//! protocol wants), headers, timeout, compression and TLS files, each
//! setting's per-signal form first.

use std::time::Duration;

use http::{HeaderName, Uri};
use percent_encoding::percent_decode_str;

use super::{
    vars::{
        boolean, milliseconds, Found, Pair, Vars, CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY, COMPRESSION,
        ENDPOINT, HEADERS, INSECURE, PROTOCOL, TIMEOUT,
    },
    Compression, ConfigError, Endpoint, FileSetting, Ignored, Otlp, Protocol, TlsFiles,
};

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
pub(super) const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
pub(super) const HTTP_TRACES_PATH: &str = "/v1/traces";

/// The OTLP settings, whether or not they are used: `None` when no
/// endpoint is set and `otlp` was not asked for explicitly.
pub(super) fn otlp(
    vars: &Vars,
    explicit: bool,
    ignored: &mut Vec<Ignored>,
) -> Result<Option<Otlp>, ConfigError> {
    let protocol = match vars.get_pair(PROTOCOL) {
        None => Protocol::Grpc,
        Some(found) => match found.value.to_ascii_lowercase().as_str() {
            "grpc" => Protocol::Grpc,
            "http/protobuf" => Protocol::HttpProtobuf,
            "http/json" => {
                let reason =
                    "ignored: OTLP/JSON is not built in; spans are posted as http/protobuf to the same \
                              endpoint, which an OTLP/HTTP receiver takes as well"
                        .into();
                ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
                Protocol::HttpProtobuf
            }
            _ => {
                return Err(ConfigError::new(found, "unknown protocol; use grpc, http/protobuf or http/json"))
            }
        },
    };
    let insecure = vars.get_pair(INSECURE).map(boolean).transpose()?.unwrap_or(false);
    let endpoint = if let Some(found) = vars.get(ENDPOINT.traces) {
        // The per-signal endpoint is used as it is.
        Some(Endpoint { url: endpoint(found, protocol, insecure, false)?, from: found.name })
    } else if let Some(found) = vars.get(ENDPOINT.generic) {
        // The generic one is a base: OTLP/HTTP appends the signal's path.
        let append = protocol == Protocol::HttpProtobuf;
        Some(Endpoint { url: endpoint(found, protocol, insecure, append)?, from: found.name })
    } else if explicit {
        let default = match protocol {
            Protocol::Grpc => DEFAULT_GRPC_ENDPOINT,
            Protocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
        };
        Some(Endpoint { url: Uri::from_static(default), from: "the default endpoint" })
    } else {
        None
    };
    let headers = match vars.get_pair(HEADERS) {
        Some(found) => headers(found, protocol)?,
        None => Vec::new(),
    };
    let timeout = match vars.get_pair(TIMEOUT) {
        Some(found) => milliseconds(found)?,
        None => DEFAULT_TIMEOUT,
    };
    let compression = match vars.get_pair(COMPRESSION) {
        None => Compression::None,
        Some(found) => match found.value.to_ascii_lowercase().as_str() {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            _ => return Err(ConfigError::new(found, "not supported; use gzip or none")),
        },
    };
    let file =
        |pair: Pair| vars.get_pair(pair).map(|f| FileSetting { variable: f.name, path: f.value.into() });
    let client = match (file(CLIENT_CERTIFICATE), file(CLIENT_KEY)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(cert), None) => {
            let found =
                Found { name: cert.variable, value: vars.get_pair(CLIENT_CERTIFICATE).unwrap().value };
            return Err(ConfigError::new(found, format!("needs its key in {}", CLIENT_KEY.generic)));
        }
        (None, Some(key)) => {
            let found = Found { name: key.variable, value: vars.get_pair(CLIENT_KEY).unwrap().value };
            let reason = format!("needs its certificate in {}", CLIENT_CERTIFICATE.generic);
            return Err(ConfigError::new(found, reason));
        }
    };
    let tls = TlsFiles { certificate: file(CERTIFICATE), client };
    let Some(endpoint) = endpoint else { return Ok(None) };
    if !endpoint.is_https() {
        let unused = tls.certificate.iter().chain(tls.client.iter().map(|(cert, _)| cert)).next();
        if let Some(setting) = unused {
            let found = Found { name: setting.variable, value: setting.path.to_str().unwrap_or_default() };
            let reason =
                format!("TLS settings need an https endpoint; {} is {}", endpoint.from, endpoint.url);
            return Err(ConfigError::new(found, reason));
        }
    }
    Ok(Some(Otlp { protocol, endpoint, headers, timeout, compression, tls }))
}

/// An endpoint URL: http or https, a host, no credentials. A gRPC endpoint
/// has no path (the method is the path); with `append`, OTLP/HTTP's
/// `/v1/traces` is added to the path given.
pub(super) fn endpoint(
    found: Found<'_>,
    protocol: Protocol,
    insecure: bool,
    append: bool,
) -> Result<Uri, ConfigError> {
    let text = if let Some((scheme, _)) = found.value.split_once("://") {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ConfigError::new(found, "the scheme must be http or https"));
        }
        found.value.to_owned()
    } else if protocol == Protocol::Grpc {
        // The specification's rule for gRPC endpoints without a scheme.
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{}", found.value)
    } else {
        return Err(ConfigError::new(found, "needs a scheme: http:// or https://"));
    };
    let url: Uri = text.parse().map_err(|e| ConfigError::new(found, format!("not a URL: {e}")))?;
    let Some(authority) = url.authority().filter(|a| !a.host().is_empty()) else {
        return Err(ConfigError::new(found, "has no host"));
    };
    if authority.as_str().contains('@') {
        let reason = format!("credentials in the URL are not supported; send them in {}", HEADERS.generic);
        return Err(ConfigError::hiding_value(found, reason));
    }
    match protocol {
        Protocol::Grpc => {
            if !matches!(url.path(), "" | "/") || url.query().is_some() {
                let reason = "an OTLP/gRPC endpoint has no path or query (the gRPC method is the path)";
                return Err(ConfigError::new(found, reason));
            }
            Ok(url)
        }
        Protocol::HttpProtobuf if append => {
            let path = format!("{}{HTTP_TRACES_PATH}", url.path().trim_end_matches('/'));
            let path_and_query = match url.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let mut parts = url.into_parts();
            parts.path_and_query =
                Some(path_and_query.parse().map_err(|e| ConfigError::new(found, format!("{e}")))?);
            Uri::from_parts(parts).map_err(|e| ConfigError::new(found, format!("not a URL: {e}")))
        }
        Protocol::HttpProtobuf => Ok(url),
    }
}

/// `name=value,name=value`, values percent-decoded. Values are never
/// printed: they are often credentials.
pub(super) fn headers(
    found: Found<'_>,
    protocol: Protocol,
) -> Result<Vec<(HeaderName, String)>, ConfigError> {
    let mut headers: Vec<(HeaderName, String)> = Vec::new();
    for (index, entry) in found.value.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let refuse = |reason: String| Err(ConfigError::hiding_value(found, reason));
        let Some((name, value)) = entry.split_once('=') else {
            return refuse(format!("entry {} is not name=value", index + 1));
        };
        let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
            return refuse(format!("entry {} does not start with a header name", index + 1));
        };
        if protocol == Protocol::Grpc && name.as_str().ends_with("-bin") {
            return refuse(format!("{name}: binary gRPC metadata is not supported"));
        }
        let Ok(value) = percent_decode_str(value.trim()).decode_utf8() else {
            return refuse(format!("{name}: the value is not UTF-8 once percent-decoded"));
        };
        if value.is_empty() {
            return refuse(format!("{name} has no value"));
        }
        if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return refuse(format!("{name}: the value must be printable ASCII (percent-decoded)"));
        }
        if headers.iter().any(|(seen, _)| *seen == name) {
            return refuse(format!("{name} is given twice"));
        }
        headers.push((name, value.into_owned()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(value: &str, protocol: Protocol, insecure: bool, append: bool) -> Result<String, ConfigError> {
        endpoint(Found { name: ENDPOINT.generic, value }, protocol, insecure, append).map(|u| u.to_string())
    }

    #[test]
    fn otlp_http_gets_its_traces_path_appended_to_a_generic_endpoint_only() {
        let http = Protocol::HttpProtobuf;
        assert_eq!(url("http://c:4318", http, false, true).unwrap(), "http://c:4318/v1/traces");
        assert_eq!(
            url("http://c:4318/base/?k=v", http, false, true).unwrap(),
            "http://c:4318/base/v1/traces?k=v"
        );
        assert_eq!(url("http://c:4318/mine", http, false, false).unwrap(), "http://c:4318/mine");
    }

    #[test]
    fn a_grpc_endpoint_without_a_scheme_is_https_unless_insecure_and_takes_no_path() {
        assert_eq!(url("c:4317", Protocol::Grpc, false, false).unwrap(), "https://c:4317/");
        assert_eq!(url("c:4317", Protocol::Grpc, true, false).unwrap(), "http://c:4317/");
        assert!(url("http://c:4317/v1/traces", Protocol::Grpc, false, false).is_err());
        assert!(url("c:4318", Protocol::HttpProtobuf, false, true).is_err(), "OTLP/HTTP needs a scheme");
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_showing_them() {
        let error = url("https://user:secret@c:4318", Protocol::HttpProtobuf, false, true).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
