//! The CUDA backend of training: the same minibatch Adam loop as the CPU's
//! ([`Network::gradient`] then [`crate::cpu::Adam::step`]), run on one GPU with Hearth's own
//! kernels (`kernels/*.cu` through [`hearth_kernels::cuda::Gpu`]).
//!
//! The whole encoded table and its targets go to the device once; each epoch uploads only the
//! shuffled row order (the host's shuffle, so a seed gives the CPU's order), and each step
//! gathers its minibatch, runs forward, loss, backward and the Adam update without a round
//! trip. The host waits once per epoch, to read the loss partials and the parameters back (for
//! validation and early stopping, which stay on the CPU, as the best epoch's weights do).

use std::sync::Arc;

use hearth_kernels::cuda::cudarc::driver::CudaSlice;
use hearth_kernels::cuda::{CudaError, Gpu, LOSS_BLOCKS, check_indices};
use hearth_kernels::reference::adam_step_constants;

use crate::cpu::{Activation, Loss};
use crate::model::{Layer, Network};

/// Adam's constants, as [`crate::cpu::Adam::new`] sets them.
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

/// Training state on one GPU: data, parameters, optimizer moments and work buffers.
pub struct CudaTrainer {
    gpu: Arc<Gpu>,
    layers: Vec<Layer>,
    loss: Loss,
    inputs: usize,
    rows: usize,
    batch: usize,
    learning_rate: f32,
    steps: i32,
    x: CudaSlice<f32>,
    y: CudaSlice<f32>,
    labels: Option<CudaSlice<i32>>,
    order: CudaSlice<u32>,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    /// `acts[0]` is the gathered input batch, `acts[l + 1]` layer `l`'s output.
    acts: Vec<CudaSlice<f32>>,
    delta: CudaSlice<f32>,
    delta_next: CudaSlice<f32>,
    prob: CudaSlice<f32>,
    batch_y: CudaSlice<f32>,
    batch_labels: CudaSlice<i32>,
    partials: CudaSlice<f32>,
    partials_host: Vec<f32>,
}

impl std::fmt::Debug for CudaTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTrainer")
            .field("gpu", &self.gpu)
            .field("rows", &self.rows)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl CudaTrainer {
    /// Uploads `x` (`rows × network.inputs()`, every row the epochs may draw) and `y` (one
    /// target per row: 0/1, a class index or a standardized value) and the network's starting
    /// parameters; `train_rows` is the most rows an epoch visits.
    pub fn new(
        gpu: Arc<Gpu>,
        network: &Network,
        batch: usize,
        x: &[f32],
        y: &[f32],
        train_rows: usize,
        learning_rate: f32,
    ) -> Result<CudaTrainer, CudaError> {
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
                Some(gpu.upload(&host)?)
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
        let mut acts = vec![gpu.zeros::<f32>(batch * inputs)?];
        for l in &network.layers {
            acts.push(gpu.zeros::<f32>(batch * l.outputs)?);
        }
        let outputs = network.outputs();
        Ok(CudaTrainer {
            layers: network.layers.clone(),
            loss: network.loss,
            inputs,
            rows,
            batch,
            learning_rate,
            steps: 0,
            x: gpu.upload(x)?,
            y: gpu.upload(y)?,
            labels,
            order: gpu.zeros::<u32>(train_rows)?,
            params: gpu.upload(&network.params)?,
            grads: gpu.zeros::<f32>(n_params)?,
            m: gpu.zeros::<f32>(n_params)?,
            v: gpu.zeros::<f32>(n_params)?,
            acts,
            delta: gpu.zeros::<f32>(batch * widest)?,
            delta_next: gpu.zeros::<f32>(batch * widest)?,
            prob: gpu.zeros::<f32>(batch * outputs)?,
            batch_y: gpu.zeros::<f32>(batch)?,
            batch_labels: gpu.zeros::<i32>(batch)?,
            partials: gpu.zeros::<f32>(steps * LOSS_BLOCKS)?,
            partials_host: vec![0.0; steps * LOSS_BLOCKS],
            gpu,
        })
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// One pass over `order` (row indices into the uploaded table) in minibatches; copies the
    /// parameters after it into `params` and returns the summed training loss, as the CPU loop
    /// does.
    pub fn epoch(&mut self, order: &[usize], params: &mut [f32]) -> Result<f64, CudaError> {
        let host: Vec<u32> = order
            .iter()
            .map(|&r| u32::try_from(r).unwrap_or(u32::MAX))
            .collect();
        check_indices(&host, self.rows)?;
        if host.len() > self.order.len() {
            return Err(CudaError::Shape {
                kernel: "train",
                what: format!(
                    "{} rows exceed the {} planned",
                    host.len(),
                    self.order.len()
                ),
            });
        }
        self.gpu
            .upload_into(&host, &mut self.order.slice_mut(..host.len()))?;
        let steps = host.len().div_ceil(self.batch);
        for step in 0..steps {
            let start = step * self.batch;
            let rows = self.batch.min(host.len() - start);
            self.step(start, rows, step)?;
        }
        let used = steps * LOSS_BLOCKS;
        self.gpu.download_into(
            &self.partials.slice(..used),
            &mut self.partials_host[..used],
        )?;
        self.gpu.download_into(&self.params.as_view(), params)?;
        let sum: f64 = self.partials_host[..used]
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
        let gpu = &self.gpu;
        let w = self.inputs;
        let idx = self.order.slice(start..start + rows);
        // SAFETY: `epoch` checked every index in `order` against `self.rows`, the rows of `x`
        // (rows × w words), `y` (rows) and `labels` (rows).
        unsafe {
            gpu.gather_rows(
                rows,
                w,
                &self.x.as_view(),
                &idx,
                &mut self.acts[0].as_view_mut(),
            )?;
            gpu.gather_rows(
                rows,
                1,
                &self.y.as_view(),
                &idx,
                &mut self.batch_y.as_view_mut(),
            )?;
            if let Some(labels) = &self.labels {
                gpu.gather_rows(
                    rows,
                    1,
                    &labels.as_view(),
                    &idx,
                    &mut self.batch_labels.as_view_mut(),
                )?;
            }
        }
        // Forward.
        for (i, l) in self.layers.iter().enumerate() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            let mut out = after[0].slice_mut(..rows * l.outputs);
            gpu.gemm_f32(
                rows,
                l.outputs,
                l.inputs,
                1.0,
                &before[i].slice(..rows * l.inputs),
                l.inputs,
                false,
                &self.params.slice(weights(l)),
                l.outputs,
                false,
                0.0,
                &mut out,
                l.outputs,
            )?;
            gpu.bias_act_forward(
                rows,
                l.outputs,
                &mut out,
                &self.params.slice(bias(l)),
                l.activation == Activation::Relu,
            )?;
        }
        // Loss and its gradient (of the batch's mean loss) into delta.
        let outputs = self.layers.last().map_or(0, |l| l.outputs);
        let n = rows * outputs;
        let scale = 1.0 / rows as f32;
        let out = self.acts[self.layers.len()].slice(..n);
        let mut partial = self
            .partials
            .slice_mut(step * LOSS_BLOCKS..(step + 1) * LOSS_BLOCKS);
        match self.loss {
            Loss::Logistic => gpu.sigmoid_bce(
                n,
                &out,
                &self.batch_y.slice(..rows),
                scale,
                &mut self.prob.slice_mut(..n),
                &mut self.delta.slice_mut(..n),
                &mut partial,
            )?,
            Loss::Softmax { classes } => gpu.softmax_ce(
                rows,
                classes,
                &out,
                &self.batch_labels.slice(..rows),
                scale,
                &mut self.prob.slice_mut(..n),
                &mut self.delta.slice_mut(..n),
                &mut partial,
            )?,
            // The CPU's gradient of (z - y)^2 is 2 (z - y) / rows.
            Loss::Squared => gpu.mse(
                n,
                &out,
                &self.batch_y.slice(..rows),
                2.0 * scale,
                &mut self.delta.slice_mut(..n),
                &mut partial,
            )?,
        }
        // Backward.
        for (i, l) in self.layers.iter().enumerate().rev() {
            let input = self.acts[i].slice(..rows * l.inputs);
            gpu.gemm_f32(
                l.inputs,
                l.outputs,
                rows,
                1.0,
                &input,
                l.inputs,
                true,
                &self.delta.slice(..rows * l.outputs),
                l.outputs,
                false,
                0.0,
                &mut self.grads.slice_mut(weights(l)),
                l.outputs,
            )?;
            gpu.column_sums(
                rows,
                l.outputs,
                &self.delta.slice(..rows * l.outputs),
                &mut self.grads.slice_mut(bias(l)),
            )?;
            if i > 0 {
                let mut next = self.delta_next.slice_mut(..rows * l.inputs);
                gpu.gemm_f32(
                    rows,
                    l.inputs,
                    l.outputs,
                    1.0,
                    &self.delta.slice(..rows * l.outputs),
                    l.outputs,
                    false,
                    &self.params.slice(weights(l)),
                    l.outputs,
                    true,
                    0.0,
                    &mut next,
                    l.inputs,
                )?;
                // Hidden layers are ReLU (Network::new and its check).
                gpu.relu_backward(rows * l.inputs, &mut next, &input)?;
                std::mem::swap(&mut self.delta, &mut self.delta_next);
            }
        }
        self.steps = self.steps.saturating_add(1);
        let (lr_t, eps_t) =
            adam_step_constants(self.learning_rate, BETA1, BETA2, EPSILON, self.steps);
        let n_params = self.params.len();
        gpu.adam_update(
            n_params,
            &mut self.params.as_view_mut(),
            &self.grads.as_view(),
            &mut self.m.as_view_mut(),
            &mut self.v.as_view_mut(),
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
