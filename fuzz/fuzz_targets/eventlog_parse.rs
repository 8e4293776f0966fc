//! Firmware event log: any bytes give a log or an error naming a byte inside the input, never a
//! panic; a parsed log replays, describes and serializes without panicking.
#![no_main]

use hearth_eventlog::EventLog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match EventLog::parse(data) {
        Ok(log) => {
            let replay = log.replay();
            for event in &log.events {
                let _ = event.describe();
                let _ = event.data_matches_digest();
                assert!(event.offset < data.len());
            }
            let _ = log.to_string();
            let _ = replay.to_string();
        }
        Err(e) => assert!(e.offset <= data.len(), "{e}"),
    }
});
