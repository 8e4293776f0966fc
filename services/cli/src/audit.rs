//! `hearth audit verify`: check an exported audit log, offline.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use hearth_audit::{HeadCheck, verify_export_file};

use crate::attest::UnusableInput;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify an exported audit log: exit 0 when the chain is intact (and ends at or after the
    /// attested head, when given), 1 when it is broken, 2 when it cannot be read.
    Verify {
        /// The export (JSON lines), as `GET /api/v1/audit/export` returns it.
        file: PathBuf,
        /// The audit head an attestation quote carried (hex): the export must reach it, which
        /// also catches records cut from its end.
        #[arg(long)]
        head: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; whether the log is intact.
pub fn run(cmd: AuditCommand) -> Result<bool> {
    let AuditCommand::Verify { file, head, json } = cmd;
    let report = verify_export_file(&file, None)
        .with_context(|| format!("reading {}", file.display()))
        .map_err(|e| e.context(UnusableInput))?;
    let head_check = head
        .as_deref()
        .map(|h| report.check_head_hex(h))
        .transpose()
        .context("--head is not a 64-digit hex digest")
        .map_err(|e| e.context(UnusableInput))?;
    let head_ok = !matches!(head_check, Some(HeadCheck::Missing));
    let intact = report.is_intact() && head_ok;
    if json {
        let doc = serde_json::json!({
            "intact": intact,
            "records": report.records,
            "lines": report.lines,
            "head": { "seq": report.head.seq, "hash": report.head.hash.to_hex() },
            "first_time": report.time_range.map(|(a, _)| a.to_string()),
            "last_time": report.time_range.map(|(_, b)| b.to_string()),
            "unfinished": report.unfinished,
            "first_break": report.first_break.as_ref().map(ToString::to_string),
            "attested_head": head_check.map(|c| match c {
                HeadCheck::Matches => "matches".to_owned(),
                HeadCheck::Extends { records_after } => format!("extends by {records_after}"),
                HeadCheck::Missing => "missing".to_owned(),
            }),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(intact);
    }
    match &report.first_break {
        None => println!(
            "audit log intact: {} records, head seq {} hash {}",
            report.records,
            report
                .head
                .seq
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            report.head.hash.to_hex()
        ),
        Some(b) => println!(
            "audit log BROKEN after {} intact records: {b}",
            report.records
        ),
    }
    if let Some((first, last)) = report.time_range {
        println!("records from {first} to {last}");
    }
    if !report.unfinished.is_empty() {
        println!(
            "actions started without a completion record: seq {:?}",
            report.unfinished
        );
    }
    match head_check {
        Some(HeadCheck::Matches) => println!("ends exactly at the attested head"),
        Some(HeadCheck::Extends { records_after }) => {
            println!("reaches the attested head; {records_after} records were appended after it");
        }
        Some(HeadCheck::Missing) => println!(
            "does NOT reach the attested head: records were cut from its end, or it is another log"
        ),
        None => println!(
            "note: without --head, records cut from the end of an export cannot be detected"
        ),
    }
    println!("note: MACs need the appliance's key; this check covers the hash chain");
    Ok(intact)
}
