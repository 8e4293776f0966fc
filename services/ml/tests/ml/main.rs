//! hearth-ml end to end: datasets against a real encrypted store, and training (parity with
//! scikit-learn, determinism, every task, fairness, serialization, errors).

mod datasets;
mod gpu_path;
mod registry;
mod train;
