//! One pass over a short record before anything else reads it.
//!
//! Most Kafka and Kinesis records are one flow line or one host-log line of
//! about a hundred bytes. For those, [`scan`] answers in one pass of 16-byte
//! blocks what three scans answered one after the other: whether the record
//! is valid UTF-8 (it is all ASCII), whether it may hold a line break, and
//! whether a space-delimited pattern would split it on spaces alone.
//! A default-format flow line goes to the flow decoder first
//! ([`super::flow::FlowDecoder::decode_if_plain`]), whose split proves the
//! same in its own pass where the CPU has AVX2 (and which calls [`scan`]
//! where it has not).
//!
//! # Contract
//!
//! - [`scan`] returns `Some` only for a record of at most [`SHORT`] bytes
//!   that is all ASCII, and its [`ShortText::text`] is the record itself.
//!   Any other record gets `None`, and the caller validates it in full.
//! - [`ShortText::plain`] is true exactly when the record has no control
//!   byte (below `0x20`: no line break, carriage return or tab) and no `"`
//!   or `[`. Such a record is one line, and the runs of non-space bytes are
//!   its space-delimited fields.

/// Records longer than this go through full UTF-8 validation: one pass of
/// simdutf8 costs less than this scan there, and they are seldom one line.
pub const SHORT: usize = 512;

/// A short ASCII record, with what the scan proved about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortText<'a> {
    /// The record.
    pub text: &'a str,
    /// No control byte, `"` or `[`.
    pub plain: bool,
}

/// Scans a record of at most [`SHORT`] bytes (see the module contract).
#[inline]
pub fn scan(bytes: &[u8]) -> Option<ShortText<'_>> {
    if bytes.len() > SHORT {
        return None;
    }
    let Flags { non_ascii, special } = flags(bytes);
    if non_ascii {
        return None;
    }
    // SAFETY: every byte of `bytes` is below 0x80 (`non_ascii` is false),
    // and a sequence of ASCII bytes is valid UTF-8.
    let text = unsafe { std::str::from_utf8_unchecked(bytes) };
    Some(ShortText {
        text,
        plain: !special,
    })
}

/// What one pass found in a byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flags {
    /// A byte at or above `0x80`.
    non_ascii: bool,
    /// A byte below `0x20`, a `"` or a `[`.
    special: bool,
}

/// [`Flags`] of `bytes`, sixteen bytes at a time (32 where the CPU has
/// AVX2 and the record is at least that long): the last block overlaps
/// the one before it (the flags only accumulate, so a byte seen twice
/// changes nothing), and a record shorter than a block is padded with
/// spaces, which set neither flag.
#[inline]
fn flags(bytes: &[u8]) -> Flags {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= 32 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (just asked; std caches the answer).
        return unsafe { flags_avx2(bytes) };
    }
    if bytes.len() < 16 {
        let mut block = [b' '; 16];
        block[..bytes.len()].copy_from_slice(bytes);
        return flags_of_blocks(&block, &[]);
    }
    let tail = bytes.len() % 16;
    let last: &[u8] = if tail == 0 {
        &[]
    } else {
        &bytes[bytes.len() - 16..]
    };
    flags_of_blocks(bytes, last)
}

/// [`Flags`] of the whole 16-byte blocks of `blocks`, plus `last` when it
/// is one more block (else empty).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn flags_of_blocks(blocks: &[u8], last: &[u8]) -> Flags {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, so the intrinsics are
    // available; every load is unaligned and reads the 16 bytes of a
    // `chunks_exact(16)` block of `blocks` or of `last`.
    unsafe {
        let low = _mm_set1_epi8(0x1f);
        let quote = _mm_set1_epi8(b'"' as i8);
        let bracket = _mm_set1_epi8(b'[' as i8);
        let mut seen = _mm_setzero_si128();
        let mut special = _mm_setzero_si128();
        let mut add = |block: &[u8]| {
            let v: __m128i = _mm_loadu_si128(block.as_ptr().cast());
            seen = _mm_or_si128(seen, v);
            // Unsigned `v <= 0x1f` as `max(v, 0x1f) == 0x1f`.
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
            let delimiter = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bracket));
            special = _mm_or_si128(special, _mm_or_si128(control, delimiter));
        };
        for block in blocks.chunks_exact(16) {
            add(block);
        }
        if last.len() == 16 {
            add(last);
        }
        Flags {
            // The sign bit of each byte of the OR of all blocks.
            non_ascii: _mm_movemask_epi8(seen) != 0,
            special: _mm_movemask_epi8(special) != 0,
        }
    }
}

/// [`flags_of_blocks`] for AVX2, over 32-byte blocks of `bytes` (at least
/// one block long), the last overlapping the one before it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn flags_avx2(bytes: &[u8]) -> Flags {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_max_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
    };
    let low = _mm256_set1_epi8(0x1f);
    let quote = _mm256_set1_epi8(b'"' as i8);
    let bracket = _mm256_set1_epi8(b'[' as i8);
    let mut seen = _mm256_setzero_si256();
    let mut special = _mm256_setzero_si256();
    let mut add = |block: &[u8; 32]| {
        // SAFETY: `block` is 32 readable bytes, and the load has no
        // alignment requirement.
        let v = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
        seen = _mm256_or_si256(seen, v);
        // Unsigned `v <= 0x1f` as `max(v, 0x1f) == 0x1f`.
        let control = _mm256_cmpeq_epi8(_mm256_max_epu8(v, low), low);
        let delimiter = _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bracket));
        special = _mm256_or_si256(special, _mm256_or_si256(control, delimiter));
    };
    let mut rest = bytes;
    while let Some((block, tail)) = rest.split_first_chunk::<32>() {
        add(block);
        rest = tail;
    }
    if !rest.is_empty() {
        if let Some(last) = bytes.last_chunk::<32>() {
            add(last);
        }
    }
    Flags {
        // The sign bit of each byte of the OR of all blocks.
        non_ascii: _mm256_movemask_epi8(seen) != 0,
        special: _mm256_movemask_epi8(special) != 0,
    }
}

/// [`flags_of_blocks`] a byte at a time (other architectures, and the
/// reference the SSE2 version is tested against).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn flags_of_bytes(bytes: &[u8]) -> Flags {
    Flags {
        non_ascii: !bytes.is_ascii(),
        special: bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'['),
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn flags_of_blocks(blocks: &[u8], last: &[u8]) -> Flags {
    let whole = blocks.len() - blocks.len() % 16;
    let a = flags_of_bytes(&blocks[..whole]);
    let b = flags_of_bytes(last);
    Flags {
        non_ascii: a.non_ascii || b.non_ascii,
        special: a.special || b.special,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes that move the flags, and ordinary ones.
    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(b"abc 019-.:".to_vec()),
            1 => prop::sample::select(vec![b'"', b'[', b']', b'\t', b'\n', b'\r', 0, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff]),
        ]
    }

    proptest! {
        /// The block-wise flags equal a byte-by-byte look, for every length
        /// up to past [`SHORT`] and a special byte in any position.
        #[test]
        fn flags_agree_with_a_byte_scan(bytes in prop::collection::vec(interesting_byte(), 0..600)) {
            prop_assert_eq!(flags(&bytes), flags_of_bytes(&bytes));
            // The 16-byte blocks too, where `flags` took 32-byte ones.
            if bytes.len() >= 16 {
                let tail = bytes.len() % 16;
                let last = if tail == 0 { &[][..] } else { &bytes[bytes.len() - 16..] };
                prop_assert_eq!(flags_of_blocks(&bytes, last), flags_of_bytes(&bytes));
            }
        }

        /// `scan` keeps exactly the short ASCII records, whole.
        #[test]
        fn scan_keeps_short_ascii_records(bytes in prop::collection::vec(interesting_byte(), 0..600)) {
            let scanned = scan(&bytes);
            let expected = bytes.len() <= SHORT && bytes.is_ascii();
            prop_assert_eq!(scanned.is_some(), expected);
            if let Some(short) = scanned {
                prop_assert_eq!(short.text.as_bytes(), &bytes[..]);
                prop_assert_eq!(short.plain, !flags_of_bytes(&bytes).special);
            }
        }
    }

    #[test]
    fn one_special_byte_anywhere_is_found() {
        for len in [1usize, 15, 16, 17, 31, 32, 33, 100, SHORT] {
            for at in 0..len {
                for special in [b'"', b'[', b'\n', b'\t', b'\r', 0u8] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    let short = scan(&bytes).expect("ASCII and short");
                    assert!(!short.plain, "{special:#x} at {at} of {len}");
                }
                let mut bytes = vec![b'a'; len];
                bytes[at] = 0xc3;
                assert_eq!(scan(&bytes), None, "non-ASCII at {at} of {len}");
            }
            let bytes = vec![b'a'; len];
            assert_eq!(
                scan(&bytes),
                Some(ShortText {
                    text: std::str::from_utf8(&bytes).expect("ASCII"),
                    plain: true
                })
            );
        }
        assert_eq!(scan(&vec![b'a'; SHORT + 1]), None, "too long");
    }
}
