//! The AI factory through the appliance: upload a dataset, see its quality and personal data,
//! pseudonymize it, train on it, follow and cancel jobs — all over HTTPS, all audited.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::harness::{Daemon, PASSWORD, claim, client, create_user, json, login, token};

/// A small learnable table: y depends on x1, x2 and the category; an email column is PII.
fn csv(rows: usize) -> String {
    let mut s = String::from("x1,x2,cat,email,y\n");
    let mut state = 0x2545_f491_4f6c_dd1du64;
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
        let shift = match cat {
            "a" => 0.5,
            "b" => -0.5,
            _ => 0.0,
        };
        let noise = next() - 0.5;
        let y = u8::from(x1 + 0.5 * x2 + shift + noise > 0.0);
        s.push_str(&format!("{x1:.4},{x2:.4},{cat},user{i}@example.com,{y}\n"));
    }
    s
}

async fn wait_finished(d: &Daemon, t: &str, id: &str) -> Value {
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
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish in 60 s; log:\n{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_report_pseudonymize_train_and_cancel() {
    let d = Daemon::start();
    let admin = claim(&d).await;
    create_user(&d, &admin, "olga", "operator").await;
    let olga = login(&d, "olga", PASSWORD).await;
    let t = token(&d, &olga).await;

    // Upload, streamed.
    let data = csv(3_000);
    let expected_sha = hex_sha256(data.as_bytes());
    let resp = client()
        .post(d.url("/api/v1/datasets/customers"))
        .bearer_auth(&t)
        .header(header::CONTENT_TYPE, "text/csv")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let (status, v1) = json(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["rows"], 3_000);
    assert_eq!(v1["sha256"], expected_sha);
    let kinds: Vec<(&str, &str)> = v1["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("x1", "numeric")) && kinds.contains(&("cat", "categorical")),
        "{kinds:?}"
    );

    // A malformed upload is refused with the line, and loses nothing.
    let resp = client()
        .post(d.url("/api/v1/datasets/customers"))
        .bearer_auth(&t)
        .body("a,b\n1,2\n3\n")
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 3"), "{body}");
    let (_, shown) = json(
        client()
            .get(d.url("/api/v1/datasets/customers"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1, "{shown}");

    // Quality and personal data.
    let (status, quality) = json(
        client()
            .get(d.url("/api/v1/datasets/customers/1/quality"))
            .query(&[("target", "y")])
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{quality}");
    assert!(quality.to_string().contains("x1"), "{quality}");
    let (_, pii) = json(
        client()
            .get(d.url("/api/v1/datasets/customers/1/pii"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(pii.to_string().contains("email"), "{pii}");

    // Pseudonymize: a new version with lineage; the original is unchanged.
    let (status, v2) = json(
        client()
            .post(d.url("/api/v1/datasets/customers/1/pseudonymize"))
            .bearer_auth(&t)
            .json(&json!({ "columns": ["email"] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["lineage"]["parent"]["version"], 1);
    assert_ne!(v2["sha256"], v1["sha256"]);

    // Train logistic regression on the pseudonymized version; it learns.
    let (status, job) = json(
        client()
            .post(d.url("/api/v1/jobs"))
            .bearer_auth(&t)
            .json(&json!({ "dataset": "customers", "target": "y", "model": "logreg", "epochs": 8, "group": "cat" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["version"], 2);
    let id = job["id"].as_str().unwrap().to_owned();
    let done = wait_finished(&d, &t, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(!done["progress"].as_array().unwrap().is_empty(), "{done}");
    assert!(done["model_blob"].is_string(), "{done}");
    let report = done["report"].to_string();
    assert!(
        report.contains("roc_auc") || report.contains("auc"),
        "{report}"
    );
    // An MLP job runs in mixed precision where the CPU has AVX-512 BF16 and says so; float32
    // can be asked for; a precision that does not exist is refused.
    let mixed = if hearth_ml::bf16::available() {
        "cpu (bf16 products)"
    } else {
        "cpu"
    };
    for (precision, backend) in [(None, mixed), (Some("f32"), "cpu")] {
        let mut spec = json!({ "dataset": "customers", "target": "y", "model": "mlp", "hidden": [64, 64], "epochs": 2 });
        if let Some(p) = precision {
            spec["precision"] = p.into();
        }
        let (status, job) = json(
            client()
                .post(d.url("/api/v1/jobs"))
                .bearer_auth(&t)
                .json(&spec)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let done = wait_finished(&d, &t, job["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["backend"], backend, "{done}");
        assert_eq!(done["report"]["backend"], backend, "{done}");
    }
    let resp = client()
        .post(d.url("/api/v1/jobs"))
        .bearer_auth(&t)
        .json(&json!({ "dataset": "customers", "target": "y", "model": "mlp", "precision": "fp8" }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // TF32 is the GPU's mixed precision: refused at submission where no GPU has tensor cores
    // (this daemon runs on the CPU backend).
    let (status, body) = json(
        client()
            .post(d.url("/api/v1/jobs"))
            .bearer_auth(&t)
            .json(&json!({ "dataset": "customers", "target": "y", "model": "mlp", "precision": "tf32" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("TF32 tensor cores"), "{body}");

    // The live event stream of a finished job: the snapshot, then it closes.
    let events = client()
        .get(d.url(&format!("/api/v1/jobs/{id}/events")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        events.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    let text = events.text().await.unwrap();
    assert!(text.starts_with("event: snapshot"), "{text}");
    // The loss curve renders.
    let svg = client()
        .get(d.url(&format!("/jobs/{id}/loss.svg")))
        .header(header::COOKIE, olga.cookie_header())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(svg.contains("<polyline"), "{svg}");

    // The console pages show the same.
    let page = |path: String| {
        let url = d.url(&path);
        let cookie = olga.cookie_header();
        async move {
            let resp = client()
                .get(url)
                .header(header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.text().await.unwrap()
        }
    };
    let html = page("/datasets/customers".into()).await;
    // The latest version is the pseudonymized one: nothing personal left in it.
    assert!(
        html.contains("No column looks like personal data"),
        "{html}"
    );
    assert!(html.contains("pseudonymized: email"), "{html}");
    let html = page("/jobs".into()).await;
    assert!(html.contains(&id), "{html}");
    let html = page(format!("/jobs/{id}")).await;
    assert!(html.contains("id=\"job-state\">done<"), "{html}");
    assert!(html.contains("src=\"/static/jobs.js\""), "{html}");

    // A long MLP job is cancelled while it runs.
    let big = csv(60_000);
    let resp = client()
        .post(d.url("/api/v1/datasets/big"))
        .bearer_auth(&t)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, job) = json(
        client()
            .post(d.url("/api/v1/jobs"))
            .bearer_auth(&t)
            .json(&json!({ "dataset": "big", "target": "y", "model": "mlp", "hidden": [256, 256], "epochs": 5000 }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let long = job["id"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let (_, j) = json(
            client()
                .get(d.url(&format!("/api/v1/jobs/{long}")))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if j["state"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = client()
        .post(d.url(&format!("/api/v1/jobs/{long}/cancel")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let end = wait_finished(&d, &t, &long).await;
    assert_eq!(end["state"], "cancelled", "{end}");

    // Everything is in the audit trail.
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
        "datasets.upload",
        "datasets.pseudonymize",
        "jobs.create",
        "jobs.run",
        "jobs.cancel",
    ] {
        assert!(
            export.contains(&format!("\"action\":\"{action}\"")),
            "{action}"
        );
    }
    let report = hearth_audit::verify_export(export.as_bytes(), None).unwrap();
    assert!(report.is_intact(), "{report:?}");
}

fn hex_sha256(data: &[u8]) -> String {
    let mut out = String::new();
    for b in ring::digest::digest(&ring::digest::SHA256, data).as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}
