//! JSON answers for HTTP/1 request heads that hyper cannot parse.
//!
//! hyper answers such a head itself, before any of our layers sees a
//! request: 400 (malformed), 431 (too large, or too many headers) or 414
//! (request target too long), with an empty body, and then closes the
//! connection. It has no hook for that answer, so [`HeadErrors`], around
//! each connection, recognises it as it is written and writes ours in its
//! place: the JSON error body every other error has, a fresh request id
//! (the head could not be read, so neither could an `X-Request-ID`), and
//! an access line and a metric like any other request.
//!
//! The contract with hyper, which has no API for it: hyper writes its
//! answer as a head alone (`HTTP/1.1 400 Bad Request`, `content-length: 0`
//! and a date, no `Content-Type`, no body) in one write. If a hyper upgrade
//! changes that, clients get hyper's empty answer again; the tests
//! `a_real_hyper_server_s_answer_to_*` drive hyper itself and fail then.
//!
//! hyper's answer is recognised by its shape: one of those three statuses,
//! a head with no `Content-Type` and nothing after it, written on its own.
//! Every response our routers make has a `Content-Type`, and no body of
//! theirs holds a bare blank line (JSON escapes line ends), so none can be
//! mistaken for it. HTTP/2 connections (those that open with the preface)
//! are left alone: h2 answers an oversized header list itself. When a client
//! pipelines a bad head behind a good request, hyper may write its answer
//! in one piece with the previous response; that answer is left as hyper
//! wrote it.

use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use observability::{metrics, Metrics};
use wire::{request_id, ErrorKind, RequestId};

use super::tracking::Activity;
use crate::ApiError;

pin_project_lite::pin_project! {
    /// A server connection that answers unparsable request heads in JSON.
    pub(super) struct HeadErrors<T> {
        #[pin]
        inner: T,
        // The connection's activity, which times the head now being read
        // (for the access line).
        activity: Activity,
        // Our answer, while it is being written in place of hyper's.
        answer: Option<Answer>,
        // Whether the connection's first bytes were an HTTP/2 preface.
        http2: Option<bool>,
        metrics: Metrics,
    }
}

/// How an HTTP/2 connection's first bytes begin.
const PREFACE: &[u8] = b"PRI * HTTP/2.0";

struct Answer {
    bytes: Vec<u8>,
    written: usize,
    /// How many of hyper's bytes it replaces: what hyper is told was written.
    replaces: usize,
}

impl<T> HeadErrors<T> {
    pub(super) fn new(inner: T, activity: Activity, metrics: Metrics) -> Self {
        Self { inner, activity, answer: None, http2: None, metrics }
    }
}

// === impl HeadErrors ===

impl<T: AsyncWrite> HeadErrors<T> {
    /// Writes our answer; ready with the count of hyper's bytes it stands
    /// for once all of it is written.
    fn poll_answer(self: Pin<&mut Self>, cx: &mut Context<'_>, offered: usize) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        let answer = this.answer.as_mut().expect("an answer is being written");
        while answer.written < answer.bytes.len() {
            let n = ready!(this.inner.as_mut().poll_write(cx, &answer.bytes[answer.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            answer.written += n;
        }
        let replaces = answer.replaces.min(offered);
        *this.answer = None;
        Poll::Ready(Ok(replaces))
    }

    /// Starts our answer if `head` is hyper's own answer to a bad head.
    fn intercept(self: Pin<&mut Self>, head: &[u8]) -> bool {
        if self.http2 != Some(false) {
            return false;
        }
        let Some(kind) = parse_error_kind(head) else { return false };
        let this = self.project();
        let elapsed = this.activity.head_read_for().map_or(0.0, |t| t.as_secs_f64());
        this.metrics.record_http("other", metrics::UNPARSED_ROUTE, kind.http_status().as_u16(), elapsed);
        *this.answer = Some(Answer { bytes: answer(head, kind, elapsed), written: 0, replaces: head.len() });
        true
    }
}

impl<T: AsyncRead> AsyncRead for HeadErrors<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if this.http2.is_none() && !read.is_empty() {
            // Decided once the first bytes agree with the preface or not.
            let n = read.len().min(PREFACE.len());
            if read[..n] != PREFACE[..n] {
                *this.http2 = Some(false);
            } else if n == PREFACE.len() {
                *this.http2 = Some(true);
            }
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for HeadErrors<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.answer.is_some() || self.as_mut().intercept(buf) {
            return self.poll_answer(cx, buf.len());
        }
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|b| b.len()).sum();
        // hyper's answer is a head alone, so it comes in one slice.
        let alone = bufs.iter().find(|b| !b.is_empty()).filter(|b| b.len() == offered);
        if self.answer.is_some() || alone.is_some_and(|head| self.as_mut().intercept(head)) {
            return self.poll_answer(cx, offered);
        }
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// The kind of error hyper answered, if `bytes` is hyper's answer to a
/// head it could not parse: a status line with 400, 431 or 414, then
/// headers without a Content-Type, then nothing.
fn parse_error_kind(bytes: &[u8]) -> Option<ErrorKind> {
    let rest = bytes.strip_prefix(b"HTTP/1.1 ").or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))?;
    let kind = match rest.get(..4)? {
        b"400 " => ErrorKind::InvalidInput,
        b"431 " => ErrorKind::HeadTooLarge,
        b"414 " => ErrorKind::UriTooLong,
        _ => return None,
    };
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let alone = end + 4 == bytes.len();
    let typed = header_lines(bytes).any(|line| has_name(line, b"content-type"));
    (alone && !typed).then_some(kind)
}

/// The header lines of a head, without the status line.
fn header_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|b| *b == b'\n').skip(1).map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty())
}

fn has_name(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len() && line[name.len()] == b':' && line[..name.len()].eq_ignore_ascii_case(name)
}

/// Our answer in place of hyper's `head`: its status line and headers
/// (the date, and that the connection closes), with a JSON body, its type
/// and length, and a request id. Logs and counts it.
fn answer(head: &[u8], kind: ErrorKind, seconds: f64) -> Vec<u8> {
    let error = ApiError::new(kind, message(kind));
    let body = error.body();
    let id = RequestId::generate();
    let status = kind.http_status().as_u16();

    let status_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut bytes = Vec::with_capacity(head.len() + body.len() + 128);
    bytes.extend_from_slice(status_line);
    bytes.push(b'\n');
    for line in header_lines(head).filter(|l| !has_name(l, b"content-length")) {
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(b"\r\n");
    }
    let headers = format!(
        "content-type: application/json\r\n{}: {id}\r\ncontent-length: {}\r\n\r\n",
        request_id::HEADER,
        body.len()
    );
    bytes.extend_from_slice(headers.as_bytes());
    bytes.extend_from_slice(body.as_bytes());

    let span = tracing::info_span!("http_request", request_id = %id);
    let _entered = span.enter();
    tracing::info!(
        route = metrics::UNPARSED_ROUTE,
        status,
        response_bytes = body.len(),
        duration_ms = seconds * 1e3,
        "http request served"
    );
    bytes
}

fn message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::HeadTooLarge => "the request head is too large",
        ErrorKind::UriTooLong => "the request target is too long",
        _ => "the request could not be parsed",
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use hyper_util::{
        rt::{TokioExecutor, TokioIo},
        server::conn::auto,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What a real hyper HTTP/1 server, its connection wrapped in
    /// [`HeadErrors`], writes back for `request` before it closes.
    async fn served_by_hyper(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let io = TokioIo::new(HeadErrors::new(server, Activity::new(), Metrics::new()));
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // hyper's smallest read buffer, which bounds the head.
            builder.http1().max_buf_size(8192);
            let service = hyper::service::service_fn(|_| async {
                Ok::<_, Infallible>(http::Response::new(axum::body::Body::empty()))
            });
            let _ = builder.serve_connection(io, service).await;
        });
        client.write_all(request).await.unwrap();
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        String::from_utf8(written).unwrap()
    }

    #[tokio::test]
    async fn a_real_hyper_server_s_answer_to_a_malformed_head_is_replaced_by_a_json_400() {
        let written = served_by_hyper(b"GET / HTTP/1.1\r\nhost: t\r\nno colon here\r\n\r\n").await;

        let (head, body) = written.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{written}");
        assert!(head.contains("content-type: application/json\r\n"), "{written}");
        assert!(head.contains("x-request-id: "), "{written}");
        assert_eq!(body, r#"{"error":"the request could not be parsed"}"#);
    }

    #[tokio::test]
    async fn a_real_hyper_server_s_answer_to_a_head_past_its_buffer_is_replaced_by_a_json_431() {
        let request = format!("GET / HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n", "a".repeat(10_000));

        let written = served_by_hyper(request.as_bytes()).await;

        let (head, body) = written.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{written}");
        assert!(head.contains("content-type: application/json\r\n"), "{written}");
        assert_eq!(body, r#"{"error":"the request head is too large"}"#);
    }

    #[test]
    fn hypers_own_answers_to_bad_heads_are_recognised_and_nothing_else() {
        let hyper = |status: &str| format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\ndate: x\r\n\r\n");
        let ours = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        let with_body = "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";

        assert_eq!(parse_error_kind(hyper("400 Bad Request").as_bytes()), Some(ErrorKind::InvalidInput));
        let too_large = hyper("431 Request Header Fields Too Large");
        assert_eq!(parse_error_kind(too_large.as_bytes()), Some(ErrorKind::HeadTooLarge));
        assert_eq!(parse_error_kind(hyper("414 URI Too Long").as_bytes()), Some(ErrorKind::UriTooLong));
        assert_eq!(parse_error_kind(hyper("404 Not Found").as_bytes()), None);
        assert_eq!(parse_error_kind(ours.as_bytes()), None);
        assert_eq!(parse_error_kind(with_body.as_bytes()), None);
        assert_eq!(parse_error_kind(b"{\"error\":\"HTTP/1.1 400 \"}"), None);
    }

    #[test]
    fn the_answer_keeps_hypers_status_and_headers_and_adds_a_json_body_and_a_request_id() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: d\r\n\r\n";

        let text = String::from_utf8(answer(head, ErrorKind::HeadTooLarge, 0.0)).unwrap();

        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ndate: d\r\n"), "{head}");
        assert!(head.contains("content-type: application/json\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(head.contains("x-request-id: "), "{head}");
        assert_eq!(body, r#"{"error":"the request head is too large"}"#);
    }
}
