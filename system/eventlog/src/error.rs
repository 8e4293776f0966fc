//! Errors: malformed binary logs (byte offset and field), malformed runtime logs (line and field),
//! and replays that cannot be completed.

use crate::pcr::Bank;

/// A binary event log that does not parse: where, which field, and what is wrong with it.
///
/// Display: `TCG_PCR_EVENT2.eventSize: 4294967295 bytes, 12 remain at byte 1234`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem} at byte {offset}")]
pub struct ParseError {
    /// Byte offset of the offending field from the start of the log.
    pub offset: usize,
    /// The structure and field, as the TCG specification names them.
    pub field: &'static str,
    pub problem: String,
}

impl ParseError {
    pub(crate) fn new(offset: usize, field: &'static str, problem: impl Into<String>) -> Self {
        ParseError {
            offset,
            field,
            problem: problem.into(),
        }
    }
}

/// A runtime log line that does not parse.
///
/// Display: `line 3: digests.sha256: not hex (Invalid character 'x' at position 0)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {problem}")]
pub struct RuntimeLogError {
    /// 1-based line number.
    pub line: usize,
    /// The JSON field (`pcr`, `digests.sha256`, `type`, `data`), or `line` for the line as a whole.
    pub field: String,
    pub problem: String,
}

/// A replay that cannot be continued with a runtime log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A runtime event lacks the digest for a bank the replay carries, so that bank's PCR would
    /// be unknown from this event on.
    #[error(
        "runtime log line {line}: the event extends PCR {pcr} but has no {bank} digest, and the replay carries the {bank} bank"
    )]
    MissingDigest { line: usize, pcr: u8, bank: Bank },
}
