//! TPM benchmark: medians of PCR read, seal, unseal and quote on swtpm, for hearth-tpm in
//! process, for the `hearth` CLI, and for tpm2-tools (the peer) in the same run on the same TPM.
//!
//! `just bench` (or `cargo bench -p hearth-cli --bench tpm`); `HEARTH_BENCH_RUNS=N` sets the
//! runs per operation (default 100, at least 50). Targets (in process): unseal <= 50 ms,
//! quote <= 10 ms.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_tpm::{PcrSelection, SealedBlob, Tpm};
use hearth_tpm_testkit::Swtpm;

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    // Nearest-rank percentile: index = ceil(q * n) - 1.
    let at = |percent: usize| samples[(percent * samples.len()).div_ceil(100).saturating_sub(1)];
    Stats {
        median: at(50),
        p90: at(90),
        min: samples[0],
    }
}

fn time(runs: usize, mut op: impl FnMut()) -> Stats {
    op(); // warm-up: first-use key creation and caches are not what we measure
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            op();
            start.elapsed()
        })
        .collect();
    stats(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn tools(sw: &Swtpm, dir: &Path, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("TPM2TOOLS_TCTI", sw.tcti())
        .env("TSS2_LOG", "all+NONE");
    cmd
}

fn hearth(sw: &Swtpm) -> Command {
    let mut cmd = Command::new(HEARTH);
    cmd.arg("--tcti").arg(sw.tcti()).env("HEARTH_LOG", "off");
    cmd
}

/// tpm2-tools without a resource manager leaves its objects and sessions loaded (swtpm has three
/// object slots); flush them between runs, outside the timed region.
fn flush(sw: &Swtpm, dir: &Path) {
    run_ok(tools(sw, dir, "tpm2_flushcontext").arg("-t"));
    run_ok(tools(sw, dir, "tpm2_flushcontext").arg("-l"));
}

fn time_with_flush(runs: usize, sw: &Swtpm, dir: &Path, mut op: impl FnMut()) -> Stats {
    op();
    flush(sw, dir);
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            op();
            let took = start.elapsed();
            flush(sw, dir);
            took
        })
        .collect();
    stats(samples)
}

fn main() {
    let runs: usize = std::env::var("HEARTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(50);
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let pcrs8: PcrSelection = "sha256:0-7".parse().unwrap();
    let pcrs16: PcrSelection = "sha256:0-15".parse().unwrap();
    let seal_pcrs: PcrSelection = "sha256:7,11".parse().unwrap();
    let secret = [0x42u8; 32];
    let nonce = [0x17u8; 32];
    let nonce_hex = hex::encode(nonce);

    // ---- hearth-tpm, in process (one open TPM, as hearthd holds it) ----
    let mut tpm = Tpm::open(&sw.config()).unwrap();
    let lib_read = time(runs, || {
        tpm.pcr_read(&pcrs8).unwrap();
    });
    let lib_seal = time(runs, || {
        tpm.seal(&secret, &seal_pcrs).unwrap();
    });
    let blob = tpm.seal(&secret, &seal_pcrs).unwrap();
    let lib_unseal = time(runs, || {
        assert_eq!(tpm.unseal(&blob).unwrap().expose(), secret);
    });
    let lib_quote = time(runs, || {
        tpm.quote(&nonce, &pcrs16).unwrap();
    });
    drop(tpm);

    // ---- hearth CLI, one process per operation ----
    let blob_json = blob.to_json();
    let cli_read = time(runs, || {
        run_ok(hearth(&sw).args(["tpm", "pcrs", "--pcrs", "0-7"]));
    });
    let cli_unseal = time(runs, || {
        let mut child = hearth(&sw)
            .args(["tpm", "unseal"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), blob_json.as_bytes()).unwrap();
        assert_eq!(child.wait_with_output().unwrap().stdout, secret);
    });
    let qdir = dir.join("q");
    let cli_quote = time(runs, || {
        run_ok(
            hearth(&sw)
                .args([
                    "tpm", "quote", "--nonce", &nonce_hex, "--pcrs", "0-15", "--out",
                ])
                .arg(&qdir),
        );
    });
    let _ = SealedBlob::from_json(blob_json.as_bytes()).unwrap();

    // ---- tpm2-tools, one process per operation (the peer) ----
    flush(&sw, dir);
    run_ok(
        tools(&sw, dir, "tpm2_createprimary")
            .args(["-Q", "-C", "o", "-G", "ecc", "-c", "prim.ctx"]),
    );
    flush(&sw, dir);
    run_ok(tools(&sw, dir, "tpm2_pcrread").args(["-Q", "-o", "pcr.bin", "sha256:7,11"]));
    run_ok(tools(&sw, dir, "tpm2_createpolicy").args([
        "-Q",
        "--policy-pcr",
        "-l",
        "sha256:7,11",
        "-f",
        "pcr.bin",
        "-L",
        "pol.dig",
    ]));
    std::fs::write(dir.join("secret"), secret).unwrap();
    run_ok(tools(&sw, dir, "tpm2_create").args([
        "-Q", "-C", "prim.ctx", "-L", "pol.dig", "-i", "secret", "-u", "s.pub", "-r", "s.priv",
    ]));
    flush(&sw, dir);
    run_ok(tools(&sw, dir, "tpm2_load").args([
        "-Q", "-C", "prim.ctx", "-u", "s.pub", "-r", "s.priv", "-c", "s.ctx",
    ]));
    flush(&sw, dir);
    let tools_read = time_with_flush(runs, &sw, dir, || {
        run_ok(tools(&sw, dir, "tpm2_pcrread").arg("sha256:0,1,2,3,4,5,6,7"));
    });
    let tools_seal = time_with_flush(runs, &sw, dir, || {
        run_ok(tools(&sw, dir, "tpm2_create").args([
            "-Q", "-C", "prim.ctx", "-L", "pol.dig", "-i", "secret", "-u", "s2.pub", "-r",
            "s2.priv",
        ]));
    });
    let tools_unseal = time_with_flush(runs, &sw, dir, || {
        let out =
            run_ok(tools(&sw, dir, "tpm2_unseal").args(["-c", "s.ctx", "-p", "pcr:sha256:7,11"]));
        assert_eq!(out, secret);
    });
    let ak = format!("{:#010x}", hearth_tpm::DEFAULT_AK_HANDLE);
    let tools_quote = time_with_flush(runs, &sw, dir, || {
        run_ok(tools(&sw, dir, "tpm2_quote").args([
            "-Q",
            "-c",
            &ak,
            "-l",
            "sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
            "-q",
            &nonce_hex,
            "-m",
            "q.msg",
            "-s",
            "q.sig",
        ]));
    });

    println!("TPM benchmark on swtpm ({runs} runs each; times in ms)\n");
    println!(
        "| operation | hearth-tpm in process (median / p90 / min) | hearth CLI (median) | tpm2-tools (median) | CLI / tpm2-tools |"
    );
    println!("|---|---|---|---|---|");
    let row = |name: &str, lib: &Stats, cli: Option<&Stats>, peer: &Stats| {
        let (cli_text, ratio) = match cli {
            Some(c) => (
                ms(c.median),
                format!("{:.2}", c.median.as_secs_f64() / peer.median.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {name} | {} / {} / {} | {cli_text} | {} | {ratio} |",
            ms(lib.median),
            ms(lib.p90),
            ms(lib.min),
            ms(peer.median)
        );
    };
    row(
        "PCR read (sha256:0-7)",
        &lib_read,
        Some(&cli_read),
        &tools_read,
    );
    row("seal (32 B to sha256:7,11)", &lib_seal, None, &tools_seal);
    row(
        "unseal (salted, encrypted PolicyPCR session)",
        &lib_unseal,
        Some(&cli_unseal),
        &tools_unseal,
    );
    row(
        "quote (sha256:0-15, 32 B nonce)",
        &lib_quote,
        Some(&cli_quote),
        &tools_quote,
    );
    println!();
    let verdict = |name: &str, got: Duration, target_ms: u64| {
        let ok = got <= Duration::from_millis(target_ms);
        println!(
            "target {name} <= {target_ms} ms: {} ms median, {}",
            ms(got),
            if ok { "met" } else { "MISSED" }
        );
    };
    verdict("unseal", lib_unseal.median, 50);
    verdict("quote", lib_quote.median, 10);
}
