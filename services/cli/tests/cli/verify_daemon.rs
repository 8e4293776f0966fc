//! An auditor's verbs against the real appliance daemon (hearthd, run in this process with its
//! own swtpm and data directory): `hearth verify https://…` trusts it with a reference made from
//! its own PCRs, not when a reference PCR differs; `hearth audit verify` passes its audit
//! export and names an edited record; and the daemon refuses to act when it cannot record.

use std::path::Path;
use std::sync::Arc;

use hearth_tpm_testkit::Swtpm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::verify_remote::{reference, stdout, verify};
use crate::{run, stderr};

pub const ADMIN: &str = "root";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Running {
    pub url: String,
    pub fingerprint: String,
    /// The one-time code that claims the appliance (it starts unclaimed).
    pub setup_code: Option<String>,
    /// The console inside the daemon (for the `test-hooks` that make its audit journal fail).
    pub app: Arc<hearth_console::App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// hearthd in this process (dev profile, its own data directory under `dir`), serving on a free
/// port; stopped when the handle drops.
pub fn start_hearthd(sw: &Swtpm, dir: &Path) -> Running {
    let mut config = hearthd::Config {
        profile: hearthd::Profile::Dev,
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..hearthd::Config::default()
    };
    config.tpm.tcti = sw.tcti();
    config.attestation.eventlog = None;
    config.attestation.runtime_log = None;
    let checked = config.check().unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            hearthd::daemon::run(checked, stop, Some(ready_tx))
                .await
                .unwrap();
        });
    });
    let ready = ready_rx.blocking_recv().expect("hearthd started");
    Running {
        url: format!("https://{}", ready.addr),
        fingerprint: hex::encode(ready.cert_sha256),
        setup_code: ready.setup_code,
        app: ready.app,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// Claims the appliance with its setup code and makes an API token for the first admin.
pub fn claim_and_token(daemon: &Running) -> String {
    let code = daemon
        .setup_code
        .clone()
        .expect("a fresh appliance has a setup code");
    let api = Api::new(daemon, "");
    let (status, cookie, body) = api.runtime.block_on(async {
        let resp = api
            .client
            .post(format!("{}/api/v1/setup", daemon.url))
            .json(&json!({ "code": code, "name": ADMIN, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let pair = v.split(';').next()?;
                pair.starts_with("__Host-hearth_session=")
                    .then(|| pair.to_owned())
            });
        (resp.status(), cookie, resp.json::<Value>().await.unwrap())
    });
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cookie = cookie.expect("the claim logs the admin in");
    let csrf = body["csrf"].as_str().unwrap().to_owned();
    let (status, body) = api.runtime.block_on(async {
        let resp = api
            .client
            .post(format!("{}/api/v1/tokens", daemon.url))
            .header(reqwest::header::COOKIE, cookie)
            .header("x-csrf-token", csrf)
            .json(&json!({ "label": "cli tests" }))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    });
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Blocking calls to the daemon's JSON API with an API token (these tests are synchronous).
pub struct Api {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    pub fn new(daemon: &Running, token: &str) -> Api {
        Api {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
            url: daemon.url.clone(),
            token: token.to_owned(),
        }
    }

    /// `method path` with `body` as JSON: the status and the answer's bytes.
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Vec<u8>) {
        self.runtime.block_on(async {
            let mut req = self
                .client
                .request(method, format!("{}{path}", self.url))
                .bearer_auth(&self.token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.unwrap();
            (resp.status(), resp.bytes().await.unwrap().to_vec())
        })
    }

    /// [`Api::call`] with the answer as JSON (a string when it is not JSON).
    pub fn json(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, bytes) = self.call(method, path, body);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[test]
fn the_running_appliance_is_trusted_against_its_own_reference_and_its_audit_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    // The auditor's baseline, taken from this TPM before the appliance runs.
    let reference = reference(&sw, dir.path());
    let daemon = start_hearthd(&sw, dir.path());

    let out = verify(
        &daemon.url,
        &reference,
        &["--fingerprint", &daemon.fingerprint],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("(trusted)"), "{text}");
    assert!(text.contains("pass  tls.binding"), "{text}");
    assert!(text.contains("pass  quote.nonce"), "{text}");
    assert!(text.contains("pass  ak.allowed"), "{text}");

    // One reference PCR differs: not trusted, and the check names it.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
    json["pcrs"]["sha256"]["11"] = serde_json::Value::String("5a".repeat(32));
    let edited = dir.path().join("other-release.json");
    std::fs::write(&edited, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = verify(&daemon.url, &edited, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL  reference.executables"), "{text}");
    assert!(text.contains(&"5a".repeat(32)), "{text}");

    // A pin on another certificate: refused before any request.
    let out = verify(
        &daemon.url,
        &reference,
        &["--fingerprint", &"00".repeat(32)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certificate fingerprint mismatch"),
        "{}",
        stderr(&out)
    );

    // An admin's session on the appliance, for the audit log.
    let token = claim_and_token(&daemon);
    let api = Api::new(&daemon, &token);

    // A key for 64 endpoints with 64-character names: valid, so created and recorded, its audit
    // object shortened to fit (the names that fit, then a count of the others).
    let names: Vec<String> = (0..64)
        .map(|i| format!("e{i:02}-{}", "x".repeat(60)))
        .collect();
    let (status, body) = api.json(
        Method::POST,
        "/api/v1/endpoint-keys",
        Some(json!({ "app": "billing", "endpoints": names })),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key"]["endpoints"].as_array().map(Vec::len), Some(64));
    let key_id = body["key"]["id"].as_str().unwrap().to_owned();

    // The journal fails (as after a failed write): a mutation is refused with 503 and does
    // nothing; reads still work.
    daemon.app.poison_audit();
    let (status, body) = api.json(
        Method::POST,
        "/api/v1/users",
        Some(json!({ "name": "mallory", "password": PASSWORD, "role": "admin" })),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot write the audit record")),
        "{body}"
    );
    let (status, users) = api.json(Method::GET, "/api/v1/users", None);
    assert_eq!(status, StatusCode::OK, "{users}");
    let users: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(users, [ADMIN]);
    let (status, _) = api.json(Method::GET, "/api/v1/status", None);
    assert_eq!(status, StatusCode::OK);
    // Reopened (what a restart does), the journal takes records again.
    daemon.app.open_audit().unwrap();
    let (status, body) = api.json(
        Method::POST,
        "/api/v1/users",
        Some(json!({ "name": "ann", "password": PASSWORD, "role": "auditor" })),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The export verifies with the CLI, up to the head the appliance names.
    let (status, export) = api.call(Method::GET, "/api/v1/audit/export", None);
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(export).unwrap();
    let (_, state) = api.json(Method::GET, "/api/v1/status", None);
    let head = state["audit"]["head"].as_str().unwrap().to_owned();
    let file = dir.path().join("audit-export.jsonl");
    std::fs::write(&file, &text).unwrap();
    let f = file.to_str().unwrap();
    let out = run(None, &["audit", "verify", f, "--head", &head], b"", "off");
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert!(report.starts_with("audit log intact: "), "{report}");
    assert!(
        report.contains("ends exactly at the attested head"),
        "{report}"
    );
    // It holds the key (and that it was made), not mallory, and ann.
    let key_line = text
        .lines()
        .position(|l| l.contains(&format!("key:{key_id} app:billing")))
        .expect("the key is recorded");
    let key_record: Value = serde_json::from_str(text.lines().nth(key_line).unwrap()).unwrap();
    let object = key_record["object"].as_str().unwrap();
    assert!(object.len() <= hearth_audit::MAX_OBJECT, "{object}");
    assert!(
        object.contains(&names[0]) && object.ends_with(" more)"),
        "{object}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("\"action\":\"keys.create\"")
                && l.contains("\"outcome\":\"succeeded\"")
                && l.contains(&format!("key:{key_id}"))),
        "{text}"
    );
    assert!(!text.contains("user:mallory"), "{text}");
    assert!(text.contains("user:ann"), "{text}");

    // One record edited (the key's application): exit 1, naming that record's line.
    let edited: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == key_line {
                l.replace("app:billing", "app:payroll") + "\n"
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let out = run(None, &["audit", "verify", f], b"", "off");
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}{}", stderr(&out));
    assert!(
        report.starts_with(&format!(
            "audit log BROKEN after {key_line} intact records: line {}",
            key_line + 1
        )),
        "{report}"
    );
}
