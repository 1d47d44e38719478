//! `SERVICE1_CHANNEL`, in gRPC target syntax.

use std::net::SocketAddr;

use crate::upstream::Address;

/// Where service1 is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port`: one endpoint; a host name is resolved when connecting.
    Single(Address),
    /// `dns:///name:port`, or `dns://server:port/name:port` to ask that DNS
    /// server: every A/AAAA record is an endpoint, re-resolved over time.
    Dns { server: Option<SocketAddr>, name: String, port: u16 },
    /// `static:///a:port,b:port`: a fixed list.
    Static(Vec<Address>),
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
            let name = Address::parse(path).ok_or_else(invalid)?;
            return Ok(Self::Dns { server, name: name.host().to_string(), port: name.port() });
        }
        if let Some(list) = text.strip_prefix("static:///") {
            let endpoints = list.split(',').map(|e| Address::parse(e.trim()));
            return endpoints.collect::<Option<_>>().map(Self::Static).ok_or_else(invalid);
        }
        Address::parse(text).map(Self::Single).ok_or_else(invalid)
    }
}

/// `ip:port`, or a bare IP meaning port 53.
fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| text.parse().ok().map(|ip| SocketAddr::new(ip, 53)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(Target::parse("service1:50051"), Ok(Target::Single(address("service1:50051"))));
        assert_eq!(Target::parse("[::1]:50051"), Ok(Target::Single(address("[::1]:50051"))));
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
            Ok(Target::Static(vec![address("127.0.0.2:50051"), address("127.0.0.3:50051")]))
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
