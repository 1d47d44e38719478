//! `SERVICE1_CHANNEL`, in gRPC target syntax.

use std::net::SocketAddr;

/// Where service1 is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port`: one endpoint; a host name is resolved when connecting.
    Single(String),
    /// `dns:///name:port`, or `dns://server:port/name:port` to ask that DNS
    /// server: every A/AAAA record is an endpoint, re-resolved over time.
    Dns { server: Option<SocketAddr>, name: String, port: u16 },
    /// `static:///a:port,b:port`: a fixed list.
    Static(Vec<String>),
}

const EXPECTED: &str =
    "expected host:port, dns:///name:port, dns://dns-server:port/name:port or static:///host:port,host:port";

// === impl Target ===

impl Target {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("{text:?}: {EXPECTED}");
        if let Some(rest) = text.strip_prefix("dns://") {
            let (authority, path) = rest.split_once('/').ok_or_else(invalid)?;
            let server = match authority {
                "" => None,
                server => Some(parse_dns_server(server).ok_or_else(invalid)?),
            };
            let (name, port) = host_port(path).ok_or_else(invalid)?;
            return Ok(Self::Dns { server, name: name.to_owned(), port });
        }
        if let Some(list) = text.strip_prefix("static:///") {
            let endpoints: Vec<String> = list.split(',').map(str::trim).map(str::to_owned).collect();
            if endpoints.iter().any(|e| host_port(e).is_none()) {
                return Err(invalid());
            }
            return Ok(Self::Static(endpoints));
        }
        host_port(text).ok_or_else(invalid)?;
        Ok(Self::Single(text.to_owned()))
    }
}

/// `host:port` with a non-empty host (a name, IPv4, or bracketed IPv6) and
/// a port from 1 to 65535.
fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host_ok = !host.is_empty() && !host.contains(['/', '@', ' ', ',']);
    host_ok.then_some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// `ip:port`, or a bare IP meaning port 53.
fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| text.parse().ok().map(|ip| SocketAddr::new(ip, 53)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(Target::parse("service1:50051"), Ok(Target::Single("service1:50051".into())));
        assert_eq!(Target::parse("[::1]:50051"), Ok(Target::Single("[::1]:50051".into())));
        assert_eq!(
            Target::parse("dns:///service1.ns.svc.cluster.local:50051"),
            Ok(Target::Dns { server: None, name: "service1.ns.svc.cluster.local".into(), port: 50051 })
        );
        assert_eq!(
            Target::parse("dns://127.0.0.1:5353/service1.test:50051"),
            Ok(Target::Dns {
                server: Some("127.0.0.1:5353".parse().unwrap()),
                name: "service1.test".into(),
                port: 50051
            })
        );
        assert_eq!(
            Target::parse("dns://10.0.0.10/svc:1"),
            Ok(Target::Dns { server: Some("10.0.0.10:53".parse().unwrap()), name: "svc".into(), port: 1 })
        );
        assert_eq!(
            Target::parse("static:///127.0.0.2:50051,127.0.0.3:50051"),
            Ok(Target::Static(vec!["127.0.0.2:50051".into(), "127.0.0.3:50051".into()]))
        );
    }

    #[test]
    fn malformed_targets_are_rejected() {
        for bad in [
            "",
            "service1",
            "service1:",
            ":50051",
            "host:0",
            "host:70000",
            "http://h:1/x",
            "dns:///service1",
            "dns://not-an-ip/service1:1",
            "dns:/service1:1",
            "static:///a:1,b",
            "static:///",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
