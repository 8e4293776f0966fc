//! Attestation end to end: a swtpm brought into the state of a real measured boot, evidence,
//! references, `hearth verify`, and every single tamper named by the right check.

use std::path::{Path, PathBuf};

use hearth_attest::evidence::Evidence;
use hearth_attest::pcr::{Bank, PcrValues};
use hearth_attest::reference::{AllowedRuntimeEvent, Reference};
use hearth_attest::verify::{Status, Verdict, verify};
use hearth_eventlog::{EventLog, RuntimeEvent, RuntimeLog};
use hearth_tpm::Tpm;
use hearth_tpm_testkit::Swtpm;

use crate::{hearth, ok, run, stderr};

const NONCE: &str = "5eed0f0a11ce5eed0f0a11ce5eed0f0a11ce5eed0f0a11ce5eed0f0a11ce5eed";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../system/eventlog/tests/data")
        .join(name)
}

fn replay_into_tpm(sw: &Swtpm, log: &EventLog) {
    let mut tpm = Tpm::open(&sw.config()).unwrap();
    hearth_tpm_testkit::replay_log_into(&mut tpm, log).unwrap();
}

fn booted_tpm(log_name: &str) -> (Swtpm, EventLog) {
    let log = EventLog::parse(&std::fs::read(fixture(log_name)).unwrap()).unwrap();
    let sw = Swtpm::start().unwrap();
    replay_into_tpm(&sw, &log);
    (sw, log)
}

fn evidence(sw: &Swtpm, dir: &Path, extra: &[&str]) -> (PathBuf, Evidence) {
    let log = fixture("ovmf-uki-4banks.bin");
    let mut args = vec!["attest", "evidence", "--nonce", NONCE, "--pcrs", "0-15"];
    if !extra.contains(&"--no-eventlog") {
        args.extend(["--eventlog", log.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    let json = ok(hearth(sw, &args, b""));
    let path = dir.join("evidence.json");
    std::fs::write(&path, &json).unwrap();
    (path, Evidence::from_json(&json).unwrap())
}

fn reference(args: &[&str], dir: &Path, name: &str) -> (PathBuf, Reference) {
    let out = ok(run(
        None,
        &[&["attest", "reference"][..], args].concat(),
        b"",
        "off",
    ));
    let path = dir.join(name);
    std::fs::write(&path, &out).unwrap();
    (path, Reference::from_json(&out).unwrap())
}

fn nonce() -> Vec<u8> {
    hex::decode(NONCE).unwrap()
}

/// Every check is reported, whatever failed.
fn assert_all_checks_reported(v: &Verdict) {
    let ids: Vec<&str> = v.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "quote.structure",
            "quote.signature",
            "ak.allowed",
            "quote.nonce",
            "quote.pcr_digest",
            "eventlog.replay",
            "reference.executables",
            "reference.configuration",
            "runtime.events",
            "tpm.kind",
        ]
    );
}

fn failed(v: &Verdict) -> Vec<&'static str> {
    v.failed().map(|c| c.id).collect()
}

#[test]
fn a_real_boot_verifies_and_every_single_tamper_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (sw, log) = booted_tpm("ovmf-uki-4banks.bin");
    let (ev_path, ev) = evidence(&sw, dir.path(), &[]);
    // IT's baseline: platform PCRs and the AK from this evidence; the release's PCR 4, 9, 11 from
    // the guest's own reading of the same boot.
    let (platform_path, platform) = reference(
        &[
            "--from-evidence",
            ev_path.to_str().unwrap(),
            "--pcrs",
            "0-3,5-7",
            "--name",
            "box",
        ],
        dir.path(),
        "platform.json",
    );
    assert_eq!(platform.ak_public_sha256.len(), 1);
    let guest = fixture("ovmf-uki-4banks.pcrs.json");
    let (release_path, release) = reference(
        &["--from-pcrs", guest.to_str().unwrap(), "--pcrs", "4,9,11"],
        dir.path(),
        "release.json",
    );
    let refs = vec![platform.clone(), release.clone()];

    // The CLI: trusted (a software TPM is a warning), exit 0, every check shown.
    let out = run(
        None,
        &[
            "verify",
            "--evidence",
            ev_path.to_str().unwrap(),
            "--reference",
            release_path.to_str().unwrap(),
            "--reference",
            platform_path.to_str().unwrap(),
            "--nonce",
            NONCE,
        ],
        b"",
        "off",
    );
    let text = String::from_utf8(ok(out)).unwrap();
    assert!(text.starts_with("verdict: warning (trusted)"), "{text}");
    assert!(text.contains("WARN  tpm.kind"), "{text}");
    assert_eq!(text.matches("  pass  ").count(), 8, "{text}");
    assert!(text.contains("skip  runtime.events"), "{text}");

    let v = verify(&ev, &refs, &nonce()).unwrap();
    assert_all_checks_reported(&v);
    assert_eq!(v.status, Status::Warning);
    assert!(failed(&v).is_empty());
    let replay = v.check("eventlog.replay").unwrap();
    assert!(
        replay.detail.starts_with("the firmware log replays to all"),
        "{}",
        replay.detail
    );
    assert!(replay.findings.is_empty());

    // One byte of an event's data (EV_EFI_ACTION text in PCR 4): the replay still matches (it
    // uses digests) but the event no longer hashes to its digest, and the verifier names it.
    let action = log
        .events
        .iter()
        .find(|e| e.type_name() == "EV_EFI_ACTION")
        .unwrap();
    let mut tampered = ev.clone();
    let at = action.offset + action_data_offset(&log, action.index);
    tampered.eventlog.as_mut().unwrap()[at] ^= 0x20;
    let v = verify(&tampered, &refs, &nonce()).unwrap();
    assert_all_checks_reported(&v);
    assert_eq!(failed(&v), ["eventlog.replay"]);
    let finding = &v.check("eventlog.replay").unwrap().findings[0];
    assert_eq!(
        finding.subject,
        format!("event #{} at byte {}", action.index, action.offset)
    );

    // One byte of a digest (the last event of PCR 11): the replay diverges at PCR 11, named.
    let last11 = log.events.iter().rev().find(|e| e.pcr == 11).unwrap();
    let mut tampered = ev.clone();
    let digest_at = digest_offset(
        &tampered.eventlog.clone().unwrap(),
        last11.offset,
        Bank::Sha256,
    );
    tampered.eventlog.as_mut().unwrap()[digest_at] ^= 0x01;
    let v = verify(&tampered, &refs, &nonce()).unwrap();
    assert_eq!(failed(&v), ["eventlog.replay"]);
    let findings = &v.check("eventlog.replay").unwrap().findings;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].subject, "sha256:11");
    assert!(
        findings[0]
            .note
            .as_deref()
            .unwrap()
            .contains("built from events")
    );

    // One reference PCR: that PCR, expected against actual.
    let mut wrong_release = release.clone();
    wrong_release.pcrs.insert(Bank::Sha256, 9, vec![0xab; 32]);
    let v = verify(&ev, &[platform.clone(), wrong_release], &nonce()).unwrap();
    assert_all_checks_reported(&v);
    assert_eq!(failed(&v), ["reference.executables"]);
    let f = &v.check("reference.executables").unwrap().findings;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].subject, "sha256:9");
    assert_eq!(f[0].expected.as_deref(), Some("ab".repeat(32).as_str()));

    // The nonce: a replayed quote.
    let v = verify(&ev, &refs, b"another nonce").unwrap();
    assert_all_checks_reported(&v);
    assert_eq!(failed(&v), ["quote.nonce"]);

    // One bit of the signature.
    let mut tampered = ev.clone();
    let n = tampered.signature.len();
    tampered.signature[n - 1] ^= 0x01;
    let v = verify(&tampered, &refs, &nonce()).unwrap();
    assert_all_checks_reported(&v);
    assert_eq!(failed(&v), ["quote.signature"]);

    // Another AK: an attacker's own TPM brought into exactly the same state signs evidence that
    // is perfect in every respect but one, which TPM signed it.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Swtpm::start_in(other_dir.path()).unwrap(); // fresh seeds: another AK
    replay_into_tpm(&other, &log);
    let (_, forged) = evidence(&other, other_dir.path(), &[]);
    assert_ne!(forged.ak_public, ev.ak_public);
    let v = verify(&forged, &refs, &nonce()).unwrap();
    assert_all_checks_reported(&v);
    assert_eq!(failed(&v), ["ak.allowed"]);

    // Without any reference pinning the AK, nothing is trusted: no accept-all default.
    let v = verify(&ev, std::slice::from_ref(&release), &nonce()).unwrap();
    assert_eq!(failed(&v), ["ak.allowed"]);
}

/// Offset of an event's data from its record start, for a TCG_PCR_EVENT2 in a crypto-agile log.
fn action_data_offset(log: &EventLog, index: usize) -> usize {
    let e = &log.events[index];
    // pcrIndex, eventType, digest count, then (algId, digest) per bank, then eventSize.
    let digests: usize = e.digests.iter().map(|(_, d)| 2 + d.len()).sum();
    4 + 4 + 4 + digests + 4
}

/// Offset of `bank`'s digest within the TCG_PCR_EVENT2 at `record`.
fn digest_offset(bytes: &[u8], record: usize, bank: Bank) -> usize {
    let mut at = record + 12;
    loop {
        let alg = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let b = Bank::from_alg_id(alg).unwrap();
        if b == bank {
            return at + 2;
        }
        at += 2 + b.digest_len();
    }
}

/// A booted TPM, its evidence (without an event log) and a reference captured from that
/// evidence, written to `dir/name`.
fn evidence_and_reference(dir: &Path, name: &str) -> (Swtpm, PathBuf, PathBuf) {
    let (sw, _) = booted_tpm("ovmf-uki-sha256.bin");
    let (ev_path, _) = evidence(&sw, dir, &["--no-eventlog"]);
    let (ref_path, _) = reference(&["--from-evidence", ev_path.to_str().unwrap()], dir, name);
    (sw, ev_path, ref_path)
}

#[test]
fn the_cli_exits_1_for_not_trusted_and_2_for_unusable_input() {
    let dir = tempfile::tempdir().unwrap();
    let (_sw, ev_path, ref_path) = evidence_and_reference(dir.path(), "ref.json");
    let verify_args = |evidence: &Path, nonce: &str| {
        run(
            None,
            &[
                "verify",
                "--evidence",
                evidence.to_str().unwrap(),
                "--reference",
                ref_path.to_str().unwrap(),
                "--nonce",
                nonce,
                "--json",
            ],
            b"",
            "off",
        )
    };
    // No event log: a warning, still trusted; the EAR says so per claim.
    let ear: serde_json::Value = serde_json::from_slice(&ok(verify_args(&ev_path, NONCE))).unwrap();
    let sub = &ear["submods"]["hearth-appliance"];
    assert_eq!(sub["ear.status"], "warning");
    assert_eq!(sub["ear.trustworthiness-vector"]["instance-identity"], 2);
    assert_eq!(sub["ear.trustworthiness-vector"]["executables"], 32);

    let out = verify_args(&ev_path, "00");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ear: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        ear["submods"]["hearth-appliance"]["ear.status"],
        "contraindicated"
    );
    assert_eq!(
        ear["submods"]["hearth-appliance"]["ear.trustworthiness-vector"]["hardware"],
        96
    );

    let out = verify_args(&ev_path, "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--nonce is empty"),
        "{}",
        stderr(&out)
    );

    let garbage = dir.path().join("garbage.json");
    std::fs::write(
        &garbage,
        b"{\"format\": \"hearth-evidence/1\", \"nonce\": 7}",
    )
    .unwrap();
    let out = verify_args(&garbage, NONCE);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: unusable input: reading"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(out.stdout.is_empty());
}

/// `--release-key`: a reference signed as the image build signs `reference.json` verifies; a
/// changed file, another key or no signed reference at all is not trusted; a signature without a
/// key is reported as not checked; a key file that is not a key is unusable input.
#[test]
fn release_keys_check_where_references_come_from() {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    let dir = tempfile::tempdir().unwrap();
    let (_sw, ev_path, ref_path) = evidence_and_reference(dir.path(), "release.json");
    let keypair = || {
        let pk8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap()
    };
    let (release, other) = (keypair(), keypair());
    let bytes = std::fs::read(&ref_path).unwrap();
    let sig_of = |path: &Path| PathBuf::from(format!("{}.sig", path.display()));
    std::fs::write(sig_of(&ref_path), hex::encode(release.sign(&bytes))).unwrap();
    let key_file = |name: &str, key: &Ed25519KeyPair| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{}\n", hex::encode(key.public_key()))).unwrap();
        path
    };
    let (release_pub, other_pub) = (
        key_file("release.pub", &release),
        key_file("other.pub", &other),
    );
    let verify_with = |reference: &Path, key: Option<&Path>| {
        let mut args = vec![
            "verify",
            "--evidence",
            ev_path.to_str().unwrap(),
            "--reference",
            reference.to_str().unwrap(),
            "--nonce",
            NONCE,
        ];
        if let Some(key) = key {
            args.extend(["--release-key", key.to_str().unwrap()]);
        }
        run(None, &args, b"", "off")
    };
    let line = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("reference.signature"))
            .map(str::to_owned)
            .unwrap_or_default()
    };

    // Signed by the release key: trusted, and said so.
    let out = verify_with(&ref_path, Some(&release_pub));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        line(&out).trim_start().starts_with("pass"),
        "{}",
        line(&out)
    );
    assert!(
        line(&out).contains("release.json signed by the release key"),
        "{}",
        line(&out)
    );

    // Another key: not trusted.
    let out = verify_with(&ref_path, Some(&other_pub));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        line(&out).trim_start().starts_with("FAIL"),
        "{}",
        line(&out)
    );

    // The same values, one byte more in the file: the signature no longer holds.
    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, [bytes.as_slice(), b"\n"].concat()).unwrap();
    std::fs::copy(sig_of(&ref_path), sig_of(&changed)).unwrap();
    let out = verify_with(&changed, Some(&release_pub));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the file was changed after signing"),
        "{text}"
    );

    // A key, but no signed reference: not trusted.
    let unsigned = dir.path().join("unsigned.json");
    std::fs::write(&unsigned, &bytes).unwrap();
    let out = verify_with(&unsigned, Some(&release_pub));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        line(&out).contains("no reference is signed"),
        "{}",
        line(&out)
    );

    // A signature but no key: trusted as before, with the signature reported unchecked.
    let out = verify_with(&ref_path, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        line(&out).trim_start().starts_with("skip"),
        "{}",
        line(&out)
    );
    // No signature and no key: no such check at all.
    let out = verify_with(&unsigned, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(line(&out), "");

    // A key file that is not an Ed25519 public key: unusable input.
    let bad = dir.path().join("bad.pub");
    std::fs::write(&bad, "abcd").unwrap();
    let out = verify_with(&ref_path, Some(&bad));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not the 32 of an Ed25519 public key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_baseline_is_only_captured_from_sound_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let (_, mut ev) = evidence(&sw, dir.path(), &["--no-eventlog"]);
    ev.pcrs.insert(Bank::Sha256, 3, vec![0x33; 32]);
    let path = dir.path().join("doctored.json");
    std::fs::write(&path, ev.to_json()).unwrap();
    let out = run(
        None,
        &[
            "attest",
            "reference",
            "--from-evidence",
            path.to_str().unwrap(),
        ],
        b"",
        "off",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot serve as a baseline"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("PCR digest"), "{}", stderr(&out));
}

#[test]
fn a_baseline_takes_only_quoted_pcrs() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let json = ok(hearth(
        &sw,
        &[
            "attest",
            "evidence",
            "--nonce",
            NONCE,
            "--no-eventlog",
            "--pcrs",
            "0-7",
        ],
        b"",
    ));
    let mut ev = Evidence::from_json(&json).unwrap();
    ev.pcrs.insert(Bank::Sha256, 9, vec![0x99; 32]); // reported, not quoted
    let path = dir.path().join("evidence.json");
    std::fs::write(&path, ev.to_json()).unwrap();
    let (_, r) = reference(
        &["--from-evidence", path.to_str().unwrap()],
        dir.path(),
        "r.json",
    );
    assert_eq!(r.pcrs.bank(Bank::Sha256).count(), 8);
    assert!(r.pcrs.get(Bank::Sha256, 9).is_none());
    let out = run(
        None,
        &[
            "attest",
            "reference",
            "--from-evidence",
            path.to_str().unwrap(),
            "--pcrs",
            "9",
        ],
        b"",
        "off",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no (quoted) value for sha256:9"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bindings_are_proven_and_cannot_be_rearranged() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let tls = "11".repeat(32);
    let audit = "22".repeat(32);
    let (ev_path, ev) = evidence(
        &sw,
        dir.path(),
        &[
            "--no-eventlog",
            "--tls-spki-sha256",
            &tls,
            "--audit-head",
            &audit,
        ],
    );
    let (_, r) = reference(
        &["--from-evidence", ev_path.to_str().unwrap()],
        dir.path(),
        "r.json",
    );
    let refs = std::slice::from_ref(&r);
    let v = verify(&ev, refs, &nonce()).unwrap();
    assert!(failed(&v).is_empty(), "{:?}", v.checks);
    assert!(
        v.check("quote.nonce")
            .unwrap()
            .detail
            .contains("TLS key and the audit head")
    );

    // An attacker relays nonce ‖ their TLS key as "the nonce" and binds the real key as the
    // audit head: with length-prefixed, flagged fields the rearranged evidence does not verify.
    let attacker_tls = "33".repeat(32);
    let relayed = format!("{NONCE}{attacker_tls}");
    let json = ok(hearth(
        &sw,
        &[
            "attest",
            "evidence",
            "--nonce",
            &relayed,
            "--no-eventlog",
            "--pcrs",
            "0-15",
            "--tls-spki-sha256",
            &tls,
        ],
        b"",
    ));
    let mut forged = Evidence::from_json(&json).unwrap();
    forged.nonce = nonce();
    forged.tls_spki_sha256 = Some(hex::decode(&attacker_tls).unwrap());
    forged.audit_head = Some(hex::decode(&tls).unwrap());
    let v = verify(&forged, refs, &nonce()).unwrap();
    assert_eq!(failed(&v), ["quote.nonce"]);

    // Bindings must be SHA-256 digests.
    let out = hearth(
        &sw,
        &[
            "attest",
            "evidence",
            "--nonce",
            NONCE,
            "--no-eventlog",
            "--audit-head",
            "abcd",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("must be a SHA-256 digest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn runtime_events_are_replayed_into_pcr_15_and_checked_against_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Swtpm::start().unwrap();
    let banks = [Bank::Sha1, Bank::Sha256];
    let events = [
        RuntimeEvent::measure(15, "hearth-config", "profile=dev", &banks),
        RuntimeEvent::measure(15, "hearth-service", "hearthd 0.1.0", &banks),
    ];
    {
        let mut tpm = Tpm::open(&sw.config()).unwrap();
        for e in &events {
            tpm.pcr_extend_digests(e.pcr, &e.digests).unwrap();
        }
    }
    let runtime_log = RuntimeLog {
        events: events.to_vec(),
    };
    let log_path = dir.path().join("runtime.log");
    std::fs::write(&log_path, runtime_log.to_text()).unwrap();
    let (ev_path, ev) = evidence(
        &sw,
        dir.path(),
        &["--no-eventlog", "--runtime-log", log_path.to_str().unwrap()],
    );
    let (_, mut reference) = reference(
        &["--from-evidence", ev_path.to_str().unwrap()],
        dir.path(),
        "r.json",
    );
    let allow = |e: &RuntimeEvent| AllowedRuntimeEvent {
        pcr: e.pcr,
        kind: e.kind.clone(),
        sha256: hex::encode(e.digest(Bank::Sha256).unwrap()),
    };
    reference.runtime_events = Some(events.iter().map(allow).collect());
    let v = verify(&ev, std::slice::from_ref(&reference), &nonce()).unwrap();
    assert!(failed(&v).is_empty(), "{:?}", v.checks);
    assert!(
        v.check("eventlog.replay")
            .unwrap()
            .detail
            .starts_with("the runtime log replays")
    );

    // Only the first event allowed: the second is named.
    reference.runtime_events = Some(vec![allow(&events[0])]);
    let v = verify(&ev, std::slice::from_ref(&reference), &nonce()).unwrap();
    assert_eq!(failed(&v), ["runtime.events"]);
    assert_eq!(
        v.check("runtime.events").unwrap().findings[0].subject,
        "runtime line 2"
    );

    // A runtime log that leaves one event out no longer explains PCR 15.
    let mut short = ev.clone();
    short.runtime_log = Some(
        RuntimeLog {
            events: events[..1].to_vec(),
        }
        .to_text(),
    );
    reference.runtime_events = None;
    let v = verify(&short, std::slice::from_ref(&reference), &nonce()).unwrap();
    assert_eq!(failed(&v), ["eventlog.replay"]);
    assert_eq!(
        v.check("eventlog.replay").unwrap().findings[0].subject,
        "sha256:15"
    );
}

#[test]
fn eventlog_replay_json_is_exactly_the_guest_pcrs() {
    for name in [
        "ovmf-uki-4banks",
        "ovmf-uki-sha256",
        "seabios-direct-kernel",
    ] {
        let out = ok(run(
            None,
            &[
                "eventlog",
                "replay",
                fixture(&format!("{name}.bin")).to_str().unwrap(),
                "--json",
            ],
            b"",
            "off",
        ));
        let replayed: PcrValues = serde_json::from_slice(&out).unwrap();
        let guest: PcrValues =
            serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.pcrs.json"))).unwrap())
                .unwrap();
        let mut compared = 0;
        for (pcr, value) in replayed.bank(Bank::Sha256) {
            assert_eq!(
                Some(value),
                guest.get(Bank::Sha256, pcr),
                "{name} sha256:{pcr}"
            );
            compared += 1;
        }
        assert!(compared >= 8, "{name}: only {compared} PCRs compared");
    }

    let out = run(None, &["eventlog", "show", "/etc/hostname"], b"", "off");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a TCG event log"),
        "{}",
        stderr(&out)
    );
}
