//! Blob files as `hearth-store` reads them from disk: the header parser, then the STREAM chunk
//! reader over whatever follows. Nothing may panic, and nothing forged may authenticate.
#![no_main]

use hearth_keys::{BLOB_HEADER_LEN, BlobHeader, DataKey, DecryptingReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = BlobHeader::parse(data) else {
        return;
    };
    assert_eq!(&header.to_bytes()[..], &data[..BLOB_HEADER_LEN]);
    // A key with the header's id, so the reader gets past the id check into the chunks.
    let key = DataKey::generate(header.key_id).expect("system RNG");
    let Ok(mut reader) = DecryptingReader::new(data, &key) else {
        return;
    };
    match reader.next_chunk() {
        Ok(Some(_)) => panic!("a chunk authenticated under a fresh random key"),
        Ok(None) => panic!("a forged stream ended cleanly"),
        Err(_) => {}
    }
});
