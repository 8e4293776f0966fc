//! The CUDA backend of training: the same minibatch Adam loop as the CPU's
//! ([`Network::train_step`]: [`Network::gradient`], then Adam), run on one GPU with Hearth's own
//! kernels (`kernels/*.cu` through [`hearth_kernels::cuda::Gpu`]). The trainer is written
//! against [`Device`], so the same code also runs on [`hearth_kernels::device::Reference`] (the
//! kernels' CPU references), which is how CI checks it on machines without a GPU.
//!
//! The whole encoded table and its targets go to the device once; each epoch uploads only the
//! shuffled row order (the host's shuffle, so a seed gives the CPU's order), and each step
//! gathers its minibatch, runs forward, loss, backward and the Adam update without a round
//! trip. The host waits once per epoch, to read the loss partials and the parameters back (for
//! validation and early stopping, which stay on the CPU, as the best epoch's weights do).

use hearth_kernels::Math;
use hearth_kernels::cuda::{CudaError, LOSS_BLOCKS};
use hearth_kernels::device::{Device, Indices};
use hearth_kernels::reference::adam_step_constants;

use crate::cpu::{Activation, Loss};
use crate::model::{Layer, Network, reduced_precision_layer};

/// Adam's constants, as [`crate::cpu::Adam::new`] sets them.
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

/// Training state on one device: data, parameters, optimizer moments and work buffers.
pub struct CudaTrainer<D: Device> {
    device: D,
    layers: Vec<Layer>,
    /// Each layer's products: TF32 on the tensor cores for wide layers in mixed precision.
    math: Vec<Math>,
    loss: Loss,
    inputs: usize,
    batch: usize,
    learning_rate: f32,
    steps: i32,
    x: D::Buf<f32>,
    y: D::Buf<f32>,
    labels: Option<D::Buf<i32>>,
    order: Indices<D::Buf<u32>>,
    params: D::Buf<f32>,
    grads: D::Buf<f32>,
    m: D::Buf<f32>,
    v: D::Buf<f32>,
    /// `acts[0]` is the gathered input batch, `acts[l + 1]` layer `l`'s output.
    acts: Vec<D::Buf<f32>>,
    delta: D::Buf<f32>,
    delta_next: D::Buf<f32>,
    prob: D::Buf<f32>,
    batch_y: D::Buf<f32>,
    batch_labels: D::Buf<i32>,
    partials: D::Buf<f32>,
    partials_host: Vec<f32>,
    order_host: Vec<u32>,
}

impl<D: Device> std::fmt::Debug for CudaTrainer<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTrainer")
            .field("device", &self.device.describe())
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<D: Device> CudaTrainer<D> {
    /// Uploads `x` (`rows × network.inputs()`, every row the epochs may draw) and `y` (one
    /// target per row: 0/1, a class index or a standardized value) and the network's starting
    /// parameters; `train_rows` is the most rows an epoch visits. With `tf32`, the products of
    /// layers of at least 32 outputs (forward, weight gradient, input gradient) run in TF32 on
    /// the tensor cores; the device must have them ([`Device::tensor_cores`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        device: D,
        network: &Network,
        batch: usize,
        x: &[f32],
        y: &[f32],
        train_rows: usize,
        learning_rate: f32,
        tf32: bool,
    ) -> Result<CudaTrainer<D>, CudaError> {
        let inputs = network.inputs();
        let rows = y.len();
        if x.len() != rows * inputs || batch == 0 {
            return Err(CudaError::Shape {
                kernel: "train",
                what: format!(
                    "{} features for {rows} rows of {inputs} inputs, batch {batch}",
                    x.len()
                ),
            });
        }
        let labels = match network.loss {
            Loss::Softmax { classes } => {
                let clamp = |v: f32| -> i32 {
                    // Class indices are small non-negative integers (prep); clamp like the CPU.
                    #[allow(clippy::cast_possible_truncation)]
                    let c = v.max(0.0) as i32;
                    c.min(i32::try_from(classes).unwrap_or(i32::MAX) - 1)
                };
                let host: Vec<i32> = y.iter().map(|&v| clamp(v)).collect();
                Some(device.upload(&host)?)
            }
            _ => None,
        };
        let widest = network
            .layers
            .iter()
            .map(|l| l.inputs.max(l.outputs))
            .max()
            .unwrap_or(0);
        let n_params = network.params.len();
        let steps = train_rows.div_ceil(batch).max(1);
        let mut acts = vec![device.zeros::<f32>(batch * inputs)?];
        for l in &network.layers {
            acts.push(device.zeros::<f32>(batch * l.outputs)?);
        }
        let outputs = network.outputs();
        let math = network
            .layers
            .iter()
            .map(|l| {
                if tf32 && reduced_precision_layer(l) {
                    Math::Tf32
                } else {
                    Math::F32
                }
            })
            .collect();
        Ok(CudaTrainer {
            layers: network.layers.clone(),
            math,
            loss: network.loss,
            inputs,
            batch,
            learning_rate,
            steps: 0,
            x: device.upload(x)?,
            y: device.upload(y)?,
            labels,
            order: Indices::new(&device, train_rows, rows)?,
            params: device.upload(&network.params)?,
            grads: device.zeros::<f32>(n_params)?,
            m: device.zeros::<f32>(n_params)?,
            v: device.zeros::<f32>(n_params)?,
            acts,
            delta: device.zeros::<f32>(batch * widest)?,
            delta_next: device.zeros::<f32>(batch * widest)?,
            prob: device.zeros::<f32>(batch * outputs)?,
            batch_y: device.zeros::<f32>(batch)?,
            batch_labels: device.zeros::<i32>(batch)?,
            partials: device.zeros::<f32>(steps * LOSS_BLOCKS)?,
            partials_host: vec![0.0; steps * LOSS_BLOCKS],
            order_host: Vec::with_capacity(train_rows),
            device,
        })
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    /// Whether any layer's products run in TF32.
    pub fn tensor_products(&self) -> bool {
        self.math.contains(&Math::Tf32)
    }

    /// One pass over `order` (row indices into the uploaded table) in minibatches; copies the
    /// parameters after it into `params` and returns the summed training loss, as the CPU loop
    /// does.
    pub fn epoch(&mut self, order: &[usize], params: &mut [f32]) -> Result<f64, CudaError> {
        self.order_host.clear();
        self.order_host
            .extend(order.iter().map(|&r| u32::try_from(r).unwrap_or(u32::MAX)));
        self.order.write(&self.device, &self.order_host)?;
        let total = order.len();
        let steps = total.div_ceil(self.batch);
        for step in 0..steps {
            let start = step * self.batch;
            let rows = self.batch.min(total - start);
            self.step(start, rows, step)?;
        }
        self.device.read(&self.partials, &mut self.partials_host)?;
        self.device.read(&self.params, params)?;
        let sum: f64 = self.partials_host[..steps * LOSS_BLOCKS]
            .iter()
            .map(|&p| f64::from(p))
            .sum();
        // The mse kernel sums (z - y)^2 / 2; the CPU's squared loss is (z - y)^2.
        Ok(match self.loss {
            Loss::Squared => 2.0 * sum,
            _ => sum,
        })
    }

    fn step(&mut self, start: usize, rows: usize, step: usize) -> Result<(), CudaError> {
        let d = &self.device;
        let w = self.inputs;
        let at = start..start + rows;
        d.gather_rows(rows, w, &self.x, &self.order, at.clone(), &mut self.acts[0])?;
        d.gather_rows(rows, 1, &self.y, &self.order, at.clone(), &mut self.batch_y)?;
        if let Some(labels) = &self.labels {
            d.gather_rows(rows, 1, labels, &self.order, at, &mut self.batch_labels)?;
        }
        // Forward: acts[i + 1] = act(acts[i] · W + b).
        for (i, (l, &math)) in self.layers.iter().zip(&self.math).enumerate() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            let out = &mut after[0];
            d.gemm(
                math,
                rows,
                l.outputs,
                l.inputs,
                (&before[i], 0..rows * l.inputs),
                l.inputs,
                false,
                (&self.params, weights(l)),
                l.outputs,
                false,
                (&mut *out, 0..rows * l.outputs),
                l.outputs,
            )?;
            d.bias_act_forward(
                rows,
                l.outputs,
                (out, 0..rows * l.outputs),
                (&self.params, bias(l)),
                l.activation == Activation::Relu,
            )?;
        }
        // Loss and its gradient (of the batch's mean loss) into delta.
        let outputs = self.layers.last().map_or(0, |l| l.outputs);
        let n = rows * outputs;
        let scale = 1.0 / rows as f32;
        let out = (&self.acts[self.layers.len()], 0..n);
        let partial = (
            &mut self.partials,
            step * LOSS_BLOCKS..(step + 1) * LOSS_BLOCKS,
        );
        match self.loss {
            Loss::Logistic => d.sigmoid_bce(
                n,
                out,
                &self.batch_y,
                scale,
                &mut self.prob,
                &mut self.delta,
                partial,
            )?,
            Loss::Softmax { classes } => d.softmax_ce(
                rows,
                classes,
                out,
                &self.batch_labels,
                scale,
                &mut self.prob,
                &mut self.delta,
                partial,
            )?,
            // The CPU's gradient of (z - y)^2 is 2 (z - y) / rows.
            Loss::Squared => d.mse(n, out, &self.batch_y, 2.0 * scale, &mut self.delta, partial)?,
        }
        // Backward: dW = inputᵀ · delta, db = Σ delta, d input = delta · Wᵀ through the ReLU.
        for (i, (l, &math)) in self.layers.iter().zip(&self.math).enumerate().rev() {
            let input = (&self.acts[i], 0..rows * l.inputs);
            d.gemm(
                math,
                l.inputs,
                l.outputs,
                rows,
                input.clone(),
                l.inputs,
                true,
                (&self.delta, 0..rows * l.outputs),
                l.outputs,
                false,
                (&mut self.grads, weights(l)),
                l.outputs,
            )?;
            d.column_sums(
                rows,
                l.outputs,
                (&self.delta, 0..rows * l.outputs),
                (&mut self.grads, bias(l)),
            )?;
            if i > 0 {
                d.gemm(
                    math,
                    rows,
                    l.inputs,
                    l.outputs,
                    (&self.delta, 0..rows * l.outputs),
                    l.outputs,
                    false,
                    (&self.params, weights(l)),
                    l.outputs,
                    true,
                    (&mut self.delta_next, 0..rows * l.inputs),
                    l.inputs,
                )?;
                // Hidden layers are ReLU (Network::new and its check).
                d.relu_backward((&mut self.delta_next, 0..rows * l.inputs), input)?;
                std::mem::swap(&mut self.delta, &mut self.delta_next);
            }
        }
        self.steps = self.steps.saturating_add(1);
        let (lr_t, eps_t) =
            adam_step_constants(self.learning_rate, BETA1, BETA2, EPSILON, self.steps);
        d.adam_update(
            &mut self.params,
            &self.grads,
            &mut self.m,
            &mut self.v,
            BETA1,
            BETA2,
            lr_t,
            eps_t,
        )
    }
}

fn weights(l: &Layer) -> std::ops::Range<usize> {
    l.offset..l.offset + l.inputs * l.outputs
}

fn bias(l: &Layer) -> std::ops::Range<usize> {
    let start = l.offset + l.inputs * l.outputs;
    start..start + l.outputs
}
