//! Verifying an export: the journal's JSON lines, as an auditor receives them.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use crate::chain::{Break, BreakKind, Chain, Head};
use crate::digest::{Digest, DigestHexError};
use crate::key::AuditKey;
use crate::record::{GENESIS, Record};
use crate::time::Timestamp;

/// Largest export [`verify_export`] reads: 1 GiB (some four million records).
pub const MAX_EXPORT: usize = 1 << 30;

/// What verifying an export found. A broken chain is a report with [`Report::first_break`]
/// set, not an error: everything before the break was verified and is described here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records verified: the intact prefix, up to the first break.
    pub records: u64,
    /// Lines in the export (the final newline ends the last line; it does not start another).
    pub lines: u64,
    /// The last verified record. Compare it with an attested `audit_head` with
    /// [`Report::check_head`]: an export cut short at the end verifies, and only that comparison
    /// shows it.
    pub head: Head,
    /// Time of the first and the last verified record.
    pub time_range: Option<(Timestamp, Timestamp)>,
    /// Verified records timed earlier than the record before them (clock steps; not a break).
    pub time_regressions: u64,
    /// Whether every verified record's MAC was checked (a key was given). Without the key, MAC
    /// fields are checked for form only: an edited MAC, or a chain rebuilt from scratch by
    /// someone who can compute SHA-256, is caught only with the key or against an attested head.
    pub mac_checked: bool,
    /// Started records in the verified prefix without a completion.
    pub unfinished: Vec<u64>,
    /// Where the chain first breaks, if it does. Nothing after it is trusted or counted.
    pub first_break: Option<Break>,
    /// `hashes[i]` is the head after `i` records (`hashes[0]` is [`GENESIS`]).
    hashes: Vec<Digest>,
}

/// Where an attested head lies in a verified export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadCheck {
    /// The export ends exactly at the attested head.
    Matches,
    /// The attested head is in the export, and `records_after` records follow it: they were
    /// appended after the quote was taken.
    Extends { records_after: u64 },
    /// The attested head is not among the verified records: the export was cut short (records
    /// removed from its end), breaks before it, or is another log altogether.
    Missing,
}

/// Why an export could not be verified at all (as opposed to a verified chain that breaks,
/// which is a [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the export is {len} bytes, over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("could not read the export {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Report {
    /// No break: every line is a verified record.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }

    /// Where `attested` (the `audit_head` from a quote) lies among the verified records.
    pub fn check_head(&self, attested: &Digest) -> HeadCheck {
        match self.hashes.iter().rposition(|h| h == attested) {
            Some(index) => {
                let records_after = self.hashes.len() - 1 - index;
                if records_after == 0 {
                    HeadCheck::Matches
                } else {
                    HeadCheck::Extends {
                        records_after: u64::try_from(records_after).unwrap_or(u64::MAX),
                    }
                }
            }
            None => HeadCheck::Missing,
        }
    }

    /// [`Report::check_head`] of a head given as 64 hex digits.
    pub fn check_head_hex(&self, attested: &str) -> Result<HeadCheck, DigestHexError> {
        Digest::from_hex(attested.trim()).map(|d| self.check_head(&d))
    }
}

/// Verifies an export: every line a well-formed record, every record's hash over its fields,
/// seqs from 0 without gaps, each `prev` the hash before it (genesis for seq 0), every
/// completion closing an open started record, and with `mac_key` every MAC. Stops at the first
/// break and reports it, with the line and why.
///
/// Bounded: at most [`MAX_EXPORT`] bytes, lines of at most [`MAX_LINE`](crate::MAX_LINE)
/// bytes; memory linear in the input; no input panics (fuzzed as `audit_export`).
pub fn verify_export(bytes: &[u8], mac_key: Option<&AuditKey>) -> Result<Report, ExportError> {
    if bytes.len() > MAX_EXPORT {
        return Err(ExportError::TooLarge {
            len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            max: MAX_EXPORT,
        });
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines = if bytes.is_empty() {
        None
    } else {
        Some(body.split(|&b| b == b'\n'))
    }
    .into_iter()
    .flatten();
    let mut chain = Chain::new();
    let mut hashes = vec![GENESIS];
    let mut line_no = 0u64;
    let mut first_break = None;
    for line in lines.by_ref() {
        line_no += 1;
        let expected_seq = chain.next_seq();
        let checked = Record::from_json_line(line)
            .map_err(|m| (None, BreakKind::Malformed(m)))
            .and_then(|record| match chain.check(&record, mac_key) {
                Ok(()) => Ok(record),
                Err(kind) => Err((Some(record.seq), kind)),
            });
        match checked {
            Ok(record) => {
                chain.accept(&record);
                hashes.push(record.hash);
            }
            Err((seq, kind)) => {
                first_break = Some(Break {
                    line: line_no,
                    expected_seq,
                    seq,
                    kind,
                });
                break;
            }
        }
    }
    // Count the rest, and tell a moved record from a deleted one: if the seq that was
    // expected at the break turns up later, records were reordered.
    let gap_expected = match &first_break {
        Some(Break {
            kind: BreakKind::SeqGap { expected, .. },
            ..
        }) => Some(*expected),
        _ => None,
    };
    let mut expected_later = false;
    for line in lines {
        line_no += 1;
        if let (Some(expected), false) = (gap_expected, expected_later) {
            expected_later = seq_of(line) == Some(expected);
        }
    }
    if let Some(Break { kind, .. }) = &mut first_break
        && let (BreakKind::SeqGap { expected, found }, true) = (&*kind, expected_later)
    {
        *kind = BreakKind::Reordered {
            expected: *expected,
            found: *found,
        };
    }
    Ok(Report {
        records: chain.next_seq(),
        lines: line_no,
        head: chain.head(),
        time_range: chain.time_range(),
        time_regressions: chain.time_regressions(),
        mac_checked: mac_key.is_some(),
        unfinished: chain.unfinished(),
        first_break,
        hashes,
    })
}

/// The seq a line claims, if it parses as a record.
fn seq_of(line: &[u8]) -> Option<u64> {
    Record::from_json_line(line).ok().map(|r| r.seq)
}

/// Reads the export at `path` (at most [`MAX_EXPORT`] bytes) and runs [`verify_export`].
pub fn verify_export_file(path: &Path, mac_key: Option<&AuditKey>) -> Result<Report, ExportError> {
    let read = |source| ExportError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    let max = u64::try_from(MAX_EXPORT).unwrap_or(u64::MAX);
    if len > max {
        return Err(ExportError::TooLarge {
            len,
            max: MAX_EXPORT,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow after the size check; read one byte past the limit to notice.
    file.take(max + 1).read_to_end(&mut bytes).map_err(read)?;
    verify_export(&bytes, mac_key)
}
