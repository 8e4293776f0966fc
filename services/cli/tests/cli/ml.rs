//! The operator verbs (`hearth datasets …`, `hearth train`, `hearth jobs …`) against the real
//! appliance daemon (hearthd in this process, with its own swtpm and data directory), claimed
//! and given an API token over its JSON API as an operator's browser would.

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};

use hearth_tpm_testkit::Swtpm;
use serde_json::{Value, json};

use crate::verify_daemon::{Running, claim_and_token, start_hearthd};
use crate::{HEARTH, stderr};

/// Runs `hearth args…` against `daemon` (URL, token and pin from the environment); the
/// transcript goes to the test's captured output (shown on failure or with --nocapture).
fn hearth(daemon: &Running, token: &str, args: &[&str]) -> Output {
    let out = Command::new(HEARTH)
        .args(args)
        .env("HEARTH_URL", &daemon.url)
        .env("HEARTH_TOKEN", token)
        .env("HEARTH_FINGERPRINT", &daemon.fingerprint)
        .env("HEARTH_LOG", "off")
        .env_remove("HEARTH_TCTI")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    println!(
        "$ hearth {}\n{}{}[exit {:?}]\n",
        args.join(" "),
        text(&out),
        stderr(&out),
        out.status.code()
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit 0, else a message with both streams.
fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        text(out),
        stderr(out)
    );
    text(out)
}

/// A deterministic 64-bit generator (xorshift*), uniform in [0, 1) as `unit`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[allow(clippy::cast_precision_loss)]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `rows` rows: three numeric features, a categorical one, and a binary target `y` that a linear
/// model can learn (a logistic function of the features, sampled).
fn churn_csv(rows: usize) -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut csv = String::from("tenure,spend,calls,plan,y\n");
    for _ in 0..rows {
        let tenure = (rng.unit() * 72.0).floor();
        let spend = 20.0 + rng.unit() * 100.0;
        let calls = (rng.unit() * 10.0).floor();
        let plan = ["basic", "plus", "pro"][usize::try_from(rng.next() % 3).unwrap()];
        let plan_effect = match plan {
            "basic" => 0.8,
            "plus" => 0.0,
            _ => -0.8,
        };
        let z = -0.06 * tenure + 0.02 * spend + 0.35 * calls + plan_effect - 1.0;
        let p = 1.0 / (1.0 + (-z).exp());
        let y = u8::from(rng.unit() < p);
        writeln!(csv, "{tenure},{spend:.2},{calls},{plan},{y}").unwrap();
    }
    csv
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[test]
fn an_operator_uploads_inspects_trains_and_lists_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let daemon = start_hearthd(&sw, dir.path());
    let token = claim_and_token(&daemon);

    let csv = churn_csv(2000);
    let file = dir.path().join("Churn Data.csv");
    std::fs::write(&file, &csv).unwrap();
    let file = file.to_str().unwrap();

    // Upload: the name comes from the file; the summary names rows, columns and the digest.
    let out = ok(
        &hearth(&daemon, &token, &["datasets", "upload", file]),
        "upload",
    );
    assert!(
        out.starts_with("churn-data@1: 2000 rows, 5 columns"),
        "{out}"
    );
    assert!(
        out.contains(&format!("sha256 {}", sha256_hex(csv.as_bytes()))),
        "{out}"
    );
    assert!(out.contains("plan"), "{out}");
    assert!(out.contains("categorical"), "{out}");
    assert!(out.contains("numeric"), "{out}");

    // The same data again, under an explicit name, as JSON.
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &["datasets", "upload", file, "--name", "churn", "--json"],
        ),
        "upload --name --json",
    );
    let version: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(version["version"], 1, "{out}");
    assert_eq!(version["rows"], 2000, "{out}");

    let out = ok(&hearth(&daemon, &token, &["datasets", "list"]), "list");
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("churn-data"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("churn ")), "{out}");

    // Show with the quality report for target y.
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &["datasets", "show", "churn", "--quality", "--target", "y"],
        ),
        "show --quality",
    );
    assert!(out.starts_with("dataset churn: 1 version\n"), "{out}");
    assert!(out.contains("churn@1: 2000 rows, 5 columns"), "{out}");
    assert!(out.contains("quality of churn@1 (target y):"), "{out}");
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &[
                "datasets",
                "show",
                "churn",
                "--quality",
                "--target",
                "y",
                "--json",
            ],
        ),
        "show --quality --json",
    );
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert!(shown["dataset"].is_object(), "{out}");
    assert!(shown["quality"].is_object(), "{out}");

    // Train, following the epochs to the end.
    let out = hearth(
        &daemon,
        &token,
        &[
            "train",
            "--dataset",
            "churn",
            "--target",
            "y",
            "--model",
            "logreg",
            "--epochs",
            "5",
            "--seed",
            "7",
        ],
    );
    let trained = ok(&out, "train");
    let progress = stderr(&out);
    assert!(progress.contains("epoch 5/5: loss train "), "{progress}");
    let first = trained.lines().next().unwrap_or_default();
    assert!(
        first.ends_with(" done (logreg on churn@1, target y)"),
        "{trained}"
    );
    let id = first.split_whitespace().nth(1).unwrap().to_owned();
    // The report's headline metrics: indented `name  number` lines.
    let metrics: Vec<&str> = trained
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter(|l| {
            l.split_whitespace()
                .last()
                .is_some_and(|v| v.parse::<f64>().is_ok())
        })
        .collect();
    assert!(!metrics.is_empty(), "no metrics in:\n{trained}");

    // It is listed, and shown with its losses and report.
    let out = ok(&hearth(&daemon, &token, &["jobs", "list"]), "jobs list");
    assert!(out.starts_with("ID"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("job {id} not listed:\n{out}"));
    assert!(row.contains(" done "), "{row}");
    assert!(row.contains("churn@1"), "{row}");
    assert!(row.contains("5/5"), "{row}");
    let out = ok(
        &hearth(&daemon, &token, &["jobs", "show", &id]),
        "jobs show",
    );
    assert!(out.contains("EPOCH  TRAIN LOSS  VALIDATION LOSS"), "{out}");
    assert!(out.contains("report:"), "{out}");
    let out = ok(
        &hearth(&daemon, &token, &["jobs", "show", &id, "--json"]),
        "jobs show --json",
    );
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["state"], "done");
    assert_eq!(job["progress"].as_array().map(Vec::len), Some(5));

    // A finished job cannot be cancelled: the appliance's reason, exit 1.
    let out = hearth(&daemon, &token, &["jobs", "cancel", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));

    // Detached: the id alone on stdout.
    let out = hearth(
        &daemon,
        &token,
        &[
            "train",
            "--dataset",
            "churn",
            "--target",
            "y",
            "--model",
            "mlp",
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--detach",
        ],
    );
    let detached = ok(&out, "train --detach");
    assert_eq!(detached.trim().len(), 16, "{detached}");

    // A target that is not a column: the appliance says so, exit 1.
    let out = hearth(
        &daemon,
        &token,
        &[
            "train",
            "--dataset",
            "churn",
            "--target",
            "nope",
            "--model",
            "logreg",
        ],
    );
    // The appliance takes the job and fails it when it runs: the reason, exit 1.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = text(&out);
    assert!(
        failed.contains(" failed (logreg on churn@1, target nope)\n"),
        "{failed}"
    );
    assert!(failed.contains("error: "), "{failed}");

    // A file the appliance refuses part-way (a row with too many fields, then megabytes more):
    // its reason, exit 1, however much was still to send.
    let mut bad = String::from("a,b\n1,2\n1,2,3\n");
    while bad.len() < 24 << 20 {
        bad.push_str("1,2\n");
    }
    let bad_file = dir.path().join("bad.csv");
    std::fs::write(&bad_file, &bad).unwrap();
    let out = hearth(
        &daemon,
        &token,
        &["datasets", "upload", bad_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("(422 Unprocessable Entity)"),
        "{}",
        stderr(&out)
    );

    // A wrong token: the appliance's message, exit 1.
    let out = hearth(
        &daemon,
        &token,
        &["datasets", "list", "--token", "hth_0000000000000000_wrong"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("invalid API token (401 Unauthorized)"),
        "{}",
        stderr(&out)
    );
    // And an upload with it is refused before any data goes out.
    let out = hearth(
        &daemon,
        &token,
        &[
            "datasets",
            "upload",
            file,
            "--token",
            "hth_0000000000000000_wrong",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("invalid API token"),
        "{}",
        stderr(&out)
    );

    // Another certificate pinned: refused, exit 1, nothing sent.
    let out = hearth(
        &daemon,
        &token,
        &["jobs", "list", "--fingerprint", &"00".repeat(32)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certificate fingerprint mismatch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn personal_data_is_found_and_pseudonymized_into_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let daemon = start_hearthd(&sw, dir.path());
    let token = claim_and_token(&daemon);

    let mut csv = String::from("email,city,amount\n");
    for i in 0..60 {
        writeln!(
            csv,
            "user{i}@example.com,{},{}",
            ["Lyon", "Paris", "Nantes"][i % 3],
            i * 7
        )
        .unwrap();
    }
    let file = dir.path().join("contacts.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &["datasets", "upload", file.to_str().unwrap()],
        ),
        "upload",
    );
    assert!(out.starts_with("contacts@1: 60 rows, 3 columns"), "{out}");

    // From a pipe (no length known: sent chunked).
    let mut child = Command::new(HEARTH)
        .args(["datasets", "upload", "/dev/stdin", "--name", "piped"])
        .env("HEARTH_URL", &daemon.url)
        .env("HEARTH_TOKEN", &token)
        .env("HEARTH_FINGERPRINT", &daemon.fingerprint)
        .env("HEARTH_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let piped = csv.clone();
    let feeder =
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, piped.as_bytes()));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    let out = ok(&out, "upload from a pipe");
    assert!(out.starts_with("piped@1: 60 rows, 3 columns"), "{out}");

    let out = ok(
        &hearth(&daemon, &token, &["datasets", "show", "contacts", "--pii"]),
        "show --pii",
    );
    assert!(out.contains("personal data in contacts@1:"), "{out}");
    assert!(out.contains("email"), "{out}");

    let out = ok(
        &hearth(
            &daemon,
            &token,
            &[
                "datasets",
                "pseudonymize",
                "contacts",
                "--version",
                "1",
                "--columns",
                "email",
            ],
        ),
        "pseudonymize",
    );
    assert!(
        out.starts_with("pseudonymized email of contacts@1: new version 2\n"),
        "{out}"
    );
    let out = ok(
        &hearth(&daemon, &token, &["datasets", "show", "contacts", "--json"]),
        "show --json",
    );
    let dataset: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        dataset["versions"].as_array().map(Vec::len),
        Some(2),
        "{out}"
    );
}

/// What needs no appliance: a missing URL or token is a usage error (2), an address nobody
/// listens on is unreachable (4).
#[test]
fn connection_problems_have_their_own_exit_codes() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(HEARTH);
        cmd.args(args)
            .env("HEARTH_LOG", "off")
            .env_remove("HEARTH_URL")
            .env_remove("HEARTH_TOKEN")
            .env_remove("HEARTH_FINGERPRINT")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&["jobs", "list"], &[("HEARTH_TOKEN", "hth_a_b")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--url"), "{}", stderr(&out));

    let out = run(&["datasets", "list", "--url", "https://127.0.0.1:9"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("HEARTH_TOKEN"), "{}", stderr(&out));

    let out = run(
        &[
            "datasets",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTPS only"), "{}", stderr(&out));

    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}");
    let out = run(
        &[
            "train",
            "--dataset",
            "d",
            "--target",
            "y",
            "--model",
            "logreg",
        ],
        &[("HEARTH_URL", &url), ("HEARTH_TOKEN", "hth_a_b")],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot connect to {url}")),
        "{}",
        stderr(&out)
    );
    // Without a pin the CLI warns that the token could go to anyone.
    assert!(stderr(&out).contains("not pinned"), "{}", stderr(&out));

    // A file that is not there: refused before connecting.
    let out = run(
        &["datasets", "upload", "/nonexistent/x.csv"],
        &[("HEARTH_URL", &url), ("HEARTH_TOKEN", "hth_a_b")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/x.csv"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_parquet_file_uploads_like_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let daemon = start_hearthd(&sw, dir.path());
    let token = claim_and_token(&daemon);
    let parquet = include_bytes!("../../../ml/tests/fixtures/people.parquet");

    // Named `.dat`: the bytes say Parquet, not the name.
    let file = dir.path().join("people.dat");
    std::fs::write(&file, parquet).unwrap();
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &["datasets", "upload", file.to_str().unwrap()],
        ),
        "upload parquet",
    );
    assert!(out.starts_with("people@1: 300 rows, 9 columns"), "{out}");
    assert!(
        out.contains(&format!("sha256 {}", sha256_hex(parquet))),
        "{out}"
    );
    assert!(out.contains("categorical"), "{out}");
    assert!(out.contains("timestamp"), "{out}");
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &["datasets", "show", "people", "--quality", "--pii"],
        ),
        "show parquet",
    );
    assert!(out.contains("people@1: 300 rows, 9 columns"), "{out}");

    // A truncated copy is refused with the reason, and stores nothing.
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &parquet[..parquet.len() / 2]).unwrap();
    let out = hearth(
        &daemon,
        &token,
        &[
            "datasets",
            "upload",
            cut.to_str().unwrap(),
            "--name",
            "people",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("PAR1"), "{}", stderr(&out));
    let out = ok(
        &hearth(&daemon, &token, &["datasets", "show", "people", "--json"]),
        "show after refusal",
    );
    let dataset: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dataset["versions"].as_array().unwrap().len(), 1, "{out}");
}

/// Creates an endpoint API key over the JSON API (the console's job; no CLI verb).
fn endpoint_key(daemon: &Running, token: &str, endpoint: &str) -> String {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let resp = client
            .post(format!("{}/api/v1/endpoint-keys", daemon.url))
            .bearer_auth(token)
            .json(&json!({ "app": "cli-tests", "endpoints": [endpoint] }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        body["secret"].as_str().unwrap().to_owned()
    })
}

#[test]
fn models_are_approved_deployed_served_exported_and_verified_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let daemon = start_hearthd(&sw, dir.path());
    let token = claim_and_token(&daemon);
    let file = dir.path().join("churn.csv");
    std::fs::write(&file, churn_csv(1500)).unwrap();
    ok(
        &hearth(
            &daemon,
            &token,
            &["datasets", "upload", file.to_str().unwrap()],
        ),
        "upload",
    );
    let train = [
        "train",
        "--dataset",
        "churn",
        "--target",
        "y",
        "--model",
        "logreg",
        "--epochs",
        "5",
    ];
    ok(&hearth(&daemon, &token, &train), "train");

    let out = ok(&hearth(&daemon, &token, &["models", "list"]), "models list");
    assert!(out.starts_with("MODEL"), "{out}");
    assert!(
        out.contains("churn-y@1") && out.contains("candidate"),
        "{out}"
    );
    let out = ok(
        &hearth(&daemon, &token, &["models", "show", "churn-y@1"]),
        "models show",
    );
    assert!(out.contains("data      churn@1 (1500 rows"), "{out}");
    // Deploying a candidate is refused; approved, it serves.
    let out = hearth(
        &daemon,
        &token,
        &["deploy", "churn-y@1", "--endpoint", "churn"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = ok(
        &hearth(&daemon, &token, &["models", "approve", "churn-y@1"]),
        "approve",
    );
    assert_eq!(out, "churn-y@1 is approved\n");
    let out = ok(
        &hearth(
            &daemon,
            &token,
            &["deploy", "churn-y@1", "--endpoint", "churn"],
        ),
        "deploy",
    );
    assert_eq!(out, "endpoint churn serves churn-y@1\n");

    // A key for the application, from the command line: the secret alone on stdout.
    let key = ok(
        &hearth(
            &daemon,
            &token,
            &[
                "endpoints",
                "keys",
                "create",
                "--app",
                "cli-tests",
                "--endpoint",
                "churn",
            ],
        ),
        "keys create",
    );
    let key = key.trim_end().to_owned();
    assert!(
        key.starts_with("hep_") && !key.contains(char::is_whitespace),
        "{key:?}"
    );
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "keys", "list"]),
        "keys list",
    );
    assert!(out.contains("cli-tests") && out.contains("active"), "{out}");
    assert!(!out.contains(&key[21..]), "the list shows no secret: {out}");
    // A rate-limited key for a batch job: the limit shows in the list.
    ok(
        &hearth(
            &daemon,
            &token,
            &[
                "endpoints",
                "keys",
                "create",
                "--app",
                "nightly",
                "--endpoint",
                "churn",
                "--rate",
                "50",
            ],
        ),
        "keys create --rate",
    );
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "keys", "list"]),
        "keys list",
    );
    let nightly = out.lines().find(|l| l.contains("nightly")).unwrap_or("");
    assert!(nightly.ends_with("50/s"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("cli-tests") && l.ends_with("none")),
        "{out}"
    );

    // Predict: rows on stdin, the endpoint key from the environment.
    let mut child = Command::new(HEARTH)
        .args(["predict", "churn"])
        .env("HEARTH_URL", &daemon.url)
        .env("HEARTH_ENDPOINT_KEY", &key)
        .env("HEARTH_FINGERPRINT", &daemon.fingerprint)
        .env("HEARTH_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(
        &mut stdin,
        br#"[{"tenure": 3, "spend": 90, "calls": 8, "plan": "basic"}, [70, 25, 0, "pro"]]"#,
    )
    .unwrap();
    drop(stdin);
    let out = ok(&child.wait_with_output().unwrap(), "predict");
    let answer: Value = serde_json::from_str(&out).unwrap();
    let p = |i: usize| {
        answer["predictions"][i]["probabilities"][1]
            .as_f64()
            .unwrap()
    };
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 2, "{out}");
    assert!(
        (0.0..=1.0).contains(&p(0)) && (0.0..=1.0).contains(&p(1)),
        "{out}"
    );
    assert_eq!(answer["version"], 1);

    // Export a signed bundle; it verifies offline, and not once changed.
    let bundle = dir.path().join("churn.hearth-model");
    let b = bundle.to_str().unwrap();
    ok(
        &hearth(
            &daemon,
            &token,
            &["models", "export", "churn-y@1", "--out", b],
        ),
        "export",
    );
    let out = ok(&hearth(&daemon, &token, &["models", "verify", b]), "verify");
    assert!(out.trim_end().ends_with("\ntrusted"), "{out}");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&bundle, &bytes).unwrap();
    let out = hearth(&daemon, &token, &["models", "verify", b]);
    assert_eq!(out.status.code(), Some(1));

    // A second version, deployed, then rolled back from the command line.
    ok(&hearth(&daemon, &token, &train), "train again");
    ok(
        &hearth(&daemon, &token, &["models", "approve", "churn-y@2"]),
        "approve 2",
    );
    ok(
        &hearth(
            &daemon,
            &token,
            &["deploy", "churn-y@2", "--endpoint", "churn"],
        ),
        "deploy 2",
    );
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "list"]),
        "endpoints list",
    );
    assert!(out.starts_with("ENDPOINT"), "{out}");
    assert!(
        out.contains("churn-y@2") && out.contains("serving") && out.contains("@1"),
        "{out}"
    );
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "rollback", "churn"]),
        "rollback",
    );
    assert_eq!(out, "endpoint churn serves churn-y@1\n");
    let out = hearth(&daemon, &token, &["endpoints", "rollback", "churn"]);
    assert_eq!(out.status.code(), Some(1), "nothing left to roll back to");
    assert!(
        stderr(&out).contains("no earlier version"),
        "{}",
        stderr(&out)
    );

    // A second key, revoked: its application is refused.
    let other = endpoint_key(&daemon, &token, "churn");
    let id = other.split('_').nth(1).unwrap().to_owned();
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "keys", "revoke", &id]),
        "revoke",
    );
    assert_eq!(
        out,
        format!("key {id} of application cli-tests is revoked\n")
    );
    let mut child = Command::new(HEARTH)
        .args(["predict", "churn"])
        .env("HEARTH_URL", &daemon.url)
        .env("HEARTH_ENDPOINT_KEY", &other)
        .env("HEARTH_FINGERPRINT", &daemon.fingerprint)
        .env("HEARTH_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, br#"[[70, 25, 0, "pro"]]"#).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    // Retired: the endpoint stops answering.
    ok(
        &hearth(&daemon, &token, &["models", "retire", "churn-y@1"]),
        "retire",
    );
    let out = ok(&hearth(&daemon, &token, &["models", "list"]), "list");
    assert!(out.contains("retired"), "{out}");

    // Deleted: gone from the list; deleting it again is an error.
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "delete", "churn"]),
        "delete",
    );
    assert_eq!(out, "endpoint churn deleted (it served churn-y@1)\n");
    let out = ok(
        &hearth(&daemon, &token, &["endpoints", "list", "--json"]),
        "endpoints list",
    );
    assert_eq!(out.trim(), "[]");
    let out = hearth(&daemon, &token, &["endpoints", "delete", "churn"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no endpoint"), "{}", stderr(&out));
}
