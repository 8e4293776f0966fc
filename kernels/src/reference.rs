//! CPU references: one function per kernel entry point, same name, same arguments (slices for
//! device pointers), same results up to floating-point summation order. Grid-level details
//! (partial sums per block) are collapsed: where a kernel writes per-block partials, the
//! reference returns the total.

/// The entry points this module mirrors.
pub const ENTRY_POINTS: &[&str] = &[
    "gather_rows",
    "gemm_f32",
    "gemm_tf32",
    "gemm_reduce",
    "bias_act_forward",
    "relu_backward",
    "column_sums",
    "sigmoid_bce",
    "softmax_ce",
    "mse",
    "adam_update",
    "reduce_sum",
];

/// `dst[i, :] = src[idx[i], :]` for `i < rows`, rows of `cols` 32-bit words (any `Copy` type
/// here: the kernel copies words without looking at them).
pub fn gather_rows<T: Copy>(rows: usize, cols: usize, src: &[T], idx: &[u32], dst: &mut [T]) {
    for (i, &r) in idx.iter().take(rows).enumerate() {
        let r = r as usize;
        dst[i * cols..(i + 1) * cols].copy_from_slice(&src[r * cols..(r + 1) * cols]);
    }
}

/// `c = alpha * op(a) * op(b) + beta * c`, row-major; op(a) is m x k (stored k x m when
/// `trans_a`), op(b) is k x n (stored n x k when `trans_b`). With `beta == 0` the old `c` is
/// ignored (even NaN), as in the kernel.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: bool,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let op = Operands {
        a,
        lda,
        trans_a,
        b,
        ldb,
        trans_b,
    };
    gemm(|x| x, (m, n, k), alpha, &op, beta, c, ldc);
}

/// The signature [`gemm_f32`] and [`gemm_tf32`] share (the kernels' own, slices for pointers).
pub type GemmFn =
    fn(usize, usize, usize, f32, &[f32], usize, bool, &[f32], usize, bool, f32, &mut [f32], usize);

/// [`gemm_f32`] with every element of op(a) and op(b) rounded to TF32 first ([`tf32`]), as the
/// tensor cores take them; the products of two TF32 values are exact in f32, and the sums are
/// f32 as in `gemm_f32`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tf32(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: bool,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let op = Operands {
        a,
        lda,
        trans_a,
        b,
        ldb,
        trans_b,
    };
    gemm(tf32, (m, n, k), alpha, &op, beta, c, ldc);
}

/// Split K's second pass: `c = alpha * (slab 0 + … + slab parts - 1) + beta * c`, where `ws`
/// holds `parts` slabs of m × n partial sums (row stride n), added in slab order. With
/// `beta == 0` the old `c` is ignored.
#[allow(clippy::too_many_arguments)]
pub fn gemm_reduce(
    m: usize,
    n: usize,
    parts: usize,
    ws: &[f32],
    alpha: f32,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let sum = (0..parts).fold(0.0f32, |s, z| s + ws[z * m * n + i * n + j]);
            let out = &mut c[i * ldc + j];
            let prev = if beta == 0.0 { 0.0 } else { beta * *out };
            *out = alpha * sum + prev;
        }
    }
}

/// The layouts a GEMM test should cover: every pair of transposes, each with odd leading
/// dimensions (they catch stride mistakes, and keep the kernels' global loads element by
/// element) and with leading dimensions that are multiples of 4 (whole tiles then take the
/// kernels' 16-byte loads): `(trans_a, trans_b, aligned)`.
pub fn gemm_test_layouts() -> impl Iterator<Item = (bool, bool, bool)> {
    [false, true].into_iter().flat_map(|aligned| {
        [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .map(move |(ta, tb)| (ta, tb, aligned))
    })
}

/// Leading dimensions for a test's A (`ac` columns stored), B (`bc`) and C (`n`), padded as
/// [`gemm_test_layouts`] says.
pub fn gemm_test_strides(aligned: bool, ac: usize, bc: usize, n: usize) -> (usize, usize, usize) {
    if aligned {
        (ac.next_multiple_of(4), bc.next_multiple_of(4) + 4, n)
    } else {
        (ac + 3, bc + 1, n + 2)
    }
}

/// `x` rounded to TF32 (8 exponent bits, 10 mantissa bits) as `cvt.rna.tf32.f32` does: to
/// nearest, ties away from zero; the 13 low mantissa bits of the result are zero. Infinities
/// and NaNs pass through; values that round past the largest TF32 become infinite.
pub fn tf32(x: f32) -> f32 {
    let u = x.to_bits();
    if u & 0x7f80_0000 == 0x7f80_0000 {
        return x;
    }
    // Adding half an ulp to the magnitude and truncating rounds half away from zero; the sign
    // bit is untouched (a finite magnitude plus 0x1000 stays below 0x8000_0000 + 0x7f80_1000).
    f32::from_bits((u + 0x1000) & !0x1fff)
}

/// op(a) and op(b) of a product, as stored.
struct Operands<'a> {
    a: &'a [f32],
    lda: usize,
    trans_a: bool,
    b: &'a [f32],
    ldb: usize,
    trans_b: bool,
}

fn gemm(
    round: impl Fn(f32) -> f32,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    op: &Operands<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                let av = if op.trans_a {
                    op.a[p * op.lda + i]
                } else {
                    op.a[i * op.lda + p]
                };
                let bv = if op.trans_b {
                    op.b[j * op.ldb + p]
                } else {
                    op.b[p * op.ldb + j]
                };
                acc += round(av) * round(bv);
            }
            let out = &mut c[i * ldc + j];
            let prev = if beta == 0.0 { 0.0 } else { beta * *out };
            *out = alpha * acc + prev;
        }
    }
}

/// `z[i, j] = act(z[i, j] + bias[j])`, ReLU when `relu`, identity otherwise.
pub fn bias_act_forward(rows: usize, cols: usize, z: &mut [f32], bias: &[f32], relu: bool) {
    for (idx, v) in z.iter_mut().take(rows * cols).enumerate() {
        let x = *v + bias[idx % cols];
        *v = if relu && x < 0.0 { 0.0 } else { x };
    }
}

/// `grad[i] = 0` where `act[i]` is not positive.
pub fn relu_backward(grad: &mut [f32], act: &[f32]) {
    for (g, a) in grad.iter_mut().zip(act) {
        // Not positive, NaN included, as `!(act > 0)` in the kernel.
        if a.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            *g = 0.0;
        }
    }
}

/// `out[j] = sum_i grad[i, j]`.
pub fn column_sums(rows: usize, cols: usize, grad: &[f32], out: &mut [f32]) {
    out.iter_mut().take(cols).for_each(|o| *o = 0.0);
    for r in 0..rows {
        for (o, g) in out.iter_mut().zip(&grad[r * cols..(r + 1) * cols]) {
            *o += g;
        }
    }
}

fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        z.exp() / (1.0 + z.exp())
    }
}

/// Binary cross-entropy on logits; writes probabilities and `(p - y) * scale`; returns the
/// summed (not averaged) loss.
pub fn sigmoid_bce(
    logits: &[f32],
    targets: &[f32],
    scale: f32,
    prob: &mut [f32],
    grad: &mut [f32],
) -> f32 {
    let mut loss = 0.0f32;
    for i in 0..logits.len() {
        let (z, y) = (logits[i], targets[i]);
        let p = sigmoid(z);
        prob[i] = p;
        grad[i] = (p - y) * scale;
        loss += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
    }
    loss
}

/// Softmax cross-entropy with integer labels; writes probabilities and
/// `(p - onehot) * scale`; returns the summed loss.
pub fn softmax_ce(
    rows: usize,
    classes: usize,
    logits: &[f32],
    labels: &[i32],
    scale: f32,
    prob: &mut [f32],
    grad: &mut [f32],
) -> f32 {
    let mut loss = 0.0f32;
    for r in 0..rows {
        let z = &logits[r * classes..(r + 1) * classes];
        let mx = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = z.iter().map(|v| (v - mx).exp()).sum();
        let lse = mx + sum.ln();
        let label = usize::try_from(labels[r]).unwrap_or(0);
        for c in 0..classes {
            let p = (z[c] - lse).exp();
            prob[r * classes + c] = p;
            grad[r * classes + c] = (p - if c == label { 1.0 } else { 0.0 }) * scale;
        }
        loss += lse - z[label];
    }
    loss
}

/// Squared error `(pred - y)^2 / 2`; writes `(pred - y) * scale`; returns the summed loss.
pub fn mse(pred: &[f32], targets: &[f32], scale: f32, grad: &mut [f32]) -> f32 {
    let mut loss = 0.0f32;
    for i in 0..pred.len() {
        let d = pred[i] - targets[i];
        grad[i] = d * scale;
        loss += 0.5 * d * d;
    }
    loss
}

/// One Adam step with bias correction folded in: `lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)`,
/// `eps_t = eps * sqrt(1 - b2^t)`.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    b1: f32,
    b2: f32,
    lr_t: f32,
    eps_t: f32,
) {
    for i in 0..param.len() {
        let g = grad[i];
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        param[i] -= lr_t * m[i] / (v[i].sqrt() + eps_t);
    }
}

/// The folded step size and epsilon of Adam's step `t` (1-based).
pub fn adam_step_constants(lr: f32, b1: f32, b2: f32, eps: f32, t: i32) -> (f32, f32) {
    let c2 = (1.0 - b2.powi(t)).sqrt();
    (lr * c2 / (1.0 - b1.powi(t)), eps * c2)
}

/// The sum of `x`.
pub fn reduce_sum(x: &[f32]) -> f32 {
    x.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn gemm_with_every_transpose() {
        // A = [[1,2,3],[4,5,6]] (2x3), B = [[1,0],[0,1],[1,1]] (3x2): AB = [[4,5],[10,11]].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        for (aa, lda, ta) in [(&a, 3, false), (&at, 2, true)] {
            for (bb, ldb, tb) in [(&b, 2, false), (&bt, 3, true)] {
                let mut c = [f32::NAN; 4];
                gemm_f32(2, 2, 3, 1.0, aa, lda, ta, bb, ldb, tb, 0.0, &mut c, 2);
                assert_eq!(c, [4.0, 5.0, 10.0, 11.0], "ta={ta} tb={tb}");
            }
        }
        let mut c = [1.0; 4];
        gemm_f32(2, 2, 3, 2.0, &a, 3, false, &b, 2, false, 0.5, &mut c, 2);
        assert_eq!(c, [8.5, 10.5, 20.5, 22.5]);
    }

    #[test]
    fn tf32_rounds_to_nearest_with_ties_away_from_zero() {
        let ulp = 2f32.powi(-10); // TF32's ulp at 1.0
        assert_eq!(tf32(1.0), 1.0);
        // Below half an ulp rounds down, half an ulp (a tie) away from zero, above it up.
        assert_eq!(tf32(1.0 + ulp * 0.49), 1.0);
        assert_eq!(tf32(1.0 + ulp * 0.5), 1.0 + ulp);
        assert_eq!(tf32(-(1.0 + ulp * 0.5)), -(1.0 + ulp));
        assert_eq!(tf32(1.0 + ulp * 1.5), 1.0 + 2.0 * ulp);
        // A carry into the exponent, the low bits cleared, and the edges.
        assert_eq!(tf32(2.0 - ulp * 0.5), 2.0);
        for x in [0.1f32, -3.7e-12, 6.02e23] {
            let r = tf32(x);
            assert_eq!(r.to_bits() & 0x1fff, 0, "{x}");
            assert!((r - x).abs() <= x.abs() * 2f32.powi(-11), "{x} -> {r}");
        }
        // Subnormals keep their absolute grid: within half of 2^13 of the smallest step.
        let r = tf32(1e-40);
        assert_eq!(r.to_bits() & 0x1fff, 0);
        assert!((r - 1e-40).abs() <= f32::from_bits(1 << 12), "{r}");
        assert_eq!(tf32(f32::MAX), f32::INFINITY);
        assert_eq!(tf32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(tf32(f32::NAN).is_nan());
        assert_eq!(tf32(-0.0).to_bits(), (-0.0f32).to_bits());
        // The tf32 product differs from f32 exactly where rounding changed an operand.
        let (a, b) = ([1.0 + ulp * 0.25, 2.0], [3.0, 1.0]);
        let (mut c32, mut c19) = ([0.0f32], [0.0f32]);
        gemm_f32(1, 1, 2, 1.0, &a, 2, false, &b, 1, false, 0.0, &mut c32, 1);
        gemm_tf32(1, 1, 2, 1.0, &a, 2, false, &b, 1, false, 0.0, &mut c19, 1);
        assert_eq!(c19[0], 5.0);
        assert_eq!(c32[0], 5.0 + 3.0 * ulp * 0.25);
    }

    #[test]
    fn bias_relu_and_backward() {
        let mut z = [-1.0, 0.5, 2.0, -3.0];
        bias_act_forward(2, 2, &mut z, &[0.5, -1.0], true);
        assert_eq!(z, [0.0, 0.0, 2.5, 0.0]);
        let mut g = [1.0, 1.0, 1.0, 1.0];
        relu_backward(&mut g, &z);
        assert_eq!(g, [0.0, 0.0, 1.0, 0.0]);
        let mut out = [9.0; 2];
        column_sums(2, 2, &[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [4.0, 6.0]);
    }

    #[test]
    fn loss_gradients_match_finite_differences() {
        let z = [0.3f32, -2.0, 5.0];
        let y = [1.0f32, 0.0, 0.0];
        let (mut p, mut g) = ([0.0; 3], [0.0; 3]);
        let base = sigmoid_bce(&z, &y, 1.0, &mut p, &mut g);
        for i in 0..3 {
            let mut zz = z;
            zz[i] += 1e-2;
            let (mut p2, mut g2) = ([0.0; 3], [0.0; 3]);
            let up = sigmoid_bce(&zz, &y, 1.0, &mut p2, &mut g2);
            assert!(close((up - base) / 1e-2, g[i], 2e-2), "bce {i}");
        }
        // Extreme logits stay finite.
        let (mut p1, mut g1) = ([0.0; 2], [0.0; 2]);
        let l = sigmoid_bce(&[80.0, -80.0], &[0.0, 1.0], 1.0, &mut p1, &mut g1);
        assert!(l.is_finite() && close(l, 160.0, 1e-4), "{l}");

        let logits = [1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0];
        let labels = [1, 2];
        let (mut p, mut g) = ([0.0; 6], [0.0; 6]);
        let base = softmax_ce(2, 3, &logits, &labels, 1.0, &mut p, &mut g);
        assert!(close(p[0] + p[1] + p[2], 1.0, 1e-6));
        for i in 0..6 {
            let mut zz = logits;
            zz[i] += 1e-2;
            let (mut p2, mut g2) = ([0.0; 6], [0.0; 6]);
            let up = softmax_ce(2, 3, &zz, &labels, 1.0, &mut p2, &mut g2);
            assert!(close((up - base) / 1e-2, g[i], 2e-2), "softmax {i}");
        }
        let mut g = [0.0; 2];
        let l = mse(&[1.0, 3.0], &[0.0, 1.0], 0.5, &mut g);
        assert_eq!((l, g), (2.5, [0.5, 1.0]));
    }

    #[test]
    fn adam_moves_against_the_gradient_by_about_lr() {
        let (lr_t, eps_t) = adam_step_constants(0.01, 0.9, 0.999, 1e-8, 1);
        let mut p = [1.0f32, -1.0];
        let (mut m, mut v) = ([0.0; 2], [0.0; 2]);
        adam_update(
            &mut p,
            &[0.5, -2.0],
            &mut m,
            &mut v,
            0.9,
            0.999,
            lr_t,
            eps_t,
        );
        // The first bias-corrected step is lr * sign(g).
        assert!(close(p[0], 0.99, 1e-4) && close(p[1], -0.99, 1e-4), "{p:?}");
        assert_eq!(reduce_sum(&[1.0, 2.0, 3.5]), 6.5);
    }
}
