//! `write_dev_set`: what it writes, and when it leaves an existing set alone.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use certgen::{write_dev_set, Authority, LeafSpec, DEFAULT_SERVER_SANS, DEV_SET_FILES, SERVICE2_SPIFFE_ID};
use x509_parser::extensions::GeneralName;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn default_sans() -> Vec<String> {
    DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect()
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    DEV_SET_FILES.iter().map(|name| (name.to_string(), fs::read(dir.join(name)).unwrap())).collect()
}

fn der(pem: &[u8]) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    block.contents
}

/// DNS, IP (as text) and URI SANs of a PEM certificate file.
fn sans_of(path: &Path) -> Vec<String> {
    let der = der(&fs::read(path).unwrap());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let ext = cert.subject_alternative_name().unwrap().unwrap();
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::URI(u) => u.to_string(),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
            }
            GeneralName::IPAddress(b) => {
                std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn serial_of(path: &Path) -> Vec<u8> {
    let der = der(&fs::read(path).unwrap());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial().to_vec()
}

fn dev_ca(dir: &Path) -> Authority {
    Authority::from_pem(
        &fs::read_to_string(dir.join("ca.crt")).unwrap(),
        &fs::read_to_string(dir.join("ca.key")).unwrap(),
    )
    .unwrap()
}

#[test]
fn write_dev_set_creates_the_directory_and_all_six_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/certs/dev");
    assert!(write_dev_set(&dir, &default_sans(), false).unwrap());
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ca.crt", "ca.key", "service1.crt", "service1.key", "service2.crt", "service2.key"]);
}

#[test]
fn write_dev_set_twice_writes_nothing_the_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
    let before = snapshot(tmp.path());
    assert!(!write_dev_set(tmp.path(), &default_sans(), false).unwrap());
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_smaller_san_list_is_still_covered_by_the_existing_set() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let some = vec!["localhost".to_string(), "::1".to_string()];
    assert!(!write_dev_set(tmp.path(), &some, false).unwrap());
}

#[test]
fn force_rewrites_a_valid_set_with_new_keys_and_serials() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let before = snapshot(tmp.path());
    let serial = serial_of(&tmp.path().join("service1.crt"));
    assert!(write_dev_set(tmp.path(), &default_sans(), true).unwrap());
    let after = snapshot(tmp.path());
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        assert_ne!(old, new, "{name} was not rewritten");
    }
    assert_ne!(serial_of(&tmp.path().join("service1.crt")), serial);
}

#[test]
fn a_set_missing_a_requested_san_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let mut sans = default_sans();
    sans.push("service1.example.test".into());
    sans.push("10.1.2.3".into());
    assert!(write_dev_set(tmp.path(), &sans, false).unwrap());
    let written = sans_of(&tmp.path().join("service1.crt"));
    for san in &sans {
        assert!(written.contains(san), "{san} missing from {written:?}");
    }
}

#[test]
fn a_set_with_a_missing_file_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    fs::remove_file(tmp.path().join("service2.key")).unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
    assert!(!write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn a_set_with_a_garbled_file_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    fs::write(tmp.path().join("ca.crt"), "not a certificate\n").unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
    assert!(!write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn a_leaf_expiring_within_30_days_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let now = SystemTime::now();
    let soon = dev_ca(tmp.path())
        .issue(&LeafSpec::server("service1", DEFAULT_SERVER_SANS).valid_between(now - DAY, now + 10 * DAY))
        .unwrap();
    fs::write(tmp.path().join("service1.crt"), &soon.cert_pem).unwrap();
    fs::write(tmp.path().join("service1.key"), &soon.key_pem).unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn a_leaf_valid_for_more_than_30_days_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let now = SystemTime::now();
    let later = dev_ca(tmp.path())
        .issue(&LeafSpec::server("service1", DEFAULT_SERVER_SANS).valid_between(now - DAY, now + 40 * DAY))
        .unwrap();
    fs::write(tmp.path().join("service1.crt"), &later.cert_pem).unwrap();
    fs::write(tmp.path().join("service1.key"), &later.key_pem).unwrap();
    assert!(!write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn a_leaf_signed_by_another_ca_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    // Same subject name as the dev CA, different key: only the signature tells.
    let impostor = Authority::new(certgen::DEV_CA_NAME).unwrap();
    let leaf = impostor.issue(&LeafSpec::client("service2").with_uri(SERVICE2_SPIFFE_ID)).unwrap();
    fs::write(tmp.path().join("service2.crt"), &leaf.cert_pem).unwrap();
    fs::write(tmp.path().join("service2.key"), &leaf.key_pem).unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn a_key_that_does_not_belong_to_its_cert_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    fs::copy(tmp.path().join("service2.key"), tmp.path().join("service1.key")).unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn a_client_cert_without_the_spiffe_id_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let leaf = dev_ca(tmp.path()).issue(&LeafSpec::client("service2")).unwrap();
    fs::write(tmp.path().join("service2.crt"), &leaf.cert_pem).unwrap();
    fs::write(tmp.path().join("service2.key"), &leaf.key_pem).unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
}

#[test]
fn service2_gets_a_client_cert_named_service2_with_its_spiffe_id() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    assert_eq!(sans_of(&tmp.path().join("service2.crt")), ["service2", SERVICE2_SPIFFE_ID]);
    let der = der(&fs::read(tmp.path().join("service2.crt")).unwrap());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
}

#[test]
fn an_empty_san_list_is_rejected_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    assert!(matches!(write_dev_set(&dir, &[], false), Err(certgen::Error::Invalid(_))));
    assert!(!dir.exists());
}

#[test]
fn no_temporary_files_are_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    write_dev_set(tmp.path(), &default_sans(), true).unwrap();
    let count = fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(count, 6);
}

#[cfg(unix)]
#[test]
fn keys_are_written_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    for name in ["ca.key", "service1.key", "service2.key"] {
        let mode = fs::metadata(tmp.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
    }
    for name in ["ca.crt", "service1.crt", "service2.crt"] {
        let mode = fs::metadata(tmp.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077 & !0o044, 0, "{name} has mode {mode:o}");
    }
}

#[cfg(unix)]
#[test]
fn a_key_with_loose_permissions_is_tightened_when_rewritten() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    write_dev_set(tmp.path(), &default_sans(), false).unwrap();
    let key = tmp.path().join("service1.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    write_dev_set(tmp.path(), &default_sans(), true).unwrap();
    let mode = fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
