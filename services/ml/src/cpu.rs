//! The CPU backend's kernels: matrix products through `gemm`, fused bias and activation, losses
//! with their gradients, and Adam.
//!
//! Determinism: `gemm` splits a product between threads by blocks of the output only; every
//! output element's reduction over the inner dimension runs on one thread in a fixed order, so a
//! product gives the same bits with one thread or many (checked by a test below). Everything
//! else here is sequential.

use gemm::Parallelism;
use hearth_kernels::reference::adam_step_constants;
use serde::{Deserialize, Serialize};

/// Multiply-adds (m·n·k) below which a product runs on the calling thread: splitting a small
/// product costs more than it saves.
const PARALLEL_WORK: usize = 1 << 18;

/// A pool of worker threads that runs a whole computation — the parallel products and the
/// sequential work between them — so that it uses exactly that many threads. (Calling `gemm`
/// from outside a pool leaves the calling thread and the pool's spinning workers competing for
/// the cores between products: on two cores that made the elementwise steps ten times slower.)
#[derive(Debug)]
pub struct Pool(Option<rayon::ThreadPool>);

impl Pool {
    /// A pool of `threads` workers; none (run on the caller) for one thread, or if the system
    /// will not start threads (products then use rayon's global pool).
    pub fn new(threads: usize) -> Pool {
        if threads <= 1 {
            return Pool(None);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("hearth-ml-{i}"))
            .build();
        if let Err(e) = &pool {
            tracing::warn!(component = "ml", error = %e, "no thread pool; using the global one");
        }
        Pool(pool.ok())
    }

    /// Runs `f` on one of the pool's workers (or here, without a pool) and returns its result.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.0 {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

/// Whether a stored matrix is used as is or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Used as stored.
    N,
    /// Used transposed.
    T,
}

/// `c (m×n) = [c +] op(a) · op(b)`, all row-major: `a` is stored `m×k` (`Op::N`) or `k×m`
/// (`Op::T`), `b` is stored `k×n` or `n×k`. Uses up to `threads` threads for large products.
///
/// # Panics
/// If a slice is shorter than its shape needs (a caller's bug, never data-dependent).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
    accumulate: bool,
    threads: usize,
) {
    check_shapes((m, n, k), a, b, c);
    if m == 0 || n == 0 {
        return;
    }
    if k == 1 || n == 1 {
        // Thin products (a network's one-output layer): `gemm` runs these as slow generic
        // loops; these are a few times faster.
        thin(m, n, k, a, op_a, b, c, accumulate);
        return;
    }
    let (mi, ni, ki) = (stride(m), stride(n), stride(k));
    let (a_rs, a_cs) = match op_a {
        Op::N => (ki, 1),
        Op::T => (1, mi),
    };
    let (b_rs, b_cs) = match op_b {
        Op::N => (ni, 1),
        Op::T => (1, ki),
    };
    let parallelism = if threads > 1 && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above make every element that the strides reach lie inside its slice:
    // op(a)(i, p) is a[i·k + p] or a[p·m + i] < m·k, op(b)(p, j) is b[p·n + j] or b[j·k + p] <
    // k·n, and c(i, j) is c[i·n + j] < m·n. `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ni,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Panics unless `a` holds `m·k`, `b` `k·n` and `c` `m·n` elements (a caller's bug when not).
pub(crate) fn check_shapes((m, n, k): (usize, usize, usize), a: &[f32], b: &[f32], c: &[f32]) {
    assert!(a.len() >= m * k, "lhs holds {} < {m}×{k}", a.len());
    assert!(b.len() >= k * n, "rhs holds {} < {k}×{n}", b.len());
    assert!(c.len() >= m * n, "dst holds {} < {m}×{n}", c.len());
}

/// `matmul` for `k == 1` (an outer product) or `n == 1` (matrix × vector). With `k == 1` or
/// `n == 1`, `b` is one contiguous vector whichever way it is stored, and with `k == 1` so is `a`.
#[allow(clippy::too_many_arguments)]
fn thin(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    let c = &mut c[..m * n];
    if !accumulate {
        c.fill(0.0);
    }
    if k == 1 {
        for (row, &x) in c.chunks_exact_mut(n).zip(a) {
            for (y, &w) in row.iter_mut().zip(&b[..n]) {
                *y += x * w;
            }
        }
        return;
    }
    // n == 1: c (m) += op(a) (m×k) · b (k).
    let b = &b[..k];
    match op_a {
        Op::N => {
            for (y, row) in c.iter_mut().zip(a.chunks_exact(k)) {
                *y += dot(row, b);
            }
        }
        Op::T => {
            // a is stored k×m: c += Σ_p b[p] · a[p, ·].
            for (row, &w) in a.chunks_exact(m).zip(b) {
                for (y, &x) in c.iter_mut().zip(row) {
                    *y += w * x;
                }
            }
        }
    }
}

/// A dot product in eight fixed lanes (so it vectorizes, always in the same order).
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(p, q)| p * q)
        .sum();
    for (p, q) in xc.zip(yc) {
        for ((l, &pi), &qi) in lanes.iter_mut().zip(p).zip(q) {
            *l += pi * qi;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn stride(n: usize) -> isize {
    // Slices never hold more than isize::MAX bytes, so a dimension of one always fits.
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// A layer's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Identity,
}

/// Adds `bias` to every row of `z` (rows of `bias.len()`) and applies `act`, in one pass.
pub fn bias_activation(z: &mut [f32], bias: &[f32], act: Activation) {
    let cols = bias.len();
    if cols == 0 {
        return;
    }
    match act {
        Activation::Relu => {
            for row in z.chunks_exact_mut(cols) {
                for (x, b) in row.iter_mut().zip(bias) {
                    *x = (*x + b).max(0.0);
                }
            }
        }
        Activation::Identity => {
            for row in z.chunks_exact_mut(cols) {
                for (x, b) in row.iter_mut().zip(bias) {
                    *x += b;
                }
            }
        }
    }
}

/// Backpropagates through `act`: `delta` (the gradient with respect to the activation's output)
/// becomes the gradient with respect to its input. `out` is the activation's output.
pub fn activation_backward(delta: &mut [f32], out: &[f32], act: Activation) {
    match act {
        Activation::Relu => {
            // A select, not a branch: half the signs are random, and mispredictions cost more
            // than the arithmetic.
            for (d, &o) in delta.iter_mut().zip(out) {
                *d *= f32::from(u8::from(o > 0.0));
            }
        }
        Activation::Identity => {}
    }
}

/// [`activation_backward`], then [`column_sums`] of the result into `sums` (the bias gradient of
/// the layer whose activation it is), in one pass: rows of `sums.len()` columns.
pub fn activation_backward_sums(delta: &mut [f32], out: &[f32], act: Activation, sums: &mut [f32]) {
    sums.fill(0.0);
    let cols = sums.len();
    if cols == 0 {
        return;
    }
    for (row, outs) in delta.chunks_exact_mut(cols).zip(out.chunks_exact(cols)) {
        match act {
            Activation::Relu => {
                for ((s, d), &o) in sums.iter_mut().zip(row).zip(outs) {
                    *d *= f32::from(u8::from(o > 0.0));
                    *s += *d;
                }
            }
            Activation::Identity => {
                for (s, d) in sums.iter_mut().zip(row) {
                    *s += *d;
                }
            }
        }
    }
}

/// Backpropagates through a layer with one output, then the previous layer's activation:
/// `delta[i][j] = g[i] · w[j]` (`g` the rows' gradients at the output, `w` the layer's weights,
/// rows of `w.len()`) through `act` (`out` its output), with [`column_sums`] of the result into
/// `sums`, in one pass. The same numbers as [`matmul`] with `k == 1`, then
/// [`activation_backward_sums`].
pub fn outer_backward_sums(
    g: &[f32],
    w: &[f32],
    out: &[f32],
    act: Activation,
    delta: &mut [f32],
    sums: &mut [f32],
) {
    sums.fill(0.0);
    let cols = w.len();
    if cols == 0 {
        return;
    }
    let sums = &mut sums[..cols];
    for ((row, outs), &x) in delta
        .chunks_exact_mut(cols)
        .zip(out.chunks_exact(cols))
        .zip(g)
    {
        match act {
            Activation::Relu => {
                for (((s, d), &o), &wj) in sums.iter_mut().zip(row).zip(outs).zip(w) {
                    *d = x * wj * f32::from(u8::from(o > 0.0));
                    *s += *d;
                }
            }
            Activation::Identity => {
                for ((s, d), &wj) in sums.iter_mut().zip(row).zip(w) {
                    *d = x * wj;
                    *s += *d;
                }
            }
        }
    }
}

/// `sums[j] = Σ_i m[i][j]` for a row-major matrix of `sums.len()` columns (the bias gradient).
pub fn column_sums(m: &[f32], sums: &mut [f32]) {
    sums.fill(0.0);
    let cols = sums.len();
    if cols == 0 {
        return;
    }
    for row in m.chunks_exact(cols) {
        for (s, x) in sums.iter_mut().zip(row) {
            *s += x;
        }
    }
}

/// What a network's outputs mean, and the loss that trains them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Loss {
    /// One logit per row; binary cross-entropy of its sigmoid. Targets are 0 or 1.
    Logistic,
    /// One logit per class; cross-entropy of their softmax. Targets are class indices.
    Softmax { classes: usize },
    /// One value per row; squared error. Targets are (standardized) values.
    Squared,
}

impl Loss {
    /// Outputs per row.
    pub fn outputs(self) -> usize {
        match self {
            Loss::Logistic | Loss::Squared => 1,
            Loss::Softmax { classes } => classes,
        }
    }

    /// Returns the summed loss of a batch (`targets.len()` rows) and, if `grad` is given, writes
    /// the gradient of the batch's *mean* loss with respect to `outputs` into it.
    pub fn evaluate(self, outputs: &[f32], targets: &[f32], grad: Option<&mut [f32]>) -> f64 {
        let rows = targets.len();
        let scale = if rows == 0 { 0.0 } else { 1.0 / rows as f32 };
        self.evaluate_scaled(outputs, targets, grad, scale)
    }

    /// [`Loss::evaluate`] for part of a batch: the gradient written is each row's loss gradient
    /// times `scale` (one over the whole batch's rows, for the gradient of the batch's mean).
    pub fn evaluate_scaled(
        self,
        outputs: &[f32],
        targets: &[f32],
        mut grad: Option<&mut [f32]>,
        scale: f32,
    ) -> f64 {
        let mut total = 0.0f64;
        match self {
            Loss::Logistic => {
                for (i, (&z, &y)) in outputs.iter().zip(targets).enumerate() {
                    // max(z, 0) − z·y + ln(1 + e^−|z|): stable for any z.
                    let l = z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
                    total += f64::from(l);
                    if let Some(g) = grad.as_deref_mut() {
                        g[i] = (sigmoid(z) - y) * scale;
                    }
                }
            }
            Loss::Squared => {
                for (i, (&z, &y)) in outputs.iter().zip(targets).enumerate() {
                    let e = z - y;
                    total += f64::from(e * e);
                    if let Some(g) = grad.as_deref_mut() {
                        g[i] = 2.0 * e * scale;
                    }
                }
            }
            Loss::Softmax { classes } => {
                if classes == 0 {
                    return 0.0;
                }
                for (i, (z, &y)) in outputs.chunks_exact(classes).zip(targets).enumerate() {
                    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
                    let label = class_index(y, classes);
                    total += f64::from(sum.ln() + max - z[label]);
                    if let Some(g) = grad.as_deref_mut() {
                        let g = &mut g[i * classes..(i + 1) * classes];
                        for (j, (gj, &zj)) in g.iter_mut().zip(z).enumerate() {
                            let p = (zj - max).exp() / sum;
                            *gj = (p - if j == label { 1.0 } else { 0.0 }) * scale;
                        }
                    }
                }
            }
        }
        total
    }

    /// Turns raw outputs into what a prediction reports, in place: the positive class's
    /// probability, class probabilities, or the value.
    pub fn finish(self, outputs: &mut [f32]) {
        match self {
            Loss::Logistic => outputs.iter_mut().for_each(|z| *z = sigmoid(*z)),
            Loss::Squared => {}
            Loss::Softmax { classes } => {
                if classes == 0 {
                    return;
                }
                for row in outputs.chunks_exact_mut(classes) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = (*v - max).exp();
                        sum += *v;
                    }
                    row.iter_mut().for_each(|v| *v /= sum);
                }
            }
        }
    }
}

/// A class index stored as f32 (exact below 2^24); out-of-range values clamp.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn class_index(y: f32, classes: usize) -> usize {
    // Targets are written by `prep` as small non-negative integers; `as` saturates.
    (y.max(0.0) as usize).min(classes - 1)
}

pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Adam (Kingma & Ba) with bias correction: one state over a flat parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    steps: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    pub fn new(parameters: usize, learning_rate: f32) -> Adam {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            m: vec![0.0; parameters],
            v: vec![0.0; parameters],
        }
    }

    /// One update of `params` along `grads` (same length as at `new`).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let (step, m, v) = self.begin();
        step.update(params, grads, m, v);
    }

    /// Starts the next update: returns its constants and the moments (laid out like the
    /// parameters), for [`AdamStep::update`] to apply to the parameters part by part (in
    /// parallel, or fused with the work that produced the gradient).
    pub fn begin(&mut self) -> (AdamStep, &mut [f32], &mut [f32]) {
        self.steps = self.steps.saturating_add(1);
        let (step_size, epsilon) = adam_step_constants(
            self.learning_rate,
            self.beta1,
            self.beta2,
            self.epsilon,
            self.steps,
        );
        let step = AdamStep {
            beta1: self.beta1,
            beta2: self.beta2,
            step_size,
            epsilon,
        };
        (step, &mut self.m, &mut self.v)
    }
}

/// One Adam update's constants (from [`Adam::begin`]), with both bias corrections folded into
/// the step size and epsilon as the GPU kernel has them
/// ([`hearth_kernels::reference::adam_step_constants`]): one square root and one division per
/// parameter.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    beta1: f32,
    beta2: f32,
    step_size: f32,
    epsilon: f32,
}

impl AdamStep {
    /// Updates `params` along `grads`; `m` and `v` are the moments of the same parameters (any
    /// part of them: each parameter's update reads only its own gradient and moments).
    pub fn update(&self, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (b1, b2) = (self.beta1, self.beta2);
        for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= self.step_size * *m / (v.sqrt() + self.epsilon);
        }
    }
}

/// f64 to f32, rounding to nearest (saturating to ±inf outside f32's range).
#[allow(clippy::cast_possible_truncation)]
pub fn f32_of(x: f64) -> f32 {
    // Narrowing is the point: features and weights are f32.
    x as f32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Rng;

    pub(crate) fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| f32_of(rng.normal())).collect()
    }

    /// `op(a) · op(b)` (`m × n`) in f64.
    pub(crate) fn naive(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        op_a: Op,
        b: &[f32],
        op_b: Op,
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let x = match op_a {
                        Op::N => a[i * k + p],
                        Op::T => a[p * m + i],
                    };
                    let y = match op_b {
                        Op::N => b[p * n + j],
                        Op::T => b[j * k + p],
                    };
                    c[i * n + j] += f64::from(x) * f64::from(y);
                }
            }
        }
        c
    }

    #[test]
    fn matmul_matches_naive_products_in_every_layout() {
        let mut rng = Rng::new(3);
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 5, 3),
            (33, 17, 65),
            (2, 300, 9),
            (130, 1, 40),
        ] {
            let a = random(m * k, &mut rng);
            let b = random(k * n, &mut rng);
            for op_a in [Op::N, Op::T] {
                for op_b in [Op::N, Op::T] {
                    let want = naive(m, n, k, &a, op_a, &b, op_b);
                    let mut c = vec![1.0; m * n];
                    matmul(m, n, k, &a, op_a, &b, op_b, &mut c, false, 1);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((f64::from(*x) - y).abs() < 1e-4, "{m}x{n}x{k} {x} {y}");
                    }
                    matmul(m, n, k, &a, op_a, &b, op_b, &mut c, true, 1);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((f64::from(*x) - 2.0 * y).abs() < 1e-4);
                    }
                }
            }
        }
    }

    #[test]
    fn threaded_products_give_the_same_bits_as_one_thread() {
        let mut rng = Rng::new(4);
        for &(m, n, k, op_a) in &[
            (1024, 256, 256, Op::N),
            (256, 256, 1024, Op::T),
            (512, 30, 256, Op::N),
        ] {
            let a = random(m * k, &mut rng);
            let b = random(k * n, &mut rng);
            let mut one = vec![0.0; m * n];
            let mut two = vec![0.0; m * n];
            matmul(m, n, k, &a, op_a, &b, Op::N, &mut one, false, 1);
            matmul(m, n, k, &a, op_a, &b, Op::N, &mut two, false, 2);
            assert!(
                one.iter()
                    .zip(&two)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            );
        }
    }

    #[test]
    fn bias_activation_and_its_backward() {
        let mut z = vec![-1.0, 2.0, 0.5, -3.0];
        bias_activation(&mut z, &[0.5, -1.0], Activation::Relu);
        assert_eq!(z, vec![0.0, 1.0, 1.0, 0.0]);
        let mut d = vec![1.0, 1.0, 1.0, 1.0];
        activation_backward(&mut d, &z, Activation::Relu);
        assert_eq!(d, vec![0.0, 1.0, 1.0, 0.0]);
        let mut z = vec![1.0, 2.0];
        bias_activation(&mut z, &[1.0], Activation::Identity);
        assert_eq!(z, vec![2.0, 3.0]);
        let mut s = vec![9.0; 2];
        column_sums(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut s);
        assert_eq!(s, vec![9.0, 12.0]);
    }

    /// The fused backward passes give the bits of the separate ones.
    #[test]
    fn fused_backward_passes_match_the_separate_ones() {
        let mut rng = Rng::new(6);
        let (rows, cols) = (9, 13);
        let g = random(rows, &mut rng);
        let w = random(cols, &mut rng);
        let out: Vec<f32> = random(rows * cols, &mut rng)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        for act in [Activation::Relu, Activation::Identity] {
            let mut want = vec![0.0; rows * cols];
            matmul(rows, cols, 1, &g, Op::N, &w, Op::T, &mut want, false, 1);
            activation_backward(&mut want, &out, act);
            let mut want_sums = vec![0.0; cols];
            column_sums(&want, &mut want_sums);

            let mut got = vec![7.0; rows * cols];
            let mut sums = vec![7.0; cols];
            outer_backward_sums(&g, &w, &out, act, &mut got, &mut sums);
            assert_eq!(got, want);
            assert_eq!(sums, want_sums);

            let mut got = vec![0.0; rows * cols];
            matmul(rows, cols, 1, &g, Op::N, &w, Op::T, &mut got, false, 1);
            activation_backward_sums(&mut got, &out, act, &mut sums);
            assert_eq!(got, want);
            assert_eq!(sums, want_sums);
        }
    }

    /// Every loss's gradient against central differences of its mean.
    #[test]
    fn loss_gradients_match_finite_differences() {
        let cases: [(Loss, Vec<f32>, Vec<f32>); 3] = [
            (Loss::Logistic, vec![0.3, -2.0, 4.0], vec![1.0, 0.0, 0.0]),
            (Loss::Squared, vec![0.3, -2.0, 4.0], vec![1.0, 0.5, -1.0]),
            (
                Loss::Softmax { classes: 3 },
                vec![0.3, -2.0, 1.0, 0.1, 0.2, -0.4],
                vec![2.0, 0.0],
            ),
        ];
        for (loss, z, y) in cases {
            let rows = y.len() as f64;
            let mut grad = vec![0.0; z.len()];
            loss.evaluate(&z, &y, Some(&mut grad));
            for i in 0..z.len() {
                let h = 1e-2f32;
                let mut zp = z.clone();
                zp[i] += h;
                let mut zm = z.clone();
                zm[i] -= h;
                let numeric = (loss.evaluate(&zp, &y, None) - loss.evaluate(&zm, &y, None))
                    / (2.0 * f64::from(h))
                    / rows;
                assert!(
                    (numeric - f64::from(grad[i])).abs() < 1e-3,
                    "{loss:?} {i}: {numeric} vs {}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn losses_have_known_values() {
        let l = Loss::Logistic.evaluate(&[0.0, 100.0, -100.0], &[1.0, 1.0, 1.0], None);
        assert!((l - (2f64.ln() + 0.0 + 100.0)).abs() < 1e-4, "{l}");
        let l = Loss::Softmax { classes: 2 }.evaluate(&[0.0, 0.0], &[1.0], None);
        assert!((l - 2f64.ln()).abs() < 1e-6);
        let mut p = vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        Loss::Softmax { classes: 3 }.finish(&mut p);
        assert!((p.iter().sum::<f32>() - 2.0).abs() < 1e-6);
        assert!((p[3] - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn adam_minimizes_a_quadratic() {
        let mut p = vec![3.0f32, -2.0];
        let mut adam = Adam::new(2, 0.1);
        for _ in 0..500 {
            let g: Vec<f32> = p.iter().map(|x| 2.0 * (x - 1.0)).collect();
            adam.step(&mut p, &g);
        }
        assert!(p.iter().all(|x| (x - 1.0).abs() < 1e-2), "{p:?}");
        // First step moves each parameter by the learning rate (bias correction).
        let mut q = vec![0.0f32];
        Adam::new(1, 0.5).step(&mut q, &[123.0]);
        assert!((q[0] + 0.5).abs() < 1e-4, "{q:?}");
    }
}
