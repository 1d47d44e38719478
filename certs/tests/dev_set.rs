//! `write_dev_set` (behind `make certs`): what it writes, that it leaves a
//! usable set alone, and that it rewrites anything in doubt.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use certgen::{
    write_dev_set, Authority, Leaf, LeafSpec, DEFAULT_SERVER_SANS, DEV_SET_FILES, SERVICE2_SPIFFE_ID,
};
use tempfile::TempDir;
use x509_parser::extensions::GeneralName;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn default_sans() -> Vec<String> {
    DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect()
}

/// A directory holding a set just written with the default SANs.
fn fresh_set() -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    assert!(write_dev_set(tmp.path(), &default_sans(), false).unwrap());
    tmp
}

/// What `make certs` does next: `true` if it wrote a new set.
fn rewrites(dir: &Path) -> bool {
    write_dev_set(dir, &default_sans(), false).unwrap()
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    DEV_SET_FILES.iter().map(|name| (name.to_string(), fs::read(dir.join(name)).unwrap())).collect()
}

/// The CA the set in `dir` was made with.
fn dev_ca(dir: &Path) -> Authority {
    let read = |name| fs::read_to_string(dir.join(name)).unwrap();
    Authority::from_pem(&read("ca.crt"), &read("ca.key")).unwrap()
}

/// Puts `leaf` in place of `NAME.crt` and `NAME.key`.
fn replace_leaf(dir: &Path, name: &str, leaf: &Leaf) {
    fs::write(dir.join(format!("{name}.crt")), &leaf.cert_pem).unwrap();
    fs::write(dir.join(format!("{name}.key")), &leaf.key_pem).unwrap();
}

/// The SANs of a PEM certificate file: DNS names and URIs as they are, IP
/// addresses as text.
fn sans_of(path: &Path) -> Vec<String> {
    let pem = fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let ext = cert.subject_alternative_name().unwrap().unwrap();
    let ip = |bytes: &[u8]| match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap()),
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::URI(u) => u.to_string(),
            GeneralName::IPAddress(b) => ip(b).to_string(),
            other => format!("{other:?}"),
        })
        .collect()
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
fn a_usable_set_is_left_exactly_as_it_is() {
    let tmp = fresh_set();
    let before = snapshot(tmp.path());
    assert!(!rewrites(tmp.path()));
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_usable_set_made_by_hand_is_left_alone_too() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Authority::new("My dev CA").unwrap();
    fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
    fs::write(dir.join("ca.key"), ca.key_pem()).unwrap();
    replace_leaf(dir, "service1", &ca.issue(&LeafSpec::server("my-service1", DEFAULT_SERVER_SANS)).unwrap());
    replace_leaf(
        dir,
        "service2",
        &ca.issue(&LeafSpec::client("service2").with_uri(SERVICE2_SPIFFE_ID)).unwrap(),
    );
    let before = snapshot(dir);

    assert!(!rewrites(dir));
    assert_eq!(snapshot(dir), before);
}

#[test]
fn a_smaller_san_list_is_still_covered_by_the_existing_set() {
    let tmp = fresh_set();
    let some = vec!["localhost".to_string(), "::1".to_string()];
    assert!(!write_dev_set(tmp.path(), &some, false).unwrap());
}

#[test]
fn force_rewrites_every_file_of_a_usable_set() {
    let tmp = fresh_set();
    let before = snapshot(tmp.path());
    assert!(write_dev_set(tmp.path(), &default_sans(), true).unwrap());
    for ((name, old), (_, new)) in before.iter().zip(&snapshot(tmp.path())) {
        assert_ne!(old, new, "{name} was not rewritten");
    }
}

#[test]
fn a_set_missing_a_requested_san_is_rewritten_to_cover_it() {
    let tmp = fresh_set();
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
fn a_set_with_a_missing_file_is_rewritten_and_then_usable() {
    let tmp = fresh_set();
    fs::remove_file(tmp.path().join("service2.key")).unwrap();
    assert!(rewrites(tmp.path()));
    assert!(!rewrites(tmp.path()));
}

#[test]
fn a_set_with_a_garbled_file_is_rewritten_and_then_usable() {
    let tmp = fresh_set();
    fs::write(tmp.path().join("ca.crt"), "not a certificate\n").unwrap();
    assert!(rewrites(tmp.path()));
    assert!(!rewrites(tmp.path()));
}

#[test]
fn a_leaf_expiring_within_30_days_is_rewritten() {
    let tmp = fresh_set();
    let now = SystemTime::now();
    let spec = LeafSpec::server("service1", DEFAULT_SERVER_SANS).valid_between(now - DAY, now + 10 * DAY);
    replace_leaf(tmp.path(), "service1", &dev_ca(tmp.path()).issue(&spec).unwrap());
    assert!(rewrites(tmp.path()));
}

#[test]
fn a_leaf_valid_for_more_than_30_days_is_kept() {
    let tmp = fresh_set();
    let now = SystemTime::now();
    let spec = LeafSpec::server("service1", DEFAULT_SERVER_SANS).valid_between(now - DAY, now + 40 * DAY);
    replace_leaf(tmp.path(), "service1", &dev_ca(tmp.path()).issue(&spec).unwrap());
    assert!(!rewrites(tmp.path()));
}

#[test]
fn a_leaf_signed_by_another_ca_is_rewritten() {
    let tmp = fresh_set();
    // Same subject name as the dev CA, different key: only the signature tells.
    let impostor = Authority::new(certgen::DEV_CA_NAME).unwrap();
    let spec = LeafSpec::client("service2").with_uri(SERVICE2_SPIFFE_ID);
    replace_leaf(tmp.path(), "service2", &impostor.issue(&spec).unwrap());
    assert!(rewrites(tmp.path()));
}

#[test]
fn a_key_that_does_not_belong_to_its_cert_is_rewritten() {
    let tmp = fresh_set();
    fs::copy(tmp.path().join("service2.key"), tmp.path().join("service1.key")).unwrap();
    assert!(rewrites(tmp.path()));
}

#[test]
fn a_client_cert_without_the_spiffe_id_is_rewritten() {
    let tmp = fresh_set();
    replace_leaf(tmp.path(), "service2", &dev_ca(tmp.path()).issue(&LeafSpec::client("service2")).unwrap());
    assert!(rewrites(tmp.path()));
}

#[test]
fn service2_gets_a_client_cert_named_service2_with_its_spiffe_id() {
    let tmp = fresh_set();
    assert_eq!(sans_of(&tmp.path().join("service2.crt")), ["service2", SERVICE2_SPIFFE_ID]);
    let pem = fs::read(tmp.path().join("service2.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
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
    let tmp = fresh_set();
    write_dev_set(tmp.path(), &default_sans(), true).unwrap();
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 6);
}

#[cfg(unix)]
#[test]
fn keys_are_written_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = fresh_set();
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
    let tmp = fresh_set();
    let key = tmp.path().join("service1.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    write_dev_set(tmp.path(), &default_sans(), true).unwrap();
    let mode = fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
