//! Every log line the in-process services write, captured as JSON so tests
//! can assert on them. Set `TEST_LOG=1` to also see them on stdout.

use std::{
    io::Write,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use observability::logs::{subscriber, LogFormat};
use serde_json::Value;
use tokio::sync::Notify;
use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

#[derive(Clone, Default)]
pub struct Logs {
    /// Parsed once, as written: tests look at them many times.
    lines: Arc<Mutex<Vec<Value>>>,
    written: Arc<Notify>,
}

static LOGS: LazyLock<Logs> = LazyLock::new(|| {
    let logs = Logs::default();
    let installed = tracing::subscriber::set_global_default(subscriber(
        LogFormat::Json,
        EnvFilter::new("info"),
        logs.clone(),
        None,
    ));
    assert!(installed.is_ok(), "another global subscriber was installed first");
    logs
});

/// The captured log, installed on first use.
pub fn logs() -> &'static Logs {
    &LOGS
}

// === impl Logs ===

impl Logs {
    /// Every line captured so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Every captured line whose `request_id` is `id`.
    pub fn with_request_id(&self, id: &str) -> Vec<Value> {
        self.lines().into_iter().filter(|line| line["request_id"] == id).collect()
    }

    /// Waits (at most 5 s) for a line that satisfies `accept`, and returns
    /// it. Lines about the end of a call may be written just after its
    /// response reached the client, hence the wait.
    pub async fn wait_until(&self, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let written = self.written.notified();
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| accept(l)) {
                return line.clone();
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                panic!("no log line {what} within 5 s");
            }
        }
    }

    /// Waits (at most 5 s) until more than `seen` lines satisfy `accept`;
    /// returns how many do.
    pub async fn wait_for_more(&self, what: &str, seen: usize, accept: impl Fn(&Value) -> bool) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let written = self.written.notified();
            let count = self.count(&accept);
            if count > seen {
                return count;
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                panic!("no new log line {what} within 5 s");
            }
        }
    }

    /// How many captured lines satisfy `accept`.
    pub fn count(&self, accept: impl Fn(&Value) -> bool) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| accept(l)).count()
    }

    /// Waits for a line with `id` that satisfies `accept`; returns all of
    /// that request's lines.
    pub async fn wait_for(&self, id: &str, accept: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_until(&format!("for request_id {id}"), |l| l["request_id"] == id && accept(l)).await;
        self.with_request_id(id)
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes one whole line per call.
        let parsed = String::from_utf8_lossy(buf)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect::<Vec<Value>>();
        self.lines.lock().unwrap().extend(parsed);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stdout().write_all(buf)?;
        }
        self.written.notify_waiters();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
