//! hearth-tpm: Hearth's TPM 2.0 client.
//!
//! What it is for: reading and extending PCRs, sealing secrets to PCR values and unsealing them
//! through a salted, parameter-encrypting PolicyPCR session, the attestation key (ECC P-256,
//! restricted, persisted) and quotes, NV monotonic counters, and EK certificates. It talks to a
//! kernel TPM device (`/dev/tpmrm0`) or to swtpm over TCP, chosen by [`TpmConfig`], never by
//! compile-time accident.
//!
//! What it is not for: verifying evidence. Verification is pure Rust in `hearth-attest`, so that
//! auditors need no TSS C library.
//!
//! Invariants:
//! - Secrets cross the TPM bus only inside encrypted session parameters, live in zeroizing
//!   buffers, and never appear in `Debug` output or logs.
//! - A failed unseal whose PCRs moved is reported as [`TpmError::PolicyMismatch`] naming every
//!   PCR that differs from its value at sealing time.
//! - No caller of [`TpmHandle`] waits longer than the configured timeout, even on a dead socket.
//! - A software TPM is always flagged ([`TpmInfo::software`]) and logged as insecure.

mod config;
mod error;
mod handle;
mod seal;
mod tpm;
mod tss;

pub use config::{DEFAULT_AK_HANDLE, TpmConfig, Transport};
pub use error::{TpmError, TssError};
pub use handle::TpmHandle;
pub use hearth_eventlog::pcr::{self, Bank, PcrSelection, PcrValues};
pub use seal::{SEALED_BLOB_FORMAT, SealedBlob, Secret};
pub use tpm::{AkPublic, EkCertificate, MAX_NONCE, MAX_SEALED_SECRET, Quote, Tpm, TpmInfo};
pub use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
