//! `hearth verify https://…` against a stand-in appliance: a TLS server with a self-signed P-256
//! certificate that answers `GET /api/v1/attestation?nonce=N` with real evidence from a swtpm,
//! made for exactly that nonce (and, unless told otherwise, binding its own TLS key).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hearth_tpm_testkit::Swtpm;
use ring::digest::{SHA256, digest};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::{hearth, ok, run, stderr};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

/// A self-signed P-256 certificate: (certificate DER, PKCS#8 key, SPKI DER).
fn self_signed() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use rcgen::PublicKeyData as _;
    let ck = rcgen::generate_simple_self_signed(vec!["hearth.test".to_owned()]).unwrap();
    (
        ck.cert.der().to_vec(),
        ck.signing_key.serialize_der(),
        ck.signing_key.subject_public_key_info(),
    )
}

/// What the stand-in appliance answers.
#[derive(Clone)]
enum Answer {
    /// Evidence binding the SHA-256 of this SPKI (hex), or no TLS key at all.
    Evidence { bind_spki_sha256: Option<String> },
    /// An error status and body.
    Status(u16, String),
}

struct Appliance {
    port: u16,
    certificate_der: Vec<u8>,
    /// SHA-256 (hex) of the certificate's SubjectPublicKeyInfo, as rcgen built it.
    spki_sha256: String,
    /// The nonce of every request, in order.
    nonces: Arc<Mutex<Vec<String>>>,
    /// The head of every request, as received.
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Appliance {
    /// Serves evidence from `sw` binding its own TLS key.
    fn start(sw: &Swtpm) -> Appliance {
        Appliance::start_with(Some(sw), |own| Answer::Evidence {
            bind_spki_sha256: Some(own.to_owned()),
        })
    }

    fn start_with(sw: Option<&Swtpm>, answer: impl FnOnce(&str) -> Answer) -> Appliance {
        Appliance::serve(sw, answer, false, rustls::DEFAULT_VERSIONS)
    }

    /// Speaks only `version`; with `impostor`, presents a certificate whose private key it does
    /// not hold (it signs its handshakes with another key).
    fn with_version(
        sw: &Swtpm,
        impostor: bool,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Appliance {
        Appliance::serve(
            Some(sw),
            |own| Answer::Evidence {
                bind_spki_sha256: Some(own.to_owned()),
            },
            impostor,
            &[version],
        )
    }

    fn serve(
        sw: Option<&Swtpm>,
        answer: impl FnOnce(&str) -> Answer,
        impostor: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Appliance {
        let (cert, key, spki) = self_signed();
        let spki_sha256 = sha256_hex(&spki);
        let answer = answer(&spki_sha256);
        let signing_key = if impostor { self_signed().1 } else { key };
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
            PrivatePkcs8KeyDer::from(signing_key),
        ))
        .unwrap();
        let certified = CertifiedKey::new(vec![CertificateDer::from(cert.clone())], signing_key);
        assert_eq!(certified.keys_match().is_ok(), !impostor);
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let nonces = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tcti = sw.map(Swtpm::tcti);
        let thread = {
            let (nonces, requests, stop) = (nonces.clone(), requests.clone(), stop.clone());
            let config = Arc::new(config);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = stream else { continue };
                    serve_one(tcp, &config, &answer, tcti.as_deref(), &nonces, &requests);
                }
            })
        };
        Appliance {
            port,
            certificate_der: cert,
            spki_sha256,
            nonces,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn fingerprint(&self) -> String {
        sha256_hex(&self.certificate_der)
    }

    fn nonces(&self) -> Vec<String> {
        self.nonces.lock().unwrap().clone()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: TLS, the request head, the answer. Handshakes the client refuses end here.
fn serve_one(
    tcp: TcpStream,
    config: &Arc<ServerConfig>,
    answer: &Answer,
    tcti: Option<&str>,
    nonces: &Mutex<Vec<String>>,
    requests: &Mutex<Vec<String>>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = ServerConnection::new(config.clone()).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    requests.lock().unwrap().push(head.clone());
    let target = head.split(' ').nth(1).unwrap_or_default();
    let nonce = target
        .strip_prefix("/api/v1/attestation?nonce=")
        .unwrap_or_default()
        .to_owned();
    nonces.lock().unwrap().push(nonce.clone());
    let (status, body) = match answer {
        Answer::Status(code, body) => (*code, body.clone().into_bytes()),
        Answer::Evidence { bind_spki_sha256 } => {
            let mut args = vec![
                "attest",
                "evidence",
                "--nonce",
                &nonce,
                "--pcrs",
                "0-15",
                "--no-eventlog",
            ];
            if let Some(h) = bind_spki_sha256 {
                args.extend(["--tls-spki-sha256", h]);
            }
            let out = run(tcti, &args, b"", "off");
            if out.status.success() {
                (200, out.stdout)
            } else {
                (500, out.stderr)
            }
        }
    };
    let reason = if status == 200 { "OK" } else { "Error" };
    let response_head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = tls.write_all(response_head.as_bytes());
    let _ = tls.write_all(&body);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// A platform reference from this swtpm's own evidence: its PCRs 0-15 and its AK pinned.
pub fn reference(sw: &Swtpm, dir: &Path) -> PathBuf {
    let nonce = "00".repeat(32);
    let ev = ok(hearth(
        sw,
        &[
            "attest",
            "evidence",
            "--nonce",
            &nonce,
            "--pcrs",
            "0-15",
            "--no-eventlog",
        ],
        b"",
    ));
    let ev_path = dir.join("baseline-evidence.json");
    std::fs::write(&ev_path, ev).unwrap();
    let reference = ok(run(
        None,
        &[
            "attest",
            "reference",
            "--from-evidence",
            ev_path.to_str().unwrap(),
            "--name",
            "stand-in appliance",
        ],
        b"",
        "off",
    ));
    let path = dir.join("reference.json");
    std::fs::write(&path, reference).unwrap();
    path
}

pub fn verify(url: &str, reference: &Path, extra: &[&str]) -> Output {
    let args = [
        &["verify", url, "--reference", reference.to_str().unwrap()][..],
        extra,
    ]
    .concat();
    run(None, &args, b"", "off")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_nonce(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[test]
fn a_live_appliance_is_trusted_when_its_evidence_binds_the_tls_key_used() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let reference = reference(&sw, dir.path());
    let appliance = Appliance::start(&sw);

    // No pin: any certificate is accepted, and the binding is what proves the endpoint.
    let out = verify(&appliance.url(), &reference, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("verdict: warning (trusted)"), "{text}");
    assert!(
        text.contains(&format!("target: {}", appliance.url())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "certificate: sha256 {} (not pinned",
            appliance.fingerprint()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "pass  tls.binding              the evidence binds the TLS key this connection used \
             (SPKI sha256 {})",
            appliance.spki_sha256
        )),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
    let nonces = appliance.nonces();
    assert_eq!(nonces.len(), 1);
    assert!(is_nonce(&nonces[0]), "{nonces:?}");
    assert!(text.contains(&format!("nonce: {}", nonces[0])), "{text}");
    // A well-formed HTTP/1.1 request.
    let head = appliance.requests.lock().unwrap()[0].clone();
    assert!(
        head.starts_with(&format!(
            "GET /api/v1/attestation?nonce={} HTTP/1.1\r\n",
            nonces[0]
        )),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", appliance.port)),
        "{head}"
    );
    assert!(lower.contains("\r\nconnection: close\r\n"), "{head}");

    // Pinned to the right certificate, written as openssl does (colons, upper case): trusted.
    let colons = appliance
        .fingerprint()
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let out = verify(&appliance.url(), &reference, &["--fingerprint", &colons]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("(pinned by --fingerprint)"), "{text}");
    assert!(text.contains("pass  tls.binding"), "{text}");

    // JSON: the EAR, with tls.binding among its checks and the connection described.
    let saved = dir.path().join("fetched.json");
    let out = verify(
        &appliance.url(),
        &reference,
        &[
            "--json",
            "--fingerprint",
            &appliance.fingerprint(),
            "--save-evidence",
            saved.to_str().unwrap(),
        ],
    );
    let ear: serde_json::Value = serde_json::from_slice(&ok(out)).unwrap();
    let sub = &ear["submods"]["hearth-appliance"];
    assert_eq!(sub["ear.status"], "warning");
    assert_eq!(sub["ear.trustworthiness-vector"]["instance-identity"], 2);
    let binding = sub["hearth.checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "tls.binding")
        .unwrap();
    assert_eq!(binding["outcome"], "pass");
    assert_eq!(binding["claim"], "instance-identity");
    let conn = &sub["hearth.connection"];
    assert_eq!(conn["target"], appliance.url());
    assert_eq!(conn["certificate_sha256"], appliance.fingerprint());
    assert_eq!(conn["certificate_pinned"], true);
    assert_eq!(conn["tls_spki_sha256"], appliance.spki_sha256);
    let nonces = appliance.nonces();
    assert_eq!(nonces.len(), 3);
    assert_eq!(conn["nonce"], nonces[2]);

    // Every run asked with a fresh random nonce.
    assert!(nonces.iter().all(|n| is_nonce(n)), "{nonces:?}");
    let mut distinct = nonces.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), nonces.len(), "{nonces:?}");

    // The saved evidence is what was fetched, and re-checks offline against the same nonce.
    let ev = hearth_attest::evidence::Evidence::from_json(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(hex::encode(&ev.nonce), nonces[2]);
    assert_eq!(
        ev.tls_spki_sha256.as_deref().map(hex::encode),
        Some(appliance.spki_sha256.clone())
    );
    let out = run(
        None,
        &[
            "verify",
            "--evidence",
            saved.to_str().unwrap(),
            "--nonce",
            &nonces[2],
            "--reference",
            reference.to_str().unwrap(),
        ],
        b"",
        "off",
    );
    let text = String::from_utf8(ok(out)).unwrap();
    assert!(text.starts_with("verdict: warning (trusted)"), "{text}");
    assert!(!text.contains("tls.binding"), "{text}");
}

#[test]
fn a_certificate_other_than_the_pinned_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let reference = reference(&sw, dir.path());
    let appliance = Appliance::start(&sw);
    let wrong = "ab".repeat(32);
    let out = verify(&appliance.url(), &reference, &["--fingerprint", &wrong]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}{}", stdout(&out));
    assert!(
        err.contains(&format!(
            "certificate fingerprint mismatch: expected {wrong}, got {}",
            appliance.fingerprint()
        )),
        "{err}"
    );
    // Refused during the handshake: the appliance never saw a request.
    assert!(appliance.nonces().is_empty());
}

#[test]
fn a_server_without_the_certificates_private_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let reference = reference(&sw, dir.path());
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // The honest appliance, on this protocol version: trusted.
        let honest = Appliance::with_version(&sw, false, version);
        let out = verify(&honest.url(), &reference, &[]);
        assert_eq!(out.status.code(), Some(0), "{version:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("pass  tls.binding"),
            "{}",
            stdout(&out)
        );

        // It presents the appliance's certificate (pinned, and bound by the evidence it relays)
        // but cannot sign with its key: the handshake signature check must refuse it.
        let impostor = Appliance::with_version(&sw, true, version);
        for extra in [&[][..], &["--fingerprint", &impostor.fingerprint()][..]] {
            let out = verify(&impostor.url(), &reference, extra);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{version:?}: {err}{}",
                stdout(&out)
            );
            assert!(
                err.contains(&format!("TLS handshake with {} failed", impostor.url())),
                "{err}"
            );
            assert!(out.stdout.is_empty());
        }
        assert!(impostor.nonces().is_empty());
    }
}

#[test]
fn evidence_binding_another_tls_key_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let reference = reference(&sw, dir.path());
    // A relay: it presents its own certificate A, and passes on genuine evidence from the
    // appliance, which binds the appliance's key B.
    let (_, _, other_spki) = self_signed();
    let bound = sha256_hex(&other_spki);
    let relay = Appliance::start_with(Some(&sw), |_| Answer::Evidence {
        bind_spki_sha256: Some(bound.clone()),
    });
    let out = verify(
        &relay.url(),
        &reference,
        &["--fingerprint", &relay.fingerprint()],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.starts_with("target: ") && text.contains("verdict: contraindicated (NOT trusted)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "FAIL  tls.binding              evidence binds TLS key {bound}, the connection used {}",
            relay.spki_sha256
        )),
        "{text}"
    );
    // Everything else about the evidence holds: only the binding fails.
    assert_eq!(text.matches("FAIL").count(), 1, "{text}");
    assert!(text.contains("pass  quote.nonce"), "{text}");

    let out = verify(&relay.url(), &reference, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ear: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sub = &ear["submods"]["hearth-appliance"];
    assert_eq!(sub["ear.status"], "contraindicated");
    assert_eq!(sub["ear.trustworthiness-vector"]["instance-identity"], 96);
    let binding = sub["hearth.checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "tls.binding")
        .unwrap();
    assert_eq!(binding["outcome"], "fail");
    assert_eq!(binding["findings"][0]["expected"], relay.spki_sha256);
    assert_eq!(binding["findings"][0]["actual"], bound);

    // Evidence that binds no TLS key at all proves nothing about the endpoint either.
    let unbound = Appliance::start_with(Some(&sw), |_| Answer::Evidence {
        bind_spki_sha256: None,
    });
    let out = verify(&unbound.url(), &reference, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "FAIL  tls.binding              evidence binds no TLS key, the connection used {}",
            unbound.spki_sha256
        )),
        "{text}"
    );
    assert!(text.contains("pass  quote.nonce"), "{text}");
}

#[test]
fn replayed_evidence_is_not_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let reference = reference(&sw, dir.path());
    // Genuine evidence binding the server's own key, but made earlier for another nonce.
    let replaying = Appliance::start_with(Some(&sw), |own| {
        let old = "11".repeat(32);
        let args = [
            "attest",
            "evidence",
            "--nonce",
            &old,
            "--pcrs",
            "0-15",
            "--no-eventlog",
            "--tls-spki-sha256",
            own,
        ];
        Answer::Status(200, String::from_utf8(ok(hearth(&sw, &args, b""))).unwrap())
    });
    let out = verify(&replaying.url(), &reference, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL  quote.nonce"), "{text}");
    assert!(text.contains("pass  tls.binding"), "{text}");
    assert_eq!(text.matches("FAIL").count(), 1, "{text}");
}

#[test]
fn a_reference_pcr_that_differs_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let reference = reference(&sw, dir.path());
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
    let pcr7 = &mut json["pcrs"]["sha256"]["7"];
    assert!(pcr7.is_string(), "{json}");
    *pcr7 = serde_json::Value::String("ab".repeat(32));
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&json).unwrap()).unwrap();
    let appliance = Appliance::start(&sw);

    let out = verify(&appliance.url(), &edited, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("verdict: contraindicated (NOT trusted)"),
        "{text}"
    );
    assert!(text.contains("FAIL  reference.configuration"), "{text}");
    assert!(
        text.contains(&format!("expected {}", "ab".repeat(32))),
        "{text}"
    );
    assert!(text.contains("pass  tls.binding"), "{text}");
}

#[test]
fn targets_that_cannot_be_verified_are_unusable_input() {
    let dir = tempfile::tempdir().unwrap();
    // A reference is read before anything is contacted; any valid one will do here.
    let reference = dir.path().join("reference.json");
    std::fs::write(
        &reference,
        format!(
            r#"{{"format":"hearth-reference/1","pcrs":{{"sha256":{{"0":"{}"}}}}}}"#,
            "00".repeat(32)
        ),
    )
    .unwrap();

    // Plain HTTP is refused before connecting, with the reason.
    let out = verify("http://127.0.0.1:9", &reference, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("plain HTTP"), "{}", stderr(&out));
    assert!(stderr(&out).contains("use https://"), "{}", stderr(&out));
    let out = verify("https://127.0.0.1:9/api", &reference, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = verify(&format!("https://127.0.0.1:{port}"), &reference, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot connect to https://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.to_ascii_lowercase().contains("refused"), "{err}");
    assert!(out.stdout.is_empty());

    // Something that accepts but never speaks TLS: the timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let started = std::time::Instant::now();
    let out = verify(&url, &reference, &["--http-timeout-secs", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("within 1 s"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(silent);

    // An appliance that answers with an error: its status and the body's first line.
    let failing = Appliance::start_with(None, |_| {
        Answer::Status(503, "TPM busy, try again\nsecond line".into())
    });
    let out = verify(&failing.url(), &reference, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{} answered 503 Service Unavailable: TPM busy, try again",
            failing.url()
        )),
        "{err}"
    );
    assert!(!err.contains("second line"), "{err}");
    assert_eq!(failing.nonces().len(), 1);

    // An answer that is not evidence.
    let garbage = Appliance::start_with(None, |_| Answer::Status(200, "{\"hello\": 1}".into()));
    let out = verify(&garbage.url(), &reference, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reading the evidence"),
        "{}",
        stderr(&out)
    );

    // TARGET and offline inputs do not mix; offline still needs both of its inputs.
    let ev = dir.path().join("evidence.json");
    let out = verify(
        "https://127.0.0.1:9",
        &reference,
        &["--evidence", ev.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    let out = run(
        None,
        &["verify", "--reference", reference.to_str().unwrap()],
        b"",
        "off",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--evidence"), "{}", stderr(&out));
    let out = run(
        None,
        &[
            "verify",
            "--evidence",
            ev.to_str().unwrap(),
            "--nonce",
            "00",
            "--reference",
            reference.to_str().unwrap(),
            "--fingerprint",
            &"ab".repeat(32),
        ],
        b"",
        "off",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A malformed pin is refused before connecting.
    let out = verify(
        "https://127.0.0.1:9",
        &reference,
        &["--fingerprint", "abcd"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("64 hex digits"), "{}", stderr(&out));
}
