//! Running a service binary as a real process, for what only a process can
//! show: exit codes, stderr, signals. Each function takes the binary's
//! path, since only a package's own tests know where cargo put it
//! (`env!("CARGO_BIN_EXE_service1")`).
#![forbid(unsafe_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Runs `binary` with `env` to completion (at most 10 s).
pub fn run(binary: &str, env: &[(&str, &str)], args: &[&str]) -> (ExitStatus, String, String) {
    let child = command(binary, env).args(args).spawn().expect("the binary starts");
    let output = wait_bounded(child);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status, text(&output.stdout), text(&output.stderr))
}

/// Starts `binary` and waits (at most 10 s) for a stdout line containing
/// `ready`, the service's own signal that its listeners are bound.
pub fn start_until(binary: &str, env: &[(&str, &str)], ready: &str) -> Child {
    let mut child = command(binary, env).spawn().expect("the binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return child,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("{binary} did not log {ready:?} within 10 s");
            }
        }
    }
}

/// Sends SIGTERM, as Kubernetes does, and waits (at most 10 s) for the exit.
pub fn terminate(child: Child) -> ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success(), "SIGTERM sent");
    wait_bounded(child).status
}

fn command(binary: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn wait_bounded(mut child: Child) -> std::process::Output {
    for _ in 0..1000 {
        if child.try_wait().expect("waitable").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("the process did not exit within 10 s");
}

/// A development certificate set in a temporary folder, and the TLS
/// environment variables that point `service` (service1 or service2) at it.
pub fn dev_certs(service: &str) -> (tempfile::TempDir, Vec<(&'static str, String)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    certgen::write_dev_set(dir.path(), &["localhost".to_owned()], false).expect("certificates");
    let path = |file: &str| dir.path().join(file).display().to_string();
    let env = vec![
        ("TLS_CERT", path(&format!("{service}.crt"))),
        ("TLS_KEY", path(&format!("{service}.key"))),
        ("TLS_CA", path("ca.crt")),
    ];
    (dir, env)
}

/// `base` plus `extra`, as `run` and `start_until` take them.
pub fn env<'a>(
    base: &'a [(&'a str, &'a str)],
    extra: &'a [(&'static str, String)],
) -> Vec<(&'a str, &'a str)> {
    base.iter().copied().chain(extra.iter().map(|(k, v)| (*k, v.as_str()))).collect()
}

/// `binary` (service1 or service2) with `local` settings: without TLS files
/// it refuses to start (exit 2, one line) unless TLS is turned off, then it
/// starts and stops on SIGTERM with 0.
pub fn check_tls_is_required(binary: &str, local: &[(&str, &str)]) {
    let (status, _, stderr) = run(binary, local, &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim(), "error: invalid configuration: TLS_CERT is required unless TLS_MODE=insecure");

    let insecure = [local, &[("TLS_MODE", "insecure")]].concat();
    let child = start_until(binary, &insecure, "TLS_MODE=insecure");
    assert_eq!(terminate(child).code(), Some(0));
}

/// With a TLS file missing, `service` exits 1 with one line naming it.
pub fn check_unreadable_tls_files_stop_the_start(binary: &str, service: &str, local: &[(&str, &str)]) {
    let (dir, tls) = dev_certs(service);
    std::fs::remove_file(dir.path().join("ca.crt")).expect("remove");

    let (status, _, stderr) = run(binary, &env(local, &tls), &[]);

    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot read") && stderr.contains("ca.crt"), "{stderr}");
}

/// A port that is free on `ip` now and that no other caller in this
/// process is handed, for a listener a test hands to a process to bind
/// later (several replicas on one port, like pods).
///
/// A port the kernel picks for `bind(0)` is wrong here: between our
/// release and the process's bind, any other test's `bind(0)` or outgoing
/// connection may be given the same one (it happened in CI). So the ports
/// come from below the kernel's ephemeral range (32768 up on Linux), which
/// only explicit binds use, walked from a point that differs per process.
pub fn unused_port(ip: std::net::IpAddr) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = FIRST + (start + step) % SPAN;
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip} between {FIRST} and {}", FIRST + SPAN);
}

/// A loopback address nothing listens on, and that no other test in this
/// process will be handed (see [`unused_port`]), for "connection refused".
pub fn closed_addr() -> std::net::SocketAddr {
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    (ip, unused_port(ip)).into()
}

/// With its REST port taken, `binary` exits 1 with one line naming the
/// address.
pub fn check_a_port_in_use_stops_the_start(binary: &str, local: &[(&str, &str)]) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let settings = [local, &[("PORT", port.as_str()), ("TLS_MODE", "insecure")]].concat();

    let (status, _, stderr) = run(binary, &settings, &[]);

    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}: ")), "{stderr}");
}

/// Every row of the README's limits table that names one of `binary`'s
/// settings states the default `--help` shows: the table and the code
/// cannot drift apart.
pub fn check_readme_limits_match(binary: &str) -> usize {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let help = run(binary, &[], &["--help"]).1;
    let table =
        readme.split("## Limits").nth(1).and_then(|s| s.split("\n## ").next()).expect("a Limits section");
    let mut checked = 0;
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (variable, default) = (cells[1].trim_matches('`'), cells[2].trim_matches('`'));
        // Rows that pair two settings ("A / B", "A (+ _GRACE)") are prose.
        if variable.contains(['/', '(', ' ']) || default.contains(['/', '(', ' ']) {
            continue;
        }
        let Some(at) = help.find(&format!("[env: {variable}=]")) else { continue };
        let shown = help[at..].lines().nth(1).unwrap_or_default().trim();
        assert_eq!(shown, format!("[default: {default}]"), "README says {variable} defaults to {default}");
        checked += 1;
    }
    checked
}
