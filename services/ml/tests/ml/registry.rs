// The model registry against a real encrypted store: versions, stages, crypto-erase on retire,
// signed cards and bundles (verified offline, refused after any byte changes), and serving's
// input validation and batched predictions against in-process ones.
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;

use hearth_ml::card::{self, SigningKey, verify_bundle};
use hearth_ml::model::{Model, Predictions};
use hearth_ml::registry::{self, DatasetRef, Draft, Lineage, RegistryError, Stage};
use hearth_ml::serve::{self, BatchBuffers, Cell};
use hearth_ml::train::{ModelKind, TrainSpec, Trained, train};
use hearth_ml::{ColumnKind, Frame, synth};
use hearth_store::{KeySource, Store, StoreOptions};

fn store(dir: &tempfile::TempDir) -> Store {
    Store::create(
        &dir.path().join("store"),
        KeySource::DevKeyFile {
            path: &dir.path().join("dev-root.key"),
        },
        &StoreOptions::default(),
    )
    .unwrap()
    .0
}

fn trained(frame: &Frame) -> Trained {
    let spec = TrainSpec {
        target: synth::PATIENT_TARGET.into(),
        model: ModelKind::Mlp { hidden: vec![8] },
        features: Some(
            [
                "age",
                "bmi",
                "sex",
                "region",
                "smoker",
                "diabetic",
                "last_visit",
            ]
            .map(String::from)
            .to_vec(),
        ),
        group_column: Some("sex".into()),
        epochs: 3,
        seed: 1,
        threads: 1,
        ..TrainSpec::default()
    };
    train(frame, &spec, &mut |_| ControlFlow::Continue(())).unwrap()
}

fn lineage() -> Lineage {
    Lineage {
        datasets: vec![DatasetRef {
            name: "patients".into(),
            version: 2,
            sha256: "ab".repeat(32),
            rows: 600,
            transform: Some("pseudonymized: patient_id".into()),
        }],
        job: "0123456789abcdef".into(),
        trained_by: "olga".into(),
        hyperparameters: serde_json::json!({"model": "mlp", "hidden": [8], "epochs": 3}),
        backend: "cpu".into(),
        pcr11: Some("00".repeat(32)),
        hearth_version: "0.1.0".into(),
        trained_unix_ms: 1,
    }
}

fn register(store: &Store, key: &SigningKey, t: &Trained) -> registry::ModelVersion {
    let blob = store.put_blob(&t.model.to_json()).unwrap();
    registry::register(
        store,
        key,
        Draft {
            name: "patients-risk",
            blob: blob.id,
            model: &t.model,
            report: serde_json::to_value(&t.report).unwrap(),
            lineage: lineage(),
        },
    )
    .unwrap()
}

#[test]
fn versions_move_through_stages_and_retiring_erases_the_weights() {
    let _heavy = crate::allocating();
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let key = SigningKey::from_store(&store).unwrap();
    // The key is derived, not random: the same store gives the same key.
    assert_eq!(
        key.public_key(),
        SigningKey::from_store(&store).unwrap().public_key()
    );
    let t = trained(&synth::patient_risk(600, 3));
    let v1 = register(&store, &key, &t);
    let v2 = register(&store, &key, &t);
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.stage, Stage::Candidate);
    assert_eq!(v1.inputs.len(), 7);
    assert!(card::signature_valid(
        &key.public_key(),
        v1.card.as_bytes(),
        &hex::decode(&v1.card_signature).unwrap()
    ));
    let card: serde_json::Value = serde_json::from_str(&v1.card).unwrap();
    assert_eq!(card["bomFormat"], "CycloneDX");
    assert_eq!(
        card["components"][0]["type"], "machine-learning-model",
        "{card}"
    );
    assert_eq!(
        card["components"][0]["modelCard"]["modelParameters"]["datasets"][0]["hashes"][0]["content"],
        "ab".repeat(32)
    );

    // Retiring needs nothing but a live version; approving needs a candidate.
    let a = registry::approve(&store, "patients-risk", 1, "root").unwrap();
    assert_eq!(
        (a.stage, a.approved_by.as_deref()),
        (Stage::Approved, Some("root"))
    );
    assert!(matches!(
        registry::approve(&store, "patients-risk", 1, "root"),
        Err(RegistryError::Stage { .. })
    ));
    let model = registry::load(&store, &a).unwrap();
    assert_eq!(model, t.model);

    let r = registry::retire(&store, "patients-risk", 1, "root").unwrap();
    assert_eq!(r.stage, Stage::Retired);
    assert!(matches!(
        registry::load(&store, &r),
        Err(RegistryError::Stage { .. })
    ));
    // The blob's key is gone: reading it directly fails too.
    store.read_blob(r.blob_id().unwrap()).unwrap_err();
    registry::retire(&store, "patients-risk", 1, "root").unwrap_err();
    // The other version is untouched.
    let v2 = registry::get(&store, "patients-risk", 2).unwrap();
    assert_eq!(registry::load(&store, &v2).unwrap(), t.model);
    assert!(matches!(
        registry::get(&store, "patients-risk", 9),
        Err(RegistryError::NotFound { .. })
    ));
}

#[test]
fn bundles_verify_offline_and_fail_after_any_byte_changes() {
    let _heavy = crate::allocating();
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let key = SigningKey::from_store(&store).unwrap();
    // A small model, so that every byte can be flipped in turn.
    let frame = synth::patient_risk(300, 5);
    let spec = TrainSpec {
        target: synth::PATIENT_TARGET.into(),
        model: ModelKind::LogReg,
        features: Some(vec!["age".into(), "smoker".into()]),
        epochs: 2,
        threads: 1,
        ..TrainSpec::default()
    };
    let t = train(&frame, &spec, &mut |_| ControlFlow::Continue(())).unwrap();
    let v = register(&store, &key, &t);
    let weights = registry::weights(&store, &v).unwrap();
    let bundle = card::encode_bundle(&v, &weights, &key);

    let verdict = verify_bundle(&bundle, Some(&key.public_key_sha256())).unwrap();
    assert!(verdict.trusted(), "{verdict:?}");
    assert_eq!(verdict.model.as_deref(), Some("patients-risk@1"));
    assert_eq!(verdict.checks.len(), 7);
    let other = SigningKey::from_seed(&[7; 32]);
    let pinned = verify_bundle(&bundle, Some(&other.public_key_sha256())).unwrap();
    assert!(!pinned.trusted());

    for i in 0..bundle.len() {
        let mut changed = bundle.clone();
        changed[i] ^= 0x01;
        if let Ok(v) = verify_bundle(&changed, None) {
            assert!(!v.trusted(), "byte {i} changed, still trusted: {v:?}");
        }
    }
    let mut longer = bundle.clone();
    longer.push(b'\n');
    verify_bundle(&longer, None).unwrap_err();
    verify_bundle(&bundle[..bundle.len() - 1], None).unwrap_err();

    // Re-signed by another key, the bundle is internally consistent, but the card's signature
    // (by the appliance) no longer matches.
    let forged = card::encode_bundle(&v, &weights, &other);
    let verdict = verify_bundle(&forged, None).unwrap();
    assert!(!verdict.trusted());
    assert!(
        verdict
            .checks
            .iter()
            .any(|c| c.name == "card-signature" && !c.passed)
    );
}

#[test]
fn rows_are_validated_against_the_inputs() {
    let _heavy = crate::allocating();
    let inputs = [
        ("age", ColumnKind::Numeric),
        ("sex", ColumnKind::Categorical),
        ("smoker", ColumnKind::Boolean),
    ];
    let rows = serve::parse_rows(
        &inputs,
        br#"{"rows": [{"age": 40, "sex": "F", "smoker": true}, [41.5, null, false], {"age": 3}]}"#,
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Cell::Number(40.0), Cell::Text("F".into()), Cell::Bool(true)],
            vec![Cell::Number(41.5), Cell::Missing, Cell::Bool(false)],
            vec![Cell::Number(3.0), Cell::Missing, Cell::Missing],
        ]
    );
    let err = |body: &str| serve::parse_rows(&inputs, body.as_bytes()).unwrap_err();
    let e = err(r#"{"rows": [{"age": "old"}]}"#);
    assert_eq!((e.row, e.field.as_deref()), (Some(0), Some("age")), "{e}");
    assert_eq!(
        e.to_string(),
        "row 0, field \"age\": expected a number, found a string"
    );
    let e = err(r#"{"rows": [{"age": 1}, {"weight": 1}]}"#);
    assert_eq!(
        (e.row, e.field.as_deref()),
        (Some(1), Some("weight")),
        "{e}"
    );
    let e = err(r#"{"rows": [[1, "F"]]}"#);
    assert!(e.problem.contains("2 values; the model takes 3"), "{e}");
    let e = err(r#"{"rows": [{"smoker": "yes"}]}"#);
    assert_eq!(e.field.as_deref(), Some("smoker"));
    assert!(err(r#"{"rows": []}"#).problem.contains("1 to"));
    assert!(err("[1]").problem.contains("rows"));
    assert!(err("{").problem.contains("not JSON"));
    assert_eq!(err(r#"{"rows": [1]}"#).row, Some(0));
}

#[test]
fn batched_predictions_equal_in_process_ones() {
    let _heavy = crate::allocating();
    let frame = synth::patient_risk(600, 3);
    let t = trained(&frame);
    let model = Model::from_json(&t.model.to_json()).unwrap();
    let direct = model.predict_with(&frame, 1).unwrap();
    let Predictions::Binary { probabilities, .. } = &direct else {
        panic!("binary");
    };
    // Every frame row as a request row, split into requests of different sizes.
    let inputs = serve::inputs(&model);
    let rows: Vec<Vec<Cell>> = (0..frame.rows())
        .map(|r| {
            inputs
                .iter()
                .map(|(name, _)| {
                    let c = frame.column(name).unwrap();
                    match &c.data {
                        hearth_ml::ColumnData::Numeric(v) => {
                            if v[r].is_finite() {
                                Cell::Number(v[r])
                            } else {
                                Cell::Missing
                            }
                        }
                        hearth_ml::ColumnData::Boolean(v) => v[r].map_or(Cell::Missing, Cell::Bool),
                        hearth_ml::ColumnData::Timestamp(v) => {
                            v[r].map_or(Cell::Missing, Cell::Timestamp)
                        }
                        hearth_ml::ColumnData::Text(v) => {
                            v[r].clone().map_or(Cell::Missing, Cell::Text)
                        }
                    }
                })
                .collect()
        })
        .collect();
    let (a, rest) = rows.split_at(1);
    let (b, c) = rest.split_at(250);
    let mut buf = BatchBuffers::default();
    let out = serve::predict_batch(&model, &[a, b, c], &mut buf).unwrap();
    assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [1, 250, 349]);
    let served: Vec<f64> = out
        .iter()
        .flatten()
        .map(|p| p.probabilities.as_ref().unwrap()[1])
        .collect();
    for (i, (s, d)) in served.iter().zip(probabilities).enumerate() {
        assert!((s - d).abs() < 1e-6, "row {i}: served {s}, in-process {d}");
    }
    // And one row alone through the single-row predictor agrees too.
    let mut p = model.predictor();
    let values: Vec<_> = rows[7].iter().map(Cell::as_value).collect();
    assert!((p.predict(&values).unwrap()[0] - served[7]).abs() < 1e-6);
}
