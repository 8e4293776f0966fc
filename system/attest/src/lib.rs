//! hearth-attest: what an auditor runs, in pure Rust.
//!
//! What it is for: the parsing and verification of TPM quotes ([`quote`]: TPMS_ATTEST,
//! TPMT_SIGNATURE and the attestation key's TPM2B_PUBLIC, checked with `ring`), the evidence and
//! reference formats ([`evidence`], [`reference`]) and the verifier ([`verify`]) that runs every
//! check and returns an EAR-style verdict. It links no TSS C library, so the
//! auditor's `hearth verify` runs anywhere.
//!
//! What it is not for: talking to a TPM (that is `hearth-tpm`).
//!
//! Invariants:
//! - Every parser of TPM structures is bounded by its input: no length field is trusted before
//!   it is checked against the bytes that remain, and no input panics (fuzzed in `fuzz/`).
//! - "Cannot verify" (malformed input) is an error; "verified and found wanting" is a verdict
//!   that lists every failed check, never only the first.

pub mod evidence;
mod logcheck;
pub use hearth_eventlog::pcr;
pub mod quote;
mod reader;
pub mod reference;
pub mod verify;

pub use evidence::Evidence;
pub use reference::Reference;
pub use verify::{Status, Verdict, verify};
