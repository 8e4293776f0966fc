//! Sealed-blob JSON, as `hearth tpm unseal` reads it from stdin.
#![no_main]

use hearth_tpm::SealedBlob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blob) = SealedBlob::from_json(data) {
        // Whatever parses must survive a round trip unchanged.
        let again = SealedBlob::from_json(blob.to_json().as_bytes()).expect("round trip");
        assert_eq!(again, blob);
    }
});
