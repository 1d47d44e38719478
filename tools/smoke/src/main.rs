//! `smoke [--connect-wait SECONDS] URL EXPECTED_BODY`: one `GET` over plain
//! HTTP/1.1; exits 0 when the answer is 200 with exactly EXPECTED_BODY, 1
//! otherwise, 2 on bad usage.
//!
//! `--connect-wait` keeps trying to connect, for that long, while the
//! connection is refused. A Kubernetes Service whose pods are Ready still
//! refuses connections until kube-proxy has caught up with its endpoints (a
//! second or so): `helm test` right after `helm install --wait` would fail
//! on that. Only refusals are retried, and the one request is then judged
//! as it is.
//!
//! It ships in the image so that checks need no shell and no curl image: the
//! chart's `helm test` hook and `scripts/test-image.sh` run it, e.g.
//! `smoke 'http://service2:8081/api/v1/say-hello?name=helm' '"Hello, HELM!"'`.
//! Standard library only (its own crate with no dependencies, so the build
//! enforces that); every network step is bounded by a timeout.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the whole exchange once connected (write, then read to the end).
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger responses are refused: a smoke test expects a few bytes.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The longest `--connect-wait`.
const MAX_CONNECT_WAIT_SECONDS: u64 = 600;
/// Between refused connection attempts.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let usage = "usage: smoke [--connect-wait SECONDS] URL EXPECTED_BODY   (e.g. smoke http://host:8081/path '\"ok\"')";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (connect_wait, args) = match args.as_slice() {
        [flag, seconds, rest @ ..] if flag == "--connect-wait" => match seconds.parse::<u64>() {
            Ok(s) if s <= MAX_CONNECT_WAIT_SECONDS => (Duration::from_secs(s), rest),
            _ => {
                eprintln!("smoke: --connect-wait takes whole seconds, at most {MAX_CONNECT_WAIT_SECONDS}");
                return ExitCode::from(2);
            }
        },
        rest => (Duration::ZERO, rest),
    };
    let [url, expected] = args else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let target = match Target::parse(url) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("smoke: bad URL {url:?}: {e}");
            return ExitCode::from(2);
        }
    };
    match get(&target, connect_wait) {
        Ok(r) if r.status == 200 && r.body == expected.as_bytes() => {
            println!("smoke: ok: GET {url} -> 200 {}", show(&r.body));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "smoke: FAILED: GET {url} -> {} {}, expected 200 {}",
                r.status,
                show(&r.body),
                show(expected.as_bytes())
            );
            ExitCode::from(1)
        }
        Err(e) => {
            println!("smoke: FAILED: GET {url}: {e}");
            ExitCode::from(1)
        }
    }
}

/// A body for a one-line message, cut at 200 characters: as it is when it
/// is printable UTF-8 (a JSON answer), else quoted and escaped.
fn show(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let printable = !text.is_empty() && !text.chars().any(char::is_control);
    if printable && std::str::from_utf8(body).is_ok() {
        text
    } else {
        format!("{text:?}")
    }
}

/// Where an `http://host[:port][/path][?query]` URL points.
#[derive(Debug, PartialEq)]
struct Target {
    /// What to connect to: `host:port`, IPv6 hosts in brackets.
    addr: String,
    /// The `Host` header: the URL's authority as written.
    authority: String,
    /// Path and query, at least `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the URL contains whitespace or control characters".into());
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if authority.contains('@') {
            return Err("user information in URLs is not supported".into());
        }
        // Split off a port after the host; IPv6 hosts are in brackets.
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => (&authority[..i], &authority[i + 1..]),
            _ => (authority, "80"),
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
        if host.is_empty() || host == "[]" {
            return Err("no host".into());
        }
        Ok(Target { addr: format!("{host}:{port}"), authority: authority.to_string(), path })
    }
}

#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

/// Connects to one of `target`'s addresses; while every one refuses, tries
/// again until `wait` has passed.
fn connect(target: &Target, wait: Duration) -> Result<TcpStream, String> {
    let give_up = Instant::now() + wait;
    let mut said_so = false;
    loop {
        let addrs =
            target.addr.to_socket_addrs().map_err(|e| format!("cannot resolve {}: {e}", target.addr))?;
        let mut last_error = format!("{} resolves to no address", target.addr);
        let mut all_refused = true;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    all_refused &= e.kind() == std::io::ErrorKind::ConnectionRefused;
                    last_error = format!("cannot connect to {addr}: {e}");
                }
            }
        }
        if !all_refused || Instant::now() + CONNECT_RETRY_PAUSE > give_up {
            return Err(last_error);
        }
        if !said_so {
            eprintln!("smoke: {} refuses connections; trying again for up to {wait:?}", target.addr);
            said_so = true;
        }
        std::thread::sleep(CONNECT_RETRY_PAUSE);
    }
}

fn get(target: &Target, connect_wait: Duration) -> Result<Response, String> {
    let mut stream = connect(target, connect_wait)?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let io = |e: std::io::Error| format!("talking to {}: {e}", target.addr);

    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: smoke\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;

    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no complete response within {IO_TIMEOUT:?}"));
        }
        stream.set_read_timeout(Some(left)).map_err(io)?;
        let n = stream.read(&mut chunk).map_err(io)?;
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        if let Some(response) = parse_response(&raw, n == 0)? {
            return Ok(response);
        }
    }
}

/// Parses an HTTP/1.x response. `Ok(None)`: incomplete so far (only when
/// `eof` is false). The body is framed by Content-Length, chunked encoding,
/// or the end of the connection.
fn parse_response(raw: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let truncated = || Err("the connection closed before the response ended".to_string());
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return if eof { truncated() } else { Ok(None) };
    };
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    }
    .filter(|code| (100..600).contains(code))
    .ok_or_else(|| format!("bad status line {status_line:?}"))?;

    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| format!("bad Content-Length {value:?}"))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().ends_with("chunked");
        }
    }

    let rest = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n).map(<[u8]>::to_vec)
    } else if eof {
        Some(rest.to_vec())
    } else {
        None
    };
    match body {
        Some(body) => Ok(Some(Response { status, body })),
        None if eof => truncated(),
        None => Ok(None),
    }
}

/// Decodes a chunked body; `Ok(None)` while incomplete. Trailers are ignored.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&data[..line_end]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size line {line:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        let Some(chunk) = data.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(addr: &str, authority: &str, path: &str) -> Target {
        Target { addr: addr.into(), authority: authority.into(), path: path.into() }
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            Target::parse("http://service2:8081/api/v1/say-hello?name=helm").unwrap(),
            target("service2:8081", "service2:8081", "/api/v1/say-hello?name=helm")
        );
        assert_eq!(
            Target::parse("http://rel-service2.ns.svc/x").unwrap(),
            target("rel-service2.ns.svc:80", "rel-service2.ns.svc", "/x")
        );
        assert_eq!(Target::parse("http://127.0.0.1:9").unwrap(), target("127.0.0.1:9", "127.0.0.1:9", "/"));
        assert_eq!(Target::parse("http://h?a=b#frag").unwrap(), target("h:80", "h", "/?a=b"));
        assert_eq!(Target::parse("http://[::1]:8081/p").unwrap(), target("[::1]:8081", "[::1]:8081", "/p"));
        assert_eq!(Target::parse("http://[::1]/p").unwrap(), target("[::1]:80", "[::1]", "/p"));
    }

    #[test]
    fn shows_bodies_on_one_line() {
        assert_eq!(show(b"\"Hello, HELM!\""), "\"Hello, HELM!\"");
        assert_eq!(show(b"a\nb"), "\"a\\nb\"");
        assert_eq!(show(b""), "\"\"");
        assert_eq!(show(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "https://h/",
            "h:80/",
            "http:///p",
            "http://h:port/",
            "http://h:70000/",
            "http://u@h/",
            "http://h/a b",
            "http://h/\r\nX: y",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn parses_content_length_responses() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 14\r\n\r\n\"Hello, HELM!\"";
        let want = Response { status: 200, body: b"\"Hello, HELM!\"".to_vec() };
        assert_eq!(parse_response(raw, false).unwrap(), Some(want));
        // Incomplete: wait for more, unless the connection closed.
        assert_eq!(parse_response(&raw[..raw.len() - 3], false).unwrap(), None);
        assert!(parse_response(&raw[..raw.len() - 3], true).is_err());
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nConte", false).unwrap(), None);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nConte", true).is_err());
    }

    #[test]
    fn parses_other_framings_and_statuses() {
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false).unwrap(),
            Some(Response { status: 503, body: b"{\"a\":1}".to_vec() })
        );
        assert_eq!(parse_response(&chunked[..70], false).unwrap(), None);

        let until_eof = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(until_eof, false).unwrap(), None);
        assert_eq!(
            parse_response(until_eof, true).unwrap(),
            Some(Response { status: 404, body: b"nope".to_vec() })
        );

        assert!(parse_response(b"SSH-2.0-x\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 abc OK\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true).is_err());
    }
}
