//! Development TLS material for the service1/service2 mTLS setup, in two
//! parts:
//!
//! - `pki`: [`Authority`], a throw-away certificate authority that issues
//!   leaf certificates described by a [`LeafSpec`]. Tests across the
//!   workspace use it to make good and deliberately broken certificates.
//! - `dev_set`: [`write_dev_set`], the complete development set (CA,
//!   service1 server cert, service2 client cert) that `make certs` keeps in
//!   `certs/dev`, left alone while it is still usable.
//!
//! Everything here is for development and tests only: the CA key is written
//! next to the certificates it signed.
#![forbid(unsafe_code)]

use std::io;
use std::path::PathBuf;

mod dev_set;
mod pki;

pub use dev_set::{
    write_dev_set, DEFAULT_SERVER_SANS, DEV_CA_NAME, DEV_SET_FILES, SERVICE1_NAME, SERVICE2_NAME,
    SERVICE2_SPIFFE_ID,
};
pub use pki::{Authority, Leaf, LeafSpec, Usage};

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
