//! `hearth tpm …` against real swtpm processes, as IT uses it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_attest::pcr::{Bank, PcrValues};
use hearth_attest::quote::{AkKey, verify_quote};
use hearth_tpm_testkit::Swtpm;

use crate::{HEARTH, hearth, ok, run, stderr};

#[test]
fn pcrs_prints_text_and_json() {
    let sw = Swtpm::start().unwrap();
    ok(hearth(
        &sw,
        &["tpm", "extend", "--pcr", "0", "--data", "firmware"],
        b"",
    ));
    let json = ok(hearth(
        &sw,
        &["tpm", "pcrs", "--bank", "all", "--json"],
        b"",
    ));
    let values: PcrValues = serde_json::from_slice(&json).unwrap();
    assert_eq!(values.bank(Bank::Sha256).count(), 24);
    assert_eq!(values.bank(Bank::Sha1).count(), 24);
    let expect = Bank::Sha256.extend(&[0; 32], &Bank::Sha256.hash(b"firmware"));
    assert_eq!(values.get(Bank::Sha256, 0).unwrap(), expect.as_slice());

    let text = String::from_utf8(ok(hearth(&sw, &["tpm", "pcrs", "--pcrs", "0,7"], b""))).unwrap();
    assert_eq!(
        text,
        format!(
            "sha256:\n   0 : 0x{}\n   7 : 0x{}\n",
            hex::encode_upper(&expect),
            "00".repeat(32)
        )
    );
}

#[test]
fn seal_and_unseal_through_pipes_with_exit_3_on_policy_mismatch() {
    let sw = Swtpm::start().unwrap();
    let secret = b"0123456789abcdef0123456789abcdef";
    let sealed = ok(hearth(&sw, &["tpm", "seal", "--pcrs", "7,11"], secret));
    assert!(!String::from_utf8_lossy(&sealed).contains("0123456789abcdef"));
    assert_eq!(ok(hearth(&sw, &["tpm", "unseal"], &sealed)), secret);

    ok(hearth(
        &sw,
        &["tpm", "extend", "--pcr", "11"],
        b"rogue kernel",
    ));
    let out = hearth(&sw, &["tpm", "unseal"], &sealed);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr(&out),
        "error: policy mismatch: PCR 11 changed since sealing\n"
    );
}

#[test]
fn quote_files_pass_tpm2_checkquote_and_the_pure_rust_verifier() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nonce = "f00dfacecafe0123456789";
    ok(hearth(
        &sw,
        &[
            "tpm",
            "quote",
            "--nonce",
            nonce,
            "--pcrs",
            "0-15",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        b"",
    ));
    let file = |name: &str| dir.path().join(name);
    let status = Command::new("tpm2_checkquote")
        .arg("-u")
        .arg(file("ak.pem"))
        .arg("-m")
        .arg(file("quote.msg"))
        .arg("-s")
        .arg(file("quote.sig"))
        .args(["-g", "sha256", "-q", nonce])
        .stdout(Stdio::null())
        .status()
        .expect("tpm2_checkquote from tpm2-tools (`just setup` installs it)");
    assert!(status.success(), "tpm2_checkquote rejected the quote");

    // The same files verify offline in pure Rust, from either key format.
    let read = |name: &str| std::fs::read(file(name)).unwrap();
    let pcrs: PcrValues = serde_json::from_slice(&read("pcrs.json")).unwrap();
    assert_eq!(pcrs.bank(Bank::Sha256).count(), 16);
    let nonce = hex::decode(nonce).unwrap();
    for key in [
        AkKey::from_pem(&String::from_utf8(read("ak.pem")).unwrap()).unwrap(),
        AkKey::from_tpm2b_public(&read("ak.pub")).unwrap(),
    ] {
        let v = verify_quote(&read("quote.msg"), &read("quote.sig"), &key, &nonce, &pcrs).unwrap();
        assert!(v.passed(), "{:?}", v.failures);
    }

    // tpm2_checkquote refuses the same files with another nonce: the check is real.
    let status = Command::new("tpm2_checkquote")
        .arg("-u")
        .arg(file("ak.pem"))
        .arg("-m")
        .arg(file("quote.msg"))
        .arg("-s")
        .arg(file("quote.sig"))
        .args(["-g", "sha256", "-q", "00"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

#[test]
fn counter_read_and_increment() {
    let sw = Swtpm::start().unwrap();
    let args = |a: &'static str| ["tpm", "counter", a, "--index", "0x01500020"];
    let out = hearth(&sw, &args("read"), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("0x01500020 is not defined"),
        "{}",
        stderr(&out)
    );
    let first: u64 = String::from_utf8(ok(hearth(&sw, &args("increment"), b"")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let second: u64 = String::from_utf8(ok(hearth(&sw, &args("increment"), b"")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(second, first + 1);
    let json = ok(hearth(
        &sw,
        &["tpm", "counter", "read", "--index", "1500020", "--json"],
        b"",
    ));
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["value"], second);
    assert_eq!(json["index"], "0x01500020");
}

#[test]
fn ek_certs_and_info() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    ok(hearth(
        &sw,
        &["tpm", "ek-certs", "--out", dir.path().to_str().unwrap()],
        b"",
    ));
    for name in ["ek-rsa2048.der", "ek-ecc-p384.der"] {
        let der = std::fs::read(dir.path().join(name)).unwrap();
        assert_eq!(der[0], 0x30, "{name} is not DER");
    }
    let info = ok(hearth(&sw, &["tpm", "info", "--json"], b""));
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["software"], true);
    assert_eq!(info["manufacturer"], "IBM");
}

#[test]
fn a_software_tpm_is_announced_loudly() {
    let sw = Swtpm::start().unwrap();
    let out = run(Some(&sw.tcti()), &["tpm", "info"], b"", "warn");
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("software TPM in use"),
        "{}",
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("root of trust: NONE"));
}

#[test]
fn errors_are_one_clear_line_with_a_nonzero_exit() {
    let sw = Swtpm::start().unwrap();
    let cases: [(&[&str], &[u8], i32, &str); 7] = [
        (
            &["tpm", "unseal"],
            b"{not json",
            1,
            "sealed blob is malformed",
        ),
        (&["tpm", "seal"], &[7u8; 129], 1, "larger than 128 bytes"),
        (&["tpm", "seal"], b"", 1, "no secret on stdin"),
        (
            &["tpm", "pcrs", "--pcrs", "0-99"],
            b"",
            1,
            "bad PCR list item",
        ),
        (
            &["tpm", "quote", "--nonce", "zz", "--out", "/tmp/x"],
            b"",
            1,
            "--nonce is not hex",
        ),
        (
            &["tpm", "counter", "read", "--index", "0x81000001"],
            b"",
            1,
            "is not an NV index",
        ),
        // A TPM refusal is decoded to text, with its response code, once.
        (
            &["tpm", "extend", "--pcr", "17", "--data", "x"],
            b"",
            1,
            "error: TPM command PCR_Extend failed: bad locality (TPM response code 0x907)",
        ),
    ];
    for (args, stdin, code, needle) in cases {
        let out = hearth(&sw, args, stdin);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn an_unreachable_tpm_exits_4_within_the_timeout() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    let start = Instant::now();
    let out = run(
        Some(&tcti),
        &["--timeout-ms", "500", "tpm", "pcrs"],
        b"",
        "off",
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: TPM unreachable at {tcti}")),
        "{err}"
    );

    let out = run(Some("carrier-pigeon:1"), &["tpm", "pcrs"], b"", "off");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported TCTI"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hearth_tcti_comes_from_the_environment() {
    let sw = Swtpm::start().unwrap();
    let out = Command::new(HEARTH)
        .args(["tpm", "info", "--json"])
        .env("HEARTH_TCTI", sw.tcti())
        .env("HEARTH_LOG", "off")
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&ok(out)).unwrap();
    assert_eq!(info["transport"], sw.tcti());
}
