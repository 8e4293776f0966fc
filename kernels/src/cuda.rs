//! The launcher: [`SOURCES`] compiled by NVRTC for one device's architecture, loaded into its
//! context once per process ([`Gpu::open`] caches per device ordinal), and one typed, bounds-
//! checked function per entry point.
//!
//! Nothing here panics when CUDA is absent: cudarc loads `libcuda` and `libnvrtc` on first use
//! and panics if they are missing, so [`Gpu::open`] asks [`driver_present`] and
//! [`nvrtc_present`] first and reports what is missing as an error.
//!
//! Every launch checks, on the host, that each buffer holds what the kernel will touch: a
//! wrong size is a [`CudaError::Shape`], never an out-of-bounds access on the device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DeviceRepr, DriverError, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileError, CompileOptions};

use crate::{Math, NVRTC_OPTIONS, REDUCTION_BLOCK, SOURCES};

pub use cudarc;

/// Threads per block of the element-wise kernels.
const ELEMENTWISE_BLOCK: u32 = 256;
/// Most blocks an element-wise (grid-stride) launch uses.
const MAX_GRID: u32 = 4096;
/// Blocks of a loss or reduction launch: each writes one partial sum.
pub const LOSS_BLOCKS: usize = LOSS_GRID as usize;
const LOSS_GRID: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver (libcuda.so) could be loaded")]
    NoDriver,
    #[error("no NVRTC library (libnvrtc.so.13) could be loaded, so the kernels cannot be compiled")]
    NoNvrtc,
    #[error("there is no CUDA device {ordinal} ({count} found)")]
    NoDevice { ordinal: usize, count: usize },
    #[error("CUDA {what} failed: {source}")]
    Driver {
        what: &'static str,
        #[source]
        source: DriverError,
    },
    #[error("NVRTC could not compile kernels/{file} for {arch}:\n{log}")]
    Compile {
        file: &'static str,
        arch: String,
        log: String,
    },
    #[error("{kernel}: {what}")]
    Shape { kernel: &'static str, what: String },
    #[error(
        "{device}'s tensor cores are not used: gemm_tf32 failed the check it runs when the \
         device is opened ({problem})"
    )]
    TensorCoreCheck { device: String, problem: String },
    #[error("{kernel} needs {needs}, and {device} has compute capability {major}.{minor}")]
    Unsupported {
        kernel: &'static str,
        needs: &'static str,
        device: String,
        major: i32,
        minor: i32,
    },
}

fn driver(what: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |source| CudaError::Driver { what, source }
}

/// Whether `libcuda` can be loaded (so that cudarc will not panic).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library; no CUDA call is made.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether `libnvrtc` can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: as above, a dlopen attempt only.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Number of CUDA devices; 0 without a driver.
pub fn device_count() -> Result<usize, CudaError> {
    if !driver_present() {
        return Ok(0);
    }
    let n = CudaContext::device_count().map_err(driver("device count"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// One device with every kernel compiled and loaded, and the stream launches go to. Clones
/// share the context, the modules and the stream.
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
    _modules: Vec<Arc<CudaModule>>,
    name: String,
    arch: String,
    compute_capability: (i32, i32),
    /// What `gemm_tf32`'s check at [`Gpu::open`] found wrong, on a device of compute capability
    /// 8.0 or later (older ones are not checked: they have no TF32 tensor cores).
    tensor_problem: Option<String>,
    /// Split-K partial sums (see [`launch::gemm`]): grown to the largest split product so far,
    /// then reused, so that training steps do not allocate. Held from the split launch until
    /// `gemm_reduce` is queued; the stream orders the next product's use after it.
    split_k: Arc<Mutex<Option<CudaSlice<f32>>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ctx.ordinal())
            .field("name", &self.name)
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

fn cache() -> &'static Mutex<HashMap<usize, Arc<Gpu>>> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

impl Gpu {
    /// Device `ordinal` with the kernels compiled for its architecture; compiled once per
    /// process and device, later calls return the same `Gpu`.
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>, CudaError> {
        let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(gpu) = cache.get(&ordinal) {
            return Ok(gpu.clone());
        }
        let gpu = Arc::new(Gpu::load(ordinal)?);
        cache.insert(ordinal, gpu.clone());
        Ok(gpu)
    }

    fn load(ordinal: usize) -> Result<Gpu, CudaError> {
        if !driver_present() {
            return Err(CudaError::NoDriver);
        }
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        if !nvrtc_present() {
            return Err(CudaError::NoNvrtc);
        }
        let ctx = CudaContext::new(ordinal).map_err(driver("context creation"))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let name = ctx.name().map_err(driver("device name"))?;
        let arch = format!("compute_{}{}", compute_capability.0, compute_capability.1);
        let mut functions = HashMap::new();
        let mut modules = Vec::new();
        for s in SOURCES {
            let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|o| (*o).to_owned()).collect();
            options.push(format!("--gpu-architecture={arch}"));
            let opts = CompileOptions {
                options,
                name: Some(s.file.to_owned()),
                ..CompileOptions::default()
            };
            let ptx = cudarc::nvrtc::compile_ptx_with_opts(s.source, opts).map_err(|e| {
                CudaError::Compile {
                    file: s.file,
                    arch: arch.clone(),
                    log: match e {
                        CompileError::CompileError { log, .. } => {
                            log.to_string_lossy().into_owned()
                        }
                        other => format!("{other:?}"),
                    },
                }
            })?;
            let module = ctx.load_module(ptx).map_err(driver("module load"))?;
            for &entry in s.entry_points {
                let f = module
                    .load_function(entry)
                    .map_err(driver("function lookup"))?;
                functions.insert(entry, f);
            }
            modules.push(module);
        }
        let stream = ctx.default_stream();
        let mut gpu = Gpu {
            ctx,
            stream,
            functions,
            _modules: modules,
            name,
            arch,
            compute_capability,
            tensor_problem: None,
            split_k: Arc::default(),
        };
        if compute_capability.0 >= 8 {
            gpu.tensor_problem = gpu.check_tensor_cores().err();
        }
        Ok(gpu)
    }

    /// Runs `gemm_tf32` once on a small awkward product (partial tiles, K not a multiple of
    /// its slices) and compares it with its CPU reference, so that a device, driver or
    /// compiler on which the tensor-core kernel misbehaves trains in float32 instead of
    /// producing wrong models. Returns what went wrong.
    fn check_tensor_cores(&self) -> Result<(), String> {
        tensor_core_check(|(m, n, k), a, b| {
            let run = || -> Result<Vec<f32>, CudaError> {
                let (da, db) = (self.upload(a)?, self.upload(b)?);
                let mut dc = self.zeros::<f32>(m * n)?;
                self.launch_gemm(
                    Math::Tf32,
                    (m, n, k),
                    1.0,
                    (&da.as_view(), k, false),
                    (&db.as_view(), n, false),
                    0.0,
                    (&mut dc.as_view_mut(), n),
                )?;
                self.download(&dc.as_view())
            };
            run().map_err(|e| e.to_string())
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NVRTC architecture the kernels were compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Whether [`Math::Tf32`] runs here: the device has tensor cores that take TF32 (compute
    /// capability 8.0 or later) and `gemm_tf32` passed its check when the device was opened.
    pub fn tensor_cores(&self) -> bool {
        self.compute_capability.0 >= 8 && self.tensor_problem.is_none()
    }

    /// Why [`Gpu::tensor_cores`] is false on a device of compute capability 8.0 or later (the
    /// check's finding), or `None`.
    pub fn tensor_core_problem(&self) -> Option<&str> {
        self.tensor_problem.as_deref()
    }

    /// Ok where [`Math::Tf32`] runs here ([`Gpu::tensor_cores`]); else why not: the start-up
    /// check's finding, or a device without TF32 tensor cores.
    pub fn tf32_support(&self) -> Result<(), CudaError> {
        if let Some(problem) = self.tensor_core_problem() {
            return Err(CudaError::TensorCoreCheck {
                device: self.name.clone(),
                problem: problem.to_owned(),
            });
        }
        if !self.tensor_cores() {
            return Err(CudaError::Unsupported {
                kernel: Math::Tf32.kernel(),
                needs: "TF32 tensor cores (compute capability 8.0 or later)",
                device: self.name.clone(),
                major: self.compute_capability.0,
                minor: self.compute_capability.1,
            });
        }
        Ok(())
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for every launch so far.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(driver("synchronize"))
    }

    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .clone_htod(host)
            .map_err(driver("copy to device"))
    }

    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .alloc_zeros(len.max(1))
            .map_err(driver("allocation"))
    }

    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        device: &CudaView<'_, T>,
    ) -> Result<Vec<T>, CudaError> {
        self.stream
            .clone_dtoh(device)
            .map_err(driver("copy to host"))
    }

    /// Copies `device` into `host` (same length), waiting for it.
    pub fn download_into<T: DeviceRepr>(
        &self,
        device: &CudaView<'_, T>,
        host: &mut [T],
    ) -> Result<(), CudaError> {
        self.stream
            .memcpy_dtoh(device, host)
            .map_err(driver("copy to host"))?;
        self.synchronize()
    }

    /// Copies `host` into `device` (same length).
    pub fn upload_into<T: DeviceRepr>(
        &self,
        host: &[T],
        device: &mut CudaViewMut<'_, T>,
    ) -> Result<(), CudaError> {
        self.stream
            .memcpy_htod(host, device)
            .map_err(driver("copy to device"))
    }

    fn function(&self, name: &'static str) -> Result<&CudaFunction, CudaError> {
        // Every entry point of SOURCES was loaded by `load`.
        self.functions.get(name).ok_or(CudaError::Shape {
            kernel: name,
            what: "not loaded".into(),
        })
    }

    /// `dst[i, :] = src[idx[i], :]` for `i < rows`, rows of `cols` 32-bit words.
    ///
    /// # Safety
    /// Every one of the first `rows` indices in `idx` must be below `src.len() / cols`: the
    /// indices live on the device, where the host cannot check them at launch. Check them with
    /// [`check_indices`] before uploading.
    pub unsafe fn gather_rows<T: Word>(
        &self,
        rows: usize,
        cols: usize,
        src: &CudaView<'_, T>,
        idx: &CudaView<'_, u32>,
        dst: &mut CudaViewMut<'_, T>,
    ) -> Result<(), CudaError> {
        const K: &str = "gather_rows";
        need(K, "idx", idx.len(), rows)?;
        need(K, "dst", dst.len(), rows * cols)?;
        let total = rows * cols;
        if total == 0 {
            return Ok(());
        }
        let (r, c) = (int(K, rows)?, int(K, cols)?);
        let f = self.function(K)?;
        let mut b = self.stream.launch_builder(f);
        b.arg(&r).arg(&c).arg(src).arg(idx).arg(dst);
        // SAFETY: argument types match gather_rows(int, int, const u32*, const u32*, u32*), and
        // every T: Word is a 32-bit word; dst holds rows*cols words (checked above); src is read
        // at idx[i]*cols + c, in bounds by this function's contract.
        unsafe { b.launch(launch::elementwise(total)) }.map_err(driver("gather_rows launch"))?;
        Ok(())
    }

    /// `c = alpha * op(a) * op(b) + beta * c`, row-major, with the products `math` names
    /// (`gemm_f32` or `gemm_tf32` in `kernels/gemm.cu`); `a` and `b` are (matrix, leading
    /// dimension, transposed), `c` is (matrix, leading dimension). [`Math::Tf32`] on a device
    /// without TF32 tensor cores is [`CudaError::Unsupported`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        math: Math,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (a, lda, trans_a): (&CudaView<'_, f32>, usize, bool),
        (b, ldb, trans_b): (&CudaView<'_, f32>, usize, bool),
        beta: f32,
        (c, ldc): (&mut CudaViewMut<'_, f32>, usize),
    ) -> Result<(), CudaError> {
        if math == Math::Tf32 {
            self.tf32_support()?;
        }
        self.launch_gemm(
            math,
            (m, n, k),
            alpha,
            (a, lda, trans_a),
            (b, ldb, trans_b),
            beta,
            (c, ldc),
        )
    }

    /// [`Gpu::gemm`] without asking whether `math` may run here.
    #[allow(clippy::too_many_arguments)]
    fn launch_gemm(
        &self,
        math: Math,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (a, lda, trans_a): (&CudaView<'_, f32>, usize, bool),
        (b, ldb, trans_b): (&CudaView<'_, f32>, usize, bool),
        beta: f32,
        (c, ldc): (&mut CudaViewMut<'_, f32>, usize),
    ) -> Result<(), CudaError> {
        let kernel = math.kernel();
        if m == 0 || n == 0 {
            return Ok(());
        }
        check_gemm(
            math,
            (m, n, k),
            (a.len(), lda, trans_a),
            (b.len(), ldb, trans_b),
            (c.len(), ldc),
        )?;
        let (mi, ni, ki) = (int(kernel, m)?, int(kernel, n)?, int(kernel, k)?);
        let (ldai, ldbi, ldci) = (int(kernel, lda)?, int(kernel, ldb)?, int(kernel, ldc)?);
        let (ta, tb) = (i32::from(trans_a), i32::from(trans_b));
        let cfg = launch::gemm(math, m, n, k)?;
        let parts = cfg.grid_dim.2 as usize;
        let f = self.function(kernel)?;
        // Unsplit, the kernel writes c. Split, it writes its partial sums into `parts` slabs of
        // m × n in the workspace (alpha 1, beta 0), and gemm_reduce then applies alpha and
        // beta to c.
        let need = parts * m * n;
        let mut guard = if parts > 1 {
            Some(self.split_k_workspace(need)?)
        } else {
            None
        };
        let mut ws = guard
            .as_deref_mut()
            .and_then(Option::as_mut)
            .map(|w| w.slice_mut(..need));
        let (ka, kb) = if ws.is_some() {
            (1.0f32, 0.0f32)
        } else {
            (alpha, beta)
        };
        let mut l = self.stream.launch_builder(f);
        l.arg(&mi).arg(&ni).arg(&ki).arg(&ka);
        l.arg(a).arg(&ldai).arg(&ta);
        l.arg(b).arg(&ldbi).arg(&tb);
        l.arg(&kb);
        match ws.as_mut() {
            Some(w) => l.arg(w).arg(&ni),
            None => l.arg(&mut *c).arg(&ldci),
        };
        // SAFETY: argument order and types match gemm_f32 and gemm_tf32 in gemm.cu (the same
        // signature); a, b and c hold every element the kernel reads or writes for these shapes
        // and leading dimensions (checked by `check_gemm` above), and the workspace the parts
        // slabs of m rows of n floats that a launch with grid_dim.2 = parts writes
        // (gemm_split_k); gemm_tf32 is launched only on devices of compute capability 8.0 or
        // later, which have the mma instruction it uses (`Gpu::gemm` and `Gpu::load` check).
        unsafe { l.launch(cfg) }.map_err(driver("gemm launch"))?;
        if let Some(w) = ws {
            let partsi = int("gemm_reduce", parts)?;
            let mut r = self.stream.launch_builder(self.function("gemm_reduce")?);
            let w = w.as_view();
            r.arg(&mi).arg(&ni).arg(&partsi).arg(&w);
            r.arg(&alpha).arg(&beta).arg(c).arg(&ldci);
            // SAFETY: types match gemm_reduce(int, int, int, const float*, float, float,
            // float*, int); w holds parts * m * n floats, c holds m rows of ldc (check_gemm).
            unsafe { r.launch(launch::elementwise(m * n)) }
                .map_err(driver("gemm_reduce launch"))?;
        }
        Ok(())
    }

    /// The split-K workspace, grown to at least `len` floats, locked until the guard drops
    /// (after `gemm_reduce` is queued: the stream orders the next product's use after it).
    fn split_k_workspace(
        &self,
        len: usize,
    ) -> Result<MutexGuard<'_, Option<CudaSlice<f32>>>, CudaError> {
        let mut slot = self.split_k.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|w| w.len() < len) {
            *slot = None; // free the old workspace before asking for a larger one
            *slot = Some(
                self.stream
                    .alloc_zeros::<f32>(len)
                    .map_err(driver("gemm split-K workspace"))?,
            );
        }
        Ok(slot)
    }

    /// `z[i, j] = act(z[i, j] + bias[j])` in place; ReLU when `relu`.
    pub fn bias_act_forward(
        &self,
        rows: usize,
        cols: usize,
        z: &mut CudaViewMut<'_, f32>,
        bias: &CudaView<'_, f32>,
        relu: bool,
    ) -> Result<(), CudaError> {
        const K: &str = "bias_act_forward";
        need(K, "z", z.len(), rows * cols)?;
        need(K, "bias", bias.len(), cols)?;
        if rows * cols == 0 {
            return Ok(());
        }
        let (r, c, act) = (int(K, rows)?, int(K, cols)?, i32::from(relu));
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&r).arg(&c).arg(z).arg(bias).arg(&act);
        // SAFETY: types match bias_act_forward(int, int, float*, const float*, int); z holds
        // rows*cols and bias cols floats (checked above).
        unsafe { l.launch(launch::elementwise(rows * cols)) }.map_err(driver("bias_act launch"))?;
        Ok(())
    }

    /// `grad[i] = 0` where `act[i]` is not positive, for the first `n` elements.
    pub fn relu_backward(
        &self,
        n: usize,
        grad: &mut CudaViewMut<'_, f32>,
        act: &CudaView<'_, f32>,
    ) -> Result<(), CudaError> {
        const K: &str = "relu_backward";
        need(K, "grad", grad.len(), n)?;
        need(K, "act", act.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let nl = long(K, n)?;
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&nl).arg(grad).arg(act);
        // SAFETY: types match relu_backward(long, float*, const float*); both hold n floats.
        unsafe { l.launch(launch::elementwise(n)) }.map_err(driver("relu_backward launch"))?;
        Ok(())
    }

    /// `out[j] = Σ_i grad[i, j]`.
    pub fn column_sums(
        &self,
        rows: usize,
        cols: usize,
        grad: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        const K: &str = "column_sums";
        need(K, "grad", grad.len(), rows * cols)?;
        need(K, "out", out.len(), cols)?;
        if cols == 0 {
            return Ok(());
        }
        let (r, c) = (int(K, rows)?, int(K, cols)?);
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&r).arg(&c).arg(grad).arg(out);
        let cfg = launch::column_sums(cols)?;
        // SAFETY: types match column_sums(int, int, const float*, float*); sizes checked.
        unsafe { l.launch(cfg) }.map_err(driver("column_sums launch"))?;
        Ok(())
    }

    /// Binary cross-entropy on `n` logits; writes `LOSS_BLOCKS` partial loss sums.
    #[allow(clippy::too_many_arguments)]
    pub fn sigmoid_bce(
        &self,
        n: usize,
        logits: &CudaView<'_, f32>,
        targets: &CudaView<'_, f32>,
        scale: f32,
        prob: &mut CudaViewMut<'_, f32>,
        grad: &mut CudaViewMut<'_, f32>,
        loss_partial: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        const K: &str = "sigmoid_bce";
        for (what, len) in [
            ("logits", logits.len()),
            ("targets", targets.len()),
            ("prob", prob.len()),
            ("grad", grad.len()),
        ] {
            need(K, what, len, n)?;
        }
        need(K, "loss_partial", loss_partial.len(), LOSS_BLOCKS)?;
        let ni = int(K, n)?;
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&ni).arg(logits).arg(targets).arg(&scale);
        l.arg(prob).arg(grad).arg(loss_partial);
        // SAFETY: types match sigmoid_bce in loss.cu; n elements each, LOSS_BLOCKS partials.
        unsafe { l.launch(launch::reduction()) }.map_err(driver("sigmoid_bce launch"))?;
        Ok(())
    }

    /// Softmax cross-entropy over `rows` rows of `classes` logits with integer labels.
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_ce(
        &self,
        rows: usize,
        classes: usize,
        logits: &CudaView<'_, f32>,
        labels: &CudaView<'_, i32>,
        scale: f32,
        prob: &mut CudaViewMut<'_, f32>,
        grad: &mut CudaViewMut<'_, f32>,
        loss_partial: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        const K: &str = "softmax_ce";
        if classes == 0 {
            return Err(CudaError::Shape {
                kernel: K,
                what: "no classes".into(),
            });
        }
        let n = rows * classes;
        need(K, "logits", logits.len(), n)?;
        need(K, "labels", labels.len(), rows)?;
        need(K, "prob", prob.len(), n)?;
        need(K, "grad", grad.len(), n)?;
        need(K, "loss_partial", loss_partial.len(), LOSS_BLOCKS)?;
        let (r, c) = (int(K, rows)?, int(K, classes)?);
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&r).arg(&c).arg(logits).arg(labels).arg(&scale);
        l.arg(prob).arg(grad).arg(loss_partial);
        // SAFETY: types match softmax_ce in loss.cu; sizes checked; labels must lie in
        // 0..classes, which the callers guarantee by clamping on the host.
        unsafe { l.launch(launch::reduction()) }.map_err(driver("softmax_ce launch"))?;
        Ok(())
    }

    /// Squared error `(pred - y)^2 / 2` on `n` values.
    pub fn mse(
        &self,
        n: usize,
        pred: &CudaView<'_, f32>,
        targets: &CudaView<'_, f32>,
        scale: f32,
        grad: &mut CudaViewMut<'_, f32>,
        loss_partial: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        const K: &str = "mse";
        need(K, "pred", pred.len(), n)?;
        need(K, "targets", targets.len(), n)?;
        need(K, "grad", grad.len(), n)?;
        need(K, "loss_partial", loss_partial.len(), LOSS_BLOCKS)?;
        let ni = int(K, n)?;
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&ni).arg(pred).arg(targets).arg(&scale);
        l.arg(grad).arg(loss_partial);
        // SAFETY: types match mse in loss.cu; sizes checked.
        unsafe { l.launch(launch::reduction()) }.map_err(driver("mse launch"))?;
        Ok(())
    }

    /// One Adam step over `n` parameters, with the bias correction folded into `lr_t` and
    /// `eps_t` (see [`crate::reference::adam_step_constants`]).
    #[allow(clippy::too_many_arguments)]
    pub fn adam_update(
        &self,
        n: usize,
        param: &mut CudaViewMut<'_, f32>,
        grad: &CudaView<'_, f32>,
        m: &mut CudaViewMut<'_, f32>,
        v: &mut CudaViewMut<'_, f32>,
        b1: f32,
        b2: f32,
        lr_t: f32,
        eps_t: f32,
    ) -> Result<(), CudaError> {
        const K: &str = "adam_update";
        for (what, len) in [
            ("param", param.len()),
            ("grad", grad.len()),
            ("m", m.len()),
            ("v", v.len()),
        ] {
            need(K, what, len, n)?;
        }
        if n == 0 {
            return Ok(());
        }
        let nl = long(K, n)?;
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&nl).arg(param).arg(grad).arg(m).arg(v);
        l.arg(&b1).arg(&b2).arg(&lr_t).arg(&eps_t);
        // SAFETY: types match adam_update in optim.cu; all four buffers hold n floats.
        unsafe { l.launch(launch::elementwise(n)) }.map_err(driver("adam_update launch"))?;
        Ok(())
    }

    /// Writes `LOSS_BLOCKS` partial sums of the first `n` elements of `x` into `out`.
    pub fn reduce_sum(
        &self,
        n: usize,
        x: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        const K: &str = "reduce_sum";
        need(K, "x", x.len(), n)?;
        need(K, "out", out.len(), LOSS_BLOCKS)?;
        let nl = long(K, n)?;
        let f = self.function(K)?;
        let mut l = self.stream.launch_builder(f);
        l.arg(&nl).arg(x).arg(out);
        // SAFETY: types match reduce_sum(long, const float*, float*); sizes checked.
        unsafe { l.launch(launch::reduction()) }.map_err(driver("reduce_sum launch"))?;
        Ok(())
    }
}

/// The 32-bit element types of device buffers (floats, indices, labels): what
/// [`Gpu::gather_rows`] copies word for word.
pub trait Word: DeviceRepr + ValidAsZeroBits + Copy + Default + sealed::Sealed {
    /// The all-zero-bits value, as a zeroed device allocation holds.
    fn zero() -> Self {
        Self::default()
    }
}
impl Word for f32 {}
impl Word for u32 {}
impl Word for i32 {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
}

/// Errors unless every index in `idx` is below `rows`: what [`Gpu::gather_rows`] relies on.
pub fn check_indices(idx: &[u32], rows: usize) -> Result<(), CudaError> {
    match idx.iter().find(|&&i| i as usize >= rows) {
        Some(bad) => Err(CudaError::Shape {
            kernel: "gather_rows",
            what: format!("index {bad} is out of range for {rows} rows"),
        }),
        None => Ok(()),
    }
}

/// The check [`Gpu::open`] runs before it lets `gemm_tf32` be used: `run((m, n, k), a, b)`
/// must return `a · b` (row-major, `m × k` by `k × n`, leading dimensions `k` and `n`) as
/// `gemm_tf32` computes it, and it must agree with [`crate::reference::gemm_tf32`] on a small
/// awkward product (partial tiles, K not a multiple of the kernel's slices). Returns what went
/// wrong. Public so that the CPU emulation can run the same check on every machine.
pub fn tensor_core_check(
    run: impl FnOnce((usize, usize, usize), &[f32], &[f32]) -> Result<Vec<f32>, String>,
) -> Result<(), String> {
    let (m, n, k) = (70, 90, 50);
    // Fixed values in [-2, 2), with low mantissa bits set (so the TF32 rounding matters).
    let fill = |len: usize, seed: usize| -> Vec<f32> {
        (0..len)
            .map(|i| {
                let x = (i * 2_654_435_761 + seed) % 1_000_003;
                #[allow(clippy::cast_precision_loss)] // below 2^20: exact
                let x = x as f32;
                x / 250_000.75 - 2.0
            })
            .collect()
    };
    let (a, b) = (fill(m * k, 1), fill(k * n, 7));
    let mut want = vec![0.0f32; m * n];
    crate::reference::gemm_tf32(m, n, k, 1.0, &a, k, false, &b, n, false, 0.0, &mut want, n);
    let got = run((m, n, k), &a, &b)?;
    if got.len() != want.len() {
        return Err(format!("{} results for {} outputs", got.len(), want.len()));
    }
    // Only the summation order differs: far below 0.02 (terms are at most 4 in magnitude, 50
    // of them); a wrong fragment layout or tile index is off by far more.
    for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let off = (g - w).abs();
        if off.is_nan() || off > 0.02 {
            return Err(format!(
                "element ({}, {}) is {g} where its reference is {w}",
                idx / n,
                idx % n
            ));
        }
    }
    Ok(())
}

/// Errors unless `op(a)` (m × k), `op(b)` (k × n) and `c` (m × n), each given as (elements,
/// leading dimension[, transposed]), hold every element `math`'s kernel touches.
pub fn check_gemm(
    math: Math,
    (m, n, k): (usize, usize, usize),
    (a_len, lda, trans_a): (usize, usize, bool),
    (b_len, ldb, trans_b): (usize, usize, bool),
    (c_len, ldc): (usize, usize),
) -> Result<(), CudaError> {
    let kernel = math.kernel();
    let (a_rows, a_cols) = if trans_a { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if trans_b { (n, k) } else { (k, n) };
    matrix(kernel, "a", a_len, a_rows, a_cols, lda)?;
    matrix(kernel, "b", b_len, b_rows, b_cols, ldb)?;
    matrix(kernel, "c", c_len, m, n, ldc)
}

/// Errors unless a buffer of `len` elements holds the `needed` a kernel touches.
pub fn need(kernel: &'static str, what: &str, len: usize, needed: usize) -> Result<(), CudaError> {
    if len < needed {
        return Err(CudaError::Shape {
            kernel,
            what: format!("{what} holds {len} elements, {needed} are needed"),
        });
    }
    Ok(())
}

/// A row-major `rows × cols` matrix with leading dimension `ld` fits in `len` elements.
fn matrix(
    kernel: &'static str,
    what: &str,
    len: usize,
    rows: usize,
    cols: usize,
    ld: usize,
) -> Result<(), CudaError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    if ld < cols {
        return Err(CudaError::Shape {
            kernel,
            what: format!("{what}'s leading dimension {ld} is below its {cols} columns"),
        });
    }
    let needed = (rows - 1)
        .checked_mul(ld)
        .and_then(|x| x.checked_add(cols))
        .ok_or_else(|| CudaError::Shape {
            kernel,
            what: format!("{what} is too large"),
        })?;
    need(kernel, what, len, needed)
}

fn int(kernel: &'static str, v: usize) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Shape {
        kernel,
        what: format!("{v} does not fit the kernel's int"),
    })
}

fn long(kernel: &'static str, v: usize) -> Result<i64, CudaError> {
    i64::try_from(v).map_err(|_| CudaError::Shape {
        kernel,
        what: format!("{v} does not fit the kernel's long"),
    })
}

/// The launch shape of each kernel, as the `.cu` files require it (also used by the CPU
/// emulator in `kernels/emu`, so both run the same grids).
pub mod launch {
    use super::{CudaError, ELEMENTWISE_BLOCK, LOSS_GRID, MAX_GRID, Math, REDUCTION_BLOCK};
    use cudarc::driver::LaunchConfig;

    fn blocks(n: usize, per_block: usize) -> Result<u32, CudaError> {
        u32::try_from(n.div_ceil(per_block)).map_err(|_| CudaError::Shape {
            kernel: "launch",
            what: format!("{n} elements need too many blocks"),
        })
    }

    /// Blocks a GEMM launch aims for before it splits K: enough to fill a large GPU's
    /// multiprocessors (132 on an H100 or H200) about once.
    pub const GEMM_BLOCKS: usize = 128;
    /// The fewest k values a split-K block sums.
    pub const GEMM_MIN_CHUNK: usize = 64;
    /// The most parts K is split into.
    pub const GEMM_MAX_PARTS: usize = 16;

    /// `gemm_f32`: one 16 × 16 block per 128 × 128 tile of C; `gemm_tf32`: one block of 128
    /// threads (4 warps) per 64 × 64 tile. When the tiles are too few to fill the GPU
    /// ([`GEMM_BLOCKS`]) and K is long, K is split too: `grid_dim.2` parts of at least
    /// [`GEMM_MIN_CHUNK`] each (at most [`GEMM_MAX_PARTS`]), whose partial sums `gemm_reduce`
    /// adds (see gemm_split_k in gemm.cu). The weight gradients of an MLP (256 × 256 outputs
    /// summed over a batch of 1024) are the case this is for.
    pub fn gemm(math: Math, m: usize, n: usize, k: usize) -> Result<LaunchConfig, CudaError> {
        let (tile, block) = match math {
            Math::F32 => (128, (16, 16, 1)),
            Math::Tf32 => (64, (128, 1, 1)),
        };
        let (gx, gy) = (blocks(n, tile)?, blocks(m, tile)?);
        let tiles = gx as usize * gy as usize;
        let parts = GEMM_BLOCKS
            .div_ceil(tiles)
            .min(k / GEMM_MIN_CHUNK)
            .clamp(1, GEMM_MAX_PARTS);
        Ok(LaunchConfig {
            grid_dim: (
                gx,
                gy,
                u32::try_from(parts).expect("at most GEMM_MAX_PARTS"),
            ),
            block_dim: block,
            shared_mem_bytes: 0,
        })
    }

    /// `column_sums`: a 32 × 8 block per 32 columns.
    pub fn column_sums(cols: usize) -> Result<LaunchConfig, CudaError> {
        Ok(LaunchConfig {
            grid_dim: (blocks(cols, 32)?, 1, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        })
    }

    /// Grid-stride element-wise kernels.
    pub fn elementwise(n: usize) -> LaunchConfig {
        let grid = u32::try_from(n.div_ceil(ELEMENTWISE_BLOCK as usize))
            .unwrap_or(MAX_GRID)
            .clamp(1, MAX_GRID);
        LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (ELEMENTWISE_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Losses and reductions: `LOSS_BLOCKS` blocks of `REDUCTION_BLOCK` threads, one partial
    /// sum each.
    pub fn reduction() -> LaunchConfig {
        LaunchConfig {
            grid_dim: (LOSS_GRID, 1, 1),
            block_dim: (REDUCTION_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_on_the_host() {
        matrix("k", "a", 6, 2, 3, 3).unwrap();
        matrix("k", "a", 5, 2, 3, 3).unwrap_err();
        matrix("k", "a", 100, 2, 3, 2).unwrap_err();
        // The last row needs only `cols`, not `ld`, elements.
        matrix("k", "a", 7, 2, 3, 4).unwrap();
        check_indices(&[0, 4], 5).unwrap();
        let e = check_indices(&[0, 5], 5).unwrap_err().to_string();
        assert!(e.contains("index 5 is out of range for 5 rows"), "{e}");
        int("k", 1 << 40).unwrap_err();
    }

    #[test]
    fn gemm_splits_k_only_when_the_tiles_are_too_few() {
        let parts = |math, m, n, k| launch::gemm(math, m, n, k).unwrap().grid_dim.2 as usize;
        // Large products fill the GPU with tiles alone.
        assert_eq!(parts(Math::F32, 4096, 4096, 4096), 1);
        assert_eq!(parts(Math::Tf32, 2048, 2048, 2048), 1);
        // An MLP's weight gradient: 4 (16) tiles, K = 1024 in chunks of at least 64.
        assert_eq!(parts(Math::F32, 256, 256, 1024), 16);
        assert_eq!(parts(Math::Tf32, 256, 256, 1024), 8);
        // Its forward product: 16 (64) tiles, K = 256.
        assert_eq!(parts(Math::F32, 1024, 256, 256), 4);
        assert_eq!(parts(Math::Tf32, 1024, 256, 256), 2);
        // Short K is never split, and long K at most GEMM_MAX_PARTS ways.
        assert_eq!(parts(Math::F32, 1024, 256, 30), 1);
        assert_eq!(parts(Math::F32, 1, 1, 1 << 20), launch::GEMM_MAX_PARTS);
    }

    #[test]
    fn opening_without_a_driver_is_an_error_not_a_panic() {
        // On a machine with a GPU this opens it; on one without, it must say why.
        match Gpu::open(0) {
            Ok(gpu) => assert!(!gpu.name().is_empty()),
            Err(e) => assert!(
                matches!(
                    e,
                    CudaError::NoDriver | CudaError::NoNvrtc | CudaError::NoDevice { .. }
                ),
                "{e}"
            ),
        }
        assert!(matches!(
            Gpu::open(usize::MAX),
            Err(CudaError::NoDriver | CudaError::NoDevice { .. })
        ));
    }
}
