//! Capped gzip decompression (the gzip-bomb guard).
//!
//! Contract: [`gunzip`] decompresses every member of a (multi-member) gzip
//! stream, reading at most `cap + 1` bytes of output: more than `cap` is
//! `decompressed_too_large`, found without decompressing the rest. A stream
//! that ends early is `truncated_gzip`; any other corruption is `bad_gzip`.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::decode::{DecodeError, DecodeErrorReason};

/// The gzip magic bytes.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` starts with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Decompresses `bytes`, refusing output larger than `cap` bytes.
pub fn gunzip(bytes: &[u8], cap: usize) -> Result<Vec<u8>, DecodeError> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut output = Vec::with_capacity(bytes.len().saturating_mul(4).min(cap).min(1 << 20));
    let result = MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut output);
    match result {
        Ok(_) if output.len() > cap => Err(DecodeError::new(
            DecodeErrorReason::DecompressedTooLarge,
            format!("decompressed size exceeds max_decompressed_bytes {cap}"),
        )),
        Ok(_) => Ok(output),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Err(DecodeError::new(
            DecodeErrorReason::TruncatedGzip,
            format!("gzip stream ends early: {error}"),
        )),
        Err(error) => Err(DecodeError::new(
            DecodeErrorReason::BadGzip,
            format!("corrupt gzip: {error}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn roundtrip_and_multi_member() {
        let mut two = gz(b"hello ");
        two.extend(gz(b"world"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"hello world");
    }

    #[test]
    fn caps_and_truncation() {
        let big = gz(&[0u8; 10_000]);
        assert_eq!(
            gunzip(&big, 9_999).unwrap_err().reason,
            DecodeErrorReason::DecompressedTooLarge
        );
        assert_eq!(gunzip(&big, 10_000).unwrap().len(), 10_000);
        let data = gz(b"some text that is long enough to matter");
        let cut = &data[..data.len() - 6];
        assert_eq!(
            gunzip(cut, 1000).unwrap_err().reason,
            DecodeErrorReason::TruncatedGzip
        );
        assert_eq!(
            gunzip(&data[..5], 1000).unwrap_err().reason,
            DecodeErrorReason::TruncatedGzip
        );
    }
}
