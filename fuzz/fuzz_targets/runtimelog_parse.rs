//! Hearth's runtime log: any bytes give a log or an error naming a line, never a panic; a parsed
//! log prints to text that parses back to the same events and replays in the banks it carries.
#![no_main]

use hearth_eventlog::pcr::Bank;
use hearth_eventlog::{Replay, RuntimeLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match RuntimeLog::parse(data) {
        Ok(log) => {
            let again = RuntimeLog::parse(log.to_text().as_bytes()).expect("printed log parses");
            assert_eq!(again.events.len(), log.events.len());
            for (a, b) in again.events.iter().zip(&log.events) {
                assert_eq!(
                    (a.pcr, &a.digests, &a.kind, &a.data),
                    (b.pcr, &b.digests, &b.kind, &b.data)
                );
            }
            let _ = Replay::empty(&[]).with_runtime(&log);
            let _ = Replay::empty(&[Bank::Sha256]).with_runtime(&log);
        }
        Err(e) => assert!(e.line >= 1, "{e}"),
    }
});
