//! Training throughput on the CPU, with the peer measured in the same run.
//!
//! `cargo bench -p hearth-ml --bench train [-- --rows N --record parity/bench.json]` (cargo runs
//! benchmarks in the crate's folder, so a relative `--record` path starts there)
//!
//! On `synth::fraud(1_000_000, 1)` (70 % of it, 700,000 rows, trains): an MLP 30-256-256-1 (in
//! the default precision, mixed on CPUs with AVX-512 BF16, and in float32) and a logistic
//! regression, Adam (lr 1e-3), batches of 1024, 5 epochs, on every core. Reports
//! training rows per second (minibatch steps only: gather, forward, backward, Adam), per core,
//! and the test ROC-AUC. The peer, `parity/torch_peer.py` (PyTorch on the CPU, the MLP in float32
//! and with `autocast(bfloat16)`, or scikit-learn where PyTorch is missing), trains the same
//! models on the same split of the same table,
//! written to CSV by this run; its figures print beside ours. Without Python the peer is
//! reported as unavailable.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::ops::ControlFlow;
use std::process::Command;

use hearth_ml::synth;
use hearth_ml::train::{Metrics, ModelKind, Precision, TrainSpec, train};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows").map_or(1_000_000, |r| r.parse().unwrap());
    let epochs = 5;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let frame = synth::fraud(rows, 1);
    println!(
        "hearth-ml training, synth::fraud({rows}, 1), {epochs} epochs, batch 1024, {threads} threads"
    );

    let mut ours = serde_json::Map::new();
    let mlp = ModelKind::Mlp {
        hidden: vec![256, 256],
    };
    for (name, model, precision) in [
        ("mlp", mlp.clone(), Precision::Auto),
        ("mlp_f32", mlp, Precision::F32),
        ("logreg", ModelKind::LogReg, Precision::Auto),
    ] {
        let spec = TrainSpec {
            target: synth::FRAUD_TARGET.into(),
            model,
            epochs,
            batch_size: 1024,
            learning_rate: 1e-3,
            patience: 0,
            seed: 7,
            threads,
            precision,
            ..TrainSpec::default()
        };
        let t = train(&frame, &spec, &mut |_| ControlFlow::Continue(())).unwrap();
        let r = &t.report;
        let auc = match &r.metrics {
            Metrics::Binary(m) => m.roc_auc.unwrap_or(f64::NAN),
            _ => f64::NAN,
        };
        println!(
            "  hearth-ml {name:<8} {:>10.0} rows/s  {:>9.0} rows/s/core  ROC-AUC {auc:.4}  {}",
            r.rows_per_sec,
            r.rows_per_sec / threads as f64,
            r.backend
        );
        ours.insert(
            name.into(),
            serde_json::json!({
                "rows_per_sec": r.rows_per_sec,
                "rows_per_sec_per_core": r.rows_per_sec / threads as f64,
                "roc_auc": auc,
                "train_rows": r.rows.train,
                "backend": r.backend,
            }),
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("fraud.csv");
    synth::write_csv(
        &frame,
        std::io::BufWriter::new(std::fs::File::create(&csv).unwrap()),
    )
    .unwrap();
    drop(frame);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/parity/torch_peer.py");
    let peer = Command::new("python3")
        .arg(script)
        .arg(&csv)
        .args([
            "--threads",
            &threads.to_string(),
            "--epochs",
            &epochs.to_string(),
        ])
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .output();
    let peer: serde_json::Value = match peer {
        Ok(out) if out.status.success() => {
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
        }
        Ok(out) => {
            println!(
                "  peer failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            serde_json::Value::Null
        }
        Err(e) => {
            println!("  peer unavailable (python3: {e})");
            serde_json::Value::Null
        }
    };
    if let Some(name) = peer["peer"].as_str() {
        for model in ["mlp", "mlp_bf16", "logreg"] {
            if peer[model].is_null() {
                continue;
            }
            let rps = peer[model]["rows_per_sec"].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {name} {model:<8} {rps:>10.0} rows/s  {:>9.0} rows/s/core  ROC-AUC {:.4}",
                rps / threads as f64,
                peer[model]["roc_auc"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let rps = |run: &serde_json::Value| run["rows_per_sec"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  MLP throughput, hearth-ml / peer: {:.2} (hearth-ml's default against the peer's \
             float32); float32 both: {:.2}; mixed precision both: {:.2}",
            rps(&ours["mlp"]) / rps(&peer["mlp"]),
            rps(&ours["mlp_f32"]) / rps(&peer["mlp"]),
            rps(&ours["mlp"]) / rps(&peer["mlp_bf16"]),
        );
    }

    if let Some(path) = arg(&args, "--record") {
        let record = serde_json::json!({
            "table": format!("synth::fraud({rows}, 1)"),
            "epochs": epochs,
            "batch_size": 1024,
            "threads": threads,
            "hearth_ml": ours,
            "peer": peer,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap() + "\n").unwrap();
        println!("recorded in {path}");
    }
}
