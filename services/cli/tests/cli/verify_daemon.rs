//! `hearth verify https://…` against the real appliance daemon (hearthd, run in this process
//! with its own swtpm and data directory): trusted with a reference made from its own PCRs,
//! not trusted when a reference PCR differs.

use std::path::Path;

use hearth_tpm_testkit::Swtpm;

use crate::stderr;
use crate::verify_remote::{reference, stdout, verify};

pub struct Running {
    pub url: String,
    pub fingerprint: String,
    /// The one-time code that claims the appliance (it starts unclaimed).
    pub setup_code: Option<String>,
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
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

#[test]
fn the_running_appliance_is_trusted_against_its_own_reference_and_not_against_another() {
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
}
