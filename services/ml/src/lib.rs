//! hearth-ml: the AI factory's data and learning, on the CPU or one GPU.
//!
//! What it is for: reading operators' datasets (CSV, streamed) into typed columns ([`frame`]),
//! inferring their schema, reporting their quality and personal data, pseudonymizing them
//! ([`dataset`], [`quality`], [`pii`]); generating synthetic tables for tests and benchmarks
//! ([`synth`]); and training, evaluating and applying models — logistic regression and MLPs with
//! Adam — on the CPU backend or on a GPU with Hearth's own kernels ([`prep`], [`model`], [`cpu`],
//! [`gpu`], [`metrics`], [`train`]); the model registry with lineage and stages ([`registry`]),
//! signed model cards and export bundles ([`card`]), and validated, batched serving ([`serve`]).
//!
//! What it is not for: storage and encryption (`hearth-store`), HTTP (`hearth-console`), GPUs
//! inventory and leases (`hearth-gpu`); the kernels themselves (`kernels/`).
//!
//! Invariants:
//! - Training is deterministic given a seed and the data.
//! - Nothing reads a whole upload into memory before it is validated; every parser is bounded.

pub mod bf16;
pub mod card;
pub mod cpu;
pub mod dataset;
pub mod frame;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod pii;
pub mod prep;
pub mod quality;
pub mod registry;
pub mod rng;
pub mod serve;
pub mod sgemm;
pub mod synth;
pub mod train;

pub use frame::{Column, ColumnData, ColumnKind, Frame, FrameError};
pub use rng::Rng;

/// Counts the allocations each test thread makes, so that tests can assert that hot loops make
/// none ([`model`]'s training steps).
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: every call is passed on to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract, passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Allocations (and reallocations) this thread has made so far.
    pub(crate) fn on_this_thread() -> usize {
        COUNT.with(Cell::get)
    }
}
