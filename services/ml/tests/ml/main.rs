//! hearth-ml end to end: datasets against a real encrypted store, and training (parity with
//! scikit-learn, determinism, every task, fairness, serialization, errors).

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use hearth_ml::train::Metrics;

mod datasets;
mod gpu_path;
mod registry;
mod train;

/// The tests that measure the process's peak memory take this alone ([`measuring`]); tests that
/// allocate a lot (training) share it ([`allocating`]), so they run beside each other but never
/// beside a measurement.
static HEAVY: RwLock<()> = RwLock::new(());

pub fn measuring() -> RwLockWriteGuard<'static, ()> {
    HEAVY
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn allocating() -> RwLockReadGuard<'static, ()> {
    HEAVY
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The test ROC-AUC of a binary classifier's report.
#[allow(clippy::unwrap_used)]
pub fn roc_auc(metrics: &Metrics) -> f64 {
    match metrics {
        Metrics::Binary(m) => m.roc_auc.unwrap(),
        other => panic!("not binary: {other:?}"),
    }
}
