//! Record envelopes as `hearth-store` reads them from its database: the framing parser and the
//! opener. Nothing may panic, and nothing forged may authenticate.
#![no_main]

use std::sync::OnceLock;

use hearth_keys::{EnvelopeHeader, Purpose, RECORD_OVERHEAD, RecordCipher, RootSecret};
use libfuzzer_sys::fuzz_target;

fn cipher() -> &'static RecordCipher {
    static CIPHER: OnceLock<RecordCipher> = OnceLock::new();
    CIPHER.get_or_init(|| {
        let root = RootSecret::generate().expect("system RNG");
        RecordCipher::new(&root.derive(b"fuzz", Purpose::STORE)).expect("system RNG")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(header) = EnvelopeHeader::parse(data) {
        assert_eq!(header.ciphertext_len + RECORD_OVERHEAD, data.len());
    }
    // The input doubles as table name and key material for the associated data.
    let (table, key) = data.split_at(data.len().min(7));
    let table = String::from_utf8_lossy(table);
    assert!(
        cipher().open(&table, key, data).is_err(),
        "a forged envelope authenticated"
    );
    // And whatever we seal opens back, bound to the same place.
    let sealed = cipher().seal(&table, key, data).expect("seal");
    assert_eq!(cipher().open(&table, key, &sealed).expect("open"), data);
});
