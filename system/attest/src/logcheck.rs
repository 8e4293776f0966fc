//! The event-log checks of the verifier: replay against the quoted PCRs, and runtime events
//! against the references.

use hearth_eventlog::{EventLog, EventRef, Replay, RuntimeLog};

use crate::evidence::Evidence;
use crate::pcr::{Bank, PCR_COUNT, PcrValues};
use crate::reference::{AllowedRuntimeEvent, Combined};
use crate::verify::{Check, Claim, Finding, Outcome};

const ID: &str = "eventlog.replay";

fn check(outcome: Outcome, detail: impl Into<String>) -> Check {
    Check {
        id: ID,
        claim: Claim::Executables,
        outcome,
        detail: detail.into(),
        findings: Vec::new(),
    }
}

/// Parses the evidence's logs; `Err` is the failed check.
fn parse_logs(evidence: &Evidence) -> Result<(Option<EventLog>, Option<RuntimeLog>), Check> {
    let firmware = evidence
        .eventlog
        .as_deref()
        .map(EventLog::parse)
        .transpose()
        .map_err(|e| {
            check(
                Outcome::Fail,
                format!("the firmware event log does not parse: {e}"),
            )
        })?;
    let runtime = evidence
        .runtime_log
        .as_deref()
        .map(|text| RuntimeLog::parse(text.as_bytes()))
        .transpose()
        .map_err(|e| {
            check(
                Outcome::Fail,
                format!("the runtime log does not parse: {e}"),
            )
        })?;
    Ok((firmware, runtime))
}

/// Replays the evidence's logs and compares every quoted PCR they touch; names, for a PCR that
/// differs, the first event whose data contradicts its digest, or else the events that built it.
pub(crate) fn check_eventlog(evidence: &Evidence, quoted: &PcrValues) -> Check {
    let (firmware, runtime) = match parse_logs(evidence) {
        Ok(logs) => logs,
        Err(failed) => return failed,
    };
    if firmware.is_none() && runtime.is_none() {
        return check(
            Outcome::Warn,
            "the evidence carries no event log: the PCR values cannot be explained event by event",
        );
    }
    let replay = {
        let base = match &firmware {
            Some(log) => log.replay(),
            None => Replay::empty(&quoted.banks().collect::<Vec<_>>()),
        };
        match &runtime {
            Some(rt) => match base.with_runtime(rt) {
                Ok(r) => r,
                Err(e) => return check(Outcome::Fail, e.to_string()),
            },
            None => base,
        }
    };

    let mut findings = Vec::new();
    // Event data that contradicts its digest is a tampered log, whatever the PCRs say.
    if let Some(log) = &firmware {
        for event in &log.events {
            if event.data_matches_digest() == Some(false) {
                findings.push(Finding {
                    subject: format!("event #{} at byte {}", event.index, event.offset),
                    expected: None,
                    actual: None,
                    note: Some(format!(
                        "{} in PCR {}: its data does not hash to its digest",
                        event.type_name(),
                        event.pcr
                    )),
                });
            }
        }
    }

    let mut compared = 0usize;
    let mut unexplained = Vec::new();
    for bank in quoted.banks() {
        for (pcr, actual) in quoted.bank(bank) {
            match replay.value(bank, pcr) {
                Some(replayed) if replayed == actual => compared += 1,
                Some(replayed) => {
                    compared += 1;
                    findings.push(Finding {
                        subject: format!("{bank}:{pcr}"),
                        expected: Some(hex::encode(replayed)),
                        actual: Some(hex::encode(actual)),
                        note: Some(blame(&firmware, &replay, pcr)),
                    });
                }
                None if replay.banks.contains(&bank) && !is_initial(bank, pcr, actual) => {
                    unexplained.push(format!("{bank}:{pcr}"));
                }
                None => {}
            }
        }
    }
    for subject in unexplained {
        findings.push(Finding {
            subject,
            expected: None,
            actual: None,
            note: Some("extended, but no logged event explains it".into()),
        });
    }

    if findings.is_empty() {
        let what = match (&firmware, &runtime) {
            (Some(_), Some(_)) => "the firmware and runtime logs replay",
            (Some(_), None) => "the firmware log replays",
            _ => "the runtime log replays",
        };
        return check(
            Outcome::Pass,
            format!("{what} to all {compared} quoted PCR values they touch"),
        );
    }
    let mut failed = check(
        Outcome::Fail,
        format!(
            "the event log does not account for the quoted PCRs ({} findings)",
            findings.len()
        ),
    );
    failed.findings = findings;
    failed
}

/// The quoted value a PCR has when nothing extended it since reset.
fn is_initial(bank: Bank, pcr: u8, value: &[u8]) -> bool {
    let fill = if (17..=22).contains(&pcr) { 0xff } else { 0 };
    pcr < PCR_COUNT && value.len() == bank.digest_len() && value.iter().all(|b| *b == fill)
}

/// Which events to look at for a PCR that replays to the wrong value.
fn blame(firmware: &Option<EventLog>, replay: &Replay, pcr: u8) -> String {
    let events = replay.events_for(pcr);
    if let Some(log) = firmware {
        for r in events {
            if let EventRef::Firmware(i) = r {
                if let Some(e) = log.events.get(*i) {
                    if e.data_matches_digest() == Some(false) {
                        return format!(
                            "first divergent event: #{} {} at byte {} (its data does not hash to its digest)",
                            e.index,
                            e.type_name(),
                            e.offset
                        );
                    }
                }
            }
        }
    }
    let list: Vec<String> = events.iter().map(ToString::to_string).collect();
    if list.is_empty() {
        "no logged event extends this PCR".into()
    } else {
        format!("built from events {}", list.join(" "))
    }
}

/// Every runtime event must be one a reference allows (when any reference lists them).
pub(crate) fn check_runtime_events(evidence: &Evidence, combined: &Combined) -> Check {
    let id = "runtime.events";
    let new = |outcome, detail: String| Check {
        id,
        claim: Claim::Configuration,
        outcome,
        detail,
        findings: Vec::new(),
    };
    let Some(allowed) = &combined.runtime_events else {
        return new(
            Outcome::Skipped,
            "no reference constrains runtime events".into(),
        );
    };
    let Some(text) = &evidence.runtime_log else {
        return new(Outcome::Pass, "the evidence has no runtime events".into());
    };
    let log = match RuntimeLog::parse(text.as_bytes()) {
        Ok(log) => log,
        Err(e) => {
            return new(
                Outcome::Fail,
                format!("the runtime log does not parse: {e}"),
            );
        }
    };
    let mut findings = Vec::new();
    for event in &log.events {
        let sha256 = event
            .digest(Bank::Sha256)
            .map(hex::encode)
            .unwrap_or_default();
        let candidate = AllowedRuntimeEvent {
            pcr: event.pcr,
            kind: event.kind.clone(),
            sha256: sha256.clone(),
        };
        if !allowed.contains(&candidate) {
            findings.push(Finding {
                subject: format!("runtime line {}", event.line),
                expected: None,
                actual: Some(format!("PCR {} {} sha256:{sha256}", event.pcr, event.kind)),
                note: Some(format!("not allowed by any reference ({:?})", event.data)),
            });
        }
    }
    if findings.is_empty() {
        new(
            Outcome::Pass,
            format!("all {} runtime events are allowed", log.events.len()),
        )
    } else {
        let mut c = new(
            Outcome::Fail,
            format!(
                "{} of {} runtime events are not allowed",
                findings.len(),
                log.events.len()
            ),
        );
        c.findings = findings;
        c
    }
}
