//! hearth-init: PID 1 of the Hearth image.
//!
//! The whole userland of the appliance lives in the measured initrd; this crate is its first
//! process. In order it mounts the kernel file systems, loads the kernel modules the image
//! lists, brings up the network, formats the data partition on first boot and mounts it,
//! extends PCR 15 with the appliance's configuration digest (and writes the matching line of
//! the runtime event log, hearth-eventlog's format), then starts hearthd and supervises it
//! (restart with backoff), reaps zombies and powers off or reboots cleanly.
//!
//! What it is not for: anything a user drives (that is hearthd), and any policy about *which*
//! measurements are good (that is the reference manifest the image builder writes).
//!
//! Invariants:
//! - The configuration-digest event that [`measure::config_event`] builds is the one the
//!   image builder predicts in the release reference: both call the same function.
//! - PCR 15 is extended exactly once per boot, before hearthd starts; a failure to extend
//!   stops the boot from reaching hearthd (an unmeasured appliance would attest wrongly).
//! - Nothing here panics on bad input: PID 1 exiting panics the kernel.

pub mod config;
pub mod measure;
pub mod supervise;
pub mod sys;
pub mod tpm;

pub use config::{InitConfig, InitConfigError};
