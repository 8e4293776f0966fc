//! The whole quote check over arbitrary message, signature, key and PCR values.
#![no_main]

use hearth_attest::pcr::PcrValues;
use hearth_attest::quote::{AkKey, verify_quote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input into message | signature | key at two length bytes.
    if data.len() < 2 {
        return;
    }
    let (a, b) = (usize::from(data[0]), usize::from(data[1]));
    let rest = &data[2..];
    let (msg, rest) = rest.split_at(a.min(rest.len()));
    let (sig, key) = rest.split_at(b.min(rest.len()));
    if let Ok(ak) = AkKey::from_tpm2b_public(key) {
        let _ = verify_quote(msg, sig, &ak, b"nonce", &PcrValues::default());
    }
});
