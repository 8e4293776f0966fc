//! TPM2B_PUBLIC and PEM key parsers.
#![no_main]

use hearth_attest::quote::AkKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = AkKey::from_tpm2b_public(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AkKey::from_pem(text);
    }
});
