//! Recovery keys as operators type them: parse, print, parse again gives the same key.
#![no_main]

use hearth_keys::RecoveryKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = RecoveryKey::parse(text) {
        let shown = key.to_display_string();
        let again = RecoveryKey::parse(&shown).expect("printed key parses");
        assert_eq!(*again.to_display_string(), *shown);
    }
});
