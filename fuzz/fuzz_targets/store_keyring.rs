//! Keyring JSON (`keyring.json` in a store directory): parse, print, parse again gives the same.
#![no_main]

use hearth_keys::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(keyring) = Keyring::from_json(data) {
        let again = Keyring::from_json(keyring.to_json().as_bytes()).expect("round trip");
        assert_eq!(again, keyring);
    }
});
