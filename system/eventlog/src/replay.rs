//! Replaying logs to PCR values: firmware log first, then Hearth's runtime log.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::error::ReplayError;
use crate::log::EventLog;
use crate::pcr::{Bank, PcrValues};
use crate::runtime::RuntimeLog;

/// An event that extended a PCR: its index in the firmware log's `events`, or in the runtime
/// log's `events`. JSON: `{"firmware": 12}` or `{"runtime": 0}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventRef {
    Firmware(usize),
    Runtime(usize),
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventRef::Firmware(i) => write!(f, "#{i}"),
            EventRef::Runtime(i) => write!(f, "runtime #{i}"),
        }
    }
}

/// The PCR values a log (or logs) produce, and the events that built each PCR.
///
/// Holds every PCR the logs touch (extend, or PCR 0 set by a StartupLocality event), in every
/// bank replayed; untouched PCRs are absent, not zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Replay {
    /// The banks replayed: the known banks of the firmware log.
    pub banks: Vec<Bank>,
    pub pcrs: PcrValues,
    /// Per PCR, the events extended into it, in order. JSON keys are PCR indices as strings.
    pub events: BTreeMap<u8, Vec<EventRef>>,
}

impl Replay {
    /// A replay of nothing yet in `banks` (for a runtime log without a firmware log).
    pub fn empty(banks: &[Bank]) -> Replay {
        let mut unique = Vec::new();
        for b in banks {
            if !unique.contains(b) {
                unique.push(*b);
            }
        }
        Replay {
            banks: unique,
            pcrs: PcrValues::default(),
            events: BTreeMap::new(),
        }
    }

    /// The events that extended `pcr`, in order (empty if none did).
    pub fn events_for(&self, pcr: u8) -> &[EventRef] {
        self.events.get(&pcr).map_or(&[], Vec::as_slice)
    }

    /// The replayed value of `pcr` in `bank`, if the logs touched it.
    pub fn value(&self, bank: Bank, pcr: u8) -> Option<&[u8]> {
        self.pcrs.get(bank, pcr)
    }

    fn extend(&mut self, pcr: u8, digests: &[(Bank, Vec<u8>)], by: EventRef) {
        for (bank, digest) in digests {
            if !self.banks.contains(bank) {
                continue;
            }
            let old = self
                .pcrs
                .get(*bank, pcr)
                .map_or_else(|| vec![0; bank.digest_len()], <[u8]>::to_vec);
            self.pcrs.insert(*bank, pcr, bank.extend(&old, digest));
        }
        self.events.entry(pcr).or_default().push(by);
    }

    /// Continues this replay with Hearth's runtime log (which the TPM saw after the firmware
    /// log). Every runtime event must carry a digest for every bank replayed.
    pub fn with_runtime(mut self, log: &RuntimeLog) -> Result<Replay, ReplayError> {
        for (i, event) in log.events.iter().enumerate() {
            if let Some(bank) = self.banks.iter().find(|b| event.digest(**b).is_none()) {
                return Err(ReplayError::MissingDigest {
                    line: event.line,
                    pcr: event.pcr,
                    bank: *bank,
                });
            }
            self.extend(event.pcr, &event.digests, EventRef::Runtime(i));
        }
        Ok(self)
    }
}

impl EventLog {
    /// Replays the log: every event but EV_NO_ACTION extends its PCR in every bank the log
    /// carries. PCRs start at zero, except PCR 0 after a StartupLocality event (`0…0 ‖
    /// locality`).
    pub fn replay(&self) -> Replay {
        let mut replay = Replay::empty(&self.banks);
        if let Some(locality) = self.startup_locality {
            for bank in &self.banks {
                let mut start = vec![0; bank.digest_len()];
                if let Some(last) = start.last_mut() {
                    *last = locality;
                }
                replay.pcrs.insert(*bank, 0, start);
            }
        }
        for event in self.events.iter().filter(|e| e.is_extended()) {
            replay.extend(event.pcr, &event.digests, EventRef::Firmware(event.index));
        }
        replay
    }
}

/// The firmware log replayed, then the runtime log on top: the PCRs a TPM holds after both.
pub fn replay_all(firmware: &EventLog, runtime: &RuntimeLog) -> Result<Replay, ReplayError> {
    firmware.replay().with_runtime(runtime)
}

impl fmt::Display for Replay {
    /// Per bank, one line per PCR: `  7  65ca… (#4 #5 #6 #7 #8 #9)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for bank in &self.banks {
            writeln!(f, "{bank}:")?;
            for (pcr, value) in self.pcrs.bank(*bank) {
                let events: Vec<String> = self
                    .events_for(pcr)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                writeln!(
                    f,
                    "  {pcr:>2}  {}  ({})",
                    hex::encode(value),
                    if events.is_empty() {
                        "starting value".to_owned()
                    } else {
                        events.join(" ")
                    }
                )?;
            }
        }
        Ok(())
    }
}
