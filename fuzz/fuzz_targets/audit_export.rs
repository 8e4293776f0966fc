//! An audit export as an auditor receives it: verify with and without the MAC key, check a head,
//! and parse every line alone. Whatever the bytes, the result is a report (or the size error),
//! never a panic; a report never counts more records than lines.
#![no_main]

use hearth_audit::{AuditKey, Record, verify_export};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = AuditKey::from_bytes(&[7; 32]);
    for mac_key in [None, Some(&key)] {
        let Ok(report) = verify_export(data, mac_key) else {
            return;
        };
        assert!(report.records <= report.lines);
        if let Some(at) = &report.first_break {
            assert!(at.line <= report.lines);
        }
        let _ = report.check_head(&report.head.hash);
    }
    for line in data.split(|&b| b == b'\n') {
        let _ = Record::from_json_line(line);
    }
});
