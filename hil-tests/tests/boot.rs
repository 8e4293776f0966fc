//! The image, booted the way a box boots it: OVMF measures the UKI, the stub and the kernel
//! measure the rest, hearth-init measures the configuration, hearthd seals its store to the
//! TPM. Driven from outside over the forwarded console port, as an auditor and an operator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_hil_tests::{Banner, banner, binaries, exclusive, free_port, target_dir};
use hearth_image::qemu::{Vm, VmConfig};
use hearth_image::{ImageSpec, Inputs, Output, SigningKey, gpt};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "correct horse battery staple";

/// A clean directory under the target dir for one test's files.
fn workdir(name: &str) -> PathBuf {
    let dir = target_dir().join("hil").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds the image into `out` with one extra initrd file, `/etc/hearth/variant`, holding
/// `variant` (one byte: two variants differ in exactly one byte of the initrd).
fn build(out: &Path, variant: u8) -> Output {
    let inputs = Inputs::detect(&binaries().unwrap()).unwrap();
    let key = SigningKey::dev(&out.parent().unwrap().join("dev-signing-key.pk8")).unwrap();
    let spec = ImageSpec {
        extra_files: vec![("etc/hearth/variant".to_owned(), vec![variant])],
        ..ImageSpec::default()
    };
    hearth_image::build(&inputs, &spec, out, &key).unwrap()
}

fn hearth() -> PathBuf {
    binaries().unwrap().join("hearth")
}

/// Runs `hearth` with `args`: (exit code, stdout + stderr).
fn hearth_cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(hearth()).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The lines of `check` in `hearth verify`'s text output: its own line and its findings.
fn check_block(output: &str, check: &str) -> String {
    let mut lines = output.lines().skip_while(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.get(1) != Some(&check)
    });
    let mut block = lines.next().unwrap_or_default().to_owned();
    for l in lines {
        if matches!(
            l.split_whitespace().next(),
            Some("pass" | "FAIL" | "WARN" | "info")
        ) {
            break;
        }
        block.push('\n');
        block.push_str(l);
    }
    block
}

fn client() -> Client {
    Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// One boot of the machine in `state` from `disk`, up to hearthd serving its console.
struct Booted {
    vm: Vm,
    banner: Banner,
    port: u16,
    to_console: Duration,
}

impl Booted {
    fn start(disk: &Path, state: &Path) -> Booted {
        let port = free_port().unwrap();
        let mut vm = Vm::start(VmConfig::new(disk, state, port)).unwrap();
        let t = Instant::now();
        let line = vm
            .wait_for("console: https://", BOOT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n--- serial console ---\n{}", vm.serial()));
        let to_console = t.elapsed();
        assert!(line.contains(":8443/"), "{line}");
        let banner = banner(&vm.serial());
        eprintln!("boot to console-ready: {:.1} s", to_console.as_secs_f64());
        Booted {
            vm,
            banner,
            port,
            to_console,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn target(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn verify(&self, references: &[&Path], extra: &[&str]) -> (i32, String) {
        let target = self.target();
        let mut args: Vec<String> = vec!["verify".into(), target];
        for r in references {
            args.push("--reference".into());
            args.push(r.display().to_string());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hearth_cli(&args)
    }

    fn shutdown(self) {
        let serial = self.vm.serial();
        self.vm
            .shutdown(SHUTDOWN_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n--- serial console ---\n{serial}"));
    }
}

/// Logs in: (cookie, csrf).
async fn login(b: &Booted, name: &str) -> (String, String) {
    let resp = client()
        .post(b.url("/api/v1/login"))
        .json(&json!({ "name": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "login {name}");
    session(resp).await
}

async fn session(resp: reqwest::Response) -> (String, String) {
    let cookie = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .strip_prefix("__Host-hearth_session=")
                .map(str::to_owned)
        })
        .expect("a session cookie");
    let (_, body) = json(resp).await;
    (
        format!("__Host-hearth_session={cookie}"),
        body["csrf"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn image_builds_are_byte_identical() {
    let _one = exclusive();
    let dir = workdir("reproducible");
    let t = Instant::now();
    let a = build(&dir.join("a"), b'A');
    let first = t.elapsed();
    let b = build(&dir.join("b"), b'A');
    eprintln!(
        "image build: {:.1} s, then {:.1} s; image {} MiB (sparse), UKI {} MiB, initrd {} MiB",
        first.as_secs_f64(),
        (t.elapsed() - first).as_secs_f64(),
        a.manifest.image.size >> 20,
        a.manifest.uki.size >> 20,
        a.manifest.initrd.size >> 20
    );
    for name in [
        "hearth.img",
        "hearth.efi",
        "initrd.cpio.zst",
        "reference.json",
        "reference.json.sig",
        "manifest.json",
    ] {
        let (x, y) = (
            std::fs::read(a.dir.join(name)).unwrap(),
            std::fs::read(b.dir.join(name)).unwrap(),
        );
        assert!(
            x == y,
            "{name} differs between two builds of the same inputs"
        );
    }
    assert!(hearth_image::verify_reference_signature(&a.dir).unwrap());
    let reference =
        hearth_attest::reference::Reference::from_json(&std::fs::read(a.reference()).unwrap())
            .unwrap();
    assert!(reference.name.unwrap().contains("DEVELOPMENT key"));
    assert!(a.manifest.dev_key);
    // A different initrd byte moves PCRs 4, 9 and 11 and nothing else the reference pins.
    let c = build(&dir.join("c"), b'B');
    for pcr in [4u8, 9, 11] {
        assert_ne!(a.manifest.pcrs[&pcr], c.manifest.pcrs[&pcr], "PCR {pcr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #8's three hil-tests in order on one machine (one disk, one TPM): a measured boot that
/// verifies; claim, a user and a dataset that survive a power cycle; an initrd changed by one
/// byte that fails verification on PCRs 4, 9 and 11, locks the store, and the recovery key
/// that opens it.
#[test]
fn measured_boot_verifies_keeps_data_and_catches_a_changed_initrd() {
    let _one = exclusive();
    let t_all = Instant::now();
    let dir = workdir("boot");
    let good = build(&dir.join("good"), b'A');
    let state = dir.join("machine");
    std::fs::create_dir_all(&state).unwrap();
    let disk = state.join("disk.img");
    hearth_image::copy_sparse(&good.image(), &disk).unwrap();
    let release = good.reference();
    let platform = dir.join("platform.json");
    let evidence = dir.join("first-boot-evidence.json");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. First boot: the release reference plus the platform baseline captured now verify.
    let b = Booted::start(&disk, &state);
    let first_boot = b.to_console;
    let recovery = b
        .banner
        .recovery_key
        .clone()
        .expect("first boot prints the recovery key");
    let code = b
        .banner
        .setup_code
        .clone()
        .expect("an unclaimed appliance prints a setup code");
    let cert = b
        .banner
        .cert_sha256
        .clone()
        .expect("the certificate's SHA-256");
    assert!(
        b.vm.serial()
            .contains("hearth-init: first boot: formatting the data partition")
    );
    let (rc, out) = b.verify(
        &[&release],
        &["--save-evidence", evidence.to_str().unwrap()],
    );
    assert_eq!(rc, 1, "the release reference alone pins no AK:\n{out}");
    assert!(
        check_block(&out, "reference.executables").starts_with("  pass"),
        "{out}"
    );
    let (rc, baseline) = hearth_cli(&[
        "attest",
        "reference",
        "--from-evidence",
        evidence.to_str().unwrap(),
        "--pcrs",
        "0-3,5-7",
        "--name",
        "hil-test VM platform",
    ]);
    assert_eq!(rc, 0, "{baseline}");
    std::fs::write(&platform, &baseline).unwrap();
    // The release reference is checked against the key that signed it at build time.
    let release_key = good.dir.join("signing-key.pub");
    let (rc, out) = b.verify(
        &[&release, &platform],
        &[
            "--fingerprint",
            &cert,
            "--release-key",
            release_key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        rc,
        0,
        "the first boot is trusted:\n{out}\n--- serial ---\n{}",
        b.vm.serial()
    );
    for check in [
        "quote.signature",
        "ak.allowed",
        "eventlog.replay",
        "reference.executables",
        "reference.configuration",
        "runtime.events",
        "tls.binding",
        "reference.signature",
    ] {
        assert!(
            check_block(&out, check).starts_with("  pass"),
            "{check}:\n{out}"
        );
    }

    // 2. Claim, a user, a dataset; power off; boot again: all still there, nothing to claim.
    let dataset = "id,score\n1,0.5\n2,0.75\n3,0.25\n";
    rt.block_on(async {
        let resp = client()
            .post(b.url("/api/v1/setup"))
            .json(&json!({ "code": code, "name": "root", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let (cookie, csrf) = session(resp).await;
        let resp = client()
            .post(b.url("/api/v1/users"))
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({ "name": "olga", "password": PASSWORD, "role": "operator" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let (cookie, csrf) = login(&b, "olga").await;
        let (status, tok) = json(
            client()
                .post(b.url("/api/v1/tokens"))
                .header(header::COOKIE, &cookie)
                .header("x-csrf-token", &csrf)
                .json(&json!({ "label": "hil" }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{tok}");
        let (status, v1) = json(
            client()
                .post(b.url("/api/v1/datasets/scores"))
                .bearer_auth(tok["token"].as_str().unwrap())
                .header(header::CONTENT_TYPE, "text/csv")
                .body(dataset)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v1}");
        assert_eq!(v1["rows"], 3);
    });
    b.shutdown();

    let b = Booted::start(&disk, &state);
    let second_boot = b.to_console;
    assert_eq!(b.banner.setup_code, None, "claimed: no setup code");
    assert_eq!(
        b.banner.recovery_key, None,
        "the recovery key is shown once"
    );
    assert_eq!(b.banner.locked, None, "same measurements: the store opens");
    assert_eq!(
        b.banner.cert_sha256.as_deref(),
        Some(cert.as_str()),
        "the stored TLS key"
    );
    assert!(!b.vm.serial().contains("formatting the data partition"));
    rt.block_on(async {
        let (cookie, _) = login(&b, "olga").await;
        let (status, shown) = json(
            client()
                .get(b.url("/api/v1/datasets/scores"))
                .header(header::COOKIE, &cookie)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert!(shown.to_string().contains("\"rows\":3"), "{shown}");
    });
    let (rc, out) = b.verify(&[&release, &platform], &[]);
    assert_eq!(rc, 0, "the second boot is trusted too:\n{out}");
    b.shutdown();

    // 3. One byte changed in the initrd, installed into slot A of the same disk.
    let changed = build(&dir.join("changed"), b'B');
    let layout = gpt::Layout::new(ImageSpec::default().esp_mib, ImageSpec::default().data_mib);
    hearth_image::install_esp(&changed.image(), &disk, &layout).unwrap();
    let b = Booted::start(&disk, &state);
    let third_boot = b.to_console;
    let locked = b
        .banner
        .locked
        .clone()
        .unwrap_or_else(|| panic!("the store must be locked:\n{}", b.vm.serial()));
    assert!(locked.contains("PCR 11"), "{locked}");
    let (rc, out) = b.verify(&[&release, &platform], &[]);
    assert_eq!(rc, 1, "a changed initrd is not trusted:\n{out}");
    let block = check_block(&out, "reference.executables");
    assert!(block.starts_with("  FAIL"), "{out}");
    for pcr in ["sha256:4 ", "sha256:9 ", "sha256:11 "] {
        assert!(block.contains(pcr), "{pcr} is named:\n{block}");
    }
    assert!(
        check_block(&out, "reference.configuration").starts_with("  pass"),
        "{out}"
    );
    // The changed image's own reference is what this boot matches.
    let (rc, out) = b.verify(&[&changed.reference(), &platform], &[]);
    assert_eq!(rc, 0, "{out}");
    rt.block_on(async {
        let (status, health) = json(client().get(b.url("/healthz")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health["store"]["state"], "locked", "{health}");
        assert_eq!(health["store"]["changed_pcrs"], json!([11]), "{health}");
        let resp = client()
            .post(b.url("/api/v1/login"))
            .json(&json!({ "name": "olga", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let resp = client()
            .post(b.url("/api/v1/unlock"))
            .json(&json!({ "recovery_key": recovery }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "unlock: {}", resp.status());
        let (cookie, _) = login(&b, "olga").await;
        let (status, shown) = json(
            client()
                .get(b.url("/api/v1/datasets/scores"))
                .header(header::COOKIE, &cookie)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
    });
    b.shutdown();

    eprintln!(
        "image: {} MiB disk (sparse), UKI {} MiB; boot to console-ready: {:.1} s (first boot), {:.1} s, {:.1} s (changed initrd); whole test {:.0} s",
        good.manifest.image.size >> 20,
        good.manifest.uki.size >> 20,
        first_boot.as_secs_f64(),
        second_boot.as_secs_f64(),
        third_boot.as_secs_f64(),
        t_all.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
