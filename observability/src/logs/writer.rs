//! The log writer: a bounded in-memory buffer of whole lines that a thread
//! of its own hands to stdout in batches every [`FLUSH_EVERY`], so a request
//! never waits for stdout and there is no wake-up per line. Past
//! [`QUEUE_BYTES`] waiting, new lines are dropped and counted
//! ([`DroppedLines`]) rather than waited for.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

use crate::InitError;

/// Bytes of log lines that may wait for stdout before new ones are dropped.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How often the writer thread hands waiting lines to stdout.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// A bounded buffer of log lines, written out by a thread of its own.
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    dropped: AtomicUsize,
    capacity: usize,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

/// A count of log lines dropped because stdout could not keep up.
#[derive(Clone)]
pub struct DroppedLines(Arc<Shared>);

impl DroppedLines {
    pub fn count(&self) -> usize {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

// === impl Batched ===

impl Batched {
    /// Starts the thread that writes to `sink` every [`FLUSH_EVERY`].
    pub fn spawn(
        mut sink: impl Write + Send + 'static,
        capacity: usize,
    ) -> Result<(Self, std::thread::JoinHandle<()>), InitError> {
        let batched = Self {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending::default()),
                dropped: AtomicUsize::new(0),
                capacity,
            }),
        };
        let this = batched.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // Two buffers take turns, so steady logging allocates nothing.
                let mut batch = Vec::new();
                loop {
                    std::thread::park_timeout(FLUSH_EVERY);
                    let closed = {
                        let mut pending = this.lock();
                        std::mem::swap(&mut batch, &mut pending.lines);
                        pending.closed
                    };
                    if !batch.is_empty() {
                        // Nowhere to report a failing stdout but stdout.
                        let _ = sink.write_all(&batch).and_then(|_| sink.flush());
                        batch.clear();
                    }
                    if closed {
                        return;
                    }
                }
            })
            .map_err(InitError::Writer)?;
        Ok((batched, thread))
    }

    /// Lines dropped so far because the sink could not keep up.
    pub fn dropped_lines(&self) -> DroppedLines {
        DroppedLines(self.shared.clone())
    }

    /// Writes what is queued and stops `thread` (the one [`Batched::spawn`]
    /// started); lines written after this are never written out.
    pub fn close(&self, thread: std::thread::JoinHandle<()>) {
        self.lock().closed = true;
        thread.thread().unpark();
        let _ = thread.join();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.shared.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for Batched {
    /// Takes one whole line (the formatter writes each line at once).
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.lock();
        if pending.lines.len() + line.len() > self.shared.capacity {
            drop(pending);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            pending.lines.extend_from_slice(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stdout that takes a long time to accept each write.
    struct SlowSink(std::sync::mpsc::Sender<usize>);

    impl Write for SlowSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let _ = self.0.send(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A stdout that passes on what it is given.
    struct Sink(std::sync::mpsc::Sender<Vec<u8>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_stdout_never_blocks_logging_and_overflow_is_dropped_and_counted() {
        let (tx, rx) = std::sync::mpsc::channel();
        let line = b"a log line\n";
        let (mut batched, thread) = Batched::spawn(SlowSink(tx), 10 * line.len()).unwrap();

        for _ in 0..50 {
            batched.write_all(line).unwrap();
        }
        // Every write returned before the sink finished even one.
        let before_any_output = rx.try_recv().is_err();
        batched.close(thread);

        assert!(before_any_output);
        let written = rx.try_iter().sum::<usize>() / line.len();
        let dropped = batched.dropped_lines().count();
        assert!(written >= 10 && dropped > 0, "written {written}, dropped {dropped}");
        assert_eq!(written + dropped, 50, "every line is either written or counted");
    }

    #[test]
    fn closing_the_writer_writes_every_queued_line_in_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (mut batched, thread) = Batched::spawn(Sink(tx), QUEUE_BYTES).unwrap();

        batched.write_all(b"one\n").unwrap();
        batched.write_all(b"two\n").unwrap();
        batched.close(thread);

        assert_eq!(rx.try_iter().flatten().collect::<Vec<u8>>(), b"one\ntwo\n");
        assert_eq!(batched.dropped_lines().count(), 0);
    }
}
