//! Evidence JSON as an auditor receives it: parse, then run every check against a reference.
//! Whatever the bytes, the result is an error or a verdict listing all ten checks.
#![no_main]

use hearth_attest::pcr::Bank;
use hearth_attest::{Evidence, Reference, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(evidence) = Evidence::from_json(data) else {
        return;
    };
    let mut reference = Reference::new(None);
    reference.pcrs.insert(Bank::Sha256, 7, vec![0; 32]);
    reference
        .ak_public_sha256
        .push(Reference::ak_digest(&evidence.ak_public));
    let verdict = verify(&evidence, &[reference], &evidence.nonce).expect("a reference is given");
    assert_eq!(verdict.checks.len(), 10);
});
