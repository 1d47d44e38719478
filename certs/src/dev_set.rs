//! The development set that `make certs` keeps in `certs/dev`: a CA,
//! service1's server certificate and service2's client certificate, written
//! by [`write_dev_set`] and left alone while still usable.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::KeyPair;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::pki::{key_matches, pem_to_der, unix_seconds, Authority, LeafSpec};
use crate::Error;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

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

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
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

    fn default_sans() -> Vec<String> {
        DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect()
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
