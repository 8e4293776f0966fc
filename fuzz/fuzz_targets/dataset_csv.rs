//! Dataset CSV (uploads): arbitrary bytes through schema inference, fed whole and in pieces of
//! a size the input picks, then parsed by the inferred schema. Never panics; the pieces do not
//! change the outcome; whatever inference accepts, parsing by its schema accepts too, with the
//! same rows, kinds and missing counts.
#![no_main]

use hearth_ml::dataset::{SchemaInference, infer_csv, parse_csv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let whole = infer_csv(data);
    let mut pieces = SchemaInference::new();
    let fed = data
        .chunks(usize::from(first % 32) + 1)
        .try_for_each(|chunk| pieces.feed(chunk));
    let pieces = fed.and_then(|()| pieces.finish());
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("splitting changed the outcome: {whole:?} vs {pieces:?}"),
    }
    if let Ok(summary) = whole {
        let frame = parse_csv(data, &summary.columns)
            .expect("a file parses by the schema inferred from it");
        assert_eq!(frame.rows() as u64, summary.rows);
        for (column, schema) in frame.columns().iter().zip(&summary.columns) {
            assert_eq!(column.kind, schema.kind);
            let missing = (0..frame.rows())
                .filter(|&i| column.data.is_missing(i))
                .count();
            assert_eq!(missing as u64, schema.missing, "column {}", schema.name);
        }
    }
});
