//! PCR selection text (`sha256:0-7+sha1:0`): parse, print, parse again gives the same.
#![no_main]

use hearth_attest::pcr::PcrSelection;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sel) = text.parse::<PcrSelection>() {
        let again: PcrSelection = sel.to_string().parse().expect("printed selection parses");
        assert_eq!(again, sel);
    }
});
