//! Training parity: the same spec on the CPU and on the GPU visits the same rows in the same
//! order from the same weights, so losses and metrics agree within float32 tolerance.

use std::ops::ControlFlow;

use hearth_ml::frame::{Column, ColumnData, ColumnKind, Frame};
use hearth_ml::train::{
    Compute, Metrics, ModelKind, Precision, Progress, TrainSpec, Trained, train_on,
};
use hearth_ml::{Rng, synth};

fn run(frame: &Frame, spec: &TrainSpec, compute: &Compute) -> (Trained, Vec<Progress>) {
    let mut epochs = Vec::new();
    let t = train_on(frame, spec, compute, &mut |p| {
        epochs.push(p.clone());
        ControlFlow::Continue(())
    })
    .unwrap();
    (t, epochs)
}

/// Both sides in float32: parity means the same arithmetic (by default the GPU would take TF32
/// tensor-core products, and a GPU host's CPU with AVX-512 BF16 would take bfloat16 ones;
/// `tf32_training_matches_float32_quality` checks the GPU's mixed precision).
fn both(frame: &Frame, spec: &TrainSpec) -> (Trained, Trained) {
    let f32_spec = TrainSpec {
        precision: Precision::F32,
        ..spec.clone()
    };
    let (cpu, cpu_epochs) = run(frame, &f32_spec, &Compute::Cpu);
    let (gpu, gpu_epochs) = run(frame, &f32_spec, &Compute::Cuda(super::gpu()));
    assert_eq!(cpu.report.backend, "cpu");
    assert!(
        gpu.report.backend.starts_with("cuda:"),
        "{}",
        gpu.report.backend
    );
    assert_eq!(cpu_epochs.len(), gpu_epochs.len());
    for (c, g) in cpu_epochs.iter().zip(&gpu_epochs) {
        let rel = (c.train_loss - g.train_loss).abs() / c.train_loss.abs().max(1e-9);
        println!(
            "epoch {}: train loss CPU {:.6} GPU {:.6}; val CPU {:.6} GPU {:.6}; rows/s CPU {:.0} GPU {:.0}",
            c.epoch,
            c.train_loss,
            g.train_loss,
            c.val_loss,
            g.val_loss,
            c.rows_per_sec,
            g.rows_per_sec
        );
        assert!(
            rel < 2e-3,
            "epoch {}: train loss CPU {} GPU {}",
            c.epoch,
            c.train_loss,
            g.train_loss
        );
    }
    (cpu, gpu)
}

fn auc(t: &Trained) -> f64 {
    match &t.report.metrics {
        Metrics::Binary(m) => m.roc_auc.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn binary_mlp_and_logreg_agree_between_cpu_and_gpu() {
    let frame = synth::fraud(60_000, 3);
    for model in [
        ModelKind::Mlp {
            hidden: vec![64, 64],
        },
        ModelKind::LogReg,
    ] {
        let spec = TrainSpec {
            target: synth::FRAUD_TARGET.into(),
            model: model.clone(),
            epochs: 4,
            batch_size: 256,
            patience: 0,
            seed: 7,
            ..TrainSpec::default()
        };
        let (cpu, gpu) = both(&frame, &spec);
        println!(
            "{model:?}: ROC-AUC CPU {:.5} GPU {:.5}",
            auc(&cpu),
            auc(&gpu)
        );
        assert!((auc(&cpu) - auc(&gpu)).abs() < 0.005, "{model:?}");
        assert!(auc(&gpu) > 0.8, "{model:?}: {}", auc(&gpu));
        // The weights themselves stay close.
        let (pc, pg) = (&cpu.model.network.params, &gpu.model.network.params);
        let worst = pc
            .iter()
            .zip(pg)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 5e-2, "{model:?}: largest weight difference {worst}");
    }
}

#[test]
fn multiclass_and_regression_agree_between_cpu_and_gpu() {
    let mut rng = Rng::new(2);
    let n = 8_000;
    let (mut a, mut b, mut class, mut value) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let (x, y) = (rng.normal(), rng.normal());
        a.push(x);
        b.push(y);
        let angle = y.atan2(x);
        let c = if angle < -1.0 {
            "low"
        } else if angle < 1.2 {
            "mid"
        } else {
            "high"
        };
        class.push(Some(c.to_owned()));
        value.push(x.sin() * 3.0 + y * y + 0.1 * rng.normal());
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
    let spec = |target: &str| TrainSpec {
        target: target.into(),
        features: Some(vec!["a".into(), "b".into()]),
        model: ModelKind::Mlp {
            hidden: vec![32, 32],
        },
        epochs: 8,
        batch_size: 64,
        learning_rate: 3e-3,
        patience: 0,
        ..TrainSpec::default()
    };
    let (cpu, gpu) = both(&frame, &spec("class"));
    let acc = |t: &Trained| match &t.report.metrics {
        Metrics::Multiclass(m) => m.accuracy,
        other => panic!("{other:?}"),
    };
    assert!(
        (acc(&cpu) - acc(&gpu)).abs() < 0.01,
        "{} vs {}",
        acc(&cpu),
        acc(&gpu)
    );
    assert!(acc(&gpu) > 0.9, "{}", acc(&gpu));
    let (cpu, gpu) = both(&frame, &spec("value"));
    let r2 = |t: &Trained| match &t.report.metrics {
        Metrics::Regression(m) => m.r2,
        other => panic!("{other:?}"),
    };
    assert!(
        (r2(&cpu) - r2(&gpu)).abs() < 0.01,
        "{} vs {}",
        r2(&cpu),
        r2(&gpu)
    );
    assert!(r2(&gpu) > 0.9, "{}", r2(&gpu));
}

#[test]
fn tf32_training_matches_float32_quality() {
    // The GPU's default on tensor-core devices: TF32 products for the hidden layers. Same
    // model quality as float32 on the same GPU, and the report says which arithmetic ran.
    let gpu = super::gpu();
    let frame = synth::fraud(60_000, 3);
    let spec = |precision| TrainSpec {
        target: synth::FRAUD_TARGET.into(),
        model: ModelKind::Mlp {
            hidden: vec![64, 64],
        },
        epochs: 4,
        batch_size: 256,
        patience: 0,
        seed: 7,
        precision,
        ..TrainSpec::default()
    };
    if gpu.compute_capability().0 >= 8 {
        assert!(gpu.tensor_cores(), "{:?}", gpu.tensor_core_problem());
    }
    let (exact, _) = run(&frame, &spec(Precision::F32), &Compute::Cuda(gpu.clone()));
    assert!(
        !exact.report.backend.contains("tf32"),
        "{}",
        exact.report.backend
    );
    if !gpu.tensor_cores() {
        let e = train_on(
            &frame,
            &spec(Precision::Tf32),
            &Compute::Cuda(gpu),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("tensor cores"), "{e}");
        return;
    }
    let (auto, _) = run(&frame, &spec(Precision::Auto), &Compute::Cuda(gpu.clone()));
    let (tf32, _) = run(&frame, &spec(Precision::Tf32), &Compute::Cuda(gpu));
    for t in [&auto, &tf32] {
        assert!(
            t.report.backend.ends_with("(tf32 products)"),
            "{}",
            t.report.backend
        );
    }
    println!(
        "ROC-AUC float32 {:.5}, tf32 {:.5}; rows/s float32 {:.0}, tf32 {:.0}",
        auc(&exact),
        auc(&tf32),
        exact.report.rows_per_sec,
        tf32.report.rows_per_sec
    );
    assert!((auc(&exact) - auc(&tf32)).abs() < 0.005);
    // Auto is tf32 here, so the same run bit for bit.
    assert_eq!(auto.model.network.params, tf32.model.network.params);
}
