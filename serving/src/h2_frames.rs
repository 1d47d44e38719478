//! Walking the HTTP/2 frames (RFC 9113 section 4) of a byte stream as it
//! passes, in chunks cut anywhere: each frame header whole, once its nine
//! bytes are in, and its payload in the pieces it arrives in, never copied
//! or held.
//!
//! One walker for every place that reads frames beside h2 rather than
//! through it: [`crate::h2_guard`] (streams and pings a client opens, and
//! where h2's own frames end), service2's upstream connections (the
//! replica's SETTINGS) and tests that watch what a peer sends.

/// Bytes of a frame header: length (3), type, flags, stream id (4).
pub const FRAME_HEADER: usize = 9;

/// Frame types and the one flag the readers here look at.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
/// The ACK flag of SETTINGS and PING frames.
pub const ACK: u8 = 0x1;

/// One frame header, as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader([u8; FRAME_HEADER]);

// === impl FrameHeader ===

impl FrameHeader {
    /// Bytes of payload that follow the header.
    pub fn length(&self) -> usize {
        u32::from_be_bytes([0, self.0[0], self.0[1], self.0[2]]) as usize
    }

    pub fn kind(&self) -> u8 {
        self.0[3]
    }

    pub fn flags(&self) -> u8 {
        self.0[4]
    }

    /// Whether this is a frame of `kind` without the ACK flag: a PING or
    /// SETTINGS the peer sent of its own accord, not an answer.
    pub fn is_unacked(&self, kind: u8) -> bool {
        self.kind() == kind && self.flags() & ACK == 0
    }

    /// The stream id, without the reserved bit.
    pub fn stream(&self) -> u32 {
        u32::from_be_bytes([self.0[5], self.0[6], self.0[7], self.0[8]]) & 0x7fff_ffff
    }
}

/// What [`Frames::walk`] found next in the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A whole frame header; its payload (if any) comes next.
    Header(FrameHeader),
    /// The next bytes of the current frame's payload.
    Payload(&'a [u8]),
}

/// Where a byte stream of HTTP/2 frames is: skipping a connection preface,
/// inside a frame header (how many of its bytes have been seen), or inside
/// a payload (how many bytes remain).
#[derive(Debug, Default)]
pub struct Frames {
    preface: usize,
    header: [u8; FRAME_HEADER],
    have: usize,
    left: usize,
}

// === impl Frames ===

impl Frames {
    /// A walker that first skips `bytes` unreported (a client's
    /// connection preface).
    pub fn skipping(bytes: usize) -> Self {
        Self { preface: bytes, ..Self::default() }
    }

    /// Walks `bytes`, the next of the stream, telling `on` of each whole
    /// frame header and each piece of payload, in order.
    pub fn walk<'a>(&mut self, mut bytes: &'a [u8], mut on: impl FnMut(Piece<'a>)) {
        if self.preface > 0 {
            let n = self.preface.min(bytes.len());
            self.preface -= n;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                self.left -= n;
                on(Piece::Payload(&bytes[..n]));
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == FRAME_HEADER {
                self.have = 0;
                let header = FrameHeader(self.header);
                self.left = header.length();
                on(Piece::Header(header));
            }
        }
    }

    /// Walks `bytes` as [`Frames::walk`] does, telling `on` of the frame
    /// headers only.
    pub fn headers(&mut self, bytes: &[u8], mut on: impl FnMut(FrameHeader)) {
        self.walk(bytes, |piece| {
            if let Piece::Header(header) = piece {
                on(header);
            }
        });
    }

    /// Whether the bytes so far end exactly at a frame's end, so that a
    /// frame of our own could go next.
    pub fn between_frames(&self) -> bool {
        self.preface == 0 && self.have == 0 && self.left == 0
    }
}

/// A frame's bytes, for tests that feed frames to a reader.
#[cfg(test)]
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_and_payloads_are_found_however_the_bytes_are_split() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let bytes = [
            preface.to_vec(),
            frame(HEADERS, 0x4, 1, &[0xaa; 20]),
            frame(DATA, 0, 1, b"abc"),
            frame(PING, ACK, 0, &[0; 8]),
            frame(HEADERS, 0, 3 | 0x8000_0000, &[]),
        ]
        .concat();
        for chunk in [1, 2, 5, 9, 10, 24, 25, bytes.len()] {
            let mut frames = Frames::skipping(preface.len());
            let (mut headers, mut payload) = (Vec::new(), Vec::new());
            for piece in bytes.chunks(chunk) {
                frames.walk(piece, |piece| match piece {
                    Piece::Header(h) => headers.push((h.kind(), h.flags(), h.stream(), h.length())),
                    Piece::Payload(bytes) => payload.extend_from_slice(bytes),
                });
            }

            let expected = [(HEADERS, 0x4, 1, 20), (DATA, 0, 1, 3), (PING, ACK, 0, 8), (HEADERS, 0, 3, 0)];
            assert_eq!(headers, expected, "chunks of {chunk}");
            assert_eq!(payload, [&[0xaa; 20][..], b"abc", &[0; 8]].concat(), "chunks of {chunk}");
            assert!(frames.between_frames());
        }
    }

    #[test]
    fn a_walker_part_way_through_a_frame_is_not_between_frames() {
        let bytes = frame(DATA, 0, 1, b"abc");
        let mut frames = Frames::default();
        frames.headers(&bytes[..4], |_| {});
        assert!(!frames.between_frames(), "inside the header");
        frames.headers(&bytes[4..10], |_| {});
        assert!(!frames.between_frames(), "inside the payload");
        frames.headers(&bytes[10..], |_| {});
        assert!(frames.between_frames());
    }

    #[test]
    fn only_frames_without_the_ack_flag_are_unacked() {
        let header = |kind, flags| {
            let mut frames = Frames::default();
            let mut found = None;
            frames.headers(&frame(kind, flags, 0, &[]), |h| found = Some(h));
            found.unwrap()
        };
        assert!(header(PING, 0).is_unacked(PING));
        assert!(!header(PING, ACK).is_unacked(PING));
        assert!(!header(SETTINGS, 0).is_unacked(PING));
        assert!(header(SETTINGS, 0).is_unacked(SETTINGS));
    }
}
