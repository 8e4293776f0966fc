//! Verifier throughput: evidences per second on one core, for `hearth_attest::verify` on evidence
//! of a real measured boot (the OVMF 4-bank fixture log, 40 events, replayed into a swtpm and
//! quoted over PCRs 0-15), against tpm2_checkquote (the peer; it checks only signature, nonce and
//! PCR digest, as one process per evidence) in the same run.
//!
//! `cargo bench -p hearth-cli --bench verify`. Target: >= 2000 evidences per second per core.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_attest::evidence::{EVIDENCE_FORMAT, Evidence};
use hearth_attest::{Reference, verify};
use hearth_eventlog::EventLog;
use hearth_tpm::Tpm;
use hearth_tpm_testkit::Swtpm;

fn main() {
    let log_bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../system/eventlog/tests/data/ovmf-uki-4banks.bin"
    ))
    .unwrap();
    let log = EventLog::parse(&log_bytes).unwrap();
    let sw = Swtpm::start().unwrap();
    let mut tpm = Tpm::open(&sw.config()).unwrap();
    hearth_tpm_testkit::replay_log_into(&mut tpm, &log).unwrap();
    let nonce = [0x42u8; 32];
    let ak = tpm.ak_public().unwrap();
    let quote = tpm.quote(&nonce, &"0-15".parse().unwrap()).unwrap();
    let evidence = Evidence {
        format: EVIDENCE_FORMAT.into(),
        nonce: nonce.to_vec(),
        quote: quote.attest,
        signature: quote.signature,
        ak_public: ak.tpm2b_public,
        ak_pem: ak.pem,
        pcrs: quote.pcrs,
        eventlog: Some(log_bytes),
        runtime_log: None,
        tls_spki_sha256: None,
        audit_head: None,
        model_signing_key_sha256: None,
        tpm: None,
    };
    let mut reference =
        Reference::from_pcrs(None, &evidence.pcrs, &"0-7,9,11".parse().unwrap()).unwrap();
    reference
        .ak_public_sha256
        .push(Reference::ak_digest(&evidence.ak_public));
    let refs = [reference];
    let json = evidence.to_json();

    // Warm up, then time batches: verify alone, and parse + verify from the JSON document.
    let verdict = verify(&evidence, &refs, &nonce).unwrap();
    assert!(verdict.trusted(), "{:?}", verdict.checks);
    let rate = |f: &mut dyn FnMut()| {
        let mut rates = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < Duration::from_millis(300) {
                f();
                n += 1;
            }
            rates.push(f64::from(n) / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let verify_rate = rate(&mut || {
        let v = verify(&evidence, &refs, &nonce).unwrap();
        assert!(v.trusted());
    });
    let full_rate = rate(&mut || {
        let ev = Evidence::from_json(json.as_bytes()).unwrap();
        let v = verify(&ev, &refs, &nonce).unwrap();
        assert!(v.trusted());
    });

    // The peer: tpm2_checkquote over the same quote, one process per evidence.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ak.pem"), &evidence.ak_pem).unwrap();
    std::fs::write(dir.path().join("quote.msg"), &evidence.quote).unwrap();
    std::fs::write(dir.path().join("quote.sig"), &evidence.signature).unwrap();
    let nonce_hex = hex::encode(nonce);
    let peer_rate = {
        let runs = 50u32;
        let start = Instant::now();
        for _ in 0..runs {
            let ok = Command::new("tpm2_checkquote")
                .current_dir(dir.path())
                .args([
                    "-u",
                    "ak.pem",
                    "-m",
                    "quote.msg",
                    "-s",
                    "quote.sig",
                    "-g",
                    "sha256",
                    "-q",
                ])
                .arg(&nonce_hex)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
        f64::from(runs) / start.elapsed().as_secs_f64()
    };

    println!("Verifier throughput, one core (median of 7 x 300 ms batches)\n");
    println!("| what | evidences / s | vs tpm2_checkquote |");
    println!("|---|---|---|");
    println!(
        "| hearth verify: all 10 checks, 40-event log replayed (in memory) | {verify_rate:.0} | {:.0}x |",
        verify_rate / peer_rate
    );
    println!(
        "| hearth verify: JSON parse + all 10 checks | {full_rate:.0} | {:.0}x |",
        full_rate / peer_rate
    );
    println!(
        "| tpm2_checkquote: signature, nonce, PCR digest (a process each) | {peer_rate:.0} | 1x |"
    );
    println!(
        "\ntarget >= 2000 evidences/s/core: {}",
        if full_rate >= 2000.0 { "met" } else { "MISSED" }
    );
}
