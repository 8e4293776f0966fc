//! The model registry, serving and residency through the appliance: training registers
//! versions, admins approve and retire them, endpoints serve approved ones to applications
//! with scoped keys (validated, micro-batched, switchable without dropped requests), signed
//! bundles leave and verify offline, raw data stays unless the policy and pseudonymization
//! allow it — all audited.

use std::time::Duration;

use hearth_ml::card::verify_bundle;
use hearth_ml::model::Model;
use hearth_ml::prep::Value as In;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::harness::{Daemon, PASSWORD, claim, client, create_user, json, login, token};

/// `n` rows of a learnable table (the same generator as ml.rs, smaller).
pub fn csv(rows: usize) -> String {
    let mut s = String::from("x1,x2,cat,email,y\n");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        #[allow(clippy::cast_precision_loss)]
        let v = (state >> 11) as f64 / (1u64 << 53) as f64;
        v
    };
    for i in 0..rows {
        let x1 = next() * 4.0 - 2.0;
        let x2 = next() * 4.0 - 2.0;
        let cat = ["a", "b", "c"][i % 3];
        let y = u8::from(x1 + 0.5 * x2 + if cat == "a" { 0.5 } else { 0.0 } + next() - 0.5 > 0.0);
        s.push_str(&format!("{x1:.4},{x2:.4},{cat},user{i}@example.com,{y}\n"));
    }
    s
}

/// A request row for input `i` (x1, x2, cat vary with `i`).
pub fn row(i: usize) -> Value {
    #[allow(clippy::cast_precision_loss)]
    let f = i as f64;
    let cat = ["a", "b", "c"][i % 3];
    json!({"x1": (f * 0.37).sin() * 2.0, "x2": (f * 0.11).cos() * 2.0, "cat": cat})
}

/// The in-process prediction (positive class probability) of `row` by `model`.
fn in_process(model: &Model, row: &Value) -> f64 {
    let values: Vec<In<'_>> = model
        .inputs()
        .map(|name| match &row[name] {
            Value::Number(n) => In::Number(n.as_f64().unwrap()),
            Value::String(s) => In::Text(s.as_str()),
            Value::Null => In::Missing,
            other => panic!("{other}"),
        })
        .collect();
    model.predictor().predict(&values).unwrap()[0]
}

pub async fn wait_done(d: &Daemon, t: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (_, job) = json(
            client()
                .get(d.url(&format!("/api/v1/jobs/{id}")))
                .bearer_auth(t)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            assert_eq!(job["state"], "done", "{job}");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish; log:\n{}", d.log());
}

async fn call(
    d: &Daemon,
    method: &str,
    path: &str,
    t: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), d.url(path))
        .bearer_auth(t);
    if let Some(b) = body {
        req = req.json(&b);
    }
    json(req.send().await.unwrap()).await
}

async fn predict(d: &Daemon, key: &str, endpoint: &str, body: &Value) -> (StatusCode, Value) {
    call(
        d,
        "POST",
        &format!("/v1/endpoints/{endpoint}/predict"),
        key,
        Some(body.clone()),
    )
    .await
}

/// `POST /api/v1/endpoints/{endpoint}` serving `model` (NAME@VERSION).
async fn deploy(d: &Daemon, token: &str, endpoint: &str, model: &str) -> (StatusCode, Value) {
    call(
        d,
        "POST",
        &format!("/api/v1/endpoints/{endpoint}"),
        token,
        Some(json!({ "model": model })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_serving_and_residency() {
    let mut d = Daemon::start();
    let admin = claim(&d).await;
    create_user(&d, &admin, "olga", "operator").await;
    let olga = login(&d, "olga", PASSWORD).await;
    let t = token(&d, &olga).await;
    let a = token(&d, &admin).await;

    // Data in, pseudonymized copy, two training runs: two candidate versions.
    let data = csv(1_500);
    let resp = client()
        .post(d.url("/api/v1/datasets/customers"))
        .bearer_auth(&t)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let (status, v1) = json(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    let (status, _) = call(
        &d,
        "POST",
        "/api/v1/datasets/customers/1/pseudonymize",
        &t,
        Some(json!({"columns": ["email"]})),
    )
    .await;
    assert!(status.is_success(), "{status}");
    for seed in [1, 2] {
        let (status, job) = call(&d, "POST", "/api/v1/jobs", &t, Some(json!({"dataset": "customers", "version": 1, "target": "y", "model": "logreg", "epochs": 40, "seed": seed}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let done = wait_done(&d, &t, job["id"].as_str().unwrap()).await;
        assert_eq!(done["model"], format!("customers-y@{seed}"), "{done}");
    }
    let (_, list) = call(&d, "GET", "/api/v1/models", &t, None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["stage"], "candidate");
    let (status, m1) = call(&d, "GET", "/api/v1/models/customers-y/1", &t, None).await;
    assert_eq!(status, StatusCode::OK, "{m1}");
    // Lineage: the dataset version and its digest, the backend, PCR 11, the hearth version.
    let l = &m1["lineage"];
    assert_eq!(l["datasets"][0]["name"], "customers");
    assert_eq!(l["datasets"][0]["version"], 1);
    assert_eq!(l["datasets"][0]["sha256"], v1["sha256"]);
    assert_eq!(l["backend"], "cpu");
    assert_eq!(l["pcr11"].as_str().unwrap().len(), 64, "{l}");
    assert_eq!(l["hearth_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(l["hyperparameters"]["model"], "logreg");
    assert!(
        m1["report"]["metrics"]["accuracy"].as_f64().unwrap() > 0.55,
        "{m1}"
    );
    assert!(m1["report"]["importance"].as_array().is_some());
    let card: Value = serde_json::from_str(m1["card"].as_str().unwrap()).unwrap();
    assert_eq!(card["components"][0]["type"], "machine-learning-model");

    // Only admins approve; only approved versions deploy.
    let (status, _) = call(&d, "POST", "/api/v1/models/customers-y/1/approve", &t, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = deploy(&d, &t, "churn", "customers-y@1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for v in [1, 2] {
        let (status, body) = call(
            &d,
            "POST",
            &format!("/api/v1/models/customers-y/{v}/approve"),
            &a,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stage"], "approved");
    }
    let (status, ep) = deploy(&d, &t, "churn", "customers-y@1").await;
    assert_eq!(status, StatusCode::OK, "{ep}");
    assert_eq!(ep["version"], 1);

    // Keys: per application, scoped to endpoints, shown once.
    let (status, k) = call(
        &d,
        "POST",
        "/api/v1/endpoint-keys",
        &t,
        Some(json!({"app": "crm", "endpoints": ["churn"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{k}");
    let key = k["secret"].as_str().unwrap().to_owned();
    let key_id = k["key"]["id"].as_str().unwrap().to_owned();
    let (_, other) = call(
        &d,
        "POST",
        "/api/v1/endpoint-keys",
        &t,
        Some(json!({"app": "bi", "endpoints": ["elsewhere"]})),
    )
    .await;
    let other = other["secret"].as_str().unwrap().to_owned();
    let (_, keys) = call(&d, "GET", "/api/v1/endpoint-keys", &t, None).await;
    assert!(
        !keys.to_string().contains(&key[20..]),
        "the secret is not listed"
    );

    // A key with a rate limit: a second's worth of requests, then 429 with Retry-After until
    // its allowance refills; other keys are not affected.
    let (status, body) = call(
        &d,
        "POST",
        "/api/v1/endpoint-keys",
        &t,
        Some(json!({"app": "batch", "endpoints": ["churn"], "requests_per_second": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, limited) = call(
        &d,
        "POST",
        "/api/v1/endpoint-keys",
        &t,
        Some(json!({"app": "batch", "endpoints": ["churn"], "requests_per_second": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{limited}");
    assert_eq!(limited["key"]["requests_per_second"], 1);
    let limited = limited["secret"].as_str().unwrap().to_owned();
    let (status, out) = predict(&d, &limited, "churn", &json!({"rows": [row(1)]})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    // The next ones within the second are refused (a slow machine may let one more through
    // per second that passes).
    let started = std::time::Instant::now();
    let mut passed = 0;
    let refused = loop {
        let resp = client()
            .post(d.url("/v1/endpoints/churn/predict"))
            .bearer_auth(&limited)
            .json(&json!({"rows": [row(1)]}))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            break resp;
        }
        assert_eq!(resp.status(), StatusCode::OK);
        passed += 1;
        assert!(passed < 50, "no request was refused");
        assert!(
            f64::from(passed) <= 1.0 + started.elapsed().as_secs_f64(),
            "{passed} requests passed a limit of 1 per second"
        );
    };
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let text = refused.text().await.unwrap();
    assert!(text.contains("limited to 1 requests per second"), "{text}");
    let (status, _) = predict(&d, &key, "churn", &json!({"rows": [row(1)]})).await;
    assert_eq!(status, StatusCode::OK, "the unlimited key is not held back");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, out) = predict(&d, &limited, "churn", &json!({"rows": [row(1)]})).await;
    assert_eq!(status, StatusCode::OK, "refilled: {out}");

    // The model in-process, from a signed bundle (admins only).
    let resp = client()
        .post(d.url("/api/v1/models/customers-y/1/export"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = client()
        .post(d.url("/api/v1/models/customers-y/1/export"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bundle = resp.bytes().await.unwrap().to_vec();
    let parsed = hearth_ml::card::parse_bundle(&bundle).unwrap();
    let model = Model::from_json(&parsed.weights).unwrap();

    // Served predictions equal in-process ones; objects and arrays both work.
    let rows: Vec<Value> = (0..40).map(row).collect();
    let (status, out) = predict(&d, &key, "churn", &json!({"rows": rows})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["version"], 1);
    for (i, r) in rows.iter().enumerate() {
        let served = out["predictions"][i]["probabilities"][1].as_f64().unwrap();
        let local = in_process(&model, r);
        assert!(
            (served - local).abs() < 1e-6,
            "row {i}: served {served}, in-process {local}"
        );
    }
    let inputs: Vec<&str> = model.inputs().collect();
    let array: Vec<Value> = inputs.iter().map(|n| rows[3][*n].clone()).collect();
    let (status, out) = predict(&d, &key, "churn", &json!({"rows": [array]})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let p = out["predictions"][0]["probabilities"][1].as_f64().unwrap();
    assert!((p - in_process(&model, &rows[3])).abs() < 1e-6);

    // Validation: 422 naming the field and the problem.
    let (status, body) = predict(&d, &key, "churn", &json!({"rows": [{"x1": "high"}]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        "row 0, field \"x1\": expected a number, found a string"
    );
    let (status, body) = predict(&d, &key, "churn", &json!({"rows": [{"x9": 1}]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("\"x9\""), "{body}");

    // Scopes: no key, a user's token, another endpoint's key, a made-up key.
    let resp = client()
        .post(d.url("/v1/endpoints/churn/predict"))
        .json(&json!({"rows": [row(0)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = predict(&d, &t, "churn", &json!({"rows": [row(0)]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = predict(&d, &other, "churn", &json!({"rows": [row(0)]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let forged = format!("{}x", &key[..key.len() - 1]);
    let (status, _) = predict(&d, &forged, "churn", &json!({"rows": [row(0)]})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Concurrent clients each get their own answers, while the endpoint switches to version 2
    // and back (no request dropped).
    let m2 = {
        let resp = client()
            .post(d.url("/api/v1/models/customers-y/2/export"))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        Model::from_json(
            &hearth_ml::card::parse_bundle(&resp.bytes().await.unwrap())
                .unwrap()
                .weights,
        )
        .unwrap()
    };
    let mut tasks = Vec::new();
    for c in 0..16usize {
        let key = key.clone();
        let url = d.url("/v1/endpoints/churn/predict");
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for r in 0..15usize {
                let i = c * 100 + r;
                let rows: Vec<Value> = (i..i + 1 + r % 3).map(row).collect();
                let resp = client()
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"rows": rows}))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = json(resp).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                answers.push((rows, body));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, ep) = deploy(&d, &t, "churn", "customers-y@2").await;
    assert_eq!(status, StatusCode::OK, "{ep}");
    let mut versions = std::collections::BTreeSet::new();
    for task in tasks {
        for (rows, body) in task.await.unwrap() {
            let version = body["version"].as_u64().unwrap();
            versions.insert(version);
            let m = if version == 1 { &model } else { &m2 };
            assert_eq!(body["predictions"].as_array().unwrap().len(), rows.len());
            for (r, p) in rows.iter().zip(body["predictions"].as_array().unwrap()) {
                let served = p["probabilities"][1].as_f64().unwrap();
                assert!((served - in_process(m, r)).abs() < 1e-6, "{body}");
            }
        }
    }
    assert!(versions.contains(&2), "{versions:?}");
    let (_, out) = predict(&d, &key, "churn", &json!({"rows": [row(1)]})).await;
    assert_eq!(out["version"], 2);
    let (status, ep) = call(&d, "POST", "/api/v1/endpoints/churn/rollback", &t, None).await;
    assert_eq!(status, StatusCode::OK, "{ep}");
    let (_, out) = predict(&d, &key, "churn", &json!({"rows": [row(1)]})).await;
    assert_eq!(out["version"], 1);

    // Traffic and latency per endpoint, in /metrics and the API.
    let metrics = client()
        .get(d.url("/metrics"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hearth_endpoint_requests_total{endpoint=\"churn\",code=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_endpoint_latency_seconds_bucket{endpoint=\"churn\",le=\"0.001\"}")
    );
    assert!(metrics.contains("hearth_endpoint_requests_total{endpoint=\"churn\",code=\"422\"} 2"));
    assert!(metrics.contains("hearth_endpoint_requests_total{endpoint=\"churn\",code=\"429\"} 1"));
    let (_, eps) = call(&d, "GET", "/api/v1/endpoints", &t, None).await;
    assert!(eps[0]["requests"].as_u64().unwrap() >= 240, "{eps}");
    assert!(eps[0]["p99_seconds"].as_f64().is_some());

    // The bundle verifies offline against the key the appliance's attestation binds, and any
    // changed byte breaks it.
    let (status, ev) = json(
        client()
            .get(d.url("/api/v1/attestation"))
            .query(&[("nonce", "a1b2c3d4")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ev}");
    let evidence = hearth_attest::Evidence::from_json(ev.to_string().as_bytes()).unwrap();
    let key_sha: [u8; 32] = evidence
        .model_signing_key_sha256
        .clone()
        .unwrap()
        .try_into()
        .unwrap();
    let attest = hearth_attest::quote::Attest::parse(&evidence.quote).unwrap();
    assert_eq!(
        attest.extra_data,
        hearth_attest::Evidence::qualifying_data_with(
            &evidence.nonce,
            evidence.tls_spki_sha256.as_deref(),
            evidence.audit_head.as_deref(),
            Some(&key_sha),
        ),
        "the quote covers the model-signing key"
    );
    let verdict = verify_bundle(&bundle, Some(&key_sha)).unwrap();
    assert!(verdict.trusted(), "{verdict:?}");
    for i in (0..bundle.len()).step_by(97) {
        let mut changed = bundle.clone();
        changed[i] ^= 0x20;
        assert!(
            !verify_bundle(&changed, Some(&key_sha)).is_ok_and(|v| v.trusted()),
            "byte {i}"
        );
    }

    // Residency: raw data stays in by default.
    let (status, body) = call(&d, "POST", "/api/v1/datasets/customers/2/export", &a, None).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("egress policy"),
        "{body}"
    );
    // With the policy open, only a pseudonymized version, and only to an admin.
    d.extra_config = "\n[egress]\ndataset_export = true\n".into();
    d.restart();
    let (status, body) = call(&d, "POST", "/api/v1/datasets/customers/1/export", &a, None).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("pseudonymized"),
        "{body}"
    );
    let (status, _) = call(&d, "POST", "/api/v1/datasets/customers/2/export", &t, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = client()
        .post(d.url("/api/v1/datasets/customers/2/export"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let exported = resp.text().await.unwrap();
    assert!(exported.starts_with("x1,x2,cat,email,y") && !exported.contains("@example.com"));

    // After the restart the endpoint serves again (state from the store), until retired.
    let (status, out) = predict(&d, &key, "churn", &json!({"rows": [row(2)]})).await;
    assert_eq!(
        (status, out["version"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{out}"
    );
    let (status, _) = call(&d, "POST", "/api/v1/models/customers-y/1/retire", &t, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = call(&d, "POST", "/api/v1/models/customers-y/1/retire", &a, None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["stage"], "retired");
    let (status, body) = predict(&d, &key, "churn", &json!({"rows": [row(2)]})).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    let (status, _) = call(&d, "POST", "/api/v1/models/customers-y/1/export", &a, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = deploy(&d, &t, "churn", "customers-y@1").await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The weights' file is gone and its key deleted: nothing on disk carries the blob id.
    let blob = r["blob"].as_str().unwrap().to_owned();
    let mut stack = vec![d.data_dir()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                assert!(
                    !e.file_name().to_string_lossy().contains(&blob),
                    "{:?}",
                    e.path()
                );
            }
        }
    }
    // Version 2 still serves after a deploy; revoking the key stops the application.
    let (status, _) = deploy(&d, &t, "churn", "customers-y@2").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = predict(&d, &key, "churn", &json!({"rows": [row(2)]})).await;
    assert_eq!(status, StatusCode::OK);
    // Deleting the endpoint stops it at once; the name can be deployed again, and the keys
    // scoped to it (left as they were) call the new one.
    let (status, gone) = call(&d, "DELETE", "/api/v1/endpoints/churn", &t, None).await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone["model"], "customers-y");
    assert_eq!(gone["version"], 2);
    let (status, out) = predict(&d, &key, "churn", &json!({"rows": [row(2)]})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{out}");
    let (_, eps) = call(&d, "GET", "/api/v1/endpoints", &t, None).await;
    assert_eq!(eps, json!([]));
    let (status, _) = call(&d, "DELETE", "/api/v1/endpoints/churn", &t, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = deploy(&d, &t, "churn", "customers-y@2").await;
    assert_eq!(status, StatusCode::OK);
    let (status, out) = predict(&d, &key, "churn", &json!({"rows": [row(2)]})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, _) = call(
        &d,
        "DELETE",
        &format!("/api/v1/endpoint-keys/{key_id}"),
        &t,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = predict(&d, &key, "churn", &json!({"rows": [row(2)]})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The console pages (sessions did not survive the restart).
    let olga = login(&d, "olga", PASSWORD).await;
    let admin = login(&d, crate::harness::ADMIN, PASSWORD).await;
    for (path, needle) in [
        ("/models", "customers-y@2"),
        ("/models/customers-y/1", "weights crypto-erased"),
        ("/models/customers-y/2", "machine-learning-model"),
        ("/endpoints", "churn"),
    ] {
        let resp = client()
            .get(d.url(path))
            .header(header::COOKIE, olga.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(needle), "{path}: {html}");
    }

    // All of it audited.
    let export = client()
        .get(d.url("/api/v1/audit/export"))
        .header(header::COOKIE, admin.cookie_header())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for action in [
        "models.register",
        "models.approve",
        "models.retire",
        "models.export",
        "endpoints.deploy",
        "endpoints.rollback",
        "endpoints.delete",
        "keys.create",
        "keys.revoke",
        "datasets.export",
    ] {
        assert!(
            export.contains(&format!("\"action\":\"{action}\"")),
            "{action}"
        );
    }
}
