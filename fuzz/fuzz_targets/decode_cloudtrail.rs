//! Fuzz target: `Decoder::decode` with decoder kind `CloudTrail`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwatch::decode::DecoderKind;

mod common;

fuzz_target!(|data: &[u8]| {
    common::decode(DecoderKind::CloudTrail, data);
});
