//! Where one service1 replica is: the key the pool knows it by, and the
//! `endpoint` label of its metrics.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

/// One replica's address, parsed once: DNS finds IP addresses, and
/// `host:port` or static targets may name a host that is resolved on each
/// connect. Cheap to clone: each attempt of a call keeps a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Ip(SocketAddr),
    Name { host: Arc<str>, port: u16 },
}

// === impl Address ===

impl Address {
    /// `host:port` with a non-empty host (a name, IPv4, or bracketed IPv6)
    /// and a port from 1 to 65535.
    pub fn parse(text: &str) -> Option<Self> {
        let (host, port) = text.rsplit_once(':')?;
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        if host.is_empty() || host.contains(['/', '@', ' ', ',']) {
            return None;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(match host.parse::<IpAddr>() {
            Ok(ip) => Self::Ip(SocketAddr::new(ip, port)),
            Err(_) => Self::Name { host: host.into(), port },
        })
    }

    /// The host as OpenTelemetry's `server.address` wants it: an IPv6
    /// address without brackets.
    pub fn host(&self) -> impl fmt::Display + '_ {
        struct Host<'a>(&'a Address);
        impl fmt::Display for Host<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Address::Ip(addr) => addr.ip().fmt(f),
                    Address::Name { host, .. } => f.write_str(host),
                }
            }
        }
        Host(self)
    }

    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(addr) => addr.port(),
            Self::Name { port, .. } => *port,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Self::Ip(addr)
    }
}

/// `10.0.0.7:50051`, `[fd00::7]:50051`, `service1:50051`: what logs and
/// the `endpoint` label show, and the authority calls are sent to.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => addr.fmt(f),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_host_names_parse_and_display_as_written() {
        for text in
            ["127.0.0.1:50051", "[::1]:50051", "[fd00::7]:1", "service1:50051", "svc.ns.svc.cluster.local:1"]
        {
            let address = Address::parse(text).expect(text);
            assert_eq!(address.to_string(), text);
        }
    }

    #[test]
    fn an_ip_address_is_one_whether_dns_found_it_or_a_target_named_it() {
        let found = Address::from("10.0.0.7:50051".parse::<SocketAddr>().unwrap());

        assert_eq!(Address::parse("10.0.0.7:50051"), Some(found));
    }

    #[test]
    fn the_host_of_an_ipv6_address_has_no_brackets() {
        let address = Address::parse("[::1]:50051").unwrap();

        assert_eq!((address.host().to_string(), address.port()), ("::1".to_owned(), 50051));
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in ["", "service1", "service1:", ":50051", "host:0", "host:70000", "h/x:1", "a b:1", "a,b:1"]
        {
            assert_eq!(Address::parse(bad), None, "{bad}");
        }
    }
}
