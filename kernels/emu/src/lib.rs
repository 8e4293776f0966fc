//! hearth-kernels-emu (test-only): `kernels/*.cu` compiled for the CPU under a small CUDA
//! emulation (`cpp/emu.h`: each block's threads are real threads meeting at `__syncthreads()` on
//! a barrier; `__shared__` arrays are per-launch statics), launched with exactly the grids
//! `hearth_kernels::cuda::launch` gives the GPU.
//!
//! What it is for: checking each kernel's *logic* (indexing, tiling through shared memory,
//! barriers, grid-stride loops, partial sums) against its CPU reference on every machine, in
//! `just test`. What it is not: a substitute for running on a GPU (memory model, warps, the
//! device's rounding), which the GPU group (`hil-tests/gpu`) does against the same references.
//!
//! Every wrapper checks the buffer sizes the kernel will touch before it launches.

use hearth_kernels::Math;
use hearth_kernels::cuda::launch;
use hearth_kernels::cuda::{CudaError, LOSS_BLOCKS};

type Grid = (u32, u32, u32, u32);

fn grid(cfg: &hearth_kernels::cuda::cudarc::driver::LaunchConfig) -> Grid {
    (
        cfg.grid_dim.0,
        cfg.grid_dim.1,
        cfg.block_dim.0,
        cfg.block_dim.1,
    )
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" {
    fn hearth_emu_gather_rows(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        rows: i32,
        cols: i32,
        src: *const u32,
        idx: *const u32,
        dst: *mut u32,
    );
    fn hearth_emu_gemm_f32(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        gz: u32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        a: *const f32,
        lda: i32,
        ta: i32,
        b: *const f32,
        ldb: i32,
        tb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn hearth_emu_gemm_tf32(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        gz: u32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        a: *const f32,
        lda: i32,
        ta: i32,
        b: *const f32,
        ldb: i32,
        tb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn hearth_emu_gemm_reduce(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        m: i32,
        n: i32,
        parts: i32,
        ws: *const f32,
        alpha: f32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn hearth_emu_bias_act_forward(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        rows: i32,
        cols: i32,
        z: *mut f32,
        bias: *const f32,
        relu: i32,
    );
    fn hearth_emu_relu_backward(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        n: i64,
        grad: *mut f32,
        act: *const f32,
    );
    fn hearth_emu_column_sums(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        rows: i32,
        cols: i32,
        grad: *const f32,
        out: *mut f32,
    );
    fn hearth_emu_sigmoid_bce(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        n: i32,
        logits: *const f32,
        targets: *const f32,
        scale: f32,
        prob: *mut f32,
        grad: *mut f32,
        partial: *mut f32,
    );
    fn hearth_emu_softmax_ce(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        rows: i32,
        classes: i32,
        logits: *const f32,
        labels: *const i32,
        scale: f32,
        prob: *mut f32,
        grad: *mut f32,
        partial: *mut f32,
    );
    fn hearth_emu_mse(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        n: i32,
        pred: *const f32,
        targets: *const f32,
        scale: f32,
        grad: *mut f32,
        partial: *mut f32,
    );
    fn hearth_emu_adam_update(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        n: i64,
        param: *mut f32,
        grad: *const f32,
        m: *mut f32,
        v: *mut f32,
        b1: f32,
        b2: f32,
        lr_t: f32,
        eps_t: f32,
    );
    fn hearth_emu_reduce_sum(
        gx: u32,
        gy: u32,
        bx: u32,
        by: u32,
        n: i64,
        x: *const f32,
        out: *mut f32,
    );
}

fn need(what: &str, len: usize, needed: usize) {
    assert!(
        len >= needed,
        "{what} holds {len} elements, {needed} are needed"
    );
}

fn int(v: usize) -> i32 {
    i32::try_from(v).expect("fits the kernel's int")
}

fn long(v: usize) -> i64 {
    i64::try_from(v).expect("fits the kernel's long")
}

/// `dst[i, :] = src[idx[i], :]`; every index must be below `src.len() / cols` (checked).
pub fn gather_rows(rows: usize, cols: usize, src: &[u32], idx: &[u32], dst: &mut [u32]) {
    need("idx", idx.len(), rows);
    need("dst", dst.len(), rows * cols);
    assert!(
        idx[..rows]
            .iter()
            .all(|&i| (i as usize + 1) * cols <= src.len())
    );
    let (gx, gy, bx, by) = grid(&launch::elementwise(rows * cols));
    // SAFETY: sizes and indices checked above; the kernel touches nothing else.
    unsafe {
        hearth_emu_gather_rows(
            gx,
            gy,
            bx,
            by,
            int(rows),
            int(cols),
            src.as_ptr(),
            idx.as_ptr(),
            dst.as_mut_ptr(),
        );
    }
}

/// `c = alpha * op(a) * op(b) + beta * c`, row-major, with the products `math` names
/// (`gemm_f32` or `gemm_tf32` in `kernels/gemm.cu`; the emulation runs `gemm_tf32`'s
/// tensor-core instruction warp by warp with the PTX fragment layout).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    math: Math,
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
) -> Result<(), CudaError> {
    hearth_kernels::cuda::check_gemm(
        math,
        (m, n, k),
        (a.len(), lda, trans_a),
        (b.len(), ldb, trans_b),
        (c.len(), ldc),
    )?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let cfg = launch::gemm(math, m, n, k)?;
    let (gx, gy, bx, by) = grid(&cfg);
    let parts = cfg.grid_dim.2;
    let entry = match math {
        Math::F32 => hearth_emu_gemm_f32,
        Math::Tf32 => hearth_emu_gemm_tf32,
    };
    // One launch of the kernel into `out` (m rows of `ldo`): C itself, or the split-K slabs.
    let run = |gz: u32, alpha: f32, beta: f32, out: *mut f32, ldo: usize| {
        // SAFETY: a and b hold what the kernel reads (checked above); `out` is c (checked above)
        // or the workspace of gz slabs of m × n below, what a launch with that grid writes;
        // both entry points have the same signature.
        unsafe {
            entry(
                gx,
                gy,
                bx,
                by,
                gz,
                int(m),
                int(n),
                int(k),
                alpha,
                a.as_ptr(),
                int(lda),
                i32::from(trans_a),
                b.as_ptr(),
                int(ldb),
                i32::from(trans_b),
                beta,
                out,
                int(ldo),
            );
        }
    };
    if parts == 1 {
        run(1, alpha, beta, c.as_mut_ptr(), ldc);
        return Ok(());
    }
    // Split K, as the GPU launcher does it: partial sums into `parts` slabs, then gemm_reduce.
    let mut ws = vec![f32::NAN; parts as usize * m * n];
    run(parts, 1.0, 0.0, ws.as_mut_ptr(), n);
    let (rx, ry, rbx, rby) = grid(&launch::elementwise(m * n));
    // SAFETY: ws holds the `parts` slabs gemm_reduce reads; it writes m rows of ldc in c
    // (checked above).
    unsafe {
        hearth_emu_gemm_reduce(
            rx,
            ry,
            rbx,
            rby,
            int(m),
            int(n),
            int(parts as usize),
            ws.as_ptr(),
            alpha,
            beta,
            c.as_mut_ptr(),
            int(ldc),
        );
    }
    Ok(())
}

pub fn bias_act_forward(rows: usize, cols: usize, z: &mut [f32], bias: &[f32], relu: bool) {
    need("z", z.len(), rows * cols);
    need("bias", bias.len(), cols);
    let (gx, gy, bx, by) = grid(&launch::elementwise(rows * cols));
    // SAFETY: sizes checked.
    unsafe {
        hearth_emu_bias_act_forward(
            gx,
            gy,
            bx,
            by,
            int(rows),
            int(cols),
            z.as_mut_ptr(),
            bias.as_ptr(),
            i32::from(relu),
        )
    }
}

pub fn relu_backward(grad: &mut [f32], act: &[f32]) {
    need("act", act.len(), grad.len());
    let (gx, gy, bx, by) = grid(&launch::elementwise(grad.len()));
    // SAFETY: sizes checked.
    unsafe {
        hearth_emu_relu_backward(
            gx,
            gy,
            bx,
            by,
            long(grad.len()),
            grad.as_mut_ptr(),
            act.as_ptr(),
        )
    }
}

pub fn column_sums(
    rows: usize,
    cols: usize,
    grad: &[f32],
    out: &mut [f32],
) -> Result<(), CudaError> {
    need("grad", grad.len(), rows * cols);
    need("out", out.len(), cols);
    let (gx, gy, bx, by) = grid(&launch::column_sums(cols)?);
    // SAFETY: sizes checked.
    unsafe {
        hearth_emu_column_sums(
            gx,
            gy,
            bx,
            by,
            int(rows),
            int(cols),
            grad.as_ptr(),
            out.as_mut_ptr(),
        )
    }
    Ok(())
}

/// Returns the `LOSS_BLOCKS` partial sums.
pub fn sigmoid_bce(
    logits: &[f32],
    targets: &[f32],
    scale: f32,
    prob: &mut [f32],
    grad: &mut [f32],
) -> Vec<f32> {
    let n = logits.len();
    need("targets", targets.len(), n);
    need("prob", prob.len(), n);
    need("grad", grad.len(), n);
    let mut partial = vec![f32::NAN; LOSS_BLOCKS];
    let (gx, gy, bx, by) = grid(&launch::reduction());
    // SAFETY: sizes checked; partial holds one sum per block.
    unsafe {
        hearth_emu_sigmoid_bce(
            gx,
            gy,
            bx,
            by,
            int(n),
            logits.as_ptr(),
            targets.as_ptr(),
            scale,
            prob.as_mut_ptr(),
            grad.as_mut_ptr(),
            partial.as_mut_ptr(),
        )
    }
    partial
}

#[allow(clippy::too_many_arguments)]
pub fn softmax_ce(
    rows: usize,
    classes: usize,
    logits: &[f32],
    labels: &[i32],
    scale: f32,
    prob: &mut [f32],
    grad: &mut [f32],
) -> Vec<f32> {
    need("logits", logits.len(), rows * classes);
    need("labels", labels.len(), rows);
    assert!(
        labels[..rows]
            .iter()
            .all(|&l| l >= 0 && (l as usize) < classes)
    );
    need("prob", prob.len(), rows * classes);
    need("grad", grad.len(), rows * classes);
    let mut partial = vec![f32::NAN; LOSS_BLOCKS];
    let (gx, gy, bx, by) = grid(&launch::reduction());
    // SAFETY: sizes and labels checked.
    unsafe {
        hearth_emu_softmax_ce(
            gx,
            gy,
            bx,
            by,
            int(rows),
            int(classes),
            logits.as_ptr(),
            labels.as_ptr(),
            scale,
            prob.as_mut_ptr(),
            grad.as_mut_ptr(),
            partial.as_mut_ptr(),
        )
    }
    partial
}

pub fn mse(pred: &[f32], targets: &[f32], scale: f32, grad: &mut [f32]) -> Vec<f32> {
    let n = pred.len();
    need("targets", targets.len(), n);
    need("grad", grad.len(), n);
    let mut partial = vec![f32::NAN; LOSS_BLOCKS];
    let (gx, gy, bx, by) = grid(&launch::reduction());
    // SAFETY: sizes checked.
    unsafe {
        hearth_emu_mse(
            gx,
            gy,
            bx,
            by,
            int(n),
            pred.as_ptr(),
            targets.as_ptr(),
            scale,
            grad.as_mut_ptr(),
            partial.as_mut_ptr(),
        )
    }
    partial
}

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
    let n = param.len();
    need("grad", grad.len(), n);
    need("m", m.len(), n);
    need("v", v.len(), n);
    let (gx, gy, bx, by) = grid(&launch::elementwise(n));
    // SAFETY: sizes checked.
    unsafe {
        hearth_emu_adam_update(
            gx,
            gy,
            bx,
            by,
            long(n),
            param.as_mut_ptr(),
            grad.as_ptr(),
            m.as_mut_ptr(),
            v.as_mut_ptr(),
            b1,
            b2,
            lr_t,
            eps_t,
        )
    }
}

/// Returns the `LOSS_BLOCKS` partial sums.
pub fn reduce_sum(x: &[f32]) -> Vec<f32> {
    let mut partial = vec![f32::NAN; LOSS_BLOCKS];
    let (gx, gy, bx, by) = grid(&launch::reduction());
    // SAFETY: partial holds one sum per block.
    unsafe {
        hearth_emu_reduce_sum(
            gx,
            gy,
            bx,
            by,
            long(x.len()),
            x.as_ptr(),
            partial.as_mut_ptr(),
        )
    }
    partial
}
