//! A local "cluster": service1 replicas as real processes on 127.0.0.2,
//! .3, .4 (same port, like pods), found by service2 through a real DNS
//! server, and load from concurrent clients.

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, SocketAddr},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::Pki;

/// A service binary cargo built next to this test binary.
fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --bins` first (make test does)",
        binary.display()
    );
    binary
}

/// One service process (a service1 replica, or service2).
pub struct Replica {
    pub ip: IpAddr,
    pub admin: SocketAddr,
    /// The "listening" log line: every address the service bound.
    pub listening: serde_json::Value,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Starts service1 on `ip:grpc_port` with `pki`'s certificates, and
    /// waits (at most 10 s) for its "listening" line.
    pub fn start(ip: IpAddr, grpc_port: u16, pki: &Pki, drain_delay: &str) -> Self {
        let env = [
            ("BIND_ADDR", ip.to_string()),
            ("GRPC_PORT", grpc_port.to_string()),
            ("PORT", "0".into()),
            ("DRAIN_DELAY", drain_delay.into()),
            ("SHUTDOWN_GRACE", "5s".into()),
        ];
        Self::spawn("service1", ip, pki, &env)
    }

    /// Starts `service` (service1 or service2) with `pki`'s certificates of
    /// that name, a free admin port, and `env`.
    pub fn spawn(service: &str, ip: IpAddr, pki: &Pki, env: &[(&str, String)]) -> Self {
        let path = |f: String| pki.path(&f).display().to_string();
        let tls = [
            ("TLS_CERT", path(format!("{service}.crt"))),
            ("TLS_KEY", path(format!("{service}.key"))),
            ("TLS_CA", path("ca.crt".into())),
            ("ADMIN_PORT", "0".into()),
        ];
        let ready = format!("{service} listening");
        let mut child = Command::new(binary(service))
            .env_clear()
            .envs(tls.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("service1 starts");
        let stdout = child.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = ready_tx.send(line.clone());
                }
                if std::env::var_os("TEST_LOG").is_some() {
                    println!("{line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        let listening = ready_rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("{service} on {ip} did not start within 10 s");
        });
        let listening: serde_json::Value = serde_json::from_str(&listening).expect("a JSON log line");
        let admin = listening["admin"].as_str().and_then(|a| a.parse().ok()).expect("the admin address");
        Self { ip, admin, listening, child: Some(child), lines }
    }

    /// The process's resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("a running process").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its /proc status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
    }

    /// ProcessName calls this replica has logged as served.
    pub fn calls_served(&self) -> usize {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains("\"grpc call served\"") && l.contains("ProcessName")).count()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGKILL: the process dies with its connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stops answering, but the kernel keeps its
    /// sockets open and still completes TCP handshakes for it, as with a
    /// hung process or a frozen node.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Replica::freeze`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running process");
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal} of the process on {}", self.ip);
    }

    /// SIGTERM, then waits (at most 15 s) for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..1500 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        panic!("the process on {} did not exit within 15 s of SIGTERM", self.ip);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Concurrent clients calling one URL until stopped, bounded in count.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    /// The longest request so far, in microseconds.
    longest: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` clients, each sending at most `max_per_worker` requests.
    pub fn start(url: String, workers: usize, max_per_worker: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let longest = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let workers = (0..workers)
            .map(|_| {
                let (stop, ok, failures, client, url) =
                    (stop.clone(), ok.clone(), failures.clone(), client.clone(), url.clone());
                let longest = longest.clone();
                tokio::spawn(async move {
                    for _ in 0..max_per_worker {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let started = std::time::Instant::now();
                        let reply = client.get(&url).send().await;
                        longest.fetch_max(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                        match reply {
                            Ok(r) if r.status() == 200 => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(r) => {
                                let failure = format!("{}: {:?}", r.status(), r.text().await);
                                failures.lock().unwrap().push(failure);
                            }
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Self { stop, ok, longest, failures, workers }
    }

    pub fn succeeded(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// The longest any request has taken so far.
    pub fn longest(&self) -> Duration {
        Duration::from_micros(self.longest.load(Ordering::SeqCst))
    }

    /// Waits (at most 10 s) until `more` further requests have succeeded,
    /// so a test knows traffic is flowing before and after an event.
    pub async fn wait_for_successes(&self, more: u64) {
        let target = self.succeeded() + more;
        for _ in 0..1000 {
            if self.succeeded() >= target || self.workers.iter().all(|w| w.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(self.succeeded() >= target, "load stalled at {} successes", self.succeeded());
    }

    /// Stops the clients; returns (successes, failures).
    pub async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            let _ = worker.await;
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

impl Load {
    /// Lets every client send all its requests, then stops.
    pub async fn stop_after_all(mut self) -> (u64, Vec<String>) {
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
        self.stop().await
    }
}

impl Replica {
    /// Waits (at most 5 s) for a log line that satisfies `accept`: lines
    /// reach stdout in batches, a few milliseconds after they are written.
    pub async fn wait_for_line(&self, what: &str, accept: impl Fn(&str) -> bool) -> String {
        for _ in 0..500 {
            if let Some(line) = self.lines().into_iter().find(|l| accept(l)) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no log line {what} from the process on {} within 5 s", self.ip);
    }
}
