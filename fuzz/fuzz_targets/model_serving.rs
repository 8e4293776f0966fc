//! Model serving's untrusted inputs: predict bodies (`{"rows": [...]}` against a model's inputs)
//! and export bundles (strict parser and offline verifier).
#![no_main]

use hearth_ml::ColumnKind;
use hearth_ml::card::{parse_bundle, verify_bundle};
use hearth_ml::serve::parse_rows;
use libfuzzer_sys::fuzz_target;

const INPUTS: &[(&str, ColumnKind)] = &[
    ("x", ColumnKind::Numeric),
    ("cat", ColumnKind::Categorical),
    ("flag", ColumnKind::Boolean),
    ("when", ColumnKind::Timestamp),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        if let Ok(rows) = parse_rows(INPUTS, rest) {
            // Every accepted row has exactly one value per input.
            assert!(rows.iter().all(|r| r.len() == INPUTS.len()));
        }
    } else {
        let parsed = parse_bundle(rest);
        let verified = verify_bundle(rest, Some(&[0u8; 32]));
        // The verifier reads exactly what the parser reads, and never trusts an unknown key.
        assert_eq!(parsed.is_ok(), verified.is_ok());
        if let Ok(v) = verified {
            assert!(!v.trusted());
        }
    }
});
