//! Counting gRPC messages as the bytes of a request or response body pass,
//! without copying or holding them.
//!
//! A body is a sequence of length-prefixed messages: one byte of flags,
//! four of length (big-endian), then that many bytes. HTTP/2 cuts it into
//! DATA frames anywhere, so [`MessageCounter`] carries the position across
//! chunks. Per chunk it does work in proportion to the messages in it, not
//! the bytes.

use bytes::Buf;

/// The length prefix of a gRPC message: a flags byte, then a u32.
const PREFIX: usize = 5;

/// At most this many pieces of one chunk are looked at; a chunk made of
/// more (none is here: hyper and tonic pass single `Bytes`) stops the
/// count for the rest of that body rather than miscount it.
const MAX_PIECES: usize = 16;

/// Where a body is in its message framing.
#[derive(Debug, Default, Clone)]
pub struct MessageCounter {
    /// Bytes of the current prefix seen so far (0 to 4: at 5 it is done).
    prefix_seen: usize,
    /// The length bytes of the prefix being read.
    length: [u8; 4],
    /// Bytes of the current message still to pass.
    remaining: u64,
    /// A chunk was not seen whole: the position is lost.
    lost: bool,
}

// === impl MessageCounter ===

impl MessageCounter {
    /// How many messages start in `data`: a message is counted as its
    /// prefix completes.
    pub fn count_buf(&mut self, data: &impl Buf) -> u64 {
        if self.lost {
            return 0;
        }
        let mut pieces = [std::io::IoSlice::new(&[]); MAX_PIECES];
        let filled = data.chunks_vectored(&mut pieces);
        let seen: usize = pieces[..filled].iter().map(|p| p.len()).sum();
        if seen < data.remaining() {
            self.lost = true;
            return 0;
        }
        pieces[..filled].iter().map(|piece| self.count(piece)).sum()
    }

    /// How many messages start in `bytes`, the next bytes of the body.
    pub fn count(&mut self, mut bytes: &[u8]) -> u64 {
        let mut started = 0;
        loop {
            if self.remaining > 0 {
                let skip = self.remaining.min(bytes.len() as u64);
                self.remaining -= skip;
                bytes = &bytes[skip as usize..];
            }
            if bytes.is_empty() {
                return started;
            }
            // In a prefix: the flags byte, then four bytes of length.
            let take = (PREFIX - self.prefix_seen).min(bytes.len());
            for (i, byte) in bytes[..take].iter().enumerate() {
                let at = self.prefix_seen + i;
                if at > 0 {
                    self.length[at - 1] = *byte;
                }
            }
            self.prefix_seen += take;
            bytes = &bytes[take..];
            if self.prefix_seen == PREFIX {
                started += 1;
                self.prefix_seen = 0;
                self.remaining = u64::from(u32::from_be_bytes(self.length));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(b'x', len));
        bytes
    }

    #[test]
    fn messages_are_counted_however_the_body_is_cut() {
        let body: Vec<u8> = [0, 1, 7, 300, 0, 70_000].into_iter().flat_map(message).collect();
        for cut in [1, 2, 3, 5, 6, 7, 64, 1000, body.len()] {
            let mut counter = MessageCounter::default();

            let counted: u64 = body.chunks(cut).map(|chunk| counter.count(chunk)).sum();

            assert_eq!(counted, 6, "cut every {cut} bytes");
        }
    }

    #[test]
    fn a_message_counts_once_its_prefix_is_through() {
        let mut counter = MessageCounter::default();
        let one = message(10);

        assert_eq!(counter.count(&one[..4]), 0);
        assert_eq!(counter.count(&one[4..6]), 1);
        assert_eq!(counter.count(&one[6..]), 0);
        assert_eq!(counter.count(&message(0)), 1);
    }

    #[test]
    fn a_buf_in_more_pieces_than_are_looked_at_stops_the_count() {
        let one = message(1);
        let mut chained: Box<dyn Buf> = Box::new(&one[..]);
        for _ in 0..MAX_PIECES {
            chained = Box::new(chained.chain(&one[..]));
        }
        let mut counter = MessageCounter::default();

        assert_eq!(counter.count_buf(&chained), 0);
        assert_eq!(counter.count_buf(&bytes::Bytes::from(message(3))), 0, "the position is lost");
        assert_eq!(MessageCounter::default().count_buf(&bytes::Bytes::from(message(3))), 1);
    }
}
