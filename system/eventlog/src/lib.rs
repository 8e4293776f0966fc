//! hearth-eventlog: measured-boot event logs, pure and without I/O.
//!
//! What it is for: the PCR types every other crate shares ([`pcr`]: banks, selections, values,
//! the PolicyPCR digest), and (in progress) parsing the TCG PC Client crypto-agile and legacy
//! event logs and Hearth's runtime log, describing their events, and replaying them to PCR values.
//!
//! What it is not for: reading logs from disk or a TPM (callers pass bytes), or judging them
//! (that is `hearth-attest`'s verifier).
//!
//! Invariants: every parser is bounded by its input, reports malformed input with the byte offset
//! and field, and never panics.

pub mod pcr;
