//! Development TLS material for the service1/service2 mTLS setup.
//!
//! [`Authority`] is a throw-away certificate authority that issues leaf
//! certificates described by a [`LeafSpec`]; tests use it to make good and
//! deliberately broken certificates. [`write_dev_set`] writes the complete
//! development set (CA, service1 server cert, service2 client cert) into a
//! directory, and leaves an existing set alone while it is still usable.
//!
//! Everything here is for development and tests only: the CA key is written
//! next to the certificates it signed.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How far back `not_before` is put by default, so that small clock skew
/// between machines does not make a fresh certificate "not yet valid".
const BACKDATE: Duration = HOUR;
/// Lifetime of the CA made by [`Authority::new`].
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime of the leaves made by [`LeafSpec::server`] and [`LeafSpec::client`].
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// [`write_dev_set`] re-issues a set that expires sooner than this.
const MIN_REMAINING: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Common name of the CA written by [`write_dev_set`].
pub const DEV_CA_NAME: &str = "certgen development CA";
/// Common name and DNS SAN of service1's server certificate.
pub const SERVICE1_NAME: &str = "service1";
/// Common name and DNS SAN of service2's client certificate.
pub const SERVICE2_NAME: &str = "service2";
/// URI SAN (SPIFFE ID) of service2's client certificate.
pub const SERVICE2_SPIFFE_ID: &str = "spiffe://cluster.local/ns/default/sa/service2";

/// The files [`write_dev_set`] writes, in the order it writes them.
pub const DEV_SET_FILES: [&str; 6] =
    [CA_CERT_FILE, CA_KEY_FILE, SERVICE1_CERT_FILE, SERVICE1_KEY_FILE, SERVICE2_CERT_FILE, SERVICE2_KEY_FILE];
const CA_CERT_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca.key";
const SERVICE1_CERT_FILE: &str = "service1.crt";
const SERVICE1_KEY_FILE: &str = "service1.key";
const SERVICE2_CERT_FILE: &str = "service2.crt";
const SERVICE2_KEY_FILE: &str = "service2.key";

/// Names service1's certificate covers unless told otherwise: the compose
/// service name, loopback, and the Kubernetes Service names in `default`.
pub const DEFAULT_SERVER_SANS: &[&str] = &[
    "service1",
    "localhost",
    "127.0.0.1",
    "::1",
    "service1.default",
    "service1.default.svc",
    "service1.default.svc.cluster.local",
    "service1-grpc",
    "service1-grpc.default.svc",
    "service1-grpc.default.svc.cluster.local",
];

/// What can go wrong while making or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The input makes no sense (bad SAN, unrepresentable time, ...).
    #[error("{0}")]
    Invalid(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

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
    /// e.g. the `ca.crt` and `ca.key` written by [`write_dev_set`].
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
        let serial_hex = hex(&serial.to_bytes());
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

/// Writes `ca.crt`, `ca.key`, `service1.crt`, `service1.key`, `service2.crt`
/// and `service2.key` into `dir` (created if missing).
///
/// Idempotent: if all six files exist, parse, chain to `ca.crt`, cover all
/// requested SANs and are valid for at least 30 more days, it writes nothing
/// and returns `Ok(false)`. Otherwise (or with `force`) it writes a fresh
/// complete set and returns `Ok(true)`.
///
/// Keys get mode 0600 (on Unix). Each file is written to a temporary file in
/// `dir` and renamed into place, so a reader never sees half a file.
pub fn write_dev_set(dir: &Path, server_sans: &[String], force: bool) -> Result<bool, Error> {
    if server_sans.is_empty() {
        return Err(Error::Invalid("service1 needs at least one subject alternative name".into()));
    }
    let san_refs: Vec<&str> = server_sans.iter().map(String::as_str).collect();
    if !force && check_dev_set(dir, &san_refs).is_ok() {
        return Ok(false);
    }

    // Make the whole set in memory first: a bad SAN fails before anything is written.
    let ca = Authority::new(DEV_CA_NAME)?;
    let service1 = ca.issue(&LeafSpec::server(SERVICE1_NAME, &san_refs))?;
    let service2 = ca.issue(&LeafSpec::client(SERVICE2_NAME).with_uri(SERVICE2_SPIFFE_ID))?;

    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let ca_key = ca.key_pem();
    let ca_cert = ca.cert_pem();
    let files: [(&str, &str, Secrecy); 6] = [
        (CA_CERT_FILE, &ca_cert, Secrecy::Public),
        (CA_KEY_FILE, &ca_key, Secrecy::Private),
        (SERVICE1_CERT_FILE, &service1.cert_pem, Secrecy::Public),
        (SERVICE1_KEY_FILE, &service1.key_pem, Secrecy::Private),
        (SERVICE2_CERT_FILE, &service2.cert_pem, Secrecy::Public),
        (SERVICE2_KEY_FILE, &service2.key_pem, Secrecy::Private),
    ];
    for (name, contents, secrecy) in files {
        write_atomic(&dir.join(name), contents.as_bytes(), secrecy)?;
    }
    Ok(true)
}

/// Why an existing set in `dir` is not good enough, or `Ok` if it is.
fn check_dev_set(dir: &Path, server_sans: &[&str]) -> Result<(), String> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let der = |name: &str| pem_to_der(&read(name)?).map_err(|e| format!("{name}: {e}"));

    let ca_der = der(CA_CERT_FILE)?;
    let ca = parse_cert(CA_CERT_FILE, &ca_der)?;
    if !ca.is_ca() {
        return Err(format!("{CA_CERT_FILE} is not a CA certificate"));
    }
    ca.verify_signature(None).map_err(|e| format!("{CA_CERT_FILE} is not self-signed: {e}"))?;
    check_key(CA_KEY_FILE, &read(CA_KEY_FILE)?, &ca)?;
    check_lifetime(CA_CERT_FILE, &ca)?;

    let s1_der = der(SERVICE1_CERT_FILE)?;
    let s1 = parse_cert(SERVICE1_CERT_FILE, &s1_der)?;
    check_leaf(SERVICE1_CERT_FILE, &s1, &ca)?;
    check_key(SERVICE1_KEY_FILE, &read(SERVICE1_KEY_FILE)?, &s1)?;
    let (server_auth, _) = ekus(&s1)?;
    if !server_auth {
        return Err(format!("{SERVICE1_CERT_FILE} lacks the serverAuth usage"));
    }
    let names = SanSet::of(&s1)?;
    for san in server_sans {
        if !names.covers(san) {
            return Err(format!("{SERVICE1_CERT_FILE} does not cover {san}"));
        }
    }

    let s2_der = der(SERVICE2_CERT_FILE)?;
    let s2 = parse_cert(SERVICE2_CERT_FILE, &s2_der)?;
    check_leaf(SERVICE2_CERT_FILE, &s2, &ca)?;
    check_key(SERVICE2_KEY_FILE, &read(SERVICE2_KEY_FILE)?, &s2)?;
    let (_, client_auth) = ekus(&s2)?;
    if !client_auth {
        return Err(format!("{SERVICE2_CERT_FILE} lacks the clientAuth usage"));
    }
    let names = SanSet::of(&s2)?;
    if !names.covers(SERVICE2_NAME) || !names.uris.iter().any(|u| u == SERVICE2_SPIFFE_ID) {
        return Err(format!("{SERVICE2_CERT_FILE} does not carry {SERVICE2_NAME} and {SERVICE2_SPIFFE_ID}"));
    }
    Ok(())
}

fn parse_cert<'a>(name: &str, der: &'a [u8]) -> Result<X509Certificate<'a>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| format!("{name} does not parse: {e}"))
}

fn check_leaf(name: &str, leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> Result<(), String> {
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err(format!("{name} was not issued by {CA_CERT_FILE}"));
    }
    leaf.verify_signature(Some(ca.public_key()))
        .map_err(|e| format!("{name} is not signed by {CA_CERT_FILE}: {e}"))?;
    check_lifetime(name, leaf)
}

fn check_lifetime(name: &str, cert: &X509Certificate<'_>) -> Result<(), String> {
    let now = unix_seconds(SystemTime::now());
    let validity = cert.validity();
    if validity.not_before.timestamp() > now {
        return Err(format!("{name} is not valid yet"));
    }
    let min_remaining = i64::try_from(MIN_REMAINING.as_secs()).unwrap_or(i64::MAX);
    if validity.not_after.timestamp() < now.saturating_add(min_remaining) {
        return Err(format!("{name} expires within {} days", MIN_REMAINING.as_secs() / DAY.as_secs()));
    }
    Ok(())
}

fn check_key(name: &str, pem: &str, cert: &X509Certificate<'_>) -> Result<(), String> {
    let key = KeyPair::from_pem(pem).map_err(|e| format!("{name} does not parse: {e}"))?;
    if !key_matches(cert, &key) {
        return Err(format!("{name} does not belong to its certificate"));
    }
    Ok(())
}

/// `(serverAuth, clientAuth)`; a certificate without the extension allows both.
fn ekus(cert: &X509Certificate<'_>) -> Result<(bool, bool), String> {
    match cert.extended_key_usage() {
        Ok(None) => Ok((true, true)),
        Ok(Some(ext)) => {
            let eku = ext.value;
            Ok((eku.any || eku.server_auth, eku.any || eku.client_auth))
        }
        Err(e) => Err(format!("extended key usage does not parse: {e}")),
    }
}

/// The subject alternative names of a certificate.
#[derive(Default)]
struct SanSet {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    uris: Vec<String>,
}

impl SanSet {
    fn of(cert: &X509Certificate<'_>) -> Result<Self, String> {
        let mut set = Self::default();
        let Some(ext) = cert
            .subject_alternative_name()
            .map_err(|e| format!("subject alternative names do not parse: {e}"))?
        else {
            return Ok(set);
        };
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => set.dns.push(dns.to_ascii_lowercase()),
                GeneralName::URI(uri) => set.uris.push((*uri).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        set.ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        set.ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
        Ok(set)
    }

    /// Exact match: an IP SAN for an IP, else a DNS SAN (case-insensitive).
    fn covers(&self, san: &str) -> bool {
        match san.parse::<IpAddr>() {
            Ok(ip) => self.ips.contains(&ip),
            Err(_) => self.dns.iter().any(|d| d.eq_ignore_ascii_case(san)),
        }
    }
}

fn key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, Error> {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn to_offset(t: SystemTime) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(unix_seconds(t))
        .map_err(|e| Error::Invalid(format!("time out of range for a certificate: {e}")))
}

#[derive(Clone, Copy)]
enum Secrecy {
    /// Mode 0644 (before umask).
    Public,
    /// Mode 0600.
    Private,
}

/// Writes `contents` to `path` via a temporary file in the same directory
/// and a rename, so readers see either the old or the new file, never a mix.
fn write_atomic(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name =
        path.file_name().ok_or_else(|| Error::Invalid(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));

    // A leftover from a crashed run may have the wrong mode; start afresh.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(&tmp)(e)),
        _ => {}
    }
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(match secrecy {
                Secrecy::Public => 0o644,
                Secrecy::Private => 0o600,
            });
        }
        #[cfg(not(unix))]
        let _ = secrecy;
        let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
        file.write_all(contents).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        fs::rename(&tmp, path).map_err(io_error(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_pem(pem: &str) -> Vec<u8> {
        pem_to_der(pem).expect("PEM certificate")
    }

    fn default_sans() -> Vec<String> {
        DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn issued_server_cert_carries_every_san_and_chains_to_the_ca() {
        let ca = Authority::new("test CA").unwrap();
        let leaf = ca.issue(&LeafSpec::server("service1", DEFAULT_SERVER_SANS)).unwrap();

        let ca_der = parse_pem(&ca.cert_pem());
        let ca_cert = parse_cert("ca", &ca_der).unwrap();
        let der = parse_pem(&leaf.cert_pem);
        let cert = parse_cert("leaf", &der).unwrap();

        cert.verify_signature(Some(ca_cert.public_key())).expect("leaf is signed by the CA");
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
        let sans = SanSet::of(&cert).unwrap();
        for san in DEFAULT_SERVER_SANS {
            assert!(sans.covers(san), "missing SAN {san}");
        }
        assert!(sans.ips.contains(&"::1".parse().unwrap()));
        assert!(!sans.dns.iter().any(|d| d == "127.0.0.1"), "IPs are not DNS SANs");
        assert_eq!(ekus(&cert).unwrap(), (true, false));
        assert!(!cert.is_ca());
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), "service1");
        check_key("leaf key", &leaf.key_pem, &cert).unwrap();
    }

    #[test]
    fn issued_client_cert_carries_its_dns_and_uri_sans_and_only_client_auth() {
        let ca = Authority::new("test CA").unwrap();
        let leaf = ca.issue(&LeafSpec::client("service2").with_uri(SERVICE2_SPIFFE_ID)).unwrap();
        let der = parse_pem(&leaf.cert_pem);
        let cert = parse_cert("leaf", &der).unwrap();
        let sans = SanSet::of(&cert).unwrap();
        assert_eq!(sans.dns, ["service2"]);
        assert_eq!(sans.uris, [SERVICE2_SPIFFE_ID]);
        assert!(sans.ips.is_empty());
        assert_eq!(ekus(&cert).unwrap(), (false, true));
    }

    #[test]
    fn usage_both_grants_server_and_client_auth() {
        let ca = Authority::new("test CA").unwrap();
        let mut spec = LeafSpec::server("x", &["x"]);
        spec.usage = Usage::Both;
        let der = parse_pem(&ca.issue(&spec).unwrap().cert_pem);
        assert_eq!(ekus(&parse_cert("x", &der).unwrap()).unwrap(), (true, true));
    }

    #[test]
    fn the_ca_is_a_ca_valid_from_an_hour_ago_for_ten_years() {
        let ca = Authority::new("My CA").unwrap();
        let der = parse_pem(&ca.cert_pem());
        let cert = parse_cert("ca", &der).unwrap();
        assert!(cert.is_ca());
        cert.verify_signature(None).expect("self-signed");
        let now = unix_seconds(SystemTime::now());
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        assert!((now - 3600 - 60..=now - 3600 + 60).contains(&not_before));
        assert_eq!(not_after - not_before, 10 * 365 * 86_400);
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), "My CA");
    }

    #[test]
    fn leaves_default_to_an_hour_ago_until_a_year_later() {
        let spec = LeafSpec::client("c");
        let lifetime = spec.not_after.duration_since(spec.not_before).unwrap();
        assert_eq!(lifetime, LEAF_LIFETIME);
        let age = SystemTime::now().duration_since(spec.not_before).unwrap();
        assert!(age >= HOUR && age < HOUR + Duration::from_secs(60));
    }

    #[test]
    fn an_expired_leaf_can_be_made_for_tests() {
        let ca = Authority::new("test CA").unwrap();
        let now = SystemTime::now();
        let spec = LeafSpec::server("service1", &["service1"]).valid_between(now - 10 * DAY, now - DAY);
        let leaf = ca.issue(&spec).unwrap();
        let der = parse_pem(&leaf.cert_pem);
        let cert = parse_cert("leaf", &der).unwrap();
        assert!(!cert.validity().is_valid());
        assert!(cert.validity().not_after.timestamp() < unix_seconds(now));
        let ca_der = parse_pem(&ca.cert_pem());
        cert.verify_signature(Some(parse_cert("ca", &ca_der).unwrap().public_key()))
            .expect("still signed by the CA");
    }

    #[test]
    fn a_not_yet_valid_leaf_can_be_made_for_tests() {
        let ca = Authority::new("test CA").unwrap();
        let now = SystemTime::now();
        let spec = LeafSpec::client("c").valid_between(now + DAY, now + 2 * DAY);
        let der = parse_pem(&ca.issue(&spec).unwrap().cert_pem);
        let cert = parse_cert("leaf", &der).unwrap();
        assert!(cert.validity().not_before.timestamp() > unix_seconds(now));
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
            let der = parse_pem(&leaf.cert_pem);
            let cert = parse_cert("leaf", &der).unwrap();
            assert_eq!(hex(cert.raw_serial()), leaf.serial_hex);
        }
    }

    #[test]
    fn the_authority_round_trips_through_pem() {
        let ca = Authority::new("test CA").unwrap();
        let again = Authority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let leaf = again.issue(&LeafSpec::client("c")).unwrap();
        let ca_der = parse_pem(&ca.cert_pem());
        let ca_cert = parse_cert("ca", &ca_der).unwrap();
        let der = parse_pem(&leaf.cert_pem);
        let cert = parse_cert("leaf", &der).unwrap();
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

    #[test]
    fn the_default_sans_cover_compose_loopback_and_kubernetes() {
        let spec = LeafSpec::server("service1", DEFAULT_SERVER_SANS);
        assert_eq!(spec.ip_addresses, ["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        for name in [
            "service1",
            "localhost",
            "service1.default.svc.cluster.local",
            "service1-grpc.default.svc.cluster.local",
        ] {
            assert!(spec.dns_names.iter().any(|d| d == name), "{name}");
        }
    }

    #[test]
    fn a_fresh_dev_set_passes_its_own_check() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_dev_set(dir.path(), &default_sans(), false).unwrap());
        check_dev_set(dir.path(), DEFAULT_SERVER_SANS).unwrap();
    }
}
