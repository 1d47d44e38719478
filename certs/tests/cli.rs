//! The `certgen` binary: output lines and exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn certgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certgen"))
        .args(args)
        .env_remove("CERTS_DIR")
        .env_remove("CERT_SANS")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_first_run_writes_and_the_second_reports_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let first = certgen(&["--out", path(&dir)]);
    assert!(first.status.success());
    assert_eq!(
        stdout(&first),
        format!(
            "{}: wrote ca.crt ca.key service1.crt service1.key service2.crt service2.key\n",
            dir.display()
        )
    );
    let second = certgen(&["--out", path(&dir)]);
    assert!(second.status.success());
    assert_eq!(stdout(&second), format!("{}: up to date\n", dir.display()));
}

#[test]
fn force_writes_even_when_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(certgen(&["--out", path(tmp.path())]).status.success());
    let forced = certgen(&["--out", path(tmp.path()), "--force"]);
    assert!(stdout(&forced).contains(": wrote "));
}

#[test]
fn sans_come_from_repeated_flags_or_a_comma_separated_env_var() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = path(tmp.path());
    assert!(certgen(&["--out", dir, "--san", "a.test", "--san", "10.0.0.7"]).status.success());
    assert!(stdout(&certgen(&["--out", dir, "--san", "a.test"])).ends_with("up to date\n"));

    let from_env = Command::new(env!("CARGO_BIN_EXE_certgen"))
        .env("CERTS_DIR", dir)
        .env("CERT_SANS", "a.test, b.test")
        .output()
        .unwrap();
    assert!(from_env.status.success());
    assert!(stdout(&from_env).contains(": wrote "), "b.test was missing");
}

#[test]
fn a_failure_prints_one_error_line_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = certgen(&["--out", path(&file.join("dev"))]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_usage_exits_2() {
    let out = certgen(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
