//! Dataset Parquet (uploads): arbitrary bytes through the footer checks, schema inference and
//! decoding, as an upload and `load_frame` run them. Never panics, never asks for absurd memory
//! (libFuzzer's malloc limit catches that); whatever inference accepts, decoding by its schema
//! accepts too, with the same rows, kinds and missing counts. Seed it with the fixtures:
//! `cp services/ml/tests/fixtures/*.parquet fuzz/corpus/dataset_parquet/`.
#![no_main]

use hearth_ml::dataset::parquet::{footer, infer_parquet, parse_parquet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A footer may claim billions of all-null rows in a few bytes (legitimately: run-length
    // levels); decoding them is slow, not wrong. Keep runs short.
    match footer(data) {
        Ok(f) if f.rows() > 100_000 => return,
        Ok(_) => {}
        Err(_) => return,
    }
    let Ok(summary) = infer_parquet(data) else {
        return;
    };
    let frame = parse_parquet(data, &summary.columns)
        .expect("a file decodes by the schema inferred from it");
    assert_eq!(frame.rows() as u64, summary.rows);
    for (column, schema) in frame.columns().iter().zip(&summary.columns) {
        assert_eq!(column.kind, schema.kind);
        let missing = (0..frame.rows())
            .filter(|&i| column.data.is_missing(i))
            .count();
        assert_eq!(missing as u64, schema.missing, "column {}", schema.name);
    }
});
