//! Serving benchmark: in-process single-row prediction and batch throughput of a tabular MLP,
//! beside PyTorch on the CPU (the peer, same architecture and thread count, measured in the same
//! run when `python3 -c "import torch"` works), and HTTP predictions through hearthd at a fixed
//! request rate on loopback. Run with `cargo bench -p hearthd --bench serving`.
//!
//! The load generator is in this file: an open-loop, fixed-rate schedule (request `i` is due at
//! `t0 + i / rate`), each request's latency counted from when it was due, not from when it was
//! sent, so a slow server cannot hide its queueing (the coordinated-omission correction wrk2
//! makes). Debian ships `wrk`, which is closed-loop (it only sends when an answer came back) and
//! so cannot hold a fixed rate; wrk2 is not packaged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_ml::model::Model;
use hearth_ml::serve::{self, BatchBuffers, Cell};
use hearth_ml::train::{ModelKind, TrainSpec, train};
use hearth_ml::{ColumnData, Frame, synth};
use hearth_tpm_testkit::Swtpm;
use serde_json::{Value, json};

const RATE: u64 = 5_000;
const SECONDS: u64 = 10;
const CONNECTIONS: usize = 32;

fn runtime(threads: usize, name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// CPU seconds (user + system) this process's threads have used, by thread name.
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ... field 14 utime, 15 stime (clock ticks, 100 per second).
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        *out.entry(comm).or_default() += (ticks(11) + ticks(12)) / 100.0;
    }
    out
}

fn start_hearthd(sw: &Swtpm, dir: &std::path::Path) -> (std::net::SocketAddr, String) {
    let mut config = hearthd::Config {
        profile: hearthd::Profile::Dev,
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..hearthd::Config::default()
    };
    config.tpm.tcti = sw.tcti();
    config.attestation.eventlog = None;
    config.attestation.runtime_log = None;
    config.log.filter = "warn".to_owned();
    let checked = config.check().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        runtime(2, "hearthd").block_on(async move {
            hearthd::daemon::run(checked, std::future::pending(), Some(tx))
                .await
                .unwrap();
        });
    });
    let ready = rx.blocking_recv().unwrap();
    (ready.addr, ready.setup_code.unwrap())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Frame row `r` as cells for `model`'s inputs.
fn cells(model: &Model, frame: &Frame, r: usize) -> Vec<Cell> {
    serve::inputs(model)
        .iter()
        .map(|(name, _)| match &frame.column(name).unwrap().data {
            ColumnData::Numeric(v) if v[r].is_finite() => Cell::Number(v[r]),
            ColumnData::Numeric(_) => Cell::Missing,
            ColumnData::Boolean(v) => v[r].map_or(Cell::Missing, Cell::Bool),
            ColumnData::Timestamp(v) => v[r].map_or(Cell::Missing, Cell::Timestamp),
            ColumnData::Text(v) => v[r].clone().map_or(Cell::Missing, Cell::Text),
        })
        .collect()
}

fn row_json(model: &Model, frame: &Frame, r: usize) -> Value {
    let mut obj = serde_json::Map::new();
    for ((name, _), c) in serve::inputs(model).iter().zip(cells(model, frame, r)) {
        let v = match c {
            Cell::Number(x) => json!(x),
            Cell::Bool(b) => json!(b),
            Cell::Text(s) => json!(s),
            Cell::Timestamp(t) => json!(t),
            Cell::Missing => Value::Null,
        };
        obj.insert((*name).to_owned(), v);
    }
    Value::Object(obj)
}

/// PyTorch's single-row and batch times for the same architecture (30 inputs after encoding
/// here, two hidden layers of 64, sigmoid out), one thread, no grad; `None` without torch.
fn pytorch(width: usize) -> Option<(f64, f64)> {
    let script = format!(
        r"
import time, torch
torch.set_num_threads(1)
m = torch.nn.Sequential(torch.nn.Linear({width},64), torch.nn.ReLU(), torch.nn.Linear(64,64), torch.nn.ReLU(), torch.nn.Linear(64,1), torch.nn.Sigmoid()).eval()
x = torch.randn(1,{width})
ts = []
with torch.inference_mode():
    for _ in range(2000): m(x)
    for _ in range(20000):
        t = time.perf_counter_ns(); m(x); ts.append(time.perf_counter_ns() - t)
    ts.sort()
    xb = torch.randn(100000,{width})
    m(xb)
    t = time.perf_counter(); m(xb); b = time.perf_counter() - t
print(ts[len(ts)//2] / 1000.0, 100000 / b)
"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn main() {
    // A tabular model: the fraud table (30 numeric columns), MLP 64-64.
    let frame = synth::fraud(20_000, 1);
    let spec = TrainSpec {
        target: synth::FRAUD_TARGET.into(),
        model: ModelKind::Mlp {
            hidden: vec![64, 64],
        },
        epochs: 2,
        threads: 1,
        ..TrainSpec::default()
    };
    let trained = train(&frame, &spec, &mut |_| ControlFlow::Continue(())).unwrap();
    let model = trained.model;
    let width = model.prep.width;
    let rows: Vec<Vec<Cell>> = (0..frame.rows())
        .map(|r| cells(&model, &frame, r))
        .collect();

    // In process, one row at a time (the Predictor an application embedding hearth-ml uses).
    let mut p = model.predictor();
    let mut times = Vec::with_capacity(rows.len() * 2);
    for pass in 0..3 {
        for r in &rows {
            let values: Vec<_> = r.iter().map(Cell::as_value).collect();
            let t = Instant::now();
            let out = p.predict(&values).unwrap()[0];
            let e = t.elapsed();
            std::hint::black_box(out);
            if pass > 0 {
                times.push(e);
            }
        }
    }
    times.sort();
    let single_p50 = percentile(&times, 0.5);
    let single_p99 = percentile(&times, 0.99);
    // One row through the endpoint's batch path (what a lone HTTP request runs).
    let mut buf = BatchBuffers::default();
    let mut times = Vec::with_capacity(rows.len());
    for r in &rows {
        let one = std::slice::from_ref(r);
        let t = Instant::now();
        std::hint::black_box(serve::predict_batch(&model, &[one], &mut buf).unwrap());
        times.push(t.elapsed());
    }
    times.sort();
    let batch1_p50 = percentile(&times, 0.5);
    // Batches: all 20k rows in one pass, best of 5.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(serve::predict_batch(&model, &[&rows[..]], &mut buf).unwrap());
        best = best.min(t.elapsed().as_secs_f64());
    }
    #[allow(clippy::cast_precision_loss)]
    let batch_rows_per_sec = rows.len() as f64 / best;
    let peer = pytorch(width);

    println!(
        "serving benchmark: fraud MLP {width}-64-64-1, one thread, 2-core machine shared by everything"
    );
    println!(
        "  hearth-ml Predictor, one row        p50 {single_p50:>8.2} us  p99 {single_p99:>8.2} us"
    );
    println!(
        "  hearth-ml endpoint path, one row    p50 {batch1_p50:>8.2} us (validation excluded)"
    );
    println!("  hearth-ml batch (20k rows)          {batch_rows_per_sec:>12.0} rows/s");
    match peer {
        Some((p50, rps)) => {
            println!("  PyTorch {width}-64-64-1, one row        p50 {p50:>8.2} us");
            println!("  PyTorch batch (100k rows)           {rps:>12.0} rows/s");
            println!("  single-row speed-up vs PyTorch: {:.1}x", p50 / single_p50);
        }
        None => println!("  PyTorch: not measured (python3 with torch not available)"),
    }

    // Over HTTPS through hearthd.
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let (addr, code) = start_hearthd(&sw, dir.path());
    let base = format!("https://{addr}");
    let rt = runtime(1, "loadgen");
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let mut csv = Vec::new();
    synth::write_csv(&frame, &mut csv).unwrap();
    let key = rt.block_on(async {
        let resp = client
            .post(format!("{base}/api/v1/setup"))
            .json(&json!({"code": code, "name": "bench", "password": "benchmark password 1"}))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = resp.json().await.unwrap();
        let body: Value = client
            .post(format!("{base}/api/v1/tokens"))
            .header("cookie", cookie)
            .header("x-csrf-token", body["csrf"].as_str().unwrap())
            .json(&json!({"label": "bench"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let t = body["token"].as_str().unwrap().to_owned();
        let post = |path: &str, body: Value| {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(&t)
                .json(&body)
                .send()
        };
        let resp = client
            .post(format!("{base}/api/v1/datasets/fraud"))
            .bearer_auth(&t)
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let job: Value = post(
            "/api/v1/jobs",
            json!({"dataset": "fraud", "target": synth::FRAUD_TARGET, "model": "mlp", "hidden": [64, 64], "epochs": 2}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let id = job["id"].as_str().unwrap().to_owned();
        loop {
            let j: Value = client
                .get(format!("{base}/api/v1/jobs/{id}"))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if j["state"] == "done" {
                break;
            }
            assert!(matches!(j["state"].as_str(), Some("queued" | "running")), "{j}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let name = format!("fraud-{}", synth::FRAUD_TARGET);
        let r = post(&format!("/api/v1/models/{name}/1/approve"), json!({})).await.unwrap();
        assert_eq!(r.status(), 200);
        let r = post("/api/v1/endpoints/fraud", json!({"model": format!("{name}@1")})).await.unwrap();
        assert_eq!(r.status(), 200);
        let k: Value = post("/api/v1/endpoint-keys", json!({"app": "bench", "endpoints": ["fraud"]}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        k["secret"].as_str().unwrap().to_owned()
    });
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..1000)
            .map(|r| serde_json::to_vec(&json!({"rows": [row_json(&model, &frame, r)]})).unwrap())
            .collect(),
    );
    let url = format!("{base}/v1/endpoints/fraud/predict");
    // CONNECTIONS workers, each with its own keep-alive connection (a client with one idle
    // slot), warmed first. A pacer thread (an OS thread: tokio's timers tick in whole
    // milliseconds, which would add up to 1 ms to every latency) hands request i to worker
    // i % CONNECTIONS at t0 + i / RATE; the worker sends it as soon as its connection is free and
    // counts its latency from the due time.
    let mut cpu_before = std::collections::BTreeMap::new();
    let (lat, errors, wall) = rt.block_on(async {
        let total = RATE * SECONDS;
        let interval = Duration::from_nanos(1_000_000_000 / RATE);
        let mut clients = Vec::new();
        for i in 0..CONNECTIONS {
            let c = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let r = c
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(bodies[i].clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            clients.push(c);
        }
        cpu_before = cpu_by_thread();
        let mut queues = Vec::new();
        let handles: Vec<_> = clients
            .into_iter()
            .map(|c| {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
                queues.push(tx);
                let (url, key, bodies) = (url.clone(), key.clone(), Arc::clone(&bodies));
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0u64;
                    while let Some((i, due)) = rx.recv().await {
                        let ok = match c
                            .post(&url)
                            .bearer_auth(&key)
                            .header("content-type", "application/json")
                            .body(bodies[usize::try_from(i % 1000).unwrap()].clone())
                            .send()
                            .await
                        {
                            Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        lat.push(due.elapsed());
                        errors += u64::from(!ok);
                    }
                    (lat, errors)
                })
            })
            .collect();
        let start = Instant::now();
        let pacer = std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                for i in 0..total {
                    let due = start + interval * u32::try_from(i).unwrap();
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    queues[usize::try_from(i).unwrap() % CONNECTIONS]
                        .send((i, due))
                        .unwrap();
                }
            })
            .unwrap();
        let mut lat = Vec::new();
        let mut errors = 0u64;
        for h in handles {
            let (l, e) = h.await.unwrap();
            lat.extend(l);
            errors += e;
        }
        pacer.join().unwrap();
        (lat, errors, start.elapsed())
    });
    let cpu_after = cpu_by_thread();
    let mut lat = lat;
    lat.sort();
    #[allow(clippy::cast_precision_loss)]
    let achieved = lat.len() as f64 / wall.as_secs_f64();
    println!(
        "  HTTPS predict, 1 row, fixed {RATE} req/s for {SECONDS} s (open loop, latency from due time):"
    );
    println!(
        "    achieved {achieved:.0} req/s, errors {errors}, p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    // Where the CPU went during the load, per request: hearthd's runtime threads and its
    // endpoint worker, and the load generator (TLS client and pacer), which shares the cores.
    #[allow(clippy::cast_precision_loss)]
    let per_request = |prefix: &str| {
        let used: f64 = cpu_after
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| v - cpu_before.get(k).copied().unwrap_or(0.0))
            .sum();
        used / lat.len() as f64 * 1e6
    };
    println!(
        "    CPU per request: hearthd {:.0} us, its endpoint worker {:.0} us, load generator {:.0} us (pacer {:.0} us)",
        per_request("hearthd"),
        per_request("hearth-serve"),
        per_request("loadgen"),
        per_request("pacer"),
    );
}
