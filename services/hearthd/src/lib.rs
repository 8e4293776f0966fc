//! hearthd: the Hearth appliance daemon.
//!
//! What it is for: starting the appliance in order — TPM, then the root secret (unsealed, or
//! created and sealed on first boot, with the recovery key shown once), then the encrypted
//! store and the audit journal, then the console over TLS — and stopping it cleanly on SIGTERM.
//! A store the TPM refuses (PCRs moved) comes up **locked**: the console still serves health,
//! attestation and the recovery-key unlock.
//!
//! What it is not for: the console's routes and rules (`hearth-console`), the cryptography
//! (`hearth-keys`), storage (`hearth-store`).
//!
//! Invariants:
//! - The production profile never runs on a software TPM.
//! - One-time secrets (recovery key, setup code) go to stdout once, never to the log.
//! - The console's TLS key lives only in the encrypted store; while the store is locked a
//!   temporary key is used and the console says so.

pub mod config;
pub mod daemon;
pub mod tls;

pub use config::{Config, Profile};
