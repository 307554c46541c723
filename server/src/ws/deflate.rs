//! Compressing an event once for every subscriber of its topic.
//!
//! Every connection that negotiated permessage-deflate here did so without
//! context takeover and with the full 32 KiB window (the server requires
//! the first and accepts only offers that allow the second for shared
//! payloads; see `EventCompression`). A message compressed on its own with
//! that window is then valid on every one of those connections, so an
//! event is compressed once, by whichever of its subscribers needs it
//! first, and the same bytes are written to all of them. Compressing per
//! connection, as a WebSocket library does, costs as many compressions as
//! there are subscribers: measured, that alone kept 1,000 browser-like
//! subscribers from receiving 100 events a second.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// Messages shorter than this are sent uncompressed: deflate rarely
/// shrinks a few dozen bytes, and RFC 7692 lets each message choose.
pub const COMPRESS_FROM: usize = 128;

thread_local! {
    /// One compressor per thread, reset for every message (no context is
    /// kept), instead of one per connection.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
}

/// The permessage-deflate payload of one message: raw deflate, flushed to
/// a byte boundary, with the final `00 00 ff ff` removed (RFC 7692 §7.2.1).
pub fn message(plain: &[u8]) -> Bytes {
    DEFLATE.with(|cell| {
        let mut deflate = cell.borrow_mut();
        deflate.reset();
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = deflate.total_in();
            // Compressing into a Vec cannot fail: a full buffer is reported
            // as progress, and the loop answers with more room.
            let _ = deflate.compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync);
            consumed += (deflate.total_in() - before) as usize;
            // zlib's rule: the flush is complete once a call leaves output
            // space unused.
            if consumed == plain.len() && out.len() < out.capacity() {
                break;
            }
        }
        debug_assert!(out.ends_with(&[0x00, 0x00, 0xff, 0xff]));
        out.truncate(out.len().saturating_sub(4));
        Bytes::from(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates one message with a fresh decoder, as a client that keeps
    /// no context would.
    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut data = payload.to_vec();
        data.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        let mut d = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(256 * 1024);
        d.decompress_vec(&data, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(d.total_in() as usize, data.len(), "all input consumed");
        out
    }

    #[test]
    fn messages_stand_alone_and_round_trip() {
        let a = br#"{"type":"event","topic":"tasks","payload":{"task":{"title":"Ship it"}}}"#
            .repeat(12);
        let b = vec![b'z'; 100_000];
        let ca = message(&a);
        let cb = message(&b);
        assert!(ca.len() < a.len() / 4);
        assert!(!ca.ends_with(&[0x00, 0x00, 0xff, 0xff]));
        // Each inflates with a fresh decoder: nothing refers to another.
        assert_eq!(inflate(&ca), a);
        assert_eq!(inflate(&cb), b);
        assert_eq!(message(&a), ca, "the same message compresses the same");
        assert_eq!(inflate(&message(b"")), b"");
    }
}
