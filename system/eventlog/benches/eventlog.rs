//! Event log benchmark: median time to parse, replay and describe every event of each fixture
//! log in process, against tpm2-tools' `tpm2_eventlog FILE` (the peer) on the same file in the
//! same run. Target: at least 10x faster.
//!
//! `cargo bench -p hearth-eventlog --bench eventlog`; `HEARTH_BENCH_RUNS=N` sets the runs per
//! measurement (default 200, at least 50).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_eventlog::EventLog;

const FIXTURES: [&str; 3] = [
    "ovmf-uki-4banks",
    "ovmf-uki-sha256",
    "seabios-direct-kernel",
];
const PEER: &str = "tpm2_eventlog";

fn median(runs: usize, mut op: impl FnMut()) -> Duration {
    op(); // warm-up: page cache, lazy statics
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            op();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let runs: usize = std::env::var("HEARTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(50);
    let peer_version = Command::new(PEER)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{PEER} is needed as the peer (apt install tpm2-tools): {e}"));
    let peer_version = String::from_utf8_lossy(&peer_version.stdout);

    println!(
        "Event log parse + replay + describe, median of {runs} runs; peer: {PEER} FILE as a process"
    );
    println!("({}).\n", peer_version.trim());
    // How much of the peer's time is its process start (exec, dynamic TSS libraries).
    let floor = median(runs, || {
        let status = Command::new(PEER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    });
    println!(
        "Peer start-up floor (`{PEER} --version`): {} µs; it is most of the peer's time, and the\n\
         way an auditor runs it.\n",
        us(floor)
    );
    println!("| log | bytes | events | hearth-eventlog (µs) | tpm2_eventlog (µs) | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for name in FIXTURES {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(format!("{name}.bin"));
        let bytes = std::fs::read(&path).unwrap();
        let events = EventLog::parse(&bytes).unwrap().events.len();

        let ours = median(runs, || {
            let log = EventLog::parse(black_box(&bytes)).unwrap();
            let replay = log.replay();
            let described: usize = log.events.iter().map(|e| e.describe().len()).sum();
            black_box((replay, described));
        });
        let peer = median(runs, || {
            let status = Command::new(PEER)
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{PEER} {} failed", path.display());
        });
        println!(
            "| {name} | {} | {events} | {} | {} | {:.0}x |",
            bytes.len(),
            us(ours),
            us(peer),
            peer.as_secs_f64() / ours.as_secs_f64()
        );
    }
}
