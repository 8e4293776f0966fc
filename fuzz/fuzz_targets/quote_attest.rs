//! TPMS_ATTEST and TPMT_SIGNATURE parsers: any bytes give a value or an error, never a panic.
#![no_main]

use hearth_attest::quote::{Attest, EcdsaSignature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Attest::parse(data) {
        assert!(a.extra_data.len() <= 64 && a.pcr_digest.len() <= 64);
    }
    let _ = EcdsaSignature::parse(data);
});
