//! A throw-away PKI: a self-signed [`Authority`] that issues leaf
//! certificates exactly as a [`LeafSpec`] describes them, including expired,
//! not-yet-valid or wrong-usage ones when a test asks for them.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::Error;

const HOUR: Duration = Duration::from_secs(60 * 60);

/// How far back `not_before` is put by default, so that small clock skew
/// between machines does not make a fresh certificate "not yet valid".
const BACKDATE: Duration = HOUR;
/// Lifetime of the CA made by [`Authority::new`].
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime of the leaves made by [`LeafSpec::server`] and [`LeafSpec::client`].
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A self-signed certificate authority: its certificate and its key.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl Authority {
    /// Self-signed CA, valid from 1 hour ago for 10 years, CN = `common_name`.
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = to_offset(now - BACKDATE)?;
        params.not_after = to_offset(now - BACKDATE + CA_LIFETIME)?;
        params.serial_number = Some(random_serial()?);

        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// Re-loads a CA from its PEM certificate and PEM (PKCS#8) private key,
    /// e.g. the `ca.crt` and `ca.key` written by [`write_dev_set`](crate::write_dev_set).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = pem_to_der(cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Error::Invalid(format!("CA certificate does not parse: {e}")))?;
        if !key_matches(&cert, &key) {
            return Err(Error::Invalid("CA key does not belong to the CA certificate".into()));
        }
        Ok(Self { cert_pem: cert_pem.to_owned(), issuer: Issuer::from_ca_cert_der(&der.into(), key)? })
    }

    /// The CA certificate, PEM encoded.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM encoded (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf certificate with a fresh key pair and a random serial.
    ///
    /// The spec is taken as is, so expired, not-yet-valid or wrong-usage
    /// certificates can be made on purpose.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(&spec.common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match spec.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Both => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_offset(spec.not_before)?;
        params.not_after = to_offset(spec.not_after)?;

        let mut sans = Vec::new();
        for name in &spec.dns_names {
            sans.push(SanType::DnsName(ia5("DNS name", name)?));
        }
        sans.extend(spec.ip_addresses.iter().copied().map(SanType::IpAddress));
        for uri in &spec.uris {
            sans.push(SanType::URI(ia5("URI", uri)?));
        }
        params.subject_alt_names = sans;

        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);

        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial_hex })
    }
}

/// Which extended key usage a leaf gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// `serverAuth` only.
    Server,
    /// `clientAuth` only.
    Client,
    /// Both `serverAuth` and `clientAuth`.
    Both,
}

/// Everything that varies between the leaf certificates [`Authority::issue`] makes.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// URI SANs, e.g. `spiffe://cluster.local/ns/default/sa/service2`.
    pub uris: Vec<String>,
    pub usage: Usage,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl LeafSpec {
    /// Server cert; each entry of `sans` that parses as an IP address becomes
    /// an IP SAN, else a DNS SAN. Valid 1 h ago .. +1 year.
    pub fn server(common_name: &str, sans: &[&str]) -> Self {
        let mut spec = Self::blank(common_name, Usage::Server);
        for san in sans {
            match san.parse::<IpAddr>() {
                Ok(ip) => spec.ip_addresses.push(ip),
                Err(_) => spec.dns_names.push((*san).to_owned()),
            }
        }
        spec
    }

    /// Client cert with DNS SAN = `name`. Valid 1 h ago .. +1 year.
    pub fn client(name: &str) -> Self {
        let mut spec = Self::blank(name, Usage::Client);
        spec.dns_names.push(name.to_owned());
        spec
    }

    /// Replaces the validity period (either end may lie in the past).
    pub fn valid_between(self, not_before: SystemTime, not_after: SystemTime) -> Self {
        Self { not_before, not_after, ..self }
    }

    /// Adds a URI SAN.
    pub fn with_uri(mut self, uri: &str) -> Self {
        self.uris.push(uri.to_owned());
        self
    }

    fn blank(common_name: &str, usage: Usage) -> Self {
        let now = SystemTime::now();
        Self {
            common_name: common_name.to_owned(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            usage,
            not_before: now - BACKDATE,
            not_after: now - BACKDATE + LEAF_LIFETIME,
        }
    }
}

/// An issued leaf certificate and its private key.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate, PEM encoded.
    pub cert_pem: String,
    /// The private key, PEM encoded (PKCS#8).
    pub key_pem: String,
    /// The serial number as lowercase hex without separators; random per certificate.
    pub serial_hex: String,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf").field("serial_hex", &self.serial_hex).finish_non_exhaustive()
    }
}

pub(crate) fn key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
}

pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>, Error> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| Error::Invalid(format!("not a PEM certificate: {e}")))?;
    if block.label != "CERTIFICATE" {
        return Err(Error::Invalid(format!("expected a CERTIFICATE PEM block, found {}", block.label)));
    }
    Ok(block.contents)
}

fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ia5(what: &str, value: &str) -> Result<Ia5String, Error> {
    Ia5String::try_from(value).map_err(|_| Error::Invalid(format!("{what} {value:?} is not plain ASCII")))
}

/// 16 random bytes, first byte in 0x40..=0x7f: positive and always 16 bytes
/// long once DER-encoded, so the hex in [`Leaf::serial_hex`] matches the certificate.
fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Invalid("the system random number generator failed".into()))?;
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn to_offset(t: SystemTime) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(unix_seconds(t))
        .map_err(|e| Error::Invalid(format!("time out of range for a certificate: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn der(pem: &str) -> Vec<u8> {
        pem_to_der(pem).expect("PEM certificate")
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der).expect("DER certificate").1
    }

    fn common_name<'a>(cert: &'a X509Certificate<'_>) -> &'a str {
        cert.subject().iter_common_name().next().unwrap().as_str().unwrap()
    }

    /// Subject alternative names as OpenSSL prints them: `DNS:..`, `IP:..`, `URI:..`.
    fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
        use x509_parser::extensions::GeneralName;
        let ext = cert.subject_alternative_name().unwrap().expect("SAN extension");
        ext.value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                GeneralName::URI(uri) => format!("URI:{uri}"),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => format!("IP:{}", IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap())),
                    _ => format!("IP:{}", IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap())),
                },
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// `(serverAuth, clientAuth)`.
    fn ekus(cert: &X509Certificate<'_>) -> (bool, bool) {
        let eku = cert.extended_key_usage().unwrap().expect("EKU extension").value;
        (eku.server_auth, eku.client_auth)
    }

    #[test]
    fn issued_server_cert_carries_every_san_and_chains_to_the_ca() {
        let ca = Authority::new("test CA").unwrap();
        let leaf =
            ca.issue(&LeafSpec::server("service1", &["service1", "localhost", "127.0.0.1", "::1"])).unwrap();

        let ca_der = der(&ca.cert_pem());
        let ca_cert = parse(&ca_der);
        let leaf_der = der(&leaf.cert_pem);
        let cert = parse(&leaf_der);

        cert.verify_signature(Some(ca_cert.public_key())).expect("leaf is signed by the CA");
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
        // IP addresses become IP SANs, not DNS SANs.
        assert_eq!(sans(&cert), ["DNS:service1", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]);
        assert_eq!(ekus(&cert), (true, false));
        assert!(!cert.is_ca());
        assert_eq!(common_name(&cert), "service1");
        assert!(key_matches(&cert, &KeyPair::from_pem(&leaf.key_pem).unwrap()));
    }

    #[test]
    fn issued_client_cert_carries_its_dns_and_uri_sans_and_only_client_auth() {
        let ca = Authority::new("test CA").unwrap();
        let spiffe = "spiffe://cluster.local/ns/default/sa/service2";
        let leaf = ca.issue(&LeafSpec::client("service2").with_uri(spiffe)).unwrap();
        let leaf_der = der(&leaf.cert_pem);
        let cert = parse(&leaf_der);
        assert_eq!(sans(&cert), ["DNS:service2".to_string(), format!("URI:{spiffe}")]);
        assert_eq!(ekus(&cert), (false, true));
    }

    #[test]
    fn usage_both_grants_server_and_client_auth() {
        let ca = Authority::new("test CA").unwrap();
        let spec = LeafSpec { usage: Usage::Both, ..LeafSpec::server("x", &["x"]) };
        let leaf_der = der(&ca.issue(&spec).unwrap().cert_pem);
        assert_eq!(ekus(&parse(&leaf_der)), (true, true));
    }

    #[test]
    fn the_ca_is_a_ca_valid_from_an_hour_ago_for_ten_years() {
        let ca = Authority::new("My CA").unwrap();
        let ca_der = der(&ca.cert_pem());
        let cert = parse(&ca_der);
        assert!(cert.is_ca());
        cert.verify_signature(None).expect("self-signed");
        let now = unix_seconds(SystemTime::now());
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        assert!((now - 3600 - 60..=now - 3600 + 60).contains(&not_before));
        assert_eq!(not_after - not_before, 10 * 365 * 86_400);
        assert_eq!(common_name(&cert), "My CA");
    }

    #[test]
    fn leaves_default_to_an_hour_ago_until_a_year_later() {
        let spec = LeafSpec::client("c");
        let lifetime = spec.not_after.duration_since(spec.not_before).unwrap();
        assert_eq!(lifetime, 365 * DAY);
        let age = SystemTime::now().duration_since(spec.not_before).unwrap();
        assert!(age >= HOUR && age < HOUR + Duration::from_secs(60));
    }

    #[test]
    fn an_expired_leaf_can_be_made_for_tests() {
        let ca = Authority::new("test CA").unwrap();
        let now = SystemTime::now();
        let spec = LeafSpec::server("service1", &["service1"]).valid_between(now - 10 * DAY, now - DAY);
        let leaf_der = der(&ca.issue(&spec).unwrap().cert_pem);
        let cert = parse(&leaf_der);
        assert!(!cert.validity().is_valid());
        assert!(cert.validity().not_after.timestamp() < unix_seconds(now));
        let ca_der = der(&ca.cert_pem());
        cert.verify_signature(Some(parse(&ca_der).public_key())).expect("still signed by the CA");
    }

    #[test]
    fn a_not_yet_valid_leaf_can_be_made_for_tests() {
        let ca = Authority::new("test CA").unwrap();
        let now = SystemTime::now();
        let spec = LeafSpec::client("c").valid_between(now + DAY, now + 2 * DAY);
        let leaf_der = der(&ca.issue(&spec).unwrap().cert_pem);
        assert!(parse(&leaf_der).validity().not_before.timestamp() > unix_seconds(now));
    }

    #[test]
    fn every_issued_cert_gets_a_fresh_random_serial_in_lowercase_hex() {
        let ca = Authority::new("test CA").unwrap();
        let spec = LeafSpec::client("c");
        let a = ca.issue(&spec).unwrap();
        let b = ca.issue(&spec).unwrap();
        assert_ne!(a.serial_hex, b.serial_hex);
        for leaf in [&a, &b] {
            assert_eq!(leaf.serial_hex.len(), 32);
            assert!(leaf.serial_hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
            let leaf_der = der(&leaf.cert_pem);
            assert_eq!(hex::encode(parse(&leaf_der).raw_serial()), leaf.serial_hex);
        }
    }

    #[test]
    fn the_authority_round_trips_through_pem() {
        let ca = Authority::new("test CA").unwrap();
        let again = Authority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let leaf = again.issue(&LeafSpec::client("c")).unwrap();
        let ca_der = der(&ca.cert_pem());
        let ca_cert = parse(&ca_der);
        let leaf_der = der(&leaf.cert_pem);
        let cert = parse(&leaf_der);
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    }

    #[test]
    fn an_authority_with_someone_elses_key_is_refused() {
        let ca = Authority::new("a").unwrap();
        let other = Authority::new("b").unwrap();
        let err = Authority::from_pem(&ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }

    #[test]
    fn a_non_ascii_san_is_rejected() {
        let ca = Authority::new("test CA").unwrap();
        let err = ca.issue(&LeafSpec::server("s", &["bücher.example"])).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }
}
