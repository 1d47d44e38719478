//! The largest header list a replica accepts, as it said in its
//! `SETTINGS_MAX_HEADER_LIST_SIZE`, and the check that keeps a request
//! over it from leaving.
//!
//! The h2 crate reads that setting but neither enforces it on requests nor
//! tells its user (h2 0.4.20). A request over it is answered 431 and reset
//! by the replica, which counts such resets against the whole shared
//! connection (`h2_guard`): before the tracestate was cut, 512 callers with
//! a 16 KB `tracestate` got it closed for everyone (issue 26, shape 7).
//! So the replica's SETTINGS frames are read here from the bytes it sends
//! (payloads of SETTINGS frames only; every other frame is skipped unread),
//! and a request whose header list is larger fails before it is sent: a
//! local failure, INTERNAL as grpc-go reports it, not retried (it would be
//! as large on any replica) and not held against the replica or its
//! connection.

use std::{
    error::Error,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
};

use serving::h2_frames::{Frames, Piece, SETTINGS};

/// What one connection's replica accepts; unlimited until it says.
#[derive(Debug)]
pub struct HeaderListLimit {
    bytes: AtomicU32,
}

impl Default for HeaderListLimit {
    fn default() -> Self {
        // RFC 9113 6.5.2: "The initial value of this setting is unlimited."
        Self { bytes: AtomicU32::new(u32::MAX) }
    }
}

/// A request not sent because its header list is larger than the replica
/// said it accepts.
#[derive(Debug, thiserror::Error)]
#[error("the request's header list ({size} bytes) is larger than service1 accepts (SETTINGS_MAX_HEADER_LIST_SIZE {limit}); not sent")]
pub struct HeaderListTooLarge {
    pub size: usize,
    pub limit: u32,
}

impl HeaderListLimit {
    /// Refuses `request` if its header list, counted as RFC 9113 6.5.2
    /// counts it (name, value and 32 bytes per field, pseudo-header fields
    /// included), is larger than the replica accepts.
    pub fn check<B>(&self, request: &http::Request<B>) -> Result<(), HeaderListTooLarge> {
        let limit = self.bytes.load(Ordering::Relaxed);
        if limit == u32::MAX {
            return Ok(());
        }
        let size = header_list_size(request);
        if size > limit as usize {
            return Err(HeaderListTooLarge { size, limit });
        }
        Ok(())
    }

    /// The failure a caller of the connection gets: a gRPC status, INTERNAL,
    /// with the [`HeaderListTooLarge`] as its source.
    pub fn refusal(too_large: HeaderListTooLarge) -> Box<dyn Error + Send + Sync> {
        let mut status = tonic::Status::internal(too_large.to_string());
        status.set_source(Arc::new(too_large));
        Box::new(status)
    }
}

/// Whether a call failed here, before it was sent, for its header list.
pub fn refused_locally(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<HeaderListTooLarge>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// RFC 9113 6.5.2's size of the header list h2 would send for `request`.
fn header_list_size<B>(request: &http::Request<B>) -> usize {
    const PER_FIELD: usize = 32;
    let uri = request.uri();
    let pseudo = [
        (":method".len(), request.method().as_str().len()),
        (":scheme".len(), uri.scheme_str().map_or(0, str::len)),
        (":authority".len(), uri.authority().map_or(0, |a| a.as_str().len())),
        (":path".len(), uri.path_and_query().map_or(1, |p| p.as_str().len())),
    ];
    let pseudo: usize = pseudo.iter().map(|(name, value)| name + value + PER_FIELD).sum();
    let fields: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + PER_FIELD).sum();
    pseudo + fields
}

/// Reads the replica's SETTINGS frames from the bytes it sends, noting its
/// `SETTINGS_MAX_HEADER_LIST_SIZE` in a [`HeaderListLimit`].
pub struct SettingsReader {
    frames: Frames,
    settings: Settings,
}

/// Where the reader is in the payloads of the replica's SETTINGS frames.
struct Settings {
    limit: Arc<HeaderListLimit>,
    /// The current frame is a SETTINGS frame (not an ack).
    in_settings: bool,
    entry: [u8; SETTING],
    entry_have: usize,
}

/// Bytes of one setting: a u16 identifier and a u32 value.
const SETTING: usize = 6;
const MAX_HEADER_LIST_SIZE: u16 = 0x6;

// === impl SettingsReader ===

impl SettingsReader {
    pub fn new(limit: Arc<HeaderListLimit>) -> Self {
        let settings = Settings { limit, in_settings: false, entry: [0; SETTING], entry_have: 0 };
        Self { frames: Frames::default(), settings }
    }

    /// Walks `bytes`, the next the replica sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        let settings = &mut self.settings;
        self.frames.walk(bytes, |piece| match piece {
            Piece::Header(header) => {
                settings.in_settings = header.is_unacked(SETTINGS);
                settings.entry_have = 0;
            }
            Piece::Payload(payload) if settings.in_settings => settings.payload(payload),
            Piece::Payload(_) => {}
        });
    }
}

// === impl Settings ===

impl Settings {
    fn payload(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (SETTING - self.entry_have).min(bytes.len());
            self.entry[self.entry_have..self.entry_have + n].copy_from_slice(&bytes[..n]);
            self.entry_have += n;
            bytes = &bytes[n..];
            if self.entry_have == SETTING {
                self.entry_have = 0;
                let id = u16::from_be_bytes([self.entry[0], self.entry[1]]);
                if id == MAX_HEADER_LIST_SIZE {
                    let value =
                        u32::from_be_bytes([self.entry[2], self.entry[3], self.entry[4], self.entry[5]]);
                    self.limit.bytes.store(value, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serving::h2_frames::ACK;

    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    }

    fn setting(id: u16, value: u32) -> Vec<u8> {
        [id.to_be_bytes().as_slice(), value.to_be_bytes().as_slice()].concat()
    }

    #[test]
    fn the_replica_s_max_header_list_size_is_read_however_its_bytes_are_split() {
        let settings = [setting(0x3, 256), setting(MAX_HEADER_LIST_SIZE, 1000), setting(0x4, 65535)].concat();
        // A DATA frame whose payload looks like a SETTINGS entry must be skipped.
        let bytes = [
            frame(0x0, 0, &setting(MAX_HEADER_LIST_SIZE, 1)),
            frame(SETTINGS, 0, &settings),
            frame(SETTINGS, ACK, &[]),
        ]
        .concat();
        for chunk in [1, 2, 5, 7, 9, bytes.len()] {
            let limit = Arc::new(HeaderListLimit::default());
            let mut reader = SettingsReader::new(limit.clone());
            for piece in bytes.chunks(chunk) {
                reader.feed(piece);
            }
            assert_eq!(limit.bytes.load(Ordering::Relaxed), 1000, "chunks of {chunk}");
        }
    }

    fn request(padding: usize) -> http::Request<()> {
        http::Request::post("http://127.0.0.1:50051/app.grpc.Service1/ProcessName")
            .header("x", "a".repeat(padding))
            .body(())
            .unwrap()
    }

    #[test]
    fn a_request_over_the_replica_s_limit_is_refused_and_one_within_it_is_not() {
        let limit = HeaderListLimit::default();
        let size = header_list_size(&request(0));
        // :method POST, :scheme http, :authority, :path, and x: each + 32.
        assert_eq!(size, (7 + 4) + (7 + 4) + (10 + 15) + (5 + 30) + 1 + 4 * 32 + 32);
        assert!(limit.check(&request(100_000)).is_ok(), "unlimited until the replica says");

        limit.bytes.store(size as u32 + 10, Ordering::Relaxed);

        assert!(limit.check(&request(10)).is_ok());
        let refused = limit.check(&request(11)).unwrap_err();
        assert_eq!((refused.size, refused.limit), (size + 11, size as u32 + 10));
        let status = *HeaderListLimit::refusal(refused).downcast::<tonic::Status>().unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(refused_locally(&status));
        assert!(!refused_locally(&tonic::Status::internal("service1's own")));
    }
}
