//! Models: a dense network (logistic regression is one with no hidden layer) over the features
//! that [`prep`](crate::prep) encodes, stored with that encoding and its target, and applied to a
//! [`Frame`] or to one row.
//!
//! A network's parameters live in one flat `f32` vector (each layer's `inputs × outputs`
//! row-major weights, then its biases), so that Adam, early stopping's best copy and
//! serialization each handle one slice.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::Rng;
use rayon::prelude::*;

use crate::bf16::{self, PackedA, PackedB};
use crate::cpu::{self, Activation, Adam, Loss, Op, Pool, f32_of};
use crate::frame::Frame;
use crate::prep::{PrepError, Preprocessor, Target, TargetEncoding, Value};
use crate::sgemm::{self, Isa};

/// The format version written by [`Model::to_json`].
pub const FORMAT: u32 = 1;

/// Rows encoded and run through the network at once by [`Model::predict`].
const PREDICT_CHUNK: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
    /// Where this layer's weights start in [`Network::params`]; its biases follow them.
    pub offset: usize,
}

impl Layer {
    fn weights(&self) -> Range<usize> {
        self.offset..self.offset + self.inputs * self.outputs
    }

    fn bias(&self) -> Range<usize> {
        let start = self.offset + self.inputs * self.outputs;
        start..start + self.outputs
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub layers: Vec<Layer>,
    pub loss: Loss,
    pub params: Vec<f32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("model format {found} is not supported (this build reads {FORMAT})")]
    Format { found: u32 },
    #[error("model is inconsistent: {what}")]
    Invalid { what: &'static str },
    #[error("model could not be decoded: {message}")]
    Decode { message: String },
}

/// Buffers for running a network forward, grown on demand and reused.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Network {
    /// A network `inputs → hidden… → loss.outputs()` with ReLU hidden layers. Weights are
    /// uniform, scaled for ReLU (He) in hidden layers and Glorot in the output layer; biases 0.
    pub fn new(inputs: usize, hidden: &[usize], loss: Loss, rng: &mut Rng) -> Network {
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(loss.outputs());
        let mut layers = Vec::new();
        let mut params = Vec::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let hidden_layer = i + 2 < sizes.len();
            let bound = if hidden_layer {
                (6.0 / fan_in.max(1) as f64).sqrt()
            } else {
                (6.0 / (fan_in + fan_out).max(1) as f64).sqrt()
            };
            layers.push(Layer {
                inputs: fan_in,
                outputs: fan_out,
                activation: if hidden_layer {
                    Activation::Relu
                } else {
                    Activation::Identity
                },
                offset: params.len(),
            });
            params.extend((0..fan_in * fan_out).map(|_| f32_of((rng.f64() * 2.0 - 1.0) * bound)));
            params.extend(std::iter::repeat_n(0.0, fan_out));
        }
        Network {
            layers,
            loss,
            params,
        }
    }

    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    fn widest(&self) -> usize {
        self.layers.iter().map(|l| l.outputs).max().unwrap_or(0)
    }

    /// The output layer's biases (for starting them at the class priors).
    pub fn output_bias_mut(&mut self) -> &mut [f32] {
        match self.layers.last() {
            Some(l) => &mut self.params[l.bias()],
            None => &mut [],
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        let invalid = |what| Err(ModelError::Invalid { what });
        let mut offset = 0;
        for (i, l) in self.layers.iter().enumerate() {
            if l.offset != offset {
                return invalid("layer offsets");
            }
            if i > 0 && self.layers[i - 1].outputs != l.inputs {
                return invalid("layer sizes");
            }
            let last = i + 1 == self.layers.len();
            if (l.activation == Activation::Identity) != last {
                return invalid("activations");
            }
            offset = l
                .inputs
                .checked_mul(l.outputs)
                .and_then(|w| w.checked_add(l.outputs))
                .and_then(|w| w.checked_add(offset))
                .ok_or(ModelError::Invalid {
                    what: "layer sizes",
                })?;
        }
        if self.layers.is_empty() || offset != self.params.len() {
            return invalid("parameter count");
        }
        if self.outputs() != self.loss.outputs() {
            return invalid("output count");
        }
        if self.params.iter().any(|p| !p.is_finite()) {
            return invalid("non-finite parameters");
        }
        Ok(())
    }

    /// Runs `rows` rows of `x` (`rows × inputs`) forward and returns the raw outputs
    /// (`rows × outputs`: logits or standardized values).
    pub fn forward<'s>(
        &self,
        x: &[f32],
        rows: usize,
        scratch: &'s mut Scratch,
        threads: usize,
    ) -> &'s mut [f32] {
        let need = rows * self.widest();
        if scratch.a.len() < need {
            scratch.a.resize(need, 0.0);
            scratch.b.resize(need, 0.0);
        }
        let (mut cur, mut next) = (&mut scratch.a, &mut scratch.b);
        for (i, l) in self.layers.iter().enumerate() {
            let input: &[f32] = if i == 0 { x } else { &cur[..rows * l.inputs] };
            let out = &mut next[..rows * l.outputs];
            cpu::matmul(
                rows,
                l.outputs,
                l.inputs,
                input,
                Op::N,
                &self.params[l.weights()],
                Op::N,
                out,
                false,
                threads,
            );
            cpu::bias_activation(out, &self.params[l.bias()], l.activation);
            std::mem::swap(&mut cur, &mut next);
        }
        &mut cur[..rows * self.outputs()]
    }
}

/// Rows of a batch that one task runs forward and back (see [`Workspace`]): about a quarter of
/// the batch, so that two threads each take two and one that the system preempts leaves work to
/// steal; at most 256 (products that high run as fast per row as taller ones), a multiple of 16.
fn chunk_rows(batch: usize) -> usize {
    batch.div_ceil(4).next_multiple_of(16).min(256)
}

/// `c (m×n) = op(a) · op(b)` for a training step's chunk, on the calling thread: with the
/// float32 microkernel ([`sgemm`], no allocation) where the CPU has one, through
/// `cpu::matmul` for thin products (`k == 1` or `n == 1`, which it runs without `gemm`) and on
/// other CPUs.
fn product(
    isa: Option<Isa>,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
) {
    match isa {
        Some(isa) if k > 1 && n > 1 => sgemm::matmul(isa, (m, n, k), a, op_a, b, op_b, c, false),
        _ => cpu::matmul(m, n, k, a, op_a, b, op_b, c, false, 1),
    }
}

/// `dst` (`cols × rows`) = `src` (`rows × cols`) transposed, in square blocks that stay in L1.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// Parameters per task of the update pass (summing the chunks' gradients, Adam).
const UPDATE_BLOCK: usize = 2048;

/// Multiply-adds per step below which a step runs on the calling thread alone.
const PARALLEL_STEP_WORK: usize = 1 << 18;

/// Whether a layer's products run in reduced precision in mixed-precision training (bfloat16
/// on the CPU, TF32 on a GPU's tensor cores): layers of at least 32 outputs, the hidden layers
/// in practice (the bulk of the work; PyTorch's autocast takes every layer). Thinner ones (a
/// logit, a few classes, narrow hidden layers) stay float32: they would waste most of the
/// bfloat16 tiles' 32 columns.
pub(crate) fn reduced_precision_layer(l: &Layer) -> bool {
    l.outputs >= bf16::NR
}

/// A layer's weights packed for bfloat16 products, once per step: as the right operand of the
/// forward product (`inputs × outputs`) and of the backward one (its transpose).
#[derive(Clone, Debug, Default)]
struct PackedLayer {
    forward: PackedB,
    backward: PackedB,
}

/// Buffers for training a network on batches of up to `batch` rows: allocated once per run.
///
/// A step splits its batch into chunks of consecutive rows ([`chunk_rows`], fixed by the batch
/// size). Each chunk is one task: it gathers its rows, runs them forward, computes their loss,
/// runs back and writes its share of the gradient (its rows' sum) into its own buffer; then the
/// update pass sums the shares in chunk order and applies Adam, a block of parameters per task.
/// A step thus waits for other threads twice. Its arithmetic depends on the batch alone, never on
/// the number of threads, so any thread count trains the same bits.
#[derive(Clone, Debug)]
pub struct Workspace {
    batch: usize,
    chunk_rows: usize,
    chunks: Vec<Chunk>,
    /// The gradient of the mean loss of the rows last given to [`Network::gradient`], laid out
    /// like [`Network::params`] ([`Network::train_step`] does not keep it).
    pub grads: Vec<f32>,
    /// Mixed precision: per layer, its packed weights where its products run in bfloat16
    /// ([`reduced_precision_layer`]); empty in float32 training.
    packed: Vec<Option<PackedLayer>>,
    /// The float32 products' microkernel ([`sgemm`]); `None` on CPUs without AVX2 and FMA,
    /// where they run through `cpu::matmul`.
    isa: Option<Isa>,
    /// With `isa`: per layer after the first whose products are float32, its weights
    /// transposed (`outputs × inputs`) once per step, the right operand of every chunk's input
    /// gradient as the microkernel reads it best; empty otherwise.
    transposed: Vec<Vec<f32>>,
}

/// What every chunk of a step reads besides the network: the weights packed for bfloat16
/// products, the float32 microkernel, and the weights transposed for it.
struct Weights<'a> {
    packed: &'a [Option<PackedLayer>],
    isa: Option<Isa>,
    transposed: &'a [Vec<f32>],
}

/// One chunk's buffers (`rows` rows at most).
#[derive(Clone, Debug)]
struct Chunk {
    /// `acts[0]` is the chunk's input rows; `acts[l + 1]` layer `l`'s output.
    acts: Vec<Vec<f32>>,
    targets: Vec<f32>,
    delta: Vec<f32>,
    delta_next: Vec<f32>,
    /// The chunk's rows' share of the gradient, laid out like [`Network::params`].
    grads: Vec<f32>,
    /// The chunk's rows' summed loss.
    loss: f64,
    /// Operands packed for bfloat16 products (mixed precision only).
    pa: PackedA,
    pb: PackedB,
}

impl Chunk {
    fn new(network: &Network, rows: usize) -> Chunk {
        let mut acts = vec![vec![0.0; rows * network.inputs()]];
        acts.extend(network.layers.iter().map(|l| vec![0.0; rows * l.outputs]));
        let widest = network
            .layers
            .iter()
            .map(|l| l.outputs.max(l.inputs))
            .max()
            .unwrap_or(0);
        Chunk {
            acts,
            targets: vec![0.0; rows],
            delta: vec![0.0; rows * widest],
            delta_next: vec![0.0; rows * widest],
            grads: vec![0.0; network.params.len()],
            loss: 0.0,
            pa: PackedA::default(),
            pb: PackedB::default(),
        }
    }

    /// Gathers the rows `rows` of `x` (`network.inputs()` wide) and their targets in `y`, runs
    /// them forward and back, and keeps their summed loss and their share of the gradient of the
    /// batch's mean loss (`scale` is one over the batch's rows). Layers with packed weights
    /// multiply in bfloat16, the others in float32.
    fn run(
        &mut self,
        network: &Network,
        shared: &Weights<'_>,
        x: &[f32],
        y: &[f32],
        rows: &[usize],
        scale: f32,
    ) {
        let n = rows.len();
        let w = network.inputs();
        let isa = shared.isa;
        let packed = |i: usize| shared.packed.get(i).and_then(Option::as_ref);
        for ((dst, t), &r) in self.acts[0]
            .chunks_exact_mut(w.max(1))
            .zip(&mut self.targets)
            .zip(rows)
        {
            dst.copy_from_slice(&x[r * w..(r + 1) * w]);
            *t = y[r];
        }
        for (i, l) in network.layers.iter().enumerate() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            let out = &mut after[0][..n * l.outputs];
            let input = &before[i][..n * l.inputs];
            if let Some(w) = packed(i) {
                self.pa.pack(n, l.inputs, input, Op::N);
                bf16::matmul(&self.pa, &w.forward, out, false);
            } else {
                let weights = &network.params[l.weights()];
                product(
                    isa,
                    (n, l.outputs, l.inputs),
                    input,
                    Op::N,
                    weights,
                    Op::N,
                    out,
                );
            }
            cpu::bias_activation(out, &network.params[l.bias()], l.activation);
        }
        let last = network.layers.len();
        let outputs = network.outputs();
        self.loss = network.loss.evaluate_scaled(
            &self.acts[last][..n * outputs],
            &self.targets[..n],
            Some(&mut self.delta[..n * outputs]),
            scale,
        );
        // The output layer's bias gradient; hidden layers' are summed as their deltas are made.
        let out_layer = &network.layers[last - 1];
        cpu::column_sums(
            &self.delta[..n * outputs],
            &mut self.grads[out_layer.bias()],
        );
        for (i, l) in network.layers.iter().enumerate().rev() {
            let delta = &self.delta[..n * l.outputs];
            let input = &self.acts[i][..n * l.inputs];
            let (before, wg) = self.grads[..l.bias().start].split_at_mut(l.offset);
            let packed = packed(i);
            // dW = inputᵀ · delta.
            if packed.is_some() {
                self.pa.pack(l.inputs, n, input, Op::T);
                self.pb.pack(n, l.outputs, delta, Op::N);
                bf16::matmul(&self.pa, &self.pb, wg, false);
            } else {
                product(
                    isa,
                    (l.inputs, l.outputs, n),
                    input,
                    Op::T,
                    delta,
                    Op::N,
                    wg,
                );
            }
            if i > 0 {
                // d input = delta · Wᵀ, then through the previous layer's activation, with the
                // previous layer's bias gradient (Σ_rows of its delta) in the same pass.
                let prev = &network.layers[i - 1];
                let bg = &mut before[prev.bias()];
                let next = &mut self.delta_next[..n * l.inputs];
                let weights = &network.params[l.weights()];
                if l.outputs == 1 {
                    cpu::outer_backward_sums(delta, weights, input, prev.activation, next, bg);
                } else if let Some(w) = packed {
                    self.pa.pack(n, l.outputs, delta, Op::N);
                    bf16::matmul(&self.pa, &w.backward, next, false);
                    cpu::activation_backward_sums(next, input, prev.activation, bg);
                } else {
                    // Wᵀ as stored once per step where the microkernel runs it.
                    let (wt, op) = match shared.transposed.get(i) {
                        Some(t) if !t.is_empty() => (&t[..], Op::N),
                        _ => (weights, Op::T),
                    };
                    product(isa, (n, l.inputs, l.outputs), delta, Op::N, wt, op, next);
                    cpu::activation_backward_sums(next, input, prev.activation, bg);
                }
                std::mem::swap(&mut self.delta, &mut self.delta_next);
            }
        }
    }
}

impl Workspace {
    /// Buffers for float32 training.
    pub fn new(network: &Network, batch: usize) -> Workspace {
        Workspace::with_precision(network, batch, false)
    }

    /// Buffers for float32 training, or for mixed precision (`bf16`): the hidden
    /// layers' products then take bfloat16 inputs and sum in float32 (see [`bf16`]); everything
    /// else stays float32.
    ///
    /// # Panics
    /// If `bf16` is asked for on a CPU without AVX-512 BF16 ([`bf16::available`]).
    pub fn with_precision(network: &Network, batch: usize, bf16: bool) -> Workspace {
        Workspace::build(network, batch, bf16, Isa::detect())
    }

    /// [`Workspace::with_precision`] with the float32 products on `isa`'s microkernel (`None`:
    /// through `cpu::matmul`).
    fn build(network: &Network, batch: usize, bf16: bool, isa: Option<Isa>) -> Workspace {
        assert!(
            !bf16 || bf16::available(),
            "bfloat16 products need AVX-512 BF16"
        );
        let chunk_rows = chunk_rows(batch);
        let chunks = (0..batch.div_ceil(chunk_rows))
            .map(|c| Chunk::new(network, chunk_rows.min(batch - c * chunk_rows)))
            .collect();
        let packed = if bf16 {
            network
                .layers
                .iter()
                .map(|l| reduced_precision_layer(l).then(PackedLayer::default))
                .collect()
        } else {
            Vec::new()
        };
        let transposed = network
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let float32 = !(bf16 && reduced_precision_layer(l));
                if isa.is_some() && i > 0 && float32 && l.outputs > 1 {
                    vec![0.0; l.inputs * l.outputs]
                } else {
                    Vec::new()
                }
            })
            .collect();
        Workspace {
            batch,
            chunk_rows,
            chunks,
            grads: vec![0.0; network.params.len()],
            packed,
            isa,
            transposed,
        }
    }

    /// Whether the hidden layers' products run in bfloat16.
    pub fn mixed_precision(&self) -> bool {
        self.packed.iter().any(Option::is_some)
    }

    pub fn batch(&self) -> usize {
        self.batch
    }
}

impl Network {
    /// Multiply-adds of one row's forward and backward pass.
    fn work_per_row(&self) -> usize {
        self.layers.iter().map(|l| 3 * l.inputs * l.outputs).sum()
    }

    /// Runs the rows `rows` of `x` (row-major, [`Network::inputs`] wide; at most `ws.batch()`
    /// of them) forward and back against their targets in `y` (indexed like `x`'s rows), leaving
    /// each chunk's share of the gradient in `ws`. Returns their summed loss, the number of
    /// chunks used, and whether the step runs in parallel.
    fn chunks_forward_back(
        &self,
        ws: &mut Workspace,
        x: &[f32],
        y: &[f32],
        rows: &[usize],
        threads: usize,
    ) -> (f64, usize, bool) {
        let rows = &rows[..rows.len().min(ws.batch)];
        let scale = if rows.is_empty() {
            0.0
        } else {
            1.0 / rows.len() as f32
        };
        let used = rows.len().div_ceil(ws.chunk_rows);
        let parallel =
            threads > 1 && used > 1 && rows.len() * self.work_per_row() >= PARALLEL_STEP_WORK;
        // This step's weights, packed once for every chunk's bfloat16 products.
        // (The first layer's input gradient is not computed: it needs no backward operand.)
        for (i, (l, slot)) in self.layers.iter().zip(&mut ws.packed).enumerate() {
            if let Some(p) = slot {
                let w = &self.params[l.weights()];
                let forward = |f: &mut PackedB| f.pack(l.inputs, l.outputs, w, Op::N);
                let backward = |b: &mut PackedB| {
                    if i > 0 {
                        b.pack(l.outputs, l.inputs, w, Op::T);
                    }
                };
                if parallel {
                    rayon::join(|| forward(&mut p.forward), || backward(&mut p.backward));
                } else {
                    forward(&mut p.forward);
                    backward(&mut p.backward);
                }
            }
        }
        // And the float32 layers' weights transposed, for the input gradients.
        for (l, t) in self.layers.iter().zip(&mut ws.transposed) {
            if !t.is_empty() {
                transpose(&self.params[l.weights()], l.inputs, l.outputs, t);
            }
        }
        let chunks = &mut ws.chunks[..used];
        let shared = Weights {
            packed: &ws.packed,
            isa: ws.isa,
            transposed: &ws.transposed,
        };
        let run = |(chunk, part): (&mut Chunk, &[usize])| {
            chunk.run(self, &shared, x, y, part, scale);
        };
        if parallel {
            let parts = rows.par_chunks(ws.chunk_rows);
            chunks.par_iter_mut().zip(parts).for_each(run);
        } else {
            chunks
                .iter_mut()
                .zip(rows.chunks(ws.chunk_rows))
                .for_each(run);
        }
        let loss = chunks.iter().map(|c| c.loss).sum();
        (loss, used, parallel)
    }

    /// One training step's gradient: runs the rows `rows` of `x` (row-major,
    /// [`Network::inputs`] wide; at most `ws.batch()` of them) forward, then back, writing the
    /// gradient of their mean loss against their targets in `y` (indexed like `x`'s rows) into
    /// `ws.grads`. Returns their summed loss.
    pub fn gradient(
        &self,
        ws: &mut Workspace,
        x: &[f32],
        y: &[f32],
        rows: &[usize],
        threads: usize,
    ) -> f64 {
        let (loss, used, parallel) = self.chunks_forward_back(ws, x, y, rows, threads);
        let chunks = &ws.chunks[..used];
        let sum = |(b, g): (usize, &mut [f32])| sum_shares(chunks, b * UPDATE_BLOCK, g);
        if parallel {
            ws.grads
                .par_chunks_mut(UPDATE_BLOCK)
                .enumerate()
                .for_each(sum);
        } else {
            ws.grads.chunks_mut(UPDATE_BLOCK).enumerate().for_each(sum);
        }
        loss
    }

    /// One training step: [`Network::gradient`], then one Adam update of the parameters along
    /// it. Returns the rows' summed loss.
    pub fn train_step(
        &mut self,
        ws: &mut Workspace,
        x: &[f32],
        y: &[f32],
        rows: &[usize],
        adam: &mut Adam,
        threads: usize,
    ) -> f64 {
        let (loss, used, parallel) = self.chunks_forward_back(ws, x, y, rows, threads);
        let chunks = &ws.chunks[..used];
        let (step, m, v) = adam.begin();
        // The summed gradient only passes through a small buffer on the stack (it is not kept
        // in `ws.grads`): the pass reads the shares and the parameters and moments once.
        let update = |(b, ((p, m), v)): Update<'_>| {
            let mut g = [0.0f32; UPDATE_BLOCK];
            let g = &mut g[..p.len()];
            sum_shares(chunks, b * UPDATE_BLOCK, g);
            step.update(p, g, m, v);
        };
        if parallel {
            self.params
                .par_chunks_mut(UPDATE_BLOCK)
                .zip(m.par_chunks_mut(UPDATE_BLOCK))
                .zip(v.par_chunks_mut(UPDATE_BLOCK))
                .enumerate()
                .for_each(update);
        } else {
            self.params
                .chunks_mut(UPDATE_BLOCK)
                .zip(m.chunks_mut(UPDATE_BLOCK))
                .zip(v.chunks_mut(UPDATE_BLOCK))
                .enumerate()
                .for_each(update);
        }
        loss
    }
}

/// A block of the update pass: its index, and its parameters and Adam moments.
type Update<'a> = (usize, ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]));

/// `grads` (the parameters from `start` on) = the chunks' shares summed, in chunk order.
fn sum_shares(chunks: &[Chunk], start: usize, grads: &mut [f32]) {
    let end = start + grads.len();
    let Some((first, rest)) = chunks.split_first() else {
        grads.fill(0.0);
        return;
    };
    grads.copy_from_slice(&first.grads[start..end]);
    for c in rest {
        for (g, &x) in grads.iter_mut().zip(&c.grads[start..end]) {
            *g += x;
        }
    }
}

/// A trained model: what it reads, how it encodes it, the network, and what it predicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: u32,
    pub target: Target,
    pub prep: Preprocessor,
    pub network: Network,
}

/// A model's predictions for a frame's rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Predictions {
    /// The probability of the positive class per row.
    Binary {
        negative: String,
        positive: String,
        probabilities: Vec<f64>,
    },
    /// Class probabilities, row-major (`rows × classes.len()`).
    Multiclass {
        classes: Vec<String>,
        probabilities: Vec<f64>,
    },
    Regression {
        values: Vec<f64>,
    },
}

impl Predictions {
    pub fn rows(&self) -> usize {
        match self {
            Predictions::Binary { probabilities, .. } => probabilities.len(),
            Predictions::Multiclass {
                classes,
                probabilities,
            } => probabilities.len() / classes.len().max(1),
            Predictions::Regression { values } => values.len(),
        }
    }

    /// The predicted class per row (probability ≥ 0.5 for binary; the most probable class
    /// otherwise); `None` for regression.
    pub fn labels(&self) -> Option<Vec<&str>> {
        match self {
            Predictions::Binary {
                negative,
                positive,
                probabilities,
            } => Some(
                probabilities
                    .iter()
                    .map(|&p| {
                        if p >= 0.5 {
                            positive.as_str()
                        } else {
                            negative.as_str()
                        }
                    })
                    .collect(),
            ),
            Predictions::Multiclass {
                classes,
                probabilities,
            } => Some(
                probabilities
                    .chunks_exact(classes.len().max(1))
                    .map(|p| classes[argmax(p)].as_str())
                    .collect(),
            ),
            Predictions::Regression { .. } => None,
        }
    }
}

/// The index of the largest value (the first of equals); 0 for an empty slice.
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PredictError {
    #[error("the input does not fit the model")]
    Input(#[from] PrepError),
}

impl Model {
    pub fn task(&self) -> Task {
        match &self.target.encoding {
            TargetEncoding::Classes { classes } if classes.len() == 2 => Task::Binary,
            TargetEncoding::Classes { .. } => Task::Multiclass,
            TargetEncoding::Values { .. } => Task::Regression,
        }
    }

    /// The class names (empty for regression).
    pub fn classes(&self) -> &[String] {
        match &self.target.encoding {
            TargetEncoding::Classes { classes } => classes,
            TargetEncoding::Values { .. } => &[],
        }
    }

    /// The columns a prediction reads, in the order [`Predictor::predict`] takes them.
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.prep.features.iter().map(|f| f.name.as_str())
    }

    /// Predicts every row of `frame` (which needs the model's input columns, of the same kinds;
    /// other columns are ignored). Uses every core for large frames.
    pub fn predict(&self, frame: &Frame) -> Result<Predictions, PredictError> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        self.predict_with(frame, threads)
    }

    /// [`Model::predict`] on at most `threads` threads.
    pub fn predict_with(&self, frame: &Frame, threads: usize) -> Result<Predictions, PredictError> {
        let n = frame.rows();
        let pool = Pool::new(if n > PREDICT_CHUNK { threads } else { 1 });
        let out = pool.run(|| self.outputs(frame, threads))?;
        Ok(self.wrap(out))
    }

    /// Finished network outputs for every row of `frame`, row-major.
    fn outputs(&self, frame: &Frame, threads: usize) -> Result<Vec<f64>, PredictError> {
        let n = frame.rows();
        let mut x = vec![0.0; PREDICT_CHUNK.min(n) * self.prep.width];
        let mut scratch = Scratch::default();
        let mut out = Vec::with_capacity(n * self.network.outputs());
        let mut start = 0;
        while start < n {
            let end = (start + PREDICT_CHUNK).min(n);
            let x = &mut x[..(end - start) * self.prep.width];
            self.prep.transform(frame, start..end, x)?;
            let y = self.network.forward(x, end - start, &mut scratch, threads);
            self.network.loss.finish(y);
            out.extend(y.iter().map(|&v| f64::from(v)));
            start = end;
        }
        Ok(out)
    }

    /// Predictions from finished network outputs (probabilities, or standardized values).
    pub(crate) fn wrap(&self, mut out: Vec<f64>) -> Predictions {
        match &self.target.encoding {
            TargetEncoding::Classes { classes } if classes.len() == 2 => Predictions::Binary {
                negative: classes[0].clone(),
                positive: classes[1].clone(),
                probabilities: out,
            },
            TargetEncoding::Classes { classes } => Predictions::Multiclass {
                classes: classes.clone(),
                probabilities: out,
            },
            TargetEncoding::Values { mean, std } => {
                out.iter_mut().for_each(|v| *v = *v * std + mean);
                Predictions::Regression { values: out }
            }
        }
    }

    /// A one-row predictor with its own buffers, for low-latency serving.
    pub fn predictor(&self) -> Predictor<'_> {
        Predictor {
            model: self,
            row: vec![0.0; self.prep.width],
            scratch: Scratch::default(),
            out: vec![0.0; self.network.outputs()],
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of numbers, strings and vectors cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a model written by [`Model::to_json`], checking that its parts fit together.
    pub fn from_json(bytes: &[u8]) -> Result<Model, ModelError> {
        let model: Model = serde_json::from_slice(bytes).map_err(|e| ModelError::Decode {
            message: e.to_string(),
        })?;
        if model.format != FORMAT {
            return Err(ModelError::Format {
                found: model.format,
            });
        }
        model.network.check()?;
        if model.network.inputs() != model.prep.width {
            return Err(ModelError::Invalid {
                what: "input width",
            });
        }
        if model.network.loss != model.target.loss() {
            return Err(ModelError::Invalid { what: "loss" });
        }
        let mut offset = 0;
        for f in &model.prep.features {
            if f.offset != offset {
                return Err(ModelError::Invalid {
                    what: "feature offsets",
                });
            }
            offset += f.encoding.width();
        }
        if offset != model.prep.width {
            return Err(ModelError::Invalid {
                what: "feature widths",
            });
        }
        Ok(model)
    }
}

/// Predicts one row at a time without allocating (after the first call).
#[derive(Clone, Debug)]
pub struct Predictor<'m> {
    model: &'m Model,
    row: Vec<f32>,
    scratch: Scratch,
    out: Vec<f64>,
}

impl Predictor<'_> {
    /// `values` in the order of [`Model::inputs`]. Returns the positive class's probability
    /// (binary), each class's probability (multiclass) or the value (regression).
    pub fn predict(&mut self, values: &[Value<'_>]) -> Result<&[f64], PredictError> {
        let model = self.model;
        model.prep.encode_row(values, &mut self.row)?;
        let y = model.network.forward(&self.row, 1, &mut self.scratch, 1);
        model.network.loss.finish(y);
        for (o, &v) in self.out.iter_mut().zip(y.iter()) {
            *o = f64::from(v);
        }
        if let TargetEncoding::Values { mean, std } = &model.target.encoding {
            self.out.iter_mut().for_each(|v| *v = *v * std + mean);
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter's gradient, for every loss and a network with two hidden layers, against
    /// central differences of the mean loss.
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(11);
        // 37 rows of a batch of 40: chunks of 16, 16 and 5 rows, drawn out of order from 50.
        let n = 50;
        let mut rows: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut rows);
        rows.truncate(37);
        for (loss, classes) in [
            (Loss::Logistic, 2),
            (Loss::Squared, 0),
            (Loss::Softmax { classes: 3 }, 3),
        ] {
            let targets: Vec<f32> = (0..n)
                .map(|_| match classes {
                    0 => f32_of(rng.normal()),
                    c => f32_of(rng.below(c) as f64),
                })
                .collect();
            for hidden in [&[][..], &[6, 4][..]] {
                let mut net = Network::new(4, hidden, loss, &mut rng);
                // Non-zero biases, so that their gradients are exercised too.
                for p in &mut net.params {
                    *p += f32_of(rng.normal() * 0.1);
                }
                let x: Vec<f32> = (0..n * 4).map(|_| f32_of(rng.normal())).collect();
                let mut ws = Workspace::new(&net, 40);
                assert_eq!(ws.chunks.len(), 3);
                net.gradient(&mut ws, &x, &targets, &rows, 1);
                let analytic = ws.grads.clone();
                let mean_loss = |net: &Network, ws: &mut Workspace| {
                    net.gradient(ws, &x, &targets, &rows, 1) / rows.len() as f64
                };
                for (i, &a) in analytic.iter().enumerate() {
                    let h = 1e-3f32;
                    let keep = net.params[i];
                    net.params[i] = keep + h;
                    let up = mean_loss(&net, &mut ws);
                    net.params[i] = keep - h;
                    let down = mean_loss(&net, &mut ws);
                    net.params[i] = keep;
                    let numeric = (up - down) / (2.0 * f64::from(h));
                    let a = f64::from(a);
                    assert!(
                        (numeric - a).abs() < 2e-3 + 2e-2 * a.abs(),
                        "{loss:?} {hidden:?} param {i}: numeric {numeric} analytic {a}"
                    );
                }
            }
        }
    }

    #[test]
    fn forward_agrees_with_the_training_pass() {
        let mut rng = Rng::new(5);
        let net = Network::new(3, &[8], Loss::Squared, &mut rng);
        let mut ws = Workspace::new(&net, 4);
        let x: Vec<f32> = (0..12).map(|_| f32_of(rng.normal())).collect();
        let targets = [0.0; 4];
        let loss = net.gradient(&mut ws, &x, &targets, &[0, 1, 2, 3], 1);
        let mut scratch = Scratch::default();
        let y = net.forward(&x, 4, &mut scratch, 1);
        let direct: f64 = y.iter().map(|v| f64::from(v * v)).sum();
        assert!((loss - direct).abs() < 1e-9, "{loss} {direct}");
    }

    /// `n` rows of `inputs` normal features, random 0/1 targets, and the rows in random order.
    fn binary_rows(rng: &mut Rng, n: usize, inputs: usize) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let x = (0..n * inputs).map(|_| f32_of(rng.normal())).collect();
        let y = (0..n).map(|_| f32_of(rng.below(2) as f64)).collect();
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        (x, y, order)
    }

    /// A training step is the gradient then Adam, and gives the same bits on one thread or two.
    #[test]
    fn train_steps_are_the_gradient_then_adam_on_any_thread_count() {
        let mut rng = Rng::new(8);
        let net = Network::new(20, &[64, 48], Loss::Logistic, &mut rng);
        let (x, y, order) = binary_rows(&mut rng, 1500, 20);
        let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // Float32 and, on CPUs with AVX-512 BF16, mixed precision (the hidden layers).
        for bf16 in [false, bf16::available()] {
            let mut results = Vec::new();
            for threads in [1, 2] {
                let mut net = net.clone();
                let mut ws = Workspace::with_precision(&net, 512, bf16);
                assert_eq!(ws.mixed_precision(), bf16);
                let mut adam = Adam::new(net.params.len(), 1e-2);
                let pool = Pool::new(threads);
                let mut losses = Vec::new();
                pool.run(|| {
                    for rows in order.chunks(512) {
                        losses.push(net.train_step(&mut ws, &x, &y, rows, &mut adam, threads));
                    }
                });
                results.push((bits(&net.params), losses));
            }
            assert!(results[0] == results[1], "bf16 {bf16}");
        }

        let (mut a, mut b) = (net.clone(), net);
        let mut ws = Workspace::new(&a, 512);
        let (mut adam_a, mut adam_b) = (
            Adam::new(a.params.len(), 1e-2),
            Adam::new(b.params.len(), 1e-2),
        );
        for rows in order.chunks(512) {
            let la = a.train_step(&mut ws, &x, &y, rows, &mut adam_a, 1);
            let lb = b.gradient(&mut ws, &x, &y, rows, 1);
            adam_b.step(&mut b.params, &ws.grads);
            assert_eq!(la.to_bits(), lb.to_bits());
        }
        assert!(bits(&a.params) == bits(&b.params));
    }

    /// Mixed precision's gradient is float32's, but for the rounding of the hidden layers'
    /// products' inputs to bfloat16 (8 bits of mantissa); on a CPU without AVX-512 BF16 it is
    /// refused.
    #[test]
    fn mixed_precision_gradients_are_close_to_float32() {
        let mut rng = Rng::new(21);
        let net = Network::new(20, &[96, 64], Loss::Logistic, &mut rng);
        if !bf16::available() {
            let refused = std::panic::catch_unwind(|| Workspace::with_precision(&net, 64, true));
            assert!(refused.is_err(), "mixed precision without AVX-512 BF16");
            return;
        }
        let n = 300;
        let (x, y, rows) = binary_rows(&mut rng, n, 20);
        let mut exact = Workspace::new(&net, n);
        let mut mixed = Workspace::with_precision(&net, n, true);
        // The hidden layers run in bfloat16, the 64→1 output layer in float32.
        assert_eq!(mixed.packed.iter().flatten().count(), 2);
        let le = net.gradient(&mut exact, &x, &y, &rows, 2);
        let lm = net.gradient(&mut mixed, &x, &y, &rows, 2);
        assert!((le - lm).abs() <= 1e-3 * le.abs(), "loss {le} vs {lm}");
        assert!(exact.grads != mixed.grads, "no product ran in bfloat16");
        // Per layer, the two gradients point the same way. (Single entries can differ by a few
        // per cent: a unit whose pre-activation is within rounding of zero switches on or off
        // for a row, adding or removing that row's whole term.)
        for l in &net.layers {
            let r = l.offset..l.bias().end;
            let (e, m) = (&exact.grads[r.clone()], &mixed.grads[r]);
            let dot: f64 = e.iter().zip(m).map(|(a, b)| f64::from(a * b)).sum();
            let norm = |g: &[f32]| g.iter().map(|a| f64::from(a * a)).sum::<f64>().sqrt();
            let cosine = dot / (norm(e) * norm(m));
            assert!(cosine > 0.999, "layer {l:?}: cosine {cosine}");
        }
    }

    #[test]
    fn float32_gradients_agree_between_gemm_and_each_microkernel() {
        // Odd widths (partial tiles everywhere) and a three-class output (a product of three
        // columns, not a thin one): gemm and Hearth's kernels sum in other orders, nothing else.
        let mut rng = Rng::new(23);
        let net = Network::new(19, &[45, 33], Loss::Softmax { classes: 3 }, &mut rng);
        let n = 157;
        let (x, y, rows) = binary_rows(&mut rng, n, 19);
        let gradient = |isa: Option<Isa>| {
            let mut ws = Workspace::build(&net, n, false, isa);
            let loss = net.gradient(&mut ws, &x, &y, &rows, 2);
            (loss, ws.grads)
        };
        let (want_loss, want) = gradient(None);
        let mut kernels = 0;
        for isa in [Isa::Avx512, Isa::Avx2] {
            if !isa.available() {
                continue;
            }
            kernels += 1;
            let (loss, got) = gradient(Some(isa));
            assert!(
                (loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
                "{isa:?} loss"
            );
            let scale = want.iter().fold(0f32, |m, g| m.max(g.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * scale,
                    "{isa:?} gradient [{i}]: {g} vs {w}"
                );
            }
        }
        // x86-64 CPUs with AVX2 run at least one of them here.
        if Isa::detect().is_some() {
            assert!(kernels > 0);
        }
    }

    /// After the first step has sized the buffers, training steps allocate nothing, in mixed
    /// precision and in float32 (measured on one thread, where the whole step runs on the
    /// calling thread). Only a CPU without AVX2 and FMA, whose float32 products go through
    /// `gemm` (which takes its packing buffers from the heap on every call), allocates in a
    /// step; the test bounds that instead.
    #[test]
    fn training_steps_do_not_allocate() {
        let mut rng = Rng::new(4);
        let net = Network::new(33, &[256, 256], Loss::Logistic, &mut rng);
        let (x, y, order) = binary_rows(&mut rng, 4096, 33);
        for bf16 in [false, true] {
            if bf16 && !bf16::available() {
                continue; // refused there (mixed_precision_gradients_are_close_to_float32)
            }
            let mut net = net.clone();
            let mut ws = Workspace::with_precision(&net, 1024, bf16);
            let mut adam = Adam::new(net.params.len(), 1e-3);
            let (first, rest) = order.split_at(1024);
            net.train_step(&mut ws, &x, &y, first, &mut adam, 1);
            let before = crate::alloc_count::on_this_thread();
            for rows in rest.chunks(1024) {
                net.train_step(&mut ws, &x, &y, rows, &mut adam, 1);
            }
            let made = crate::alloc_count::on_this_thread() - before;
            if bf16 || ws.isa.is_some() {
                assert_eq!(made, 0, "{made} allocations in three steps (bf16: {bf16})");
            } else {
                // 4 chunks × 4 gemm products (the 256→1 layer's are not gemm's) × 2, per step.
                assert!(made <= 3 * 32, "{made} allocations in three float32 steps");
            }
        }
    }

    #[test]
    fn corrupt_networks_are_refused() {
        let mut rng = Rng::new(1);
        let net = Network::new(3, &[4], Loss::Logistic, &mut rng);
        assert_eq!(net.check(), Ok(()));
        let mut short = net.clone();
        short.params.pop();
        assert!(short.check().is_err());
        let mut wrong = net.clone();
        wrong.loss = Loss::Softmax { classes: 3 };
        assert!(wrong.check().is_err());
        let mut nan = net;
        nan.params[0] = f32::NAN;
        assert!(nan.check().is_err());
    }
}
