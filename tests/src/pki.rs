//! Certificates for tests, made with the same library as `make certs`.

use std::{
    path::{Path, PathBuf},
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use certgen::{Authority, Leaf, LeafSpec};

/// SANs of service1's test certificate.
pub const SERVICE1_SANS: &[&str] = &["service1", "localhost", "127.0.0.1"];

/// A CA and the two services' certificates, as files in a temporary folder.
pub struct Pki {
    pub ca: Authority,
    dir: tempfile::TempDir,
}

static SHARED: LazyLock<Pki> = LazyLock::new(Pki::new);

// === impl Pki ===

impl Pki {
    /// One set for every test in this binary that needs nothing special.
    pub fn shared() -> &'static Pki {
        &SHARED
    }

    pub fn new() -> Self {
        let ca = Authority::new("test CA").expect("CA");
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Self { ca, dir };
        pki.write("ca.crt", &pki.ca.cert_pem());
        pki.write_leaf("service1", &pki.issue(LeafSpec::server("service1", SERVICE1_SANS)));
        pki.write_leaf("service2", &pki.issue(LeafSpec::client("service2")));
        pki
    }

    pub fn issue(&self, spec: LeafSpec) -> Leaf {
        self.ca.issue(&spec).expect("leaf")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).expect("write");
    }

    /// Writes `NAME.crt` and `NAME.key`.
    pub fn write_leaf(&self, name: &str, leaf: &Leaf) {
        self.write(&format!("{name}.crt"), &leaf.cert_pem);
        self.write(&format!("{name}.key"), &leaf.key_pem);
    }

    /// Flags that point a service at `NAME.crt`, `NAME.key` and `ca.crt`.
    pub fn args(&self, name: &str) -> Vec<String> {
        let path = |file: String| self.path(&file).display().to_string();
        vec![
            "--tls-cert".into(),
            path(format!("{name}.crt")),
            "--tls-key".into(),
            path(format!("{name}.key")),
            "--tls-ca".into(),
            path("ca.crt".into()),
        ]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// A validity window entirely in the past.
pub fn expired() -> (SystemTime, SystemTime) {
    let now = SystemTime::now();
    (now - Duration::from_secs(3 * 86400), now - Duration::from_secs(86400))
}

/// A validity window entirely in the future.
pub fn not_yet_valid() -> (SystemTime, SystemTime) {
    let now = SystemTime::now();
    (now + Duration::from_secs(86400), now + Duration::from_secs(3 * 86400))
}
