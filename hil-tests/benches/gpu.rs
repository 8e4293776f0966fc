//! The GPU benchmark, with its peers measured in the same run (`hil-tests/gpu/run.sh`):
//!
//! 1. Hearth's `gemm_f32` kernel against cuBLAS SGEMM in its default math mode (plain FP32), and
//!    Hearth's `gemm_tf32` (tensor cores) against cuBLAS SGEMM in `CUBLAS_TF32_TENSOR_OP_MATH`,
//!    on the same device buffers, timed with CUDA events (median of repeated launches), for
//!    large squares and the MLP's own shapes; each pair's results are also compared.
//! 2. Training: MLP 30-256-256-1, Adam, batch 1024, 5 epochs on `synth::fraud(1M)` (700k
//!    training rows) on the GPU in the default precision (TF32 products on tensor-core GPUs) and
//!    in float32, against PyTorch on the same GPU (`parity/torch_peer.py --device cuda`: `mlp`
//!    in float32, `mlp_tf32` with TF32 products, each eager and through `torch.compile` with
//!    CUDA graphs; same table and split) where python3 with torch is present.
//!
//! `cargo bench -p hearth-hil-tests --features gpu --bench gpu [-- --rows N --peer PATH]`
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::ops::ControlFlow;
use std::process::Command;
use std::sync::Arc;

use cudarc::cublas::sys::{cublasMath_t, cublasOperation_t, cublasSetMathMode, cublasStatus_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::sys::CUevent_flags;
use hearth_kernels::Math;
use hearth_kernels::cuda::Gpu;
use hearth_ml::train::{Compute, Metrics, ModelKind, Precision, TrainSpec, Trained, train_on};
use hearth_ml::{Rng, synth};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Median milliseconds of `reps` runs of `f`, timed with events on the GPU's stream.
fn time_ms(gpu: &Gpu, reps: usize, mut f: impl FnMut()) -> f64 {
    let ctx = gpu.context();
    for _ in 0..3 {
        f();
    }
    gpu.synchronize().unwrap();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        // cudarc's default flags disable timing (elapsed_ms then fails with
        // CUDA_ERROR_INVALID_HANDLE): ask for timing events.
        let start = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        let end = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        start.record(gpu.stream()).unwrap();
        f();
        end.record(gpu.stream()).unwrap();
        end.synchronize().unwrap();
        times.push(f64::from(start.elapsed_ms(&end).unwrap()));
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn gemm_vs_cublas(gpu: &Arc<Gpu>, math: Math) -> serde_json::Value {
    let blas = CudaBlas::new(gpu.stream().clone()).unwrap();
    let (mode, label, agree) = match math {
        Math::F32 => (cublasMath_t::CUBLAS_DEFAULT_MATH, "FP32", 1e-3f32),
        // Both round the operands to TF32 (perhaps differently): the results agree to TF32's
        // precision, not float32's.
        Math::Tf32 => (
            cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH,
            "TF32 tensor cores",
            2e-2,
        ),
    };
    // SAFETY: the handle is live (owned by `blas`), and the mode is a valid cublasMath_t.
    let status = unsafe { cublasSetMathMode(*blas.handle(), mode) };
    assert_eq!(status, cublasStatus_t::CUBLAS_STATUS_SUCCESS);
    let mut rng = Rng::new(5);
    let mut rows = Vec::new();
    println!("GEMM (row-major C = A·B, {label}), median of repeated launches:");
    for &(m, n, k, reps) in &[
        (4096usize, 4096usize, 4096usize, 10usize),
        (2048, 2048, 2048, 20),
        (1024, 256, 256, 200),
        (1024, 256, 30, 200),
        (256, 256, 1024, 200),
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let mut ours = gpu.zeros::<f32>(m * n).unwrap();
        let mut theirs = gpu.zeros::<f32>(m * n).unwrap();
        let ours_ms = time_ms(gpu, reps, || {
            gpu.gemm(
                math,
                (m, n, k),
                1.0,
                (&da.as_view(), k, false),
                (&db.as_view(), n, false),
                0.0,
                (&mut ours.as_view_mut(), n),
            )
            .unwrap();
        });
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: swap the operands.
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: n as i32,
            ldb: k as i32,
            beta: 0.0f32,
            ldc: n as i32,
        };
        let cublas_ms = time_ms(gpu, reps, || {
            // SAFETY: the buffers hold k×n, m×k and m×n floats as the config says.
            unsafe { blas.gemm(cfg, &db, &da, &mut theirs) }.unwrap();
        });
        let (o, t) = (
            gpu.download(&ours.as_view()).unwrap(),
            gpu.download(&theirs.as_view()).unwrap(),
        );
        let worst = o
            .iter()
            .zip(&t)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0f32, f32::max);
        // A disagreement is reported and fails the run at the end, after the other numbers.
        let agrees = worst < agree;
        if !agrees {
            println!("  MISMATCH {label} {m}x{n}x{k}: ours and cuBLAS differ by {worst}");
        }
        let flops = 2.0 * (m * n * k) as f64;
        let (ot, ct) = (flops / ours_ms / 1e9, flops / cublas_ms / 1e9);
        println!(
            "  {m:>5}x{n:>5}x{k:>5}: hearth {ours_ms:>8.4} ms {ot:>7.2} TFLOP/s | cuBLAS {cublas_ms:>8.4} ms {ct:>7.2} TFLOP/s | {:>5.1} % of cuBLAS",
            100.0 * cublas_ms / ours_ms
        );
        rows.push(serde_json::json!({
            "math": format!("{math:?}").to_lowercase(),
            "m": m, "n": n, "k": k, "hearth_ms": ours_ms, "cublas_ms": cublas_ms,
            "hearth_tflops": ot, "cublas_tflops": ct, "ratio": cublas_ms / ours_ms,
            "worst_relative_difference": worst, "agrees": agrees,
        }));
    }
    serde_json::Value::Array(rows)
}

/// Trains the benchmark's MLP on the GPU in `precision`; prints and returns the report with
/// each epoch's seconds.
fn train_mlp(
    gpu: &Arc<Gpu>,
    frame: &hearth_ml::frame::Frame,
    precision: Precision,
) -> (Trained, Vec<f64>) {
    let spec = TrainSpec {
        target: synth::FRAUD_TARGET.into(),
        model: ModelKind::Mlp {
            hidden: vec![256, 256],
        },
        epochs: 5,
        batch_size: 1024,
        learning_rate: 1e-3,
        patience: 0,
        seed: 7,
        precision,
        ..TrainSpec::default()
    };
    let mut epoch_rates = Vec::new();
    let t = train_on(frame, &spec, &Compute::Cuda(gpu.clone()), &mut |p| {
        epoch_rates.push(p.rows_per_sec);
        ControlFlow::Continue(())
    })
    .unwrap();
    let train_rows = t.report.rows.train as f64;
    let epoch_s: Vec<f64> = epoch_rates
        .iter()
        .map(|r| (train_rows / r * 1000.0).round() / 1000.0)
        .collect();
    println!(
        "training MLP 30-256-256-1 ({precision:?}) on {}: {:.0} rows/s, epochs {epoch_s:?} s, ROC-AUC {:.4}",
        t.report.backend,
        t.report.rows_per_sec,
        auc(&t)
    );
    (t, epoch_s)
}

fn auc(t: &Trained) -> f64 {
    match &t.report.metrics {
        Metrics::Binary(m) => m.roc_auc.unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows").map_or(1_000_000, |r| r.parse().unwrap());
    let peer = arg(&args, "--peer").unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../services/ml/parity/torch_peer.py"
        )
        .into()
    });
    let gpu = Gpu::open(0).expect("the GPU benchmark needs a GPU");
    println!("device: {} ({})", gpu.name(), gpu.arch());
    let mut gemm = vec![gemm_vs_cublas(&gpu, Math::F32)];
    if gpu.tensor_cores() {
        gemm.push(gemm_vs_cublas(&gpu, Math::Tf32));
    }

    let frame = synth::fraud(rows, 1);
    let (t, epoch_s) = train_mlp(&gpu, &frame, Precision::Auto);
    let (t32, epoch_s32) = train_mlp(&gpu, &frame, Precision::F32);

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("fraud.csv");
    synth::write_csv(&frame, std::fs::File::create(&csv).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(&peer)
        .arg(&csv)
        .args(["--epochs", "5", "--device", "cuda", "--threads", "1"])
        .output();
    let peer_json = match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let rate = |model: &str| v[model]["rows_per_sec"].as_f64().unwrap_or(f64::NAN);
            for model in ["mlp", "mlp_tf32", "mlp_compiled", "mlp_tf32_compiled"] {
                if let Some(e) = v[model]["error"].as_str() {
                    println!("peer {} on the GPU: {model} failed: {e}", v["peer"]);
                    continue;
                }
                println!(
                    "peer {} on the GPU: {model} {:.0} rows/s, ROC-AUC {:.4}",
                    v["peer"],
                    rate(model),
                    v[model]["roc_auc"].as_f64().unwrap_or(f64::NAN),
                );
            }
            println!(
                "hearth/peer, eager PyTorch: default vs default {:.2}x, float32 vs float32 {:.2}x, tf32 vs tf32 {:.2}x",
                t.report.rows_per_sec / rate("mlp"),
                t32.report.rows_per_sec / rate("mlp"),
                t.report.rows_per_sec / rate("mlp_tf32"),
            );
            println!(
                "hearth/peer, torch.compile + CUDA graphs: float32 vs float32 {:.2}x, tf32 vs tf32 {:.2}x",
                t32.report.rows_per_sec / rate("mlp_compiled"),
                t.report.rows_per_sec / rate("mlp_tf32_compiled"),
            );
            v
        }
        Ok(o) => {
            println!("peer failed: {}", String::from_utf8_lossy(&o.stderr));
            serde_json::Value::Null
        }
        Err(e) => {
            println!("peer unavailable: {e}");
            serde_json::Value::Null
        }
    };
    let record = serde_json::json!({
        "device": gpu.name(),
        "gemm": gemm,
        "train": {"rows_per_sec": t.report.rows_per_sec, "epoch_seconds": epoch_s,
                  "roc_auc": auc(&t), "backend": t.report.backend},
        "train_f32": {"rows_per_sec": t32.report.rows_per_sec, "epoch_seconds": epoch_s32,
                      "roc_auc": auc(&t32), "backend": t32.report.backend},
        "peer": peer_json,
    });
    if let Some(path) = arg(&args, "--record") {
        std::fs::write(path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    }
    let mismatches = gemm
        .iter()
        .flat_map(|rows| rows.as_array().into_iter().flatten())
        .filter(|row| row["agrees"] == false)
        .count();
    assert_eq!(mismatches, 0, "GEMM results disagree with cuBLAS (above)");
}
