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
use crate::cpu::{self, Activation, Loss, Op, Pool, f32_of};
use crate::frame::Frame;
use crate::prep::{PrepError, Preprocessor, Target, TargetEncoding, Value};

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

/// Buffers for training a network on batches of up to `batch` rows: allocated once per run.
#[derive(Clone, Debug)]
pub struct Workspace {
    batch: usize,
    /// `acts[0]` is the input batch; `acts[l + 1]` layer `l`'s output.
    acts: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_next: Vec<f32>,
    /// Gradient of the batch's mean loss, laid out like [`Network::params`].
    pub grads: Vec<f32>,
}

impl Workspace {
    pub fn new(network: &Network, batch: usize) -> Workspace {
        let mut acts = vec![vec![0.0; batch * network.inputs()]];
        acts.extend(network.layers.iter().map(|l| vec![0.0; batch * l.outputs]));
        let widest = network
            .layers
            .iter()
            .map(|l| l.outputs.max(l.inputs))
            .max()
            .unwrap_or(0);
        Workspace {
            batch,
            acts,
            delta: vec![0.0; batch * widest],
            delta_next: vec![0.0; batch * widest],
            grads: vec![0.0; network.params.len()],
        }
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The input batch to fill (`batch × inputs`).
    pub fn input_mut(&mut self) -> &mut [f32] {
        &mut self.acts[0]
    }
}

impl Network {
    /// One training step's gradient: runs the first `rows` rows of `ws`'s input batch forward,
    /// then back, writing the gradient of their mean loss against `targets` into `ws.grads`.
    /// Returns their summed loss.
    pub fn gradient(
        &self,
        ws: &mut Workspace,
        rows: usize,
        targets: &[f32],
        threads: usize,
    ) -> f64 {
        let rows = rows.min(ws.batch).min(targets.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(i + 1);
            let out = &mut after[0][..rows * l.outputs];
            cpu::matmul(
                rows,
                l.outputs,
                l.inputs,
                &before[i][..rows * l.inputs],
                Op::N,
                &self.params[l.weights()],
                Op::N,
                out,
                false,
                threads,
            );
            cpu::bias_activation(out, &self.params[l.bias()], l.activation);
        }
        let last = self.layers.len();
        let outputs = self.outputs();
        let loss = self.loss.evaluate(
            &ws.acts[last][..rows * outputs],
            &targets[..rows],
            Some(&mut ws.delta[..rows * outputs]),
        );
        for (i, l) in self.layers.iter().enumerate().rev() {
            let delta = &ws.delta[..rows * l.outputs];
            let input = &ws.acts[i][..rows * l.inputs];
            let (wg, bg) = ws.grads[l.offset..l.bias().end].split_at_mut(l.inputs * l.outputs);
            // dW = inputᵀ · delta; db = Σ_rows delta.
            cpu::matmul(
                l.inputs,
                l.outputs,
                rows,
                input,
                Op::T,
                delta,
                Op::N,
                wg,
                false,
                threads,
            );
            cpu::column_sums(delta, bg);
            if i > 0 {
                // d input = delta · Wᵀ, then through the previous layer's activation.
                let next = &mut ws.delta_next[..rows * l.inputs];
                cpu::matmul(
                    rows,
                    l.inputs,
                    l.outputs,
                    delta,
                    Op::N,
                    &self.params[l.weights()],
                    Op::T,
                    next,
                    false,
                    threads,
                );
                cpu::activation_backward(next, input, self.layers[i - 1].activation);
                std::mem::swap(&mut ws.delta, &mut ws.delta_next);
            }
        }
        loss
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
        let rows = 5;
        for (loss, targets) in [
            (Loss::Logistic, vec![1.0, 0.0, 0.0, 1.0, 1.0]),
            (Loss::Squared, vec![0.5, -1.0, 2.0, 0.0, 0.3]),
            (Loss::Softmax { classes: 3 }, vec![0.0, 2.0, 1.0, 1.0, 2.0]),
        ] {
            for hidden in [&[][..], &[6, 4][..]] {
                let mut net = Network::new(4, hidden, loss, &mut rng);
                // Non-zero biases, so that their gradients are exercised too.
                for p in &mut net.params {
                    *p += f32_of(rng.normal() * 0.1);
                }
                let mut ws = Workspace::new(&net, 8);
                for v in ws.input_mut().iter_mut() {
                    *v = f32_of(rng.normal());
                }
                net.gradient(&mut ws, rows, &targets, 1);
                let analytic = ws.grads.clone();
                let mean_loss = |net: &Network, ws: &mut Workspace| {
                    net.gradient(ws, rows, &targets, 1) / rows as f64
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
        ws.input_mut().copy_from_slice(&x);
        let targets = [0.0; 4];
        let loss = net.gradient(&mut ws, 4, &targets, 1);
        let mut scratch = Scratch::default();
        let y = net.forward(&x, 4, &mut scratch, 1);
        let direct: f64 = y.iter().map(|v| f64::from(v * v)).sum();
        assert!((loss - direct).abs() < 1e-9, "{loss} {direct}");
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
