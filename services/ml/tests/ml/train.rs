// hearth-ml's training, end to end: parity with scikit-learn, determinism, every task, fairness,
// serialization and the errors a caller can meet.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::ops::ControlFlow;

use hearth_ml::frame::{Column, ColumnData, ColumnKind, Frame, FrameError};
use hearth_ml::model::{Model, ModelError, PredictError, Predictions, Task};
use hearth_ml::prep::{ExcludedReason, PrepError, TargetError, Value};
use hearth_ml::train::{
    Metrics, ModelKind, Precision, Progress, Split, TrainError, TrainSpec, train,
};
use hearth_ml::{Rng, synth};

use crate::roc_auc;

fn keep_going(_: &Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn num(name: &str, v: Vec<f64>) -> Column {
    Column {
        name: name.into(),
        kind: ColumnKind::Numeric,
        data: ColumnData::Numeric(v),
    }
}

/// The split and the PRNG that `parity/common.py` re-implements, pinned on both sides.
#[test]
fn split_is_pinned_for_other_languages() {
    let _heavy = crate::allocating();
    let mut r = Rng::new(7);
    assert_eq!(
        [r.next_u64(), r.next_u64(), r.next_u64()],
        [
            12_923_355_070_828_475_994,
            5_142_052_590_334_782_674,
            15_488_392_906_492_639_638
        ]
    );
    let s = Split::new((0..10).collect(), 0.1, 0.2, 42);
    assert_eq!(s.test, vec![3, 0]);
    let recorded = parity_record();
    assert_eq!(
        recorded["split"]["pin_test_rows_of_0_to_10_seed_42"],
        serde_json::json!([3, 0])
    );
}

fn parity_record() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/parity/sklearn.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

mod parity {
    use super::*;

    /// Both models on the table that `parity/sklearn_parity.py` trained scikit-learn on, with
    /// the same split, preprocessing and protocol: test ROC-AUC within 0.005 of scikit-learn's.
    #[test]
    fn roc_auc_matches_scikit_learn() {
        let _heavy = crate::allocating();
        let record = parity_record();
        let rows = record["rows"].as_u64().unwrap() as usize;
        let frame = synth::fraud(rows, record["table_seed"].as_u64().unwrap());
        let split = &record["split"];
        let mlp = &record["mlp"];
        let base = TrainSpec {
            target: synth::FRAUD_TARGET.into(),
            seed: split["seed"].as_u64().unwrap(),
            validation_fraction: split["validation_fraction"].as_f64().unwrap(),
            test_fraction: split["test_fraction"].as_f64().unwrap(),
            batch_size: mlp["batch_size"].as_u64().unwrap() as usize,
            learning_rate: mlp["learning_rate"].as_f64().unwrap() as f32,
            epochs: mlp["max_epochs"].as_u64().unwrap() as usize,
            patience: mlp["patience"].as_u64().unwrap() as usize,
            ..TrainSpec::default()
        };
        let hidden: Vec<usize> = mlp["hidden"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_u64().unwrap() as usize)
            .collect();
        // The MLP in float32 and in the default precision (mixed where the CPU has AVX-512
        // BF16).
        let mlp = ModelKind::Mlp { hidden };
        for (name, model, precision) in [
            ("logreg", ModelKind::LogReg, Precision::Auto),
            ("mlp", mlp.clone(), Precision::F32),
            ("mlp", mlp, Precision::Auto),
        ] {
            let spec = TrainSpec {
                model,
                precision,
                ..base.clone()
            };
            let t = train(&frame, &spec, &mut keep_going).unwrap();
            let r = &t.report;
            assert_eq!(r.rows.test, split["test"].as_u64().unwrap() as usize);
            let ours = roc_auc(&r.metrics);
            let theirs = record[name]["roc_auc"].as_f64().unwrap();
            eprintln!(
                "{name} on {}: ROC-AUC {ours:.4} (scikit-learn {theirs:.4}), {} epochs (best {}), \
                 {:.0} rows/s, {:.1} s",
                r.backend, r.epochs_run, r.best_epoch, r.rows_per_sec, r.seconds
            );
            assert!(
                (ours - theirs).abs() <= 0.005,
                "{name}: ROC-AUC {ours} vs scikit-learn's {theirs}"
            );
        }
    }
}

mod determinism {
    use super::*;

    fn spec(seed: u64, threads: usize) -> TrainSpec {
        TrainSpec {
            target: synth::FRAUD_TARGET.into(),
            model: ModelKind::Mlp {
                hidden: vec![128, 32],
            },
            epochs: 2,
            batch_size: 1024,
            seed,
            threads,
            ..TrainSpec::default()
        }
    }

    #[test]
    fn same_seed_same_model_on_any_thread_count() {
        let _heavy = crate::allocating();
        // Batches of 1024 × 128 make the products big enough to run on two threads.
        let frame = synth::fraud(30_000, 3);
        let a = train(&frame, &spec(5, 1), &mut keep_going).unwrap();
        let b = train(&frame, &spec(5, 2), &mut keep_going).unwrap();
        let bits = |m: &Model| {
            m.network
                .params
                .iter()
                .map(|p| p.to_bits())
                .collect::<Vec<_>>()
        };
        assert!(bits(&a.model) == bits(&b.model));
        assert_eq!(a.report.metrics, b.report.metrics);
        assert_eq!(a.report.importance, b.report.importance);
        let c = train(&frame, &spec(6, 2), &mut keep_going).unwrap();
        assert!(bits(&a.model) != bits(&c.model));
    }
}

mod precision {
    use super::*;
    use hearth_ml::bf16;
    use hearth_ml::train::{Compute, train_on};

    fn spec(precision: Precision) -> TrainSpec {
        TrainSpec {
            target: synth::FRAUD_TARGET.into(),
            model: ModelKind::Mlp {
                hidden: vec![128, 64],
            },
            epochs: 3,
            batch_size: 512,
            seed: 3,
            precision,
            ..TrainSpec::default()
        }
    }

    /// Mixed precision (where the CPU has it) trains a model as good as float32's, says so in
    /// the report, and is refused where it cannot run.
    #[test]
    fn mixed_precision_trains_as_well_as_float32_and_is_recorded() {
        let _heavy = crate::allocating();
        let frame = synth::fraud(40_000, 2);
        let exact = train(&frame, &spec(Precision::F32), &mut keep_going).unwrap();
        assert_eq!(exact.report.backend, "cpu");
        let auto = train(&frame, &spec(Precision::Auto), &mut keep_going).unwrap();
        if !bf16::available() {
            assert_eq!(auto.report.backend, "cpu");
            let e = train(&frame, &spec(Precision::Bf16), &mut keep_going).unwrap_err();
            assert!(e.to_string().contains("AVX-512 BF16"), "{e}");
            return;
        }
        let mixed = train(&frame, &spec(Precision::Bf16), &mut keep_going).unwrap();
        assert_eq!(mixed.report.backend, "cpu (bf16 products)");
        assert_eq!(auto.report.backend, mixed.report.backend);
        assert!(auto.model.network.params == mixed.model.network.params);
        assert!(exact.model.network.params != mixed.model.network.params);
        let (e, m) = (
            roc_auc(&exact.report.metrics),
            roc_auc(&mixed.report.metrics),
        );
        assert!((e - m).abs() <= 0.005, "ROC-AUC float32 {e} vs mixed {m}");
        assert!(m > 0.85, "ROC-AUC {m}");
    }

    #[test]
    fn gpus_refuse_bf16() {
        let _heavy = crate::allocating();
        let frame = synth::fraud(2_000, 1);
        let e = train_on(
            &frame,
            &spec(Precision::Bf16),
            &Compute::Reference,
            &mut keep_going,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bf16 is for the CPU backend"), "{e}");
    }
}

mod tasks {
    use super::*;

    #[test]
    fn patient_risk_reports_fairness_confusion_and_importance() {
        let _heavy = crate::allocating();
        let frame = synth::patient_risk(20_000, 1);
        let spec = TrainSpec {
            target: synth::PATIENT_TARGET.into(),
            group_column: Some("sex".into()),
            model: ModelKind::Mlp { hidden: vec![32] },
            epochs: 10,
            ..TrainSpec::default()
        };
        let mut seen = Vec::new();
        let t = train(&frame, &spec, &mut |p| {
            seen.push(p.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
        let r = &t.report;
        assert_eq!(r.task, Task::Binary);
        assert_eq!(r.classes, vec!["false", "true"]);
        assert_eq!(seen.len(), r.epochs_run);
        assert!(
            seen.iter()
                .all(|p| p.val_loss.is_finite() && p.rows_per_sec > 0.0)
        );
        assert!(seen.last().unwrap().train_loss < seen[0].train_loss);
        // The text id is excluded; sex is the group column, not a feature.
        assert_eq!(r.excluded.len(), 1);
        assert_eq!(r.excluded[0].column, "patient_id");
        assert_eq!(r.excluded[0].reason, ExcludedReason::Text);
        assert!(!r.features.contains(&"sex".to_owned()));
        assert_eq!(r.features.len(), 9);
        let auc = roc_auc(&r.metrics);
        assert!((0.7..0.95).contains(&auc), "{auc}");
        let c = r.confusion.as_ref().unwrap();
        let total: u64 = c.counts.iter().flatten().sum();
        assert_eq!(total as usize, r.rows.test);
        let f = r.fairness.as_ref().unwrap();
        assert_eq!(f.groups.len(), 2);
        assert!(f.demographic_parity_difference > 0.01, "{f:?}");
        assert!(f.equal_opportunity_difference > 0.0, "{f:?}");
        // Age drives risk most; every feature is listed.
        assert_eq!(r.importance.len(), 9);
        assert_eq!(r.importance_metric, "roc_auc");
        assert!(
            r.importance[..3].iter().any(|i| i.column == "age"),
            "{:?}",
            r.importance
        );
        // The report serializes for the console.
        let json = serde_json::to_string(r).unwrap();
        assert!(json.contains("\"demographic_parity_difference\""));
    }

    #[test]
    fn multiclass_and_regression() {
        let _heavy = crate::allocating();
        let mut rng = Rng::new(2);
        let n = 6_000;
        let (mut a, mut b, mut class, mut value) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (x, y) = (rng.normal(), rng.normal());
            a.push(x);
            b.push(y);
            // Three sectors of the plane: not linearly separable as one-vs-rest of angle.
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
        let spec = |target: &str, model| TrainSpec {
            target: target.into(),
            features: Some(vec!["a".into(), "b".into()]),
            model,
            epochs: 60,
            batch_size: 64,
            learning_rate: 3e-3,
            patience: 10,
            ..TrainSpec::default()
        };
        let mlp = || ModelKind::Mlp {
            hidden: vec![32, 32],
        };
        let t = train(&frame, &spec("class", mlp()), &mut keep_going).unwrap();
        assert_eq!(t.report.classes, vec!["high", "low", "mid"]);
        let Metrics::Multiclass(m) = &t.report.metrics else {
            panic!("{:?}", t.report.metrics)
        };
        assert!(m.accuracy > 0.95, "{m:?}");
        assert_eq!(t.report.confusion.as_ref().unwrap().counts.len(), 3);
        let p = t.model.predict(&frame).unwrap();
        let Predictions::Multiclass { probabilities, .. } = &p else {
            panic!("{p:?}")
        };
        assert!((probabilities[..3].iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert_eq!(p.labels().unwrap().len(), n);

        let r2 = |kind| {
            let t = train(&frame, &spec("value", kind), &mut keep_going).unwrap();
            assert_eq!(t.report.task, Task::Regression);
            match t.report.metrics {
                Metrics::Regression(m) => m.r2,
                other => panic!("{other:?}"),
            }
        };
        let (linear, mlp) = (r2(ModelKind::LogReg), r2(mlp()));
        assert!(mlp > 0.95 && linear < 0.8, "MLP R² {mlp}, linear {linear}");
    }

    #[test]
    fn early_stopping_keeps_the_best_epoch() {
        let _heavy = crate::allocating();
        // A tiny training split and a large network overfit quickly.
        let frame = synth::patient_risk(400, 4);
        let spec = TrainSpec {
            target: synth::PATIENT_TARGET.into(),
            model: ModelKind::Mlp {
                hidden: vec![256, 256],
            },
            epochs: 200,
            batch_size: 16,
            learning_rate: 1e-2,
            patience: 3,
            ..TrainSpec::default()
        };
        let mut losses = Vec::new();
        let t = train(&frame, &spec, &mut |p| {
            losses.push(p.val_loss);
            ControlFlow::Continue(())
        })
        .unwrap();
        let r = &t.report;
        assert!(r.stopped_early && r.epochs_run < 200, "{}", r.epochs_run);
        assert_eq!(r.epochs_run, r.best_epoch + 3);
        let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(r.best_loss, best);
        assert_eq!(losses[r.best_epoch - 1], best);
    }
}

mod serving {
    use super::*;

    #[test]
    fn saved_models_predict_identically_and_rows_match_frames() {
        let _heavy = crate::allocating();
        let frame = synth::patient_risk(3_000, 9);
        let spec = TrainSpec {
            target: synth::PATIENT_TARGET.into(),
            model: ModelKind::Mlp { hidden: vec![16] },
            epochs: 3,
            ..TrainSpec::default()
        };
        let t = train(&frame, &spec, &mut keep_going).unwrap();
        let json = t.model.to_json();
        let back = Model::from_json(&json).unwrap();
        assert!(back == t.model);
        let p = t.model.predict(&frame).unwrap();
        assert_eq!(back.predict(&frame).unwrap(), p);
        assert_eq!(p.rows(), frame.rows());
        let Predictions::Binary { probabilities, .. } = &p else {
            panic!("{p:?}")
        };

        // One row at a time, from values in the model's input order.
        let inputs: Vec<String> = t.model.inputs().map(str::to_owned).collect();
        let mut predictor = t.model.predictor();
        for r in [0, 1, 2, 500, 2999] {
            let values: Vec<Value<'_>> = inputs
                .iter()
                .map(|name| match &frame.column(name).unwrap().data {
                    ColumnData::Numeric(v) if v[r].is_nan() => Value::Missing,
                    ColumnData::Numeric(v) => Value::Number(v[r]),
                    ColumnData::Boolean(v) => v[r].map_or(Value::Missing, Value::Bool),
                    ColumnData::Text(v) => v[r].as_deref().map_or(Value::Missing, Value::Text),
                    ColumnData::Timestamp(v) => v[r].map_or(Value::Missing, Value::Timestamp),
                })
                .collect();
            let one = predictor.predict(&values).unwrap();
            assert!((one[0] - probabilities[r]).abs() < 1e-6, "row {r}");
        }

        // Damaged or foreign files are refused.
        assert!(matches!(
            Model::from_json(b"{}"),
            Err(ModelError::Decode { .. })
        ));
        let mut wrong = t.model.clone();
        wrong.network.params.truncate(3);
        assert!(matches!(
            Model::from_json(&wrong.to_json()),
            Err(ModelError::Invalid { .. })
        ));
        // A frame without an input column cannot be predicted.
        let partial = Frame::new(vec![num("age", vec![40.0])]).unwrap();
        assert!(matches!(
            t.model.predict(&partial),
            Err(PredictError::Input(PrepError::Frame(
                FrameError::Missing { .. }
            )))
        ));
    }
}

mod errors {
    use super::*;

    fn base(target: &str) -> TrainSpec {
        TrainSpec {
            target: target.into(),
            model: ModelKind::LogReg,
            epochs: 2,
            ..TrainSpec::default()
        }
    }

    #[test]
    fn bad_requests_get_clear_errors() {
        let _heavy = crate::allocating();
        let frame = synth::fraud(200, 1);
        let err = |spec: TrainSpec| train(&frame, &spec, &mut keep_going).unwrap_err();
        assert_eq!(
            err(base("nope")),
            TrainError::UnknownTarget {
                column: "nope".into()
            }
        );
        assert!(err(base("nope")).to_string().contains("\"nope\""));
        assert!(matches!(
            err(TrainSpec {
                group_column: Some("gone".into()),
                ..base(synth::FRAUD_TARGET)
            }),
            TrainError::UnknownColumn { .. }
        ));
        assert!(matches!(
            err(TrainSpec {
                features: Some(vec!["f01".into(), synth::FRAUD_TARGET.into()]),
                ..base(synth::FRAUD_TARGET)
            }),
            TrainError::InvalidSpec { .. }
        ));
        assert!(matches!(
            err(TrainSpec {
                test_fraction: 1.5,
                ..base(synth::FRAUD_TARGET)
            }),
            TrainError::InvalidSpec { .. }
        ));

        let one_class = Frame::new(vec![
            num("x", (0..50).map(f64::from).collect()),
            num("y", vec![1.0; 50]),
        ])
        .unwrap();
        assert!(matches!(
            train(&one_class, &base("y"), &mut keep_going),
            Err(TrainError::Target(TargetError::OneClass { .. }))
        ));

        let text_only = Frame::new(vec![
            Column {
                name: "note".into(),
                kind: ColumnKind::Text,
                data: ColumnData::Text(vec![Some("hello".into()); 50]),
            },
            num("k", vec![3.0; 50]),
            num("y", (0..50).map(|i| f64::from(i % 2)).collect()),
        ])
        .unwrap();
        let e = train(&text_only, &base("y"), &mut keep_going).unwrap_err();
        assert!(
            matches!(&e, TrainError::NoFeatures { excluded } if excluded.len() == 2),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("note (free text), k (constant)"),
            "{e}"
        );

        let tiny = Frame::new(vec![
            num("x", vec![1.0, 2.0, 3.0]),
            num("y", vec![0.0, 1.0, 0.0]),
        ])
        .unwrap();
        assert_eq!(
            train(&tiny, &base("y"), &mut keep_going).unwrap_err(),
            TrainError::TooFewRows {
                rows: 3,
                needed: 20
            }
        );
    }

    #[test]
    fn cancelling_stops_after_the_epoch() {
        let _heavy = crate::allocating();
        let frame = synth::fraud(2_000, 1);
        let mut epochs = 0;
        let e = train(&frame, &base(synth::FRAUD_TARGET), &mut |p| {
            epochs = p.epoch;
            ControlFlow::Break(())
        });
        assert_eq!(e.unwrap_err(), TrainError::Cancelled);
        assert_eq!(epochs, 1);
    }
}
