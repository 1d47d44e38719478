//! `certgen`: writes the development CA, service1's server certificate and
//! service2's client certificate, unless a usable set is already there.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Generate development TLS material for service1 and service2 (mTLS).
#[derive(Debug, Parser)]
#[command(name = "certgen", version)]
struct Args {
    /// Directory for ca.crt, ca.key, service1.{crt,key} and service2.{crt,key}.
    #[arg(long, value_name = "DIR", env = "CERTS_DIR", default_value = "certs/dev")]
    out: PathBuf,

    /// Subject alternative name for service1's certificate (repeatable; IP
    /// addresses become IP SANs). Default: compose, loopback and Kubernetes names.
    #[arg(long = "san", value_name = "NAME", env = "CERT_SANS", value_delimiter = ',')]
    sans: Vec<String>,

    /// Write a fresh set even if the existing one is still usable.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut sans: Vec<String> =
        args.sans.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if sans.is_empty() {
        sans = certgen::DEFAULT_SERVER_SANS.iter().map(|s| (*s).to_owned()).collect();
    }

    match certgen::write_dev_set(&args.out, &sans, args.force) {
        Ok(true) => {
            println!("{}: wrote {}", args.out.display(), certgen::DEV_SET_FILES.join(" "));
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("{}: up to date", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
