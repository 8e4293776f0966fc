//! Training: the entry point that jobs call. Splits a frame's labelled rows, learns the
//! preprocessing from the training split, trains a logistic regression or an MLP with Adam on
//! minibatches, stops early on the validation loss (keeping the best weights), and evaluates the
//! result on the test split.
//!
//! The split is reproducible outside Rust (`parity/sklearn_parity.py` does it): the labelled rows,
//! in frame order, are shuffled by [`Rng::shuffle`] seeded with `spec.seed`; with `n` of them,
//! `n_test = max(1, round(n · test_fraction))` and `n_val = round(n · validation_fraction)`
//! (at least 1 when the fraction is positive); the training split is the first
//! `n − n_test − n_val` shuffled rows, validation the next `n_val`, test the last `n_test`.
//!
//! Everything is deterministic given the spec (seed included), the frame and the machine: weight
//! initialization, minibatch order and permutation importance draw from seeded streams, a
//! training step splits its work between threads in a way fixed by the batch size alone (see
//! [`Workspace`]), and the products give the same bits on any number of threads (see
//! [`cpu`](crate::cpu)).

use std::ops::ControlFlow;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use hearth_kernels::cuda::Gpu;
use hearth_kernels::device::{Device, Reference};

use crate::Rng;
use crate::cpu::{Adam, Loss, Pool, f32_of};
use crate::frame::{ColumnData, Frame};
use crate::gpu::CudaTrainer;
use crate::metrics::{
    self, BinaryMetrics, ConfusionMatrix, Fairness, Importance, MulticlassMetrics,
    RegressionMetrics,
};
use crate::model::{FORMAT, Model, Network, Scratch, Task, Workspace};
use crate::prep::{
    Excluded, ExcludedReason, PrepConfig, PrepError, Preprocessor, Target, TargetEncoding,
    TargetError,
};

/// Fewest labelled rows that training accepts.
pub const MIN_ROWS: usize = 20;
/// Fewest rows in the training split.
pub const MIN_TRAIN_ROWS: usize = 10;
/// Test rows used for permutation importance (the first ones of the test split, which is in
/// random order); bounds its cost on large tables.
pub const IMPORTANCE_ROWS: usize = 20_000;
/// Shuffles per column for permutation importance.
pub const IMPORTANCE_REPEATS: usize = 3;
/// Rows per forward pass when evaluating.
const EVAL_CHUNK: usize = 8192;

/// Seeds of the independent random streams, mixed into `spec.seed` (the split uses the seed
/// itself, so that other languages can reproduce it).
const INIT_STREAM: u64 = 0x696e_6974;
const SHUFFLE_STREAM: u64 = 0x0073_6875_6666_6c65;
const IMPORTANCE_STREAM: u64 = 0x696d_706f_7274;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelKind {
    /// Logistic (or softmax, or linear) regression: no hidden layer.
    LogReg,
    /// A multilayer perceptron with ReLU hidden layers of these sizes.
    Mlp { hidden: Vec<usize> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSpec {
    /// The column to predict. Its kind decides the task (see [`Target::fit`]).
    pub target: String,
    pub model: ModelKind,
    /// Input columns; by default every column but the target, the group column and text.
    pub features: Option<Vec<String>>,
    /// A (sensitive) column to report fairness across; not a feature unless listed in
    /// `features`.
    pub group_column: Option<String>,
    /// Most passes over the training split.
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's step size.
    pub learning_rate: f32,
    pub validation_fraction: f64,
    pub test_fraction: f64,
    /// Epochs without a better validation loss before stopping; 0 never stops early. The best
    /// epoch's weights are kept either way.
    pub patience: usize,
    pub seed: u64,
    /// Threads for matrix products; 0 means every core.
    pub threads: usize,
    /// How the training products multiply.
    pub precision: Precision,
    pub prep: PrepConfig,
}

/// The arithmetic of training's matrix products. The reduced precisions apply to the products
/// of layers of at least 32 outputs (the hidden layers in practice); parameters, Adam, losses,
/// activations and every sum stay float32, and serving is always float32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The fastest at float32's quality: bf16 on CPUs with AVX-512 BF16 ([`crate::bf16`]),
    /// tf32 on GPUs with tensor cores (compute capability 8.0 and later), float32 elsewhere
    /// (and on the reference device, which stands in for a GPU in tests).
    #[default]
    Auto,
    /// Float32 throughout.
    F32,
    /// CPU mixed precision: bfloat16 operands, float32 sums. Refused on CPUs without AVX-512
    /// BF16 and on GPUs.
    Bf16,
    /// GPU mixed precision: operands rounded to TF32 (10 mantissa bits), products on the tensor
    /// cores, float32 sums (`gemm_tf32`). Refused on the CPU and on GPUs without TF32 tensor
    /// cores.
    Tf32,
}

/// Which reduced precision the products run in, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduced {
    None,
    Bf16,
    Tf32,
}

/// What `precision` means on `compute`, or why it cannot run there.
fn reduced_precision(precision: Precision, compute: &Compute) -> Result<Reduced, TrainError> {
    Ok(match (precision, compute) {
        (Precision::F32, _) | (Precision::Auto, Compute::Reference) => Reduced::None,
        (Precision::Auto, Compute::Cpu) if crate::bf16::available() => Reduced::Bf16,
        (Precision::Auto, Compute::Cuda(gpu)) if gpu.tensor_cores() => Reduced::Tf32,
        (Precision::Auto, _) => Reduced::None,
        (Precision::Bf16, Compute::Cpu) if crate::bf16::available() => Reduced::Bf16,
        (Precision::Bf16, Compute::Cpu) => {
            return Err(invalid(
                "precision bf16 needs a CPU with AVX-512 BF16 and this one has none \
                 (use auto or f32)",
            ));
        }
        (Precision::Bf16, _) => {
            return Err(invalid(
                "precision bf16 is for the CPU backend; on a GPU use tf32, auto or f32",
            ));
        }
        (Precision::Tf32, Compute::Reference) => Reduced::Tf32,
        (Precision::Tf32, Compute::Cuda(gpu)) => match gpu.tf32_support() {
            Ok(()) => Reduced::Tf32,
            Err(e) => return Err(invalid(format!("precision tf32: {e} (use auto or f32)"))),
        },
        (Precision::Tf32, _) => {
            return Err(invalid(
                "precision tf32 is for GPUs with tensor cores; on the CPU use bf16, auto or f32",
            ));
        }
    })
}

impl Default for TrainSpec {
    fn default() -> TrainSpec {
        TrainSpec {
            target: String::new(),
            model: ModelKind::Mlp {
                hidden: vec![64, 64],
            },
            features: None,
            group_column: None,
            epochs: 30,
            batch_size: 256,
            learning_rate: 1e-3,
            validation_fraction: 0.1,
            test_fraction: 0.2,
            patience: 5,
            seed: 0,
            threads: 0,
            precision: Precision::Auto,
            prep: PrepConfig::default(),
        }
    }
}

/// Reported after every epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    /// Mean loss over the epoch's minibatches.
    pub train_loss: f64,
    /// Mean loss on the validation split after the epoch; NaN without one.
    pub val_loss: f64,
    /// Training rows per second during the epoch's minibatch steps.
    pub rows_per_sec: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    /// Rows without a target value, not used.
    pub unlabelled: usize,
}

/// Test-split metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Metrics {
    Binary(BinaryMetrics),
    Multiclass(MulticlassMetrics),
    Regression(RegressionMetrics),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub task: Task,
    pub model: ModelKind,
    pub target: String,
    /// Class names (binary: negative, then positive); empty for regression.
    pub classes: Vec<String>,
    pub features: Vec<String>,
    pub excluded: Vec<Excluded>,
    pub rows: SplitSizes,
    /// On the test split; binary decisions at probability 0.5.
    pub metrics: Metrics,
    /// On the test split (classification only).
    pub confusion: Option<ConfusionMatrix>,
    /// On the test split, across `group_column` (binary classification only).
    pub fairness: Option<Fairness>,
    /// The score whose drop [`Report::importance`] measures: `roc_auc`, `accuracy` or `r2`.
    pub importance_metric: String,
    pub importance: Vec<Importance>,
    pub epochs_run: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Validation loss of the kept weights (training loss without a validation split).
    pub best_loss: f64,
    pub backend: String,
    pub threads: usize,
    /// Training rows per second over all minibatch steps.
    pub rows_per_sec: f64,
    /// Wall time of the whole call.
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    pub model: Model,
    pub report: Report,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainError {
    #[error("there is no column {column:?} to predict")]
    UnknownTarget { column: String },
    #[error("there is no column {column:?}")]
    UnknownColumn { column: String },
    #[error("invalid training settings: {what}")]
    InvalidSpec { what: String },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("the training split holds only the class {class:?}")]
    OneClassInTraining { class: String },
    #[error("{rows} labelled rows are too few to train on; at least {needed} are needed")]
    TooFewRows { rows: usize, needed: usize },
    #[error("no usable feature column (excluded: {})", excluded_list(.excluded))]
    NoFeatures { excluded: Vec<Excluded> },
    #[error("preprocessing failed")]
    Prep(#[source] PrepError),
    #[error("training diverged (non-finite loss in epoch {epoch}); try a lower learning rate")]
    Diverged { epoch: usize },
    #[error("training was cancelled")]
    Cancelled,
    #[error("the GPU failed: {message}")]
    Device { message: String },
}

/// Where the minibatch steps run. Evaluation, validation and importance run on the CPU either
/// way.
#[derive(Clone, Debug, Default)]
pub enum Compute {
    #[default]
    Cpu,
    /// One GPU, with the kernels compiled for it (hold its lease for as long as training runs).
    Cuda(Arc<Gpu>),
    /// The GPU backend's code with the kernels' CPU references in place of the GPU: slow; it
    /// checks that code (and shows what a GPU run would do) on machines without one.
    Reference,
}

impl Compute {
    /// What reports and model cards record: `cpu`, or `cuda:0 NVIDIA H200 (compute_90)`.
    pub fn describe(&self) -> String {
        match self {
            Compute::Cpu => "cpu".into(),
            Compute::Cuda(gpu) => gpu.describe(),
            Compute::Reference => Reference.describe(),
        }
    }
}

/// Where the minibatch steps of one run happen.
enum Engine {
    Cpu,
    Cuda(Box<CudaTrainer<Gpu>>),
    Reference(Box<CudaTrainer<Reference>>),
}

impl Engine {
    /// The reduced precision some layer's products actually ran in (none for a model without
    /// a layer wide enough, such as logistic regression).
    fn precision(&self, ws: &Workspace) -> Reduced {
        let tf32 = match self {
            Engine::Cpu => false,
            Engine::Cuda(t) => t.tensor_products(),
            Engine::Reference(t) => t.tensor_products(),
        };
        if ws.mixed_precision() {
            Reduced::Bf16
        } else if tf32 {
            Reduced::Tf32
        } else {
            Reduced::None
        }
    }
}

fn device_error(e: hearth_kernels::cuda::CudaError) -> TrainError {
    TrainError::Device {
        message: e.to_string(),
    }
}

fn excluded_list(excluded: &[Excluded]) -> String {
    if excluded.is_empty() {
        return "none".into();
    }
    excluded
        .iter()
        .map(|e| {
            let why = match e.reason {
                ExcludedReason::Text => "free text",
                ExcludedReason::AllMissing => "all missing",
                ExcludedReason::Constant => "constant",
            };
            format!("{} ({why})", e.column)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<PrepError> for TrainError {
    fn from(e: PrepError) -> TrainError {
        TrainError::Prep(e)
    }
}

fn invalid(what: impl Into<String>) -> TrainError {
    TrainError::InvalidSpec { what: what.into() }
}

fn check_spec(spec: &TrainSpec) -> Result<(), TrainError> {
    if spec.epochs == 0 {
        return Err(invalid("epochs must be at least 1"));
    }
    if spec.batch_size == 0 {
        return Err(invalid("batch_size must be at least 1"));
    }
    if !(spec.learning_rate.is_finite() && spec.learning_rate > 0.0) {
        return Err(invalid("learning_rate must be a positive number"));
    }
    let (v, t) = (spec.validation_fraction, spec.test_fraction);
    if !(t > 0.0 && t < 1.0) {
        return Err(invalid("test_fraction must be between 0 and 1"));
    }
    if !((0.0..1.0).contains(&v) && v + t < 1.0) {
        return Err(invalid(
            "validation_fraction must be at least 0, with test_fraction below 1 in all",
        ));
    }
    if let ModelKind::Mlp { hidden } = &spec.model
        && hidden.contains(&0)
    {
        return Err(invalid("hidden layers need at least one unit"));
    }
    Ok(())
}

/// The labelled rows split as documented at the top of this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    pub fn new(
        mut labelled: Vec<usize>,
        validation_fraction: f64,
        test_fraction: f64,
        seed: u64,
    ) -> Split {
        Rng::new(seed).shuffle(&mut labelled);
        let n = labelled.len();
        let count = |fraction: f64| {
            if fraction > 0.0 {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let k = (n as f64 * fraction).round() as usize;
                k.max(1)
            } else {
                0
            }
        };
        let n_test = count(test_fraction).min(n);
        let n_val = count(validation_fraction).min(n - n_test);
        let n_train = n - n_test - n_val;
        let test = labelled.split_off(n_train + n_val);
        let validation = labelled.split_off(n_train);
        Split {
            train: labelled,
            validation,
            test,
        }
    }
}

/// Trains a model as `spec` says on `frame`, calling `on_epoch` after every epoch; returning
/// `ControlFlow::Break` from it cancels training.
pub fn train(
    frame: &Frame,
    spec: &TrainSpec,
    on_epoch: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Trained, TrainError> {
    train_on(frame, spec, &Compute::Cpu, on_epoch)
}

/// [`train`] with the minibatch steps on `compute`. Given the same spec, the CUDA backend
/// visits the same rows in the same order from the same starting weights as the CPU; the
/// results agree within floating-point tolerance, not bit for bit.
pub fn train_on(
    frame: &Frame,
    spec: &TrainSpec,
    compute: &Compute,
    on_epoch: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    check_spec(spec)?;
    let threads = if spec.threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        spec.threads
    };
    let target_column = frame
        .column(&spec.target)
        .map_err(|_| TrainError::UnknownTarget {
            column: spec.target.clone(),
        })?;
    let group = match &spec.group_column {
        Some(g) => Some(
            frame
                .column(g)
                .map_err(|_| TrainError::UnknownColumn { column: g.clone() })?,
        ),
        None => None,
    };

    let labelled: Vec<usize> = (0..frame.rows())
        .filter(|&r| !target_column.data.is_missing(r))
        .collect();
    let unlabelled = frame.rows() - labelled.len();
    if labelled.len() < MIN_ROWS {
        return Err(TrainError::TooFewRows {
            rows: labelled.len(),
            needed: MIN_ROWS,
        });
    }
    let split = Split::new(
        labelled,
        spec.validation_fraction,
        spec.test_fraction,
        spec.seed,
    );
    if split.train.len() < MIN_TRAIN_ROWS {
        return Err(TrainError::TooFewRows {
            rows: split.train.len() + split.validation.len() + split.test.len(),
            needed: MIN_ROWS.max(MIN_TRAIN_ROWS * 2),
        });
    }

    let target = Target::fit(target_column, &split.train)?;
    let encoded = target.encode(target_column)?;
    // Labelled rows all encode (classes come from every labelled row); 0 is never read.
    let y: Vec<f32> = encoded.iter().map(|v| v.unwrap_or(0.0)).collect();
    if let TargetEncoding::Classes { classes } = &target.encoding {
        let first = y[split.train[0]];
        if split.train.iter().all(|&r| y[r] == first) {
            let class = classes[class_of(first)].clone();
            return Err(TrainError::OneClassInTraining { class });
        }
    }

    let candidates: Vec<String> = match &spec.features {
        Some(list) => {
            for name in list {
                if frame.column(name).is_err() {
                    return Err(TrainError::UnknownColumn {
                        column: name.clone(),
                    });
                }
                if *name == spec.target {
                    return Err(invalid(format!(
                        "the target {name:?} cannot also be a feature"
                    )));
                }
            }
            list.clone()
        }
        // Text columns are offered too, so that the report lists them as excluded.
        None => frame
            .columns()
            .iter()
            .filter(|c| c.name != spec.target && Some(&c.name) != spec.group_column.as_ref())
            .map(|c| c.name.clone())
            .collect(),
    };
    let (prep, excluded) = Preprocessor::fit(frame, &candidates, &split.train, &spec.prep)?;
    if prep.width == 0 {
        return Err(TrainError::NoFeatures { excluded });
    }
    let w = prep.width;
    let mut x_all = vec![0.0f32; frame.rows() * w];
    prep.transform(frame, 0..frame.rows(), &mut x_all)?;
    let gather = |rows: &[usize]| -> (Vec<f32>, Vec<f32>) {
        let mut x = Vec::with_capacity(rows.len() * w);
        for &r in rows {
            x.extend_from_slice(&x_all[r * w..(r + 1) * w]);
        }
        (x, rows.iter().map(|&r| y[r]).collect())
    };
    let (x_val, y_val) = gather(&split.validation);
    let (mut x_test, y_test) = gather(&split.test);

    let loss = target.loss();
    let hidden: &[usize] = match &spec.model {
        ModelKind::LogReg => &[],
        ModelKind::Mlp { hidden } => hidden,
    };
    let mut network = Network::new(w, hidden, loss, &mut Rng::new(spec.seed ^ INIT_STREAM));
    start_at_prior(&mut network, loss, split.train.iter().map(|&r| y[r]));

    // Everything the loop touches is allocated here, once.
    let n_train = split.train.len();
    let batch = spec.batch_size.min(n_train);
    let reduced = reduced_precision(spec.precision, compute)?;
    let tf32 = reduced == Reduced::Tf32;
    let mut ws = Workspace::with_precision(&network, batch, reduced == Reduced::Bf16);
    let mut adam = Adam::new(network.params.len(), spec.learning_rate);
    let mut order = split.train.clone();
    let mut shuffle = Rng::new(spec.seed ^ SHUFFLE_STREAM);
    let mut scratch = Scratch::default();
    let mut best = network.params.clone();
    let (mut best_loss, mut best_epoch, mut since_best) = (f64::INFINITY, 0, 0);
    let (mut epochs_run, mut stopped_early) = (0, false);
    let mut step_seconds = 0.0;

    let pool = Pool::new(threads);
    let mut engine = match compute {
        Compute::Cpu => Engine::Cpu,
        Compute::Cuda(gpu) => Engine::Cuda(Box::new(
            CudaTrainer::new(
                Gpu::clone(gpu),
                &network,
                batch,
                &x_all,
                &y,
                n_train,
                spec.learning_rate,
                tf32,
            )
            .map_err(device_error)?,
        )),
        Compute::Reference => Engine::Reference(Box::new(
            CudaTrainer::new(
                Reference,
                &network,
                batch,
                &x_all,
                &y,
                n_train,
                spec.learning_rate,
                tf32,
            )
            .map_err(device_error)?,
        )),
    };

    for epoch in 1..=spec.epochs {
        let (total, seconds, val_loss) = pool.run(|| {
            let t = Instant::now();
            shuffle.shuffle(&mut order);
            let mut total = 0.0;
            if let Engine::Cuda(t) = &mut engine {
                total = t.epoch(&order, &mut network.params).map_err(device_error)?;
            } else if let Engine::Reference(t) = &mut engine {
                total = t.epoch(&order, &mut network.params).map_err(device_error)?;
            } else {
                for rows in order.chunks(batch) {
                    total += network.train_step(&mut ws, &x_all, &y, rows, &mut adam, threads);
                }
            }
            let seconds = t.elapsed().as_secs_f64();
            let val_loss = if y_val.is_empty() {
                f64::NAN
            } else {
                mean_loss(&network, &x_val, &y_val, &mut scratch, threads)
            };
            Ok::<_, TrainError>((total, seconds, val_loss))
        })?;
        step_seconds += seconds;
        epochs_run = epoch;
        let train_loss = total / n_train as f64;
        if !train_loss.is_finite() || !(y_val.is_empty() || val_loss.is_finite()) {
            return Err(TrainError::Diverged { epoch });
        }
        let watched = if y_val.is_empty() {
            train_loss
        } else {
            val_loss
        };
        if watched < best_loss {
            best_loss = watched;
            best_epoch = epoch;
            since_best = 0;
            best.copy_from_slice(&network.params);
        } else {
            since_best += 1;
        }
        let progress = Progress {
            epoch,
            epochs: spec.epochs,
            train_loss,
            val_loss,
            rows_per_sec: n_train as f64 / seconds.max(1e-9),
        };
        tracing::debug!(
            component = "ml",
            epoch,
            train_loss,
            val_loss,
            rows_per_sec = progress.rows_per_sec,
            "epoch"
        );
        if on_epoch(&progress).is_break() {
            return Err(TrainError::Cancelled);
        }
        if spec.patience > 0 && since_best >= spec.patience && epoch < spec.epochs {
            stopped_early = true;
            break;
        }
    }
    network.params.copy_from_slice(&best);

    let model = Model {
        format: FORMAT,
        target,
        prep,
        network,
    };
    let evaluation = pool.run(|| {
        evaluate(
            &model,
            &split.test,
            &mut x_test,
            &y_test,
            group.map(|g| (g.name.as_str(), &g.data)),
            spec.seed ^ IMPORTANCE_STREAM,
            threads,
        )
    });
    let report = Report {
        task: model.task(),
        model: spec.model.clone(),
        target: spec.target.clone(),
        classes: model.classes().to_vec(),
        features: model.inputs().map(str::to_owned).collect(),
        excluded,
        rows: SplitSizes {
            train: n_train,
            validation: split.validation.len(),
            test: split.test.len(),
            unlabelled,
        },
        metrics: evaluation.metrics,
        confusion: evaluation.confusion,
        fairness: evaluation.fairness,
        importance_metric: evaluation.importance_metric.into(),
        importance: evaluation.importance,
        epochs_run,
        best_epoch,
        stopped_early,
        best_loss,
        backend: match engine.precision(&ws) {
            Reduced::None => compute.describe(),
            Reduced::Bf16 => format!("{} (bf16 products)", compute.describe()),
            Reduced::Tf32 => format!("{} (tf32 products)", compute.describe()),
        },
        threads,
        rows_per_sec: (n_train * epochs_run) as f64 / step_seconds.max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        component = "ml",
        task = ?report.task,
        epochs = epochs_run,
        rows_per_sec = report.rows_per_sec,
        seconds = report.seconds,
        "trained"
    );
    Ok(Trained { model, report })
}

fn class_of(y: f32) -> usize {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = y.max(0.0) as usize;
    i
}

/// Starts the output biases at the training prior (log-odds, log class shares), so that the
/// first epochs learn features rather than the base rate; a 1 % positive class would otherwise
/// take thousands of steps to reach its intercept.
fn start_at_prior(network: &mut Network, loss: Loss, y: impl Iterator<Item = f32>) {
    match loss {
        Loss::Logistic => {
            let (mut n, mut pos) = (0usize, 0.0f64);
            for v in y {
                n += 1;
                pos += f64::from(v);
            }
            let p = (pos / n.max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
            if let Some(b) = network.output_bias_mut().first_mut() {
                *b = f32_of((p / (1.0 - p)).ln());
            }
        }
        Loss::Softmax { classes } => {
            let mut counts = vec![0usize; classes];
            let mut n = 0usize;
            for v in y {
                counts[class_of(v).min(classes - 1)] += 1;
                n += 1;
            }
            for (b, c) in network.output_bias_mut().iter_mut().zip(counts) {
                *b = f32_of((c as f64 / n.max(1) as f64).max(1e-6).ln());
            }
        }
        Loss::Squared => {}
    }
}

/// Mean loss of `network` on `x` against `y`.
fn mean_loss(
    network: &Network,
    x: &[f32],
    y: &[f32],
    scratch: &mut Scratch,
    threads: usize,
) -> f64 {
    let w = network.inputs();
    let mut total = 0.0;
    for (xs, ys) in x.chunks(EVAL_CHUNK * w).zip(y.chunks(EVAL_CHUNK)) {
        let out = network.forward(xs, ys.len(), scratch, threads);
        total += network.loss.evaluate(out, ys, None);
    }
    total / y.len().max(1) as f64
}

/// Finished outputs (probabilities or standardized values) for the rows of `x`.
fn outputs(
    network: &Network,
    x: &[f32],
    scratch: &mut Scratch,
    threads: usize,
    out: &mut Vec<f64>,
) {
    let w = network.inputs();
    out.clear();
    for xs in x.chunks(EVAL_CHUNK * w) {
        let y = network.forward(xs, xs.len() / w, scratch, threads);
        network.loss.finish(y);
        out.extend(y.iter().map(|&v| f64::from(v)));
    }
}

struct Evaluation {
    metrics: Metrics,
    confusion: Option<ConfusionMatrix>,
    fairness: Option<Fairness>,
    importance_metric: &'static str,
    importance: Vec<Importance>,
}

/// The group of each row as text (numbers and booleans as written, timestamps in RFC 3339).
fn group_names(data: &ColumnData, rows: &[usize]) -> Vec<Option<String>> {
    rows.iter()
        .map(|&r| match data {
            ColumnData::Numeric(v) => v[r].is_finite().then(|| v[r].to_string()),
            ColumnData::Boolean(v) => v[r].map(|b| b.to_string()),
            ColumnData::Text(v) => v[r].clone(),
            ColumnData::Timestamp(v) => v[r].map(crate::synth::rfc3339),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    model: &Model,
    test_rows: &[usize],
    x_test: &mut [f32],
    y_test: &[f32],
    group: Option<(&str, &ColumnData)>,
    seed: u64,
    threads: usize,
) -> Evaluation {
    let network = &model.network;
    let mut scratch = Scratch::default();
    let mut p = Vec::new();
    outputs(network, x_test, &mut scratch, threads, &mut p);
    let classes = model.classes().to_vec();
    let (metrics, confusion, fairness, importance_metric) = match model.task() {
        Task::Binary => {
            let labels: Vec<bool> = y_test.iter().map(|&v| v > 0.5).collect();
            let m = metrics::binary(&labels, &p, 0.5);
            let decided: Vec<bool> = p.iter().map(|&v| v >= 0.5).collect();
            let confusion = ConfusionMatrix::new(
                classes,
                &labels.iter().map(|&l| usize::from(l)).collect::<Vec<_>>(),
                &decided.iter().map(|&l| usize::from(l)).collect::<Vec<_>>(),
            );
            let fairness = group.map(|(name, data)| {
                let groups = group_names(data, test_rows);
                let groups: Vec<Option<&str>> = groups.iter().map(Option::as_deref).collect();
                metrics::fairness(name, &groups, &labels, &decided)
            });
            let key = if m.roc_auc.is_some() {
                "roc_auc"
            } else {
                "accuracy"
            };
            (Metrics::Binary(m), Some(confusion), fairness, key)
        }
        Task::Multiclass => {
            let actual: Vec<usize> = y_test.iter().map(|&v| class_of(v)).collect();
            let (m, predicted) = metrics::multiclass(&actual, &p, classes.len());
            let confusion = ConfusionMatrix::new(classes, &actual, &predicted);
            (Metrics::Multiclass(m), Some(confusion), None, "accuracy")
        }
        Task::Regression => {
            let actual = unscaled(model, y_test);
            let predicted = unscaled(model, &p.iter().map(|&v| f32_of(v)).collect::<Vec<_>>());
            let m = metrics::regression(&actual, &predicted);
            (Metrics::Regression(m), None, None, "r2")
        }
    };

    // Permutation importance on (at most) the first IMPORTANCE_ROWS test rows.
    let w = model.prep.width;
    let rows = test_rows.len().min(IMPORTANCE_ROWS);
    let x = &mut x_test[..rows * w];
    let y = &y_test[..rows];
    let blocks: Vec<(String, std::ops::Range<usize>)> = model
        .prep
        .features
        .iter()
        .map(|f| (f.name.clone(), f.columns()))
        .collect();
    let mut buffer = Vec::with_capacity(rows * network.outputs());
    let task = model.task();
    let labels: Vec<bool> = y.iter().map(|&v| v > 0.5).collect();
    let actual_classes: Vec<usize> = y.iter().map(|&v| class_of(v)).collect();
    let actual_values: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let k = model.classes().len();
    let mut score = |x: &[f32]| -> f64 {
        outputs(network, x, &mut scratch, threads, &mut buffer);
        match task {
            Task::Binary => metrics::roc_auc(&labels, &buffer).unwrap_or_else(|| {
                let m = metrics::binary(&labels, &buffer, 0.5);
                m.accuracy
            }),
            Task::Multiclass => metrics::multiclass(&actual_classes, &buffer, k).0.accuracy,
            // R² is invariant to the target's standardization.
            Task::Regression => metrics::regression(&actual_values, &buffer).r2,
        }
    };
    let importance =
        metrics::permutation_importance(x, w, &blocks, IMPORTANCE_REPEATS, seed, &mut score);
    Evaluation {
        metrics,
        confusion,
        fairness,
        importance_metric,
        importance,
    }
}

fn unscaled(model: &Model, values: &[f32]) -> Vec<f64> {
    match &model.target.encoding {
        TargetEncoding::Values { mean, std } => {
            values.iter().map(|&v| f64::from(v) * std + mean).collect()
        }
        TargetEncoding::Classes { .. } => values.iter().map(|&v| f64::from(v)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_partition_the_labelled_rows() {
        let s = Split::new((0..1000).collect(), 0.1, 0.2, 42);
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (700, 100, 200)
        );
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.validation)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_ne!(s.test, (800..1000).collect::<Vec<_>>());
        assert_eq!(s, Split::new((0..1000).collect(), 0.1, 0.2, 42));
        let s = Split::new((0..10).collect(), 0.0, 0.01, 1);
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (9, 0, 1));
    }

    #[test]
    fn specs_are_checked() {
        let ok = TrainSpec::default();
        assert_eq!(check_spec(&ok), Ok(()));
        for bad in [
            TrainSpec {
                epochs: 0,
                ..ok.clone()
            },
            TrainSpec {
                batch_size: 0,
                ..ok.clone()
            },
            TrainSpec {
                learning_rate: f32::NAN,
                ..ok.clone()
            },
            TrainSpec {
                test_fraction: 0.0,
                ..ok.clone()
            },
            TrainSpec {
                validation_fraction: 0.9,
                ..ok.clone()
            },
            TrainSpec {
                model: ModelKind::Mlp { hidden: vec![8, 0] },
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(check_spec(&bad), Err(TrainError::InvalidSpec { .. })),
                "{bad:?}"
            );
        }
    }
}
