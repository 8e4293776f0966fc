//! hearth-audit: the appliance's audit log, a hash-chained, MAC'd, append-only journal.
//!
//! What it is for: sealing audit [`Record`]s (who, in which role, did what to what, with which
//! outcome) into a chain where each record's SHA-256 covers its fields and the previous
//! record's hash, and each hash carries an HMAC-SHA256 under the appliance's audit key
//! ([`AuditKey`]); keeping that chain in a durable journal ([`AuditLog`]: one JSON line per
//! record, fsynced before an append returns); giving the head ([`Head`], [`AuditLog::audit_head`])
//! that hearthd binds into TPM quotes; and verifying an exported log ([`verify_export`]), with
//! the key on the appliance or without it for auditors, naming the first bad record.
//!
//! What it is not for: deriving the key (hearthd derives it from the TPM-sealed root secret with
//! `hearth-keys`), deciding what to audit (hearthd's routes), serving exports over HTTP (the
//! console), printing verdicts (the CLI). It does no logging of record contents.
//!
//! Invariants:
//! - Records are never changed or removed by this crate; seqs count from 0 without gaps; each
//!   record's `prev` is the hash of the one before it ([`GENESIS`] for seq 0).
//! - The hash is over a canonical, length-prefixed encoding of the fields
//!   ([`Record::compute_hash`]), never over JSON as it happens to serialize.
//! - An appended record is on stable storage before [`AuditLog::append`] returns it; a failed
//!   write poisons the log rather than leave memory and file disagreeing.
//! - A journal that does not verify is refused, never repaired or truncated, except a torn
//!   final line without a newline, which no append ever acknowledged (see [`journal`]).
//! - Verification is bounded ([`MAX_EXPORT`], [`MAX_LINE`]) and never panics (fuzzed);
//!   "cannot read" is an error, "read, and the chain breaks at line N" is a [`Report`].
//! - The key is zeroized on drop and never printed.

mod chain;
mod digest;
mod export;
pub mod journal;
mod key;
mod record;
mod time;

pub use chain::{Break, BreakKind, Head, ParentProblem};
pub use digest::{Digest, DigestHexError};
pub use export::{ExportError, HeadCheck, MAX_EXPORT, Report, verify_export, verify_export_file};
pub use journal::{
    AppendError, AuditLog, CreateError, ExportWriteError, OpenError, OpenReport, TornTail,
};
pub use key::{AuditKey, KEY_LEN};
pub use record::{
    Entry, FieldError, FieldProblem, GENESIS, HASH_DOMAIN, MAX_ACTION, MAX_ACTOR, MAX_OBJECT,
    MAX_REASON, Malformed, Outcome, Record, Role,
};
pub use time::{ClockError, Timestamp};

/// Longest line of a journal or export, in bytes, without its newline. The longest valid record
/// (every text field at its limit, every character escaped) fits.
pub const MAX_LINE: usize = 16 * 1024;
