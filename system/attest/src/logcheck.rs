//! The event-log checks of the verifier: replay against the quoted PCRs, and runtime events
//! against the references.

use std::collections::BTreeSet;

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

/// What the replay established, for the runtime-event check: the quoted (bank, PCR) pairs whose
/// values the logs reproduce exactly.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    pub explained: BTreeSet<(Bank, u8)>,
}

/// Replays the evidence's logs and compares every quoted PCR they touch; names, for a PCR that
/// differs, the first event whose data contradicts its digest, or else the events that built it.
/// Never passes vacuously: a quoted bank the logs do not carry, or logs that explain no quoted
/// PCR, fail.
pub(crate) fn check_eventlog(evidence: &Evidence, quoted: &PcrValues) -> (Check, Analysis) {
    let mut analysis = Analysis::default();
    let (firmware, runtime) = match parse_logs(evidence) {
        Ok(logs) => logs,
        Err(failed) => return (failed, analysis),
    };
    if firmware.is_none() && runtime.is_none() {
        return (
            check(
                Outcome::Warn,
                "the evidence carries no event log: the PCR values cannot be explained event by \
                 event",
            ),
            analysis,
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
                Err(e) => return (check(Outcome::Fail, e.to_string()), analysis),
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
        if !replay.banks.contains(&bank) {
            findings.push(Finding {
                subject: format!("bank {bank}"),
                expected: None,
                actual: None,
                note: Some(
                    "quoted, but the logs do not carry this bank: its values are unexplained"
                        .into(),
                ),
            });
            continue;
        }
        for (pcr, actual) in quoted.bank(bank) {
            match replay.value(bank, pcr) {
                Some(replayed) if replayed == actual => {
                    compared += 1;
                    analysis.explained.insert((bank, pcr));
                }
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

    if compared == 0 && findings.is_empty() {
        findings.push(Finding {
            subject: "quote".into(),
            expected: None,
            actual: None,
            note: Some("the logs explain none of the quoted PCRs".into()),
        });
    }

    if findings.is_empty() {
        // Events in PCRs the quote does not cover are unverified: say so, without failing.
        let unquoted: Vec<String> = replay
            .events
            .keys()
            .filter(|pcr| replay.banks.iter().all(|b| quoted.get(*b, **pcr).is_none()))
            .map(u8::to_string)
            .collect();
        let what = match (&firmware, &runtime) {
            (Some(_), Some(_)) => "the firmware and runtime logs replay",
            (Some(_), None) => "the firmware log replays",
            _ => "the runtime log replays",
        };
        let mut passed = check(
            Outcome::Pass,
            format!("{what} to all {compared} quoted PCR values they touch"),
        );
        if !unquoted.is_empty() {
            passed.outcome = Outcome::Warn;
            passed.detail.push_str(&format!(
                "; events in PCRs {} are unverified (not quoted)",
                unquoted.join(", ")
            ));
        }
        return (passed, analysis);
    }
    let mut failed = check(
        Outcome::Fail,
        format!(
            "the event log does not account for the quoted PCRs ({} findings)",
            findings.len()
        ),
    );
    failed.findings = findings;
    (failed, analysis)
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
            if let EventRef::Firmware(i) = r
                && let Some(e) = log.events.get(*i)
                && e.data_matches_digest() == Some(false)
            {
                return format!(
                    "first divergent event: #{} {} at byte {} (its data does not hash to its digest)",
                    e.index,
                    e.type_name(),
                    e.offset
                );
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

/// Every runtime event must be one a reference allows (when any reference lists them), and what
/// the runtime log says must be proven: every PCR the allowed or logged runtime events touch must
/// be quoted in sha256 and reproduced exactly by the replay (or, with no runtime log, still be at
/// its reset value).
pub(crate) fn check_runtime_events(
    evidence: &Evidence,
    combined: &Combined,
    quoted: &PcrValues,
    analysis: &Analysis,
) -> Check {
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
    let log = match evidence
        .runtime_log
        .as_deref()
        .map(|t| RuntimeLog::parse(t.as_bytes()))
    {
        None => None,
        Some(Ok(log)) => Some(log),
        Some(Err(e)) => {
            return new(
                Outcome::Fail,
                format!("the runtime log does not parse: {e}"),
            );
        }
    };
    let events = log.as_ref().map_or(&[][..], |l| l.events.as_slice());
    let mut findings = Vec::new();
    for event in events {
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
    let constrained: BTreeSet<u8> = allowed
        .iter()
        .map(|a| a.pcr)
        .chain(events.iter().map(|e| e.pcr))
        .collect();
    for pcr in constrained {
        let proven = match quoted.get(Bank::Sha256, pcr) {
            None => Err("not quoted in sha256, so the runtime log cannot be checked against it"),
            Some(_) if analysis.explained.contains(&(Bank::Sha256, pcr)) => Ok(()),
            Some(value) if log.is_none() && is_initial(Bank::Sha256, pcr, value) => Ok(()),
            Some(_) if log.is_none() => Err("extended, but the evidence carries no runtime log"),
            Some(_) => Err("the logs do not reproduce its quoted value"),
        };
        if let Err(note) = proven {
            findings.push(Finding {
                subject: format!("sha256:{pcr}"),
                expected: None,
                actual: None,
                note: Some(note.into()),
            });
        }
    }
    if findings.is_empty() {
        new(
            Outcome::Pass,
            format!(
                "all {} runtime events are allowed and the quote proves them",
                events.len()
            ),
        )
    } else {
        let mut c = new(
            Outcome::Fail,
            format!(
                "the runtime events are not proven allowed ({} findings)",
                findings.len()
            ),
        );
        c.findings = findings;
        c
    }
}
