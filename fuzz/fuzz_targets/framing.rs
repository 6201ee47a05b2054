//! Fuzz target: `decode::framing::frame`, whole and fed in chunks the way
//! the file source feeds it.
//!
//! Invariants checked: `frame` never consumes more than it was given, and
//! at end of input it consumes everything (otherwise the file source would
//! silently drop the tail of a file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwatch::decode::framing::{frame, Frame};

fn count(frame_seen: &Frame<'_>, records: &mut usize, invalid: &mut usize) {
    match frame_seen {
        Frame::Record(bytes) => {
            assert!(!bytes.is_empty(), "empty record framed");
            *records += 1;
        }
        Frame::Invalid { .. } => *invalid += 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let (mut records, mut invalid) = (0usize, 0usize);
    let consumed = frame(data, true, &mut |f| count(&f, &mut records, &mut invalid));
    assert_eq!(consumed, data.len(), "frame at EOF left bytes unconsumed");

    // Chunked, as `FileSource::poll` does: the chunk size comes from the
    // first byte so the fuzzer explores boundaries.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut pending: Vec<u8> = Vec::new();
    let mut pieces = data.chunks(chunk).peekable();
    while let Some(piece) = pieces.next() {
        pending.extend_from_slice(piece);
        let at_eof = pieces.peek().is_none();
        let used = frame(&pending, at_eof, &mut |f| {
            count(&f, &mut records, &mut invalid)
        });
        assert!(used <= pending.len(), "frame consumed more than it had");
        pending.drain(..used);
        if at_eof {
            assert!(pending.is_empty(), "chunked frame at EOF left bytes");
        }
    }
});
