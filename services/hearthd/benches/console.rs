//! Console benchmark: authenticated `GET /api/v1/status` under load from `wrk` on loopback,
//! beside the floor of the same stack (TLS + hyper + axum answering a constant), and login
//! latency beside the argon2id verification it is made of. Run with `just bench`.
//!
//! Needs `wrk` (Debian package) and swtpm. Both servers run in this process, each on its own
//! two-thread runtime; wrk runs as a separate process with 2 threads and 32 connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_tpm_testkit::Swtpm;
use serde_json::json;

const SECONDS: u32 = 10;
const CONNECTIONS: u32 = 32;
const LOGINS: usize = 30;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// hearthd in this process; returns its address and setup code.
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
        runtime().block_on(async move {
            hearthd::daemon::run(checked, std::future::pending(), Some(tx))
                .await
                .unwrap();
        });
    });
    let ready = rx.blocking_recv().unwrap();
    (ready.addr, ready.setup_code.unwrap())
}

/// The floor: the same TLS, hyper and axum stack answering a constant JSON body.
fn start_floor() -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut server = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .unwrap();
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
            let router = axum::Router::new().route(
                "/status",
                axum::routing::get(|| async { axum::Json(json!({"status": "ok"})) }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let router = router.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(router),
                        )
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
}

fn parse_ms(text: &str) -> f64 {
    let t = text.trim();
    let (num, factor) = if let Some(n) = t.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn wrk(url: &str, token: Option<&str>) -> Load {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{SECONDS}s"),
        "--latency",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk is installed (apt install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    Load {
        requests_per_sec: field("Requests/sec:")
            .unwrap_or_default()
            .parse()
            .unwrap_or(f64::NAN),
        p50_ms: parse_ms(&field("50%").unwrap_or_default()),
        p99_ms: parse_ms(&field("99%").unwrap_or_default()),
        errors,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let (addr, code) = start_hearthd(&sw, dir.path());
    let floor = start_floor();
    let rt = runtime();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("https://{addr}");
    let password = "benchmark password 1";
    let token = rt.block_on(async {
        let resp = client
            .post(format!("{base}/api/v1/setup"))
            .json(&json!({"code": code, "name": "bench", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = resp.json().await.unwrap();
        let resp = client
            .post(format!("{base}/api/v1/tokens"))
            .header("cookie", cookie)
            .header("x-csrf-token", body["csrf"].as_str().unwrap())
            .json(&json!({"label": "bench"}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    });

    println!(
        "console benchmark: wrk -t2 -c{CONNECTIONS} -d{SECONDS}s on loopback, TLS 1.3, 2 cores shared by client and server"
    );
    let floor_load = wrk(&format!("https://{floor}/status"), None);
    let status = wrk(&format!("{base}/api/v1/status"), Some(&token));
    let health = wrk(&format!("{base}/healthz"), None);
    let floor_again = wrk(&format!("https://{floor}/status"), None);
    for (name, l) in [
        ("floor: TLS+hyper+axum constant JSON", &floor_load),
        ("hearthd GET /api/v1/status (bearer token)", &status),
        ("hearthd GET /healthz (no auth)", &health),
        ("floor again", &floor_again),
    ] {
        println!(
            "  {name:<44} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  {}",
            l.requests_per_sec, l.p50_ms, l.p99_ms, l.errors
        );
    }
    let floor_mean = (floor_load.requests_per_sec + floor_again.requests_per_sec) / 2.0;
    println!(
        "  status throughput = {:.2} x the floor",
        status.requests_per_sec / floor_mean
    );
    assert!(
        status.errors.is_empty(),
        "status requests failed: {}",
        status.errors
    );

    // Login latency, sequential, beside the argon2id verification inside it.
    let mut logins = Vec::with_capacity(LOGINS);
    rt.block_on(async {
        for _ in 0..LOGINS {
            let t = Instant::now();
            let resp = client
                .post(format!("{base}/api/v1/login"))
                .json(&json!({"name": "bench", "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            logins.push(t.elapsed());
        }
    });
    let hash = hearth_console::auth::hash_password(password).unwrap();
    let mut verifies = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let t = Instant::now();
        assert!(hearth_console::auth::verify_password(password, &hash));
        verifies.push(t.elapsed());
    }
    logins.sort();
    verifies.sort();
    println!(
        "  login (POST /api/v1/login, {LOGINS} sequential)        p50 {:>7.2} ms  p99 {:>7.2} ms",
        percentile(&logins, 0.5),
        percentile(&logins, 0.99)
    );
    println!(
        "  argon2id verify alone (m=19 MiB, t=2, p=1)         p50 {:>7.2} ms  p99 {:>7.2} ms",
        percentile(&verifies, 0.5),
        percentile(&verifies, 0.99)
    );
    println!(
        "  login overhead beyond argon2id: {:.2} ms at p50",
        percentile(&logins, 0.5) - percentile(&verifies, 0.5)
    );
}
