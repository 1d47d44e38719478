//! Who a certificate says its holder is: its DNS and URI SANs, each kept
//! with its type. An allow-list entry (`TLS_ALLOWED_CLIENTS`,
//! `TLS_SERVER_IDENTITY`) matches only a SAN of its own type, so a DNS SAN
//! spelled like a SPIFFE ID cannot pass a SPIFFE allow-list (the threat
//! `tls.spiffeOnly` is there for), nor a URI SAN spelled `service2` a DNS
//! one.
//!
//! The SANs come from the peer, so anything that logs them logs at most a
//! few, each cut short, and says how many it left out ([`Logged`]).

use std::fmt;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// One name on a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// A DNS SAN, such as `service2`.
    Dns(Box<str>),
    /// A URI SAN, such as `spiffe://cluster.local/ns/default/sa/service2`.
    Uri(Box<str>),
}

/// Identities a log line shows; the rest are counted.
const LOGGED: usize = 4;
/// Bytes of each identity a log line shows.
const LOGGED_BYTES: usize = 128;

impl Identity {
    /// An allow-list entry: with a scheme (`spiffe://…`, `https://…`) it
    /// names a URI SAN, else a DNS SAN. A DNS name never holds `://`.
    pub fn from_entry(entry: &str) -> Self {
        let entry = entry.trim();
        if entry.contains("://") {
            Self::Uri(entry.into())
        } else {
            Self::Dns(entry.into())
        }
    }

    /// The SAN type, as OpenSSL prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "DNS",
            Self::Uri(_) => "URI",
        }
    }

    /// The name, without its type.
    pub fn name(&self) -> &str {
        match self {
            Self::Dns(name) | Self::Uri(name) => name,
        }
    }
}

/// As OpenSSL prints SANs: `DNS:service2`, `URI:spiffe://…`.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// The identities a certificate names: its DNS and URI SANs, in order.
pub fn identities(cert: &CertificateDer<'_>) -> Vec<Identity> {
    let Ok((_, parsed)) = X509Certificate::from_der(cert) else {
        return Vec::new();
    };
    let Ok(Some(sans)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(Identity::Dns((*dns).into())),
            GeneralName::URI(uri) => Some(Identity::Uri((*uri).into())),
            _ => None,
        })
        .collect()
}

/// A peer's identities for a log line, bounded whatever the certificate
/// holds: the first [`LOGGED`], each cut to [`LOGGED_BYTES`], then how many
/// more there are. A certificate with 5,000 SANs costs a line of a few
/// hundred bytes.
pub struct Logged<'a>(pub &'a [Identity]);

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, identity) in self.0.iter().take(LOGGED).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}:{}", identity.kind(), crate::log_text::cut(identity.name(), LOGGED_BYTES))?;
        }
        if self.0.len() > LOGGED {
            write!(f, " (+{} more)", self.0.len() - LOGGED)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use certgen::{Authority, LeafSpec};
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn an_entry_with_a_scheme_names_a_uri_san_and_any_other_a_dns_san() {
        assert_eq!(
            Identity::from_entry(" spiffe://cluster.local/ns/a/sa/b "),
            Identity::Uri("spiffe://cluster.local/ns/a/sa/b".into())
        );
        assert_eq!(Identity::from_entry("service2"), Identity::Dns("service2".into()));
    }

    #[test]
    fn the_same_text_as_another_type_is_another_identity() {
        let spiffe = "spiffe://cluster.local/ns/default/sa/service2";
        assert_ne!(Identity::Dns(spiffe.into()), Identity::from_entry(spiffe));
        assert_ne!(Identity::Uri("service2".into()), Identity::from_entry("service2"));
    }

    #[test]
    fn a_log_line_shows_a_few_identities_each_cut_short_and_counts_the_rest() {
        let many: Vec<Identity> = (0..5000).map(|i| Identity::Dns(format!("{i:0>300}").into())).collect();

        let line = Logged(&many).to_string();

        assert!(line.len() < 4 * (LOGGED_BYTES + 8) + 32, "{} bytes", line.len());
        assert!(line.ends_with(" (+4996 more)"), "{line}");
        assert_eq!(line.matches("DNS:").count(), LOGGED);
    }

    #[test]
    fn a_short_list_is_shown_whole() {
        let two = [Identity::Dns("service2".into()), Identity::Uri("spiffe://c/ns/d/sa/s".into())];

        assert_eq!(Logged(&two).to_string(), "DNS:service2, URI:spiffe://c/ns/d/sa/s");
    }

    #[test]
    fn identities_are_the_dns_and_uri_sans_each_with_its_type() {
        let ca = Authority::new("ca").unwrap();
        let leaf =
            ca.issue(&LeafSpec::client("service2").with_uri("spiffe://cluster.local/ns/x/sa/y")).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();

        assert_eq!(
            identities(&der),
            [Identity::Dns("service2".into()), Identity::Uri("spiffe://cluster.local/ns/x/sa/y".into())]
        );
    }
}
