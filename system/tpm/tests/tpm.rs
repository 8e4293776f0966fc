//! hearth-tpm against real swtpm processes: one TPM per test, own state, own ports.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hearth_attest::quote::{AkKey, QuoteFailure, verify_quote};
use hearth_tpm::{Bank, PcrSelection, Tpm, TpmConfig, TpmError, TpmHandle, Transport};
use hearth_tpm_testkit::Swtpm;

fn sel(text: &str) -> PcrSelection {
    text.parse().unwrap()
}

fn open(sw: &Swtpm) -> Tpm {
    Tpm::open(&sw.config()).unwrap()
}

mod pcrs {
    use super::*;

    #[test]
    fn reads_all_pcrs_of_both_banks() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        assert_eq!(tpm.info().banks, vec![Bank::Sha1, Bank::Sha256]);
        let values = tpm.pcr_read(&sel("sha1:all+sha256:all")).unwrap();
        for bank in [Bank::Sha1, Bank::Sha256] {
            let pcrs: Vec<(u8, &[u8])> = values.bank(bank).collect();
            assert_eq!(pcrs.len(), 24, "{bank}");
            // After TPM2_Startup(CLEAR), PCRs 0-16 and 23 are zero, 17-22 all ones.
            for (pcr, value) in pcrs {
                assert_eq!(value.len(), bank.digest_len());
                let fill = if (17..=22).contains(&pcr) { 0xff } else { 0 };
                assert!(value.iter().all(|b| *b == fill), "{bank}:{pcr}");
            }
        }
    }

    #[test]
    fn extend_follows_the_hash_chain_in_every_bank() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let before = tpm.pcr_read(&sel("sha1:16+sha256:16")).unwrap();
        tpm.pcr_extend(16, b"event one").unwrap();
        tpm.pcr_extend(16, b"event two").unwrap();
        let after = tpm.pcr_read(&sel("sha1:16+sha256:16")).unwrap();
        for bank in [Bank::Sha1, Bank::Sha256] {
            let mut expect = before.get(bank, 16).unwrap().to_vec();
            for event in [&b"event one"[..], b"event two"] {
                expect = bank.extend(&expect, &bank.hash(event));
            }
            assert_eq!(after.get(bank, 16).unwrap(), expect.as_slice(), "{bank}");
        }
    }

    #[test]
    fn unallocated_bank_is_a_clear_error() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let err = tpm.pcr_read(&sel("sha384:0")).unwrap_err();
        assert!(err.to_string().contains("sha384 is not allocated"), "{err}");
    }
}

mod seal {
    use super::*;

    #[test]
    fn seal_then_unseal_round_trips() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let secret = [0x5au8; 32];
        let blob = tpm.seal(&secret, &sel("sha256:7,11")).unwrap();
        // The JSON form is what callers store.
        let blob = hearth_tpm::SealedBlob::from_json(blob.to_json().as_bytes()).unwrap();
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), secret);
        // And again: unsealing does not consume anything.
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), secret);
    }

    #[test]
    fn extending_a_sealed_pcr_names_exactly_that_pcr() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let blob = tpm.seal(b"root secret", &sel("sha256:7,11,14")).unwrap();
        tpm.pcr_extend(11, b"an unexpected boot component").unwrap();
        match tpm.unseal(&blob) {
            Err(TpmError::PolicyMismatch { changed }) => assert_eq!(changed, vec![11]),
            other => panic!("expected PolicyMismatch, got {other:?}"),
        }
        tpm.pcr_extend(7, b"secure boot off").unwrap();
        let err = tpm.unseal(&blob).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy mismatch: PCRs 7, 11 changed since sealing"
        );
    }

    #[test]
    fn extending_a_pcr_outside_the_policy_leaves_unseal_working() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let blob = tpm.seal(b"root secret", &sel("sha256:7,11")).unwrap();
        tpm.pcr_extend(12, b"kernel command line").unwrap();
        tpm.pcr_extend(16, b"debug").unwrap();
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), b"root secret");
    }

    #[test]
    fn sealing_to_the_sha1_bank_works_too() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let blob = tpm.seal(b"legacy", &sel("sha1:0,7")).unwrap();
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), b"legacy");
        tpm.pcr_extend(0, b"x").unwrap();
        assert!(matches!(
            tpm.unseal(&blob),
            Err(TpmError::PolicyMismatch { changed }) if changed == vec![0]
        ));
    }

    #[test]
    fn sealed_blob_survives_a_tpm_restart() {
        let mut sw = Swtpm::start().unwrap();
        let blob = {
            let mut tpm = open(&sw);
            tpm.seal(b"kept across reboots", &sel("sha256:7,11"))
                .unwrap()
        };
        sw.restart().unwrap();
        let mut tpm = open(&sw);
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), b"kept across reboots");
    }

    #[test]
    fn a_blob_from_another_tpm_is_refused() {
        let dir = tempfile_dir();
        let other = Swtpm::start_in(dir.path()).unwrap(); // fresh seeds, not the template's
        let blob = open(&other).seal(b"elsewhere", &sel("7")).unwrap();
        let sw = Swtpm::start().unwrap();
        let err = open(&sw).unseal(&blob).unwrap_err();
        assert!(matches!(err, TpmError::MalformedBlob { .. }), "{err}");
        assert!(err.to_string().contains("not sealed by this TPM"), "{err}");
    }

    #[test]
    fn a_doctored_blob_cannot_make_the_mismatch_report_lie() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let mut blob = tpm.seal(b"root secret", &sel("sha256:7,11")).unwrap();
        // Rewrite the recorded PCR 11 and recompute the recorded policy to match it.
        blob.pcrs.insert(Bank::Sha256, 11, vec![0x11; 32]);
        let digest = blob.pcrs.digest(&blob.selection, Bank::Sha256).unwrap();
        blob.policy = hearth_tpm::pcr::policy_pcr_digest(&blob.selection, &digest);
        let err = tpm.unseal(&blob).unwrap_err();
        assert!(matches!(err, TpmError::MalformedBlob { .. }), "{err}");
        assert!(
            err.to_string().contains("policy is not the recorded one"),
            "{err}"
        );
    }

    #[test]
    fn bad_secrets_and_selections_are_refused_before_the_tpm() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let too_big = vec![1u8; hearth_tpm::MAX_SEALED_SECRET + 1];
        assert!(matches!(
            tpm.seal(&too_big, &sel("7")),
            Err(TpmError::InvalidInput(_))
        ));
        assert!(matches!(
            tpm.seal(b"", &sel("7")),
            Err(TpmError::InvalidInput(_))
        ));
        assert!(matches!(
            tpm.seal(b"x", &sel("sha1:7+sha256:7")),
            Err(TpmError::InvalidInput(_))
        ));
    }

    #[test]
    fn objects_left_loaded_by_other_clients_are_flushed() {
        let sw = Swtpm::start().unwrap();
        // tpm2-tools without a resource manager leaves its primaries loaded: three fill every
        // object slot of swtpm, and sealing would then fail with TPM_RC_OBJECT_MEMORY.
        for _ in 0..3 {
            let status = std::process::Command::new("tpm2_createprimary")
                .args(["-C", "o", "-G", "ecc", "-Q", "-c", "/dev/null"])
                .env("TPM2TOOLS_TCTI", sw.tcti())
                .env("TSS2_LOG", "all+NONE")
                .status()
                .expect("tpm2_createprimary from tpm2-tools (`just setup` installs it)");
            assert!(status.success());
        }
        let mut tpm = open(&sw);
        let blob = tpm.seal(b"room again", &sel("7")).unwrap();
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), b"room again");
    }

    fn tools(sw: &Swtpm, program: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(program)
            .args(args)
            .env("TPM2TOOLS_TCTI", sw.tcti())
            .env("TSS2_LOG", "all+NONE")
            .output()
            .expect("tpm2-tools (`just setup` installs them)");
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn the_srk_and_ak_are_persisted_at_their_handles() {
        let sw = Swtpm::start().unwrap();
        assert!(!tools(&sw, "tpm2_getcap", &["handles-persistent"]).contains("0x81000001"));
        let mut tpm = open(&sw);
        tpm.seal(b"x", &sel("7")).unwrap();
        tpm.ak_public().unwrap();
        drop(tpm);
        let persistent = tools(&sw, "tpm2_getcap", &["handles-persistent"]);
        assert!(persistent.contains("0x81000001"), "{persistent}");
        assert!(persistent.contains("0x81020001"), "{persistent}");
        // Nothing transient is left behind.
        assert_eq!(tools(&sw, "tpm2_getcap", &["handles-transient"]).trim(), "");
    }

    #[test]
    fn a_foreign_key_at_the_srk_handle_is_left_alone() {
        let sw = Swtpm::start().unwrap();
        let dir = tempfile_dir();
        let ctx = dir.path().join("rsa.ctx");
        let ctx = ctx.to_str().unwrap();
        tools(
            &sw,
            "tpm2_createprimary",
            &["-Q", "-C", "o", "-G", "rsa", "-c", ctx],
        );
        tools(
            &sw,
            "tpm2_evictcontrol",
            &["-Q", "-C", "o", "-c", ctx, "0x81000001"],
        );
        tools(&sw, "tpm2_flushcontext", &["-t"]);
        let before = tools(&sw, "tpm2_readpublic", &["-c", "0x81000001"]);
        let mut tpm = open(&sw);
        let blob = tpm.seal(b"still works", &sel("7")).unwrap();
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), b"still works");
        drop(tpm);
        assert_eq!(tools(&sw, "tpm2_readpublic", &["-c", "0x81000001"]), before);
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}

mod attest {
    use super::*;

    #[test]
    fn quote_verifies_in_pure_rust() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        tpm.pcr_extend(0, b"firmware").unwrap();
        let ak = tpm.ak_public().unwrap();
        let key = AkKey::from_tpm2b_public(&ak.tpm2b_public).unwrap();
        assert_eq!(key.point(), AkKey::from_pem(&ak.pem).unwrap().point());
        let quote = tpm
            .quote(b"fresh nonce", &sel("sha256:0-15+sha1:0,7"))
            .unwrap();
        let verdict = verify_quote(
            &quote.attest,
            &quote.signature,
            &key,
            b"fresh nonce",
            &quote.pcrs,
        )
        .unwrap();
        assert!(verdict.passed(), "{:?}", verdict.failures);
        assert_eq!(verdict.attest.selection.len(), 2);

        // A replayed quote (other nonce) and doctored PCR values are both caught, together.
        let mut doctored = quote.pcrs.clone();
        doctored.insert(Bank::Sha256, 0, vec![0; 32]);
        let verdict = verify_quote(
            &quote.attest,
            &quote.signature,
            &key,
            b"other nonce",
            &doctored,
        )
        .unwrap();
        assert_eq!(verdict.failures.len(), 2, "{:?}", verdict.failures);
    }

    #[test]
    fn a_flipped_bit_in_message_or_signature_is_rejected() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let key = AkKey::from_tpm2b_public(&tpm.ak_public().unwrap().tpm2b_public).unwrap();
        let quote = tpm.quote(b"n", &sel("0-7")).unwrap();
        // The extraData byte (the nonce) sits in the middle of the message; the last byte is in
        // the PCR digest; the signature's last byte is in S.
        let mut msg = quote.attest.clone();
        let last = msg.len() - 1;
        msg[last] ^= 0x01;
        let v = verify_quote(&msg, &quote.signature, &key, b"n", &quote.pcrs).unwrap();
        assert!(
            v.failures.contains(&QuoteFailure::BadSignature),
            "{:?}",
            v.failures
        );
        let mut sig = quote.signature.clone();
        let last = sig.len() - 1;
        sig[last] ^= 0x80;
        let v = verify_quote(&quote.attest, &sig, &key, b"n", &quote.pcrs).unwrap();
        assert_eq!(v.failures, vec![QuoteFailure::BadSignature]);
    }

    #[test]
    fn the_attestation_key_survives_a_restart() {
        let mut sw = Swtpm::start().unwrap();
        let (first, resets_before) = {
            let mut tpm = open(&sw);
            let ak = tpm.ak_public().unwrap();
            let quote = tpm.quote(b"before reboot", &sel("7")).unwrap();
            let key = AkKey::from_tpm2b_public(&ak.tpm2b_public).unwrap();
            let v = verify_quote(
                &quote.attest,
                &quote.signature,
                &key,
                b"before reboot",
                &quote.pcrs,
            )
            .unwrap();
            (ak, v.attest.clock.reset_count)
        };
        sw.restart().unwrap();
        let mut tpm = open(&sw);
        let again = tpm.ak_public().unwrap();
        assert_eq!(first, again);
        // Quotes after the restart verify with the key from before it, and (the AK being an
        // endorsement-hierarchy key) carry the true reset count: the reboot is visible.
        let key = AkKey::from_tpm2b_public(&first.tpm2b_public).unwrap();
        let quote = tpm.quote(b"after reboot", &sel("7")).unwrap();
        let v = verify_quote(
            &quote.attest,
            &quote.signature,
            &key,
            b"after reboot",
            &quote.pcrs,
        )
        .unwrap();
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!(v.attest.clock.reset_count, resets_before + 1);
    }

    #[test]
    fn oversized_nonce_is_refused() {
        let sw = Swtpm::start().unwrap();
        let err = open(&sw).quote(&[0; 65], &sel("0")).unwrap_err();
        assert!(matches!(err, TpmError::InvalidInput(_)), "{err}");
    }

    #[test]
    fn ek_certificates_are_read_from_nv() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        assert!(tpm.is_software());
        let certs = tpm.ek_certificates().unwrap();
        let algs: Vec<&str> = certs.iter().map(|c| c.algorithm).collect();
        assert_eq!(algs, ["rsa2048", "ecc-p384"]);
        for cert in certs {
            // DER X.509: a SEQUENCE with a two-byte length.
            assert_eq!(&cert.der[..2], &[0x30, 0x82], "{}", cert.algorithm);
            let len = usize::from(u16::from_be_bytes([cert.der[2], cert.der[3]]));
            assert_eq!(cert.der.len(), len + 4, "{}", cert.algorithm);
        }
    }
}

mod counter {
    use super::*;

    const INDEX: u32 = 0x0150_0001;

    #[test]
    fn counter_never_goes_back_across_restarts() {
        let mut sw = Swtpm::start().unwrap();
        let mut seen = Vec::new();
        {
            let mut tpm = open(&sw);
            assert!(matches!(
                tpm.counter_read(INDEX),
                Err(TpmError::CounterNotDefined { index: INDEX })
            ));
            for _ in 0..3 {
                seen.push(tpm.counter_increment(INDEX).unwrap());
            }
            assert_eq!(tpm.counter_read(INDEX).unwrap(), seen[2]);
        }
        for _ in 0..2 {
            sw.restart().unwrap();
            let mut tpm = open(&sw);
            assert_eq!(tpm.counter_read(INDEX).unwrap(), *seen.last().unwrap());
            seen.push(tpm.counter_increment(INDEX).unwrap());
        }
        assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    }

    #[test]
    fn indices_outside_the_nv_range_are_refused() {
        let sw = Swtpm::start().unwrap();
        let err = open(&sw).counter_increment(0x8100_0001).unwrap_err();
        assert!(matches!(err, TpmError::InvalidInput(_)), "{err}");
    }
}

mod transport {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn a_refused_connection_is_reported_at_once() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        }; // closed again: nothing listens there now
        let config = TpmConfig::new(Transport::Swtpm {
            host: "127.0.0.1".into(),
            port,
        });
        let start = Instant::now();
        let err = Tpm::open(&config).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, TpmError::Unreachable { .. }), "{err}");
        let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            text.contains(&format!("port={port}")) && text.contains("refused"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_device_is_reported() {
        let config = TpmConfig::new(Transport::Device {
            path: "/nonexistent/tpmrm9".into(),
        });
        let err = Tpm::open(&config).unwrap_err();
        assert!(matches!(err, TpmError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_socket_times_out_instead_of_hanging() {
        // Accepts connections and never answers a byte.
        let (command, control) = loop {
            let a = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = a.local_addr().unwrap().port();
            if let Ok(b) = TcpListener::bind(("127.0.0.1", port + 1)) {
                break (a, b);
            }
        };
        let port = command.local_addr().unwrap().port();
        let config = TpmConfig::new(Transport::Swtpm {
            host: "127.0.0.1".into(),
            port,
        })
        .with_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let err = TpmHandle::open(config).await.unwrap_err();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        let TpmError::Unreachable { source, .. } = &err else {
            panic!("expected Unreachable, got {err:?}");
        };
        assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
        assert!(source.to_string().contains("300 ms"), "{source}");
        drop((command, control)); // the stuck owner thread now sees EOF and exits
    }

    #[tokio::test]
    async fn a_tpm_that_hangs_mid_session_gives_timeouts_then_busy_then_recovers() {
        let sw = Swtpm::start().unwrap();
        // Long enough that opening and reading on a loaded CI machine never trips it.
        let mut config = sw.config().with_timeout(Duration::from_secs(2));
        config.queue_depth = 2;
        let tpm = TpmHandle::open(config).await.unwrap();
        tpm.pcr_read(sel("0")).await.unwrap();

        sw.pause().unwrap();
        let err = tpm.pcr_read(sel("0")).await.unwrap_err(); // owner thread now stuck
        assert!(matches!(err, TpmError::Unreachable { .. }), "{err}");
        // The queue holds two more; the third caller is told at once that the TPM is busy.
        let (a, b) = (tpm.clone(), tpm.clone());
        let queued = [
            tokio::spawn(async move { a.pcr_read(sel("1")).await }),
            tokio::spawn(async move { b.pcr_read(sel("2")).await }),
        ];
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let err = tpm.pcr_read(sel("3")).await.unwrap_err();
        assert!(matches!(err, TpmError::Busy { queued: 2 }), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "Busy must not wait for the timeout"
        );
        for q in queued {
            assert!(matches!(
                q.await.unwrap(),
                Err(TpmError::Unreachable { .. })
            ));
        }

        sw.resume().unwrap();
        // The backlog drains and the handle works again.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match tpm.pcr_read(sel("0")).await {
                Ok(v) => {
                    assert_eq!(v.get(Bank::Sha256, 0).unwrap(), [0u8; 32]);
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = e;
                }
                Err(e) => panic!("TPM did not recover: {e}"),
            }
        }
    }
}

mod handle {
    use super::*;

    #[tokio::test]
    async fn the_async_handle_serialises_concurrent_callers() {
        let sw = Swtpm::start().unwrap();
        let tpm = TpmHandle::open(sw.config()).await.unwrap();
        assert!(tpm.info().software);
        let blob = tpm
            .seal(
                hearth_tpm::Secret::new(zeroize::Zeroizing::new(b"shared".to_vec())),
                sel("7"),
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let (tpm, blob) = (tpm.clone(), blob.clone());
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    tpm.unseal(blob).await.map(|s| s.expose().to_vec())
                } else {
                    tpm.quote(vec![i], sel("0-7")).await.map(|q| q.attest)
                }
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let out = t.await.unwrap().unwrap();
            if i % 2 == 0 {
                assert_eq!(out, b"shared");
            } else {
                assert!(!out.is_empty());
            }
        }
    }
}
