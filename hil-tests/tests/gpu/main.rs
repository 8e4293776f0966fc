//! GPU tests: every kernel against its CPU reference, training on a GPU against the CPU, and
//! the GPU inventory. Built only with `--features gpu` (`hil-tests/gpu/run.sh`), where a GPU
//! was promised: without one every test fails, naming what is missing. Never a silent skip.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

mod inventory;
mod kernels;
mod train;

use std::sync::Arc;

use hearth_kernels::cuda::Gpu;

/// The GPU these tests were promised: device 0 (or `HEARTH_GPU`), with the kernels compiled.
pub fn gpu() -> Arc<Gpu> {
    let ordinal = std::env::var("HEARTH_GPU").map_or(0, |v| v.parse().unwrap());
    match Gpu::open(ordinal) {
        Ok(gpu) => gpu,
        Err(e) => panic!(
            "the GPU tests were built with --features gpu, so a GPU was promised, but CUDA \
             device {ordinal} cannot be used: {e}"
        ),
    }
}
