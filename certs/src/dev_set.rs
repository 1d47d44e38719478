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
use x509_parser::time::ASN1Time;

use crate::pki::{key_matches, pem_to_der, unix_seconds, Authority, LeafSpec};
use crate::Error;

/// [`write_dev_set`] re-issues a set that expires sooner than this, so
/// `make certs` renews it well before the services would start refusing it.
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
/// Idempotent: a set that is still usable (all six files there, keys
/// matching, leaves signed by `ca.crt`, every requested SAN covered, valid
/// for at least 30 more days) is left as it is and `Ok(false)` returned.
/// Anything else, or `force`, gets a fresh complete set and `Ok(true)`.
///
/// Keys get mode 0600 (on Unix). Each file is written to a temporary file in
/// `dir` and renamed into place, so a reader never sees half a file.
pub fn write_dev_set(dir: &Path, server_sans: &[String], force: bool) -> Result<bool, Error> {
    if server_sans.is_empty() {
        return Err(Error::Invalid("service1 needs at least one subject alternative name".into()));
    }
    let san_refs: Vec<&str> = server_sans.iter().map(String::as_str).collect();
    if !force && is_usable(dir, &san_refs) {
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

/// Whether the set in `dir` can stay as it is: every file there and
/// readable, each key belonging to its certificate, `ca.crt` a CA that
/// signed both leaves, all three valid now and for [`MIN_REMAINING`] more,
/// service1's certificate naming every requested SAN and service2's its name
/// and SPIFFE ID. A set made by hand passes as well as one certgen wrote.
///
/// Yes or no, nothing more: writing a new set is cheap and always right, so
/// anything in doubt is rewritten, and why it failed does not matter.
fn is_usable(dir: &Path, server_sans: &[&str]) -> bool {
    let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
    let read_cert = |name: &str| pem_to_der(&read(name)?).ok();
    let sound = |cert: &X509Certificate<'_>, key_file: &str| {
        let key = read(key_file).and_then(|pem| KeyPair::from_pem(&pem).ok());
        key.is_some_and(|key| key_matches(cert, &key)) && lasts(cert)
    };

    let Some(ca_der) = read_cert(CA_CERT_FILE) else { return false };
    let Some(ca) = parse(&ca_der) else { return false };
    if !(ca.is_ca() && sound(&ca, CA_KEY_FILE)) {
        return false;
    }
    let service2_names: &[&str] = &[SERVICE2_NAME, SERVICE2_SPIFFE_ID];
    let leaves = [
        (SERVICE1_CERT_FILE, SERVICE1_KEY_FILE, server_sans),
        (SERVICE2_CERT_FILE, SERVICE2_KEY_FILE, service2_names),
    ];
    leaves.into_iter().all(|(cert_file, key_file, names)| {
        let Some(der) = read_cert(cert_file) else { return false };
        parse(&der).is_some_and(|leaf| {
            sound(&leaf, key_file)
                && leaf.verify_signature(Some(ca.public_key())).is_ok()
                && names_all(&leaf, names)
        })
    })
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der).ok().map(|(_, cert)| cert)
}

/// Valid now, and still valid [`MIN_REMAINING`] from now.
fn lasts(cert: &X509Certificate<'_>) -> bool {
    let later = ASN1Time::from_timestamp(unix_seconds(SystemTime::now() + MIN_REMAINING));
    cert.validity().is_valid() && later.is_ok_and(|later| cert.validity().is_valid_at(later))
}

/// Whether `cert` carries each of `names` as a subject alternative name.
fn names_all(cert: &X509Certificate<'_>, names: &[&str]) -> bool {
    let Ok(Some(sans)) = cert.subject_alternative_name() else { return false };
    let sans = &sans.value.general_names;
    names.iter().all(|name| sans.iter().any(|san| san_is(san, name)))
}

/// An IP address matches an IP SAN only, anything else a DNS or URI SAN,
/// as a TLS client matches them.
fn san_is(san: &GeneralName<'_>, name: &str) -> bool {
    match (san, name.parse::<IpAddr>()) {
        (GeneralName::IPAddress(bytes), Ok(IpAddr::V4(ip))) => *bytes == ip.octets(),
        (GeneralName::IPAddress(bytes), Ok(IpAddr::V6(ip))) => *bytes == ip.octets(),
        (GeneralName::DNSName(s) | GeneralName::URI(s), Err(_)) => s.eq_ignore_ascii_case(name),
        _ => false,
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
}
