//! Starts the real `hearthd` binary with its own swtpm and data directory, and talks to it
//! over HTTPS like a client would.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hearth_tpm_testkit::Swtpm;
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};

pub const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");
pub const ADMIN: &str = "root";
pub const PASSWORD: &str = "correct horse battery staple";

/// What hearthd printed for its operator at start.
#[derive(Debug, Default, Clone)]
pub struct Banner {
    pub url: String,
    pub cert_sha256: String,
    pub setup_code: Option<String>,
    pub recovery_key: Option<String>,
    pub locked: Option<String>,
}

pub struct Daemon {
    pub swtpm: Swtpm,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub banner: Banner,
    /// Appended to the generated config at every spawn (extra sections for a test).
    pub extra_config: String,
}

impl Daemon {
    /// A fresh appliance: new swtpm, empty data directory, first boot.
    pub fn start() -> Daemon {
        let swtpm = Swtpm::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut d = Daemon {
            swtpm,
            dir,
            child: None,
            banner: Banner::default(),
            extra_config: String::new(),
        };
        d.spawn();
        d
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hearthd.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hearthd.log")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn spawn(&mut self) {
        let config = format!(
            "profile = \"dev\"\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[tpm]\ntcti = {:?}\n\n\
             [attestation]\neventlog = {:?}\nruntime_log = {:?}\n",
            self.data_dir(),
            self.swtpm.tcti(),
            self.dir.path().join("no-eventlog"),
            self.dir.path().join("no-runtime-log"),
        ) + &self.extra_config;
        std::fs::write(self.config_path(), config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = Command::new(HEARTHD)
            .arg("--config")
            .arg(self.config_path())
            .env("HEARTH_LOG", "info,hearth_console=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Banner::default();
        let mut recovery_next = false;
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => l,
                Err(_) => panic!("hearthd did not come up; log:\n{}", self.log()),
            };
            if recovery_next {
                banner.recovery_key = Some(line.trim().to_owned());
                recovery_next = false;
            } else if line.starts_with("RECOVERY KEY") {
                recovery_next = true;
            } else if let Some(code) =
                line.strip_prefix("SETUP CODE (one-time; claims this appliance at /setup): ")
            {
                banner.setup_code = Some(code.trim().to_owned());
            } else if let Some(fp) = line.strip_prefix("certificate SHA-256: ") {
                banner.cert_sha256 = fp.trim().to_owned();
            } else if let Some(reason) = line.strip_prefix("STORE LOCKED: ") {
                banner.locked = Some(reason.to_owned());
            } else if let Some(url) = line.strip_prefix("console: ") {
                banner.url = url.trim().trim_end_matches('/').to_owned();
                break;
            }
        }
        // Keep draining stdout so hearthd never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.banner = banner;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGTERM, and hearthd must exit 0 within 20 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if let Some(exit) = child.try_wait().unwrap() {
                assert!(
                    exit.success(),
                    "hearthd exited {exit:?}; log:\n{}",
                    self.log()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("hearthd ignored SIGTERM for 20 s");
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.banner.url)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTPS client that accepts the appliance's self-signed certificate, follows no
/// redirects and keeps no cookies (tests handle them explicitly).
pub fn client() -> Client {
    Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A logged-in browser-like session: its cookie and CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    pub fn cookie_header(&self) -> String {
        format!("__Host-hearth_session={}", self.cookie)
    }
}

/// The value of cookie `name` set by `resp`, if any.
pub fn set_cookie(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k == name).then(|| val.to_owned())
        })
}

pub async fn json(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Claims the appliance as `root`.
pub async fn claim(d: &Daemon) -> Session {
    let code = d
        .banner
        .setup_code
        .clone()
        .expect("an unclaimed appliance prints a setup code");
    let resp = client()
        .post(d.url("/api/v1/setup"))
        .json(&json!({ "code": code, "name": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", d.log());
    let cookie = set_cookie(&resp, "__Host-hearth_session").unwrap();
    let (_, body) = json(resp).await;
    Session {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

pub async fn login(d: &Daemon, name: &str, password: &str) -> Session {
    let resp = client()
        .post(d.url("/api/v1/login"))
        .json(&json!({ "name": name, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "login {name}");
    let cookie = set_cookie(&resp, "__Host-hearth_session").unwrap();
    let (_, body) = json(resp).await;
    Session {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

/// Creates a user as the admin session.
pub async fn create_user(d: &Daemon, admin: &Session, name: &str, role: &str) {
    let resp = client()
        .post(d.url("/api/v1/users"))
        .header(header::COOKIE, admin.cookie_header())
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({ "name": name, "password": PASSWORD, "role": role }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "create {name}");
}

/// A new API token for the session's user.
pub async fn token(d: &Daemon, s: &Session) -> String {
    let resp = client()
        .post(d.url("/api/v1/tokens"))
        .header(header::COOKIE, s.cookie_header())
        .header("x-csrf-token", &s.csrf)
        .json(&json!({ "label": "tests" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, body) = json(resp).await;
    body["token"].as_str().unwrap().to_owned()
}
