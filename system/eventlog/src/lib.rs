//! hearth-eventlog: measured-boot event logs, pure and without I/O.
//!
//! What it is for: the PCR types every other crate shares ([`pcr`]: banks, selections, values,
//! the PolicyPCR digest); parsing the TCG PC Client firmware event log, crypto-agile ("Spec ID
//! Event03" then TCG_PCR_EVENT2, any mix of sha1, sha256, sha384, sha512 and sm3_256 banks, with
//! unknown algorithms skipped) and legacy SHA1-only ([`EventLog`]); describing its events for
//! humans (variables, boot options, device paths, GPT, UKI sections) and checking the events whose
//! digest is the hash of their data ([`Event::data_matches_digest`]); Hearth's runtime log of
//! JSON lines ([`RuntimeLog`]); and replaying both to PCR values with the events behind each
//! PCR ([`Replay`]).
//!
//! What it is not for: reading logs from disk or a TPM (callers pass bytes), or judging them
//! against reference values (that is `hearth-attest`'s verifier).
//!
//! Invariants: every parser is bounded by its input (no allocation is sized by a length field
//! before that field is checked against the bytes that remain), reports malformed input with the
//! byte offset (or line) and field, and never panics; text taken from a log is escaped before it
//! is shown; replay never reads event data, only digests, so descriptions cannot change PCRs.

mod describe;
pub mod efi;
mod error;
pub mod event_type;
mod log;
pub mod pcr;
mod reader;
mod replay;
mod runtime;

pub use error::{ParseError, ReplayError, RuntimeLogError};
pub use log::{DeclaredAlgorithm, Event, EventLog, LogFormat, SpecId};
pub use replay::{EventRef, Replay, replay_all};
pub use runtime::{RuntimeEvent, RuntimeLog};
