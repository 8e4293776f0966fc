// The GPU backend's training code (hearth_ml::gpu) on the reference device: the kernels' CPU
// references in place of the GPU. It must train the same model as the CPU backend, so the
// orchestration (shapes, strides, transposes, buffer roles, launch order, loss scaling) is
// checked here, on every machine; the GPU group (hil-tests/gpu) checks the kernels themselves.
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;

use hearth_ml::frame::{Column, ColumnData, ColumnKind, Frame};
use hearth_ml::train::{Compute, ModelKind, Precision, Progress, TrainSpec, Trained, train_on};
use hearth_ml::{Rng, synth};

use crate::roc_auc;

fn run(frame: &Frame, spec: &TrainSpec, compute: &Compute) -> (Trained, Vec<Progress>) {
    let mut epochs = Vec::new();
    let t = train_on(frame, spec, compute, &mut |p| {
        epochs.push(p.clone());
        ControlFlow::Continue(())
    })
    .unwrap();
    (t, epochs)
}

/// Trains on the CPU and on the reference device; asserts the per-epoch training losses agree.
fn both(frame: &Frame, spec: &TrainSpec) -> (Trained, Trained) {
    // GPUs train in float32, so the CPU does here too (mixed precision is checked in
    // hearth_ml::model and tests/ml/train.rs).
    let f32_spec = TrainSpec {
        precision: Precision::F32,
        ..spec.clone()
    };
    let (cpu, cpu_epochs) = run(frame, &f32_spec, &Compute::Cpu);
    let (dev, dev_epochs) = run(frame, spec, &Compute::Reference);
    assert_eq!(cpu.report.backend, "cpu");
    assert!(
        dev.report.backend.starts_with("reference"),
        "{}",
        dev.report.backend
    );
    assert_eq!(cpu_epochs.len(), dev_epochs.len());
    for (c, d) in cpu_epochs.iter().zip(&dev_epochs) {
        let rel = (c.train_loss - d.train_loss).abs() / c.train_loss.abs().max(1e-9);
        assert!(
            rel < 1e-4,
            "epoch {}: training loss CPU {} vs GPU code path {}",
            c.epoch,
            c.train_loss,
            d.train_loss
        );
        let rel = (c.val_loss - d.val_loss).abs() / c.val_loss.abs().max(1e-9);
        assert!(
            rel < 1e-3,
            "epoch {}: validation loss {} vs {}",
            c.epoch,
            c.val_loss,
            d.val_loss
        );
    }
    let (pc, pd) = (&cpu.model.network.params, &dev.model.network.params);
    let worst = pc
        .iter()
        .zip(pd)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "largest weight difference {worst}");
    (cpu, dev)
}

#[test]
fn binary_mlp_and_logreg_match_the_cpu() {
    let _heavy = crate::allocating();
    let frame = synth::fraud(4_000, 5);
    for model in [
        ModelKind::Mlp {
            hidden: vec![16, 8],
        },
        ModelKind::LogReg,
    ] {
        let spec = TrainSpec {
            target: synth::FRAUD_TARGET.into(),
            model,
            epochs: 3,
            batch_size: 100,
            patience: 0,
            seed: 3,
            ..TrainSpec::default()
        };
        let (cpu, dev) = both(&frame, &spec);
        let auc = |t: &Trained| roc_auc(&t.report.metrics);
        assert!((auc(&cpu) - auc(&dev)).abs() < 1e-3);
    }
}

#[test]
fn multiclass_and_regression_match_the_cpu() {
    let _heavy = crate::allocating();
    let mut rng = Rng::new(4);
    let n = 1_500;
    let (mut a, mut b, mut class, mut value) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let (x, y) = (rng.normal(), rng.normal());
        a.push(x);
        b.push(y);
        let c = if y.atan2(x) < -1.0 {
            "low"
        } else if y.atan2(x) < 1.2 {
            "mid"
        } else {
            "high"
        };
        class.push(Some(c.to_owned()));
        value.push(x.sin() * 3.0 + y * y);
    }
    let num = |name: &str, v: Vec<f64>| Column {
        name: name.into(),
        kind: ColumnKind::Numeric,
        data: ColumnData::Numeric(v),
    };
    let frame = Frame::new(vec![
        num("a", a),
        num("b", b),
        Column {
            name: "class".into(),
            kind: ColumnKind::Categorical,
            data: ColumnData::Text(class),
        },
        num("value", value),
    ])
    .unwrap();
    for target in ["class", "value"] {
        let spec = TrainSpec {
            target: target.into(),
            features: Some(vec!["a".into(), "b".into()]),
            model: ModelKind::Mlp {
                hidden: vec![12, 6],
            },
            epochs: 3,
            // 1050 training rows: the last batch of each epoch is short.
            batch_size: 64,
            learning_rate: 3e-3,
            patience: 0,
            ..TrainSpec::default()
        };
        both(&frame, &spec);
    }
}

#[test]
fn tf32_products_train_on_the_gpu_path_and_are_refused_on_the_cpu() {
    // The GPU trainer with TF32 products for the hidden layers, on the reference device (whose
    // gemm_tf32 rounds the operands exactly as the kernel does): the orchestration of the
    // mixed precision (which layers, which products) trains as well as float32, and the report
    // says which arithmetic ran. The kernel itself is checked in kernels/emu and hil-tests/gpu.
    let _heavy = crate::allocating();
    let frame = synth::fraud(4_000, 5);
    let spec = |model, precision| TrainSpec {
        target: synth::FRAUD_TARGET.into(),
        model,
        epochs: 3,
        batch_size: 100,
        patience: 0,
        seed: 3,
        precision,
        ..TrainSpec::default()
    };
    let mlp = || ModelKind::Mlp {
        hidden: vec![48, 40],
    };
    let (exact, _) = run(&frame, &spec(mlp(), Precision::F32), &Compute::Reference);
    let (tf32, _) = run(&frame, &spec(mlp(), Precision::Tf32), &Compute::Reference);
    // The reference device's default is float32 (it stands in for the GPU in parity tests).
    let (auto, _) = run(&frame, &spec(mlp(), Precision::Auto), &Compute::Reference);
    assert_eq!(
        tf32.report.backend,
        format!("{} (tf32 products)", exact.report.backend)
    );
    assert_eq!(auto.report.backend, exact.report.backend);
    assert_eq!(auto.model.network.params, exact.model.network.params);
    // TF32 changed the arithmetic, not the model's quality.
    assert_ne!(tf32.model.network.params, exact.model.network.params);
    let auc = |t: &Trained| roc_auc(&t.report.metrics);
    assert!(
        (auc(&exact) - auc(&tf32)).abs() < 0.005,
        "float32 {} vs tf32 {}",
        auc(&exact),
        auc(&tf32)
    );
    // Logistic regression has no layer wide enough: float32, and the report says so.
    let (logreg, _) = run(
        &frame,
        &spec(ModelKind::LogReg, Precision::Tf32),
        &Compute::Reference,
    );
    assert!(
        !logreg.report.backend.contains("tf32"),
        "{}",
        logreg.report.backend
    );
    // The CPU has no TF32 (and GPUs no bfloat16: tests/ml/train.rs).
    let e = train_on(
        &frame,
        &spec(mlp(), Precision::Tf32),
        &Compute::Cpu,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("tf32 is for GPUs"), "{e}");
}
