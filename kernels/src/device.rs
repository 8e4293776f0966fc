//! [`Device`]: the kernels as one interface over device buffers, implemented by a real GPU
//! ([`Gpu`]) and by [`Reference`], which runs each entry point's CPU reference on host vectors.
//!
//! Code written against `Device` (hearth-ml's GPU trainer) therefore runs in two places: on a
//! GPU, and on any machine through the references, where CI checks that its orchestration
//! (shapes, strides, transposes, buffer roles, the order of launches) trains the same model as
//! the CPU backend. The reference device is that check, beside the GPU tests, not instead of
//! them: it cannot find a bug inside a kernel, which the GPU tests compare against the same
//! references.
//!
//! Regions are `(buffer, range)` pairs: a range is checked against its buffer (a bad one is
//! [`CudaError::Shape`]) before any kernel sees it.

use std::ops::Range;

use crate::Math;
use crate::cuda::{CudaError, Gpu, LOSS_BLOCKS, Word, check_gemm, check_indices, need};
use crate::reference as r;
use cudarc::driver::CudaSlice;

/// A buffer of `T` on a device.
pub trait Buffer<T> {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Buffer<T> for CudaSlice<T> {
    fn len(&self) -> usize {
        CudaSlice::len(self)
    }
}

impl<T> Buffer<T> for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// The kernels of `kernels/*.cu` over one device's buffers. Argument meanings are those of the
/// entry points (see the `.cu` files and [`crate::reference`]); `*_at` ranges select regions.
#[allow(clippy::too_many_arguments)]
pub trait Device {
    type Buf<T: Word>: Buffer<T>;

    /// `cuda:0 NVIDIA H200 (compute_90)`, or `reference (CPU)`.
    fn describe(&self) -> String;
    fn upload<T: Word>(&self, host: &[T]) -> Result<Self::Buf<T>, CudaError>;
    fn zeros<T: Word>(&self, len: usize) -> Result<Self::Buf<T>, CudaError>;
    /// Copies `host` into the start of `buf`.
    fn write<T: Word>(&self, host: &[T], buf: &mut Self::Buf<T>) -> Result<(), CudaError>;
    /// Copies the start of `buf` into `host` (waits for the device).
    fn read<T: Word>(&self, buf: &Self::Buf<T>, host: &mut [T]) -> Result<(), CudaError>;

    /// `dst[i, :] = src[idx[i], :]`, `idx` taken from `idx_at` in `idx`; every index is
    /// checked on the host when written (see [`Device::write_indices`]), so this is safe.
    fn gather_rows<T: Word>(
        &self,
        rows: usize,
        cols: usize,
        src: &Self::Buf<T>,
        idx: &Indices<Self::Buf<u32>>,
        idx_at: Range<usize>,
        dst: &mut Self::Buf<T>,
    ) -> Result<(), CudaError>;

    /// Whether [`Math::Tf32`] products are available here.
    fn tensor_cores(&self) -> bool;

    /// `c = op(a) * op(b)` with the products `math` names (`gemm_f32` or `gemm_tf32`).
    fn gemm(
        &self,
        math: Math,
        m: usize,
        n: usize,
        k: usize,
        a: (&Self::Buf<f32>, Range<usize>),
        lda: usize,
        trans_a: bool,
        b: (&Self::Buf<f32>, Range<usize>),
        ldb: usize,
        trans_b: bool,
        c: (&mut Self::Buf<f32>, Range<usize>),
        ldc: usize,
    ) -> Result<(), CudaError>;

    fn bias_act_forward(
        &self,
        rows: usize,
        cols: usize,
        z: (&mut Self::Buf<f32>, Range<usize>),
        bias: (&Self::Buf<f32>, Range<usize>),
        relu: bool,
    ) -> Result<(), CudaError>;

    fn relu_backward(
        &self,
        grad: (&mut Self::Buf<f32>, Range<usize>),
        act: (&Self::Buf<f32>, Range<usize>),
    ) -> Result<(), CudaError>;

    fn column_sums(
        &self,
        rows: usize,
        cols: usize,
        grad: (&Self::Buf<f32>, Range<usize>),
        out: (&mut Self::Buf<f32>, Range<usize>),
    ) -> Result<(), CudaError>;

    /// Binary cross-entropy; the loss goes into `LOSS_BLOCKS` partials at `partial`.
    fn sigmoid_bce(
        &self,
        n: usize,
        logits: (&Self::Buf<f32>, Range<usize>),
        targets: &Self::Buf<f32>,
        scale: f32,
        prob: &mut Self::Buf<f32>,
        grad: &mut Self::Buf<f32>,
        partial: (&mut Self::Buf<f32>, Range<usize>),
    ) -> Result<(), CudaError>;

    fn softmax_ce(
        &self,
        rows: usize,
        classes: usize,
        logits: (&Self::Buf<f32>, Range<usize>),
        labels: &Self::Buf<i32>,
        scale: f32,
        prob: &mut Self::Buf<f32>,
        grad: &mut Self::Buf<f32>,
        partial: (&mut Self::Buf<f32>, Range<usize>),
    ) -> Result<(), CudaError>;

    fn mse(
        &self,
        n: usize,
        pred: (&Self::Buf<f32>, Range<usize>),
        targets: &Self::Buf<f32>,
        scale: f32,
        grad: &mut Self::Buf<f32>,
        partial: (&mut Self::Buf<f32>, Range<usize>),
    ) -> Result<(), CudaError>;

    fn adam_update(
        &self,
        param: &mut Self::Buf<f32>,
        grad: &Self::Buf<f32>,
        m: &mut Self::Buf<f32>,
        v: &mut Self::Buf<f32>,
        b1: f32,
        b2: f32,
        lr_t: f32,
        eps_t: f32,
    ) -> Result<(), CudaError>;
}

/// Row indices on a device, each checked on the host against `rows` when written: what makes
/// [`Device::gather_rows`] safe.
pub struct Indices<B> {
    buf: B,
    rows: usize,
}

impl<B> Indices<B> {
    /// Room for `len` indices into a table of `rows` rows.
    pub fn new<D: Device<Buf<u32> = B>>(
        device: &D,
        len: usize,
        rows: usize,
    ) -> Result<Indices<B>, CudaError> {
        Ok(Indices {
            buf: device.zeros::<u32>(len)?,
            rows,
        })
    }

    pub fn buf(&self) -> &B {
        &self.buf
    }

    /// The table's rows every index is below.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes `idx` at the start, after checking every index against the table's rows.
    pub fn write<D: Device<Buf<u32> = B>>(
        &mut self,
        device: &D,
        idx: &[u32],
    ) -> Result<(), CudaError>
    where
        B: Buffer<u32>,
    {
        check_indices(idx, self.rows)?;
        if idx.len() > self.buf.len() {
            return Err(shape(
                "indices",
                format!("{} do not fit {}", idx.len(), self.buf.len()),
            ));
        }
        device.write(idx, &mut self.buf)
    }
}

fn shape(kernel: &'static str, what: String) -> CudaError {
    CudaError::Shape { kernel, what }
}

/// `range` lies inside a buffer of `len` elements.
fn region(kernel: &'static str, len: usize, range: &Range<usize>) -> Result<(), CudaError> {
    if range.start > range.end || range.end > len {
        return Err(shape(
            kernel,
            format!("region {range:?} is outside a buffer of {len}"),
        ));
    }
    Ok(())
}

impl Device for Gpu {
    type Buf<T: Word> = CudaSlice<T>;

    fn describe(&self) -> String {
        format!("cuda:{} {} ({})", self.ordinal(), self.name(), self.arch())
    }

    fn upload<T: Word>(&self, host: &[T]) -> Result<CudaSlice<T>, CudaError> {
        Gpu::upload(self, host)
    }

    fn zeros<T: Word>(&self, len: usize) -> Result<CudaSlice<T>, CudaError> {
        Gpu::zeros(self, len)
    }

    fn write<T: Word>(&self, host: &[T], buf: &mut CudaSlice<T>) -> Result<(), CudaError> {
        region("write", buf.len(), &(0..host.len()))?;
        self.upload_into(host, &mut buf.slice_mut(..host.len()))
    }

    fn read<T: Word>(&self, buf: &CudaSlice<T>, host: &mut [T]) -> Result<(), CudaError> {
        region("read", buf.len(), &(0..host.len()))?;
        self.download_into(&buf.slice(..host.len()), host)
    }

    fn gather_rows<T: Word>(
        &self,
        rows: usize,
        cols: usize,
        src: &CudaSlice<T>,
        idx: &Indices<CudaSlice<u32>>,
        idx_at: Range<usize>,
        dst: &mut CudaSlice<T>,
    ) -> Result<(), CudaError> {
        region("gather_rows", idx.buf.len(), &idx_at)?;
        if src.len() < idx.rows * cols {
            return Err(shape(
                "gather_rows",
                format!(
                    "src holds {} words, not {} rows of {cols}",
                    src.len(),
                    idx.rows
                ),
            ));
        }
        // SAFETY: every index in `idx` was checked against `idx.rows` when written
        // (Indices::write), and src holds idx.rows rows of `cols` words (checked above).
        unsafe {
            Gpu::gather_rows(
                self,
                rows,
                cols,
                &src.as_view(),
                &idx.buf.slice(idx_at),
                &mut dst.as_view_mut(),
            )
        }
    }

    fn tensor_cores(&self) -> bool {
        Gpu::tensor_cores(self)
    }

    fn gemm(
        &self,
        math: Math,
        m: usize,
        n: usize,
        k: usize,
        a: (&CudaSlice<f32>, Range<usize>),
        lda: usize,
        trans_a: bool,
        b: (&CudaSlice<f32>, Range<usize>),
        ldb: usize,
        trans_b: bool,
        c: (&mut CudaSlice<f32>, Range<usize>),
        ldc: usize,
    ) -> Result<(), CudaError> {
        let kernel = math.kernel();
        region(kernel, a.0.len(), &a.1)?;
        region(kernel, b.0.len(), &b.1)?;
        region(kernel, c.0.len(), &c.1)?;
        Gpu::gemm(
            self,
            math,
            (m, n, k),
            1.0,
            (&a.0.slice(a.1), lda, trans_a),
            (&b.0.slice(b.1), ldb, trans_b),
            0.0,
            (&mut c.0.slice_mut(c.1), ldc),
        )
    }

    fn bias_act_forward(
        &self,
        rows: usize,
        cols: usize,
        z: (&mut CudaSlice<f32>, Range<usize>),
        bias: (&CudaSlice<f32>, Range<usize>),
        relu: bool,
    ) -> Result<(), CudaError> {
        const K: &str = "bias_act_forward";
        region(K, z.0.len(), &z.1)?;
        region(K, bias.0.len(), &bias.1)?;
        Gpu::bias_act_forward(
            self,
            rows,
            cols,
            &mut z.0.slice_mut(z.1),
            &bias.0.slice(bias.1),
            relu,
        )
    }

    fn relu_backward(
        &self,
        grad: (&mut CudaSlice<f32>, Range<usize>),
        act: (&CudaSlice<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "relu_backward";
        region(K, grad.0.len(), &grad.1)?;
        region(K, act.0.len(), &act.1)?;
        let n = grad.1.len();
        Gpu::relu_backward(self, n, &mut grad.0.slice_mut(grad.1), &act.0.slice(act.1))
    }

    fn column_sums(
        &self,
        rows: usize,
        cols: usize,
        grad: (&CudaSlice<f32>, Range<usize>),
        out: (&mut CudaSlice<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "column_sums";
        region(K, grad.0.len(), &grad.1)?;
        region(K, out.0.len(), &out.1)?;
        Gpu::column_sums(
            self,
            rows,
            cols,
            &grad.0.slice(grad.1),
            &mut out.0.slice_mut(out.1),
        )
    }

    fn sigmoid_bce(
        &self,
        n: usize,
        logits: (&CudaSlice<f32>, Range<usize>),
        targets: &CudaSlice<f32>,
        scale: f32,
        prob: &mut CudaSlice<f32>,
        grad: &mut CudaSlice<f32>,
        partial: (&mut CudaSlice<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "sigmoid_bce";
        region(K, logits.0.len(), &logits.1)?;
        region(K, partial.0.len(), &partial.1)?;
        Gpu::sigmoid_bce(
            self,
            n,
            &logits.0.slice(logits.1),
            &targets.as_view(),
            scale,
            &mut prob.as_view_mut(),
            &mut grad.as_view_mut(),
            &mut partial.0.slice_mut(partial.1),
        )
    }

    fn softmax_ce(
        &self,
        rows: usize,
        classes: usize,
        logits: (&CudaSlice<f32>, Range<usize>),
        labels: &CudaSlice<i32>,
        scale: f32,
        prob: &mut CudaSlice<f32>,
        grad: &mut CudaSlice<f32>,
        partial: (&mut CudaSlice<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "softmax_ce";
        region(K, logits.0.len(), &logits.1)?;
        region(K, partial.0.len(), &partial.1)?;
        Gpu::softmax_ce(
            self,
            rows,
            classes,
            &logits.0.slice(logits.1),
            &labels.as_view(),
            scale,
            &mut prob.as_view_mut(),
            &mut grad.as_view_mut(),
            &mut partial.0.slice_mut(partial.1),
        )
    }

    fn mse(
        &self,
        n: usize,
        pred: (&CudaSlice<f32>, Range<usize>),
        targets: &CudaSlice<f32>,
        scale: f32,
        grad: &mut CudaSlice<f32>,
        partial: (&mut CudaSlice<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "mse";
        region(K, pred.0.len(), &pred.1)?;
        region(K, partial.0.len(), &partial.1)?;
        Gpu::mse(
            self,
            n,
            &pred.0.slice(pred.1),
            &targets.as_view(),
            scale,
            &mut grad.as_view_mut(),
            &mut partial.0.slice_mut(partial.1),
        )
    }

    fn adam_update(
        &self,
        param: &mut CudaSlice<f32>,
        grad: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
        b1: f32,
        b2: f32,
        lr_t: f32,
        eps_t: f32,
    ) -> Result<(), CudaError> {
        let n = param.len();
        Gpu::adam_update(
            self,
            n,
            &mut param.as_view_mut(),
            &grad.as_view(),
            &mut m.as_view_mut(),
            &mut v.as_view_mut(),
            b1,
            b2,
            lr_t,
            eps_t,
        )
    }
}

/// The device whose kernels are [`crate::reference`]'s functions on host vectors: slow, exact
/// to the references' semantics (losses land whole in the first partial).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

fn put_partial(partial: &mut [f32], total: f32) {
    partial.iter_mut().for_each(|p| *p = 0.0);
    if let Some(first) = partial.first_mut() {
        *first = total;
    }
}

impl Device for Reference {
    type Buf<T: Word> = Vec<T>;

    fn describe(&self) -> String {
        "reference (the kernels' CPU references)".into()
    }

    fn upload<T: Word>(&self, host: &[T]) -> Result<Vec<T>, CudaError> {
        Ok(host.to_vec())
    }

    fn zeros<T: Word>(&self, len: usize) -> Result<Vec<T>, CudaError> {
        // Words of zero bits, as the device's zeroed allocations.
        Ok(vec![T::zero(); len.max(1)])
    }

    fn write<T: Word>(&self, host: &[T], buf: &mut Vec<T>) -> Result<(), CudaError> {
        region("write", buf.len(), &(0..host.len()))?;
        buf[..host.len()].copy_from_slice(host);
        Ok(())
    }

    fn read<T: Word>(&self, buf: &Vec<T>, host: &mut [T]) -> Result<(), CudaError> {
        region("read", buf.len(), &(0..host.len()))?;
        host.copy_from_slice(&buf[..host.len()]);
        Ok(())
    }

    fn gather_rows<T: Word>(
        &self,
        rows: usize,
        cols: usize,
        src: &Vec<T>,
        idx: &Indices<Vec<u32>>,
        idx_at: Range<usize>,
        dst: &mut Vec<T>,
    ) -> Result<(), CudaError> {
        const K: &str = "gather_rows";
        region(K, idx.buf.len(), &idx_at)?;
        need(K, "idx", idx_at.len(), rows)?;
        need(K, "dst", dst.len(), rows * cols)?;
        need(K, "src", src.len(), idx.rows * cols)?;
        r::gather_rows(rows, cols, src, &idx.buf[idx_at], dst);
        Ok(())
    }

    /// The reference has both products (`gemm_tf32`'s rounding is exact on the CPU).
    fn tensor_cores(&self) -> bool {
        true
    }

    fn gemm(
        &self,
        math: Math,
        m: usize,
        n: usize,
        k: usize,
        a: (&Vec<f32>, Range<usize>),
        lda: usize,
        trans_a: bool,
        b: (&Vec<f32>, Range<usize>),
        ldb: usize,
        trans_b: bool,
        c: (&mut Vec<f32>, Range<usize>),
        ldc: usize,
    ) -> Result<(), CudaError> {
        let kernel = math.kernel();
        region(kernel, a.0.len(), &a.1)?;
        region(kernel, b.0.len(), &b.1)?;
        region(kernel, c.0.len(), &c.1)?;
        check_gemm(
            math,
            (m, n, k),
            (a.1.len(), lda, trans_a),
            (b.1.len(), ldb, trans_b),
            (c.1.len(), ldc),
        )?;
        math.reference()(
            m,
            n,
            k,
            1.0,
            &a.0[a.1],
            lda,
            trans_a,
            &b.0[b.1],
            ldb,
            trans_b,
            0.0,
            &mut c.0[c.1],
            ldc,
        );
        Ok(())
    }

    fn bias_act_forward(
        &self,
        rows: usize,
        cols: usize,
        z: (&mut Vec<f32>, Range<usize>),
        bias: (&Vec<f32>, Range<usize>),
        relu: bool,
    ) -> Result<(), CudaError> {
        const K: &str = "bias_act_forward";
        region(K, z.0.len(), &z.1)?;
        region(K, bias.0.len(), &bias.1)?;
        need(K, "z", z.1.len(), rows * cols)?;
        need(K, "bias", bias.1.len(), cols)?;
        r::bias_act_forward(rows, cols, &mut z.0[z.1], &bias.0[bias.1], relu);
        Ok(())
    }

    fn relu_backward(
        &self,
        grad: (&mut Vec<f32>, Range<usize>),
        act: (&Vec<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "relu_backward";
        region(K, grad.0.len(), &grad.1)?;
        region(K, act.0.len(), &act.1)?;
        need(K, "act", act.1.len(), grad.1.len())?;
        r::relu_backward(&mut grad.0[grad.1], &act.0[act.1]);
        Ok(())
    }

    fn column_sums(
        &self,
        rows: usize,
        cols: usize,
        grad: (&Vec<f32>, Range<usize>),
        out: (&mut Vec<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "column_sums";
        region(K, grad.0.len(), &grad.1)?;
        region(K, out.0.len(), &out.1)?;
        need(K, "grad", grad.1.len(), rows * cols)?;
        need(K, "out", out.1.len(), cols)?;
        r::column_sums(rows, cols, &grad.0[grad.1], &mut out.0[out.1]);
        Ok(())
    }

    fn sigmoid_bce(
        &self,
        n: usize,
        logits: (&Vec<f32>, Range<usize>),
        targets: &Vec<f32>,
        scale: f32,
        prob: &mut Vec<f32>,
        grad: &mut Vec<f32>,
        partial: (&mut Vec<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "sigmoid_bce";
        region(K, logits.0.len(), &logits.1)?;
        region(K, partial.0.len(), &partial.1)?;
        for (what, len) in [
            ("logits", logits.1.len()),
            ("targets", targets.len()),
            ("prob", prob.len()),
            ("grad", grad.len()),
        ] {
            need(K, what, len, n)?;
        }
        need(K, "partial", partial.1.len(), LOSS_BLOCKS)?;
        let total = r::sigmoid_bce(
            &logits.0[logits.1][..n],
            &targets[..n],
            scale,
            &mut prob[..n],
            &mut grad[..n],
        );
        put_partial(&mut partial.0[partial.1], total);
        Ok(())
    }

    fn softmax_ce(
        &self,
        rows: usize,
        classes: usize,
        logits: (&Vec<f32>, Range<usize>),
        labels: &Vec<i32>,
        scale: f32,
        prob: &mut Vec<f32>,
        grad: &mut Vec<f32>,
        partial: (&mut Vec<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "softmax_ce";
        region(K, logits.0.len(), &logits.1)?;
        region(K, partial.0.len(), &partial.1)?;
        let n = rows * classes;
        need(K, "logits", logits.1.len(), n)?;
        need(K, "labels", labels.len(), rows)?;
        need(K, "prob", prob.len(), n)?;
        need(K, "grad", grad.len(), n)?;
        need(K, "partial", partial.1.len(), LOSS_BLOCKS)?;
        let total = r::softmax_ce(
            rows,
            classes,
            &logits.0[logits.1],
            labels,
            scale,
            prob,
            grad,
        );
        put_partial(&mut partial.0[partial.1], total);
        Ok(())
    }

    fn mse(
        &self,
        n: usize,
        pred: (&Vec<f32>, Range<usize>),
        targets: &Vec<f32>,
        scale: f32,
        grad: &mut Vec<f32>,
        partial: (&mut Vec<f32>, Range<usize>),
    ) -> Result<(), CudaError> {
        const K: &str = "mse";
        region(K, pred.0.len(), &pred.1)?;
        region(K, partial.0.len(), &partial.1)?;
        need(K, "pred", pred.1.len(), n)?;
        need(K, "targets", targets.len(), n)?;
        need(K, "grad", grad.len(), n)?;
        need(K, "partial", partial.1.len(), LOSS_BLOCKS)?;
        let total = r::mse(&pred.0[pred.1][..n], &targets[..n], scale, &mut grad[..n]);
        put_partial(&mut partial.0[partial.1], total);
        Ok(())
    }

    fn adam_update(
        &self,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        b1: f32,
        b2: f32,
        lr_t: f32,
        eps_t: f32,
    ) -> Result<(), CudaError> {
        const K: &str = "adam_update";
        let n = param.len();
        need(K, "grad", grad.len(), n)?;
        need(K, "m", m.len(), n)?;
        need(K, "v", v.len(), n)?;
        r::adam_update(param, grad, m, v, b1, b2, lr_t, eps_t);
        Ok(())
    }
}
