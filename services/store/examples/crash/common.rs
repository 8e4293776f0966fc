//! The crash writer and verifier, shared by the `crash-writer` and `crash-verify` examples and
//! by the kill -9 test (`tests/store/crash.rs`), which compiles this same file into the test
//! binary and runs it in child processes.

// Each includer uses part of this module.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hearth_store::{Bytes, KeySource, Store, StoreOptions, Table};

/// The table the crash test writes: key -> 1 KiB value.
pub const TABLE: Table<u64, Bytes> = Table::new("crash");

/// Bytes per value.
pub const VALUE_LEN: usize = 1024;

/// The dev key file inside the store directory. The crash test exercises durability, not the
/// TPM, so it keeps its root secret in a plain file (dev and tests only; the TPM path is tested
/// against swtpm in the store's `tpm` tests).
pub fn key_file(dir: &Path) -> PathBuf {
    dir.join("dev-root.key")
}

/// The value of `key`: 1 KiB from a splitmix64 stream seeded by the key, so a value written to
/// the wrong key, or a stale one, is caught.
pub fn value(key: u64) -> Vec<u8> {
    let mut state = key ^ 0x5eed_c0de_d00d_f00d;
    let mut out = Vec::with_capacity(VALUE_LEN);
    while out.len() < VALUE_LEN {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out
}

fn open_store(dir: &Path, create: bool) -> anyhow::Result<Store> {
    let key = key_file(dir);
    let options = StoreOptions::default();
    if create && !Store::exists(dir) {
        let (store, _recovery) = Store::create(dir, KeySource::DevKeyFile { path: &key }, &options)
            .with_context(|| format!("creating a store in {}", dir.display()))?;
        return Ok(store);
    }
    Store::open(dir, KeySource::DevKeyFile { path: &key }, &options)
        .with_context(|| format!("opening the store in {}", dir.display()))
}

/// Parses `DIR START BATCH`.
pub fn writer_args(args: &[String]) -> anyhow::Result<(PathBuf, u64, u64)> {
    let [dir, start, batch] = args else {
        anyhow::bail!("usage: crash-writer DIR START BATCH");
    };
    let start: u64 = start.parse().context("START must be a number")?;
    let batch: u64 = batch.parse().context("BATCH must be a number")?;
    anyhow::ensure!(batch > 0, "BATCH must be at least 1");
    Ok((PathBuf::from(dir), start, batch))
}

/// Opens (or creates) the store in `dir` and writes keys `start..` in transactions of `batch`,
/// printing each key on stdout (one per line, flushed, one `write` per transaction) only after
/// its transaction is durable. Says `opening` and `opened` on stderr. Returns only on error.
pub fn write_until_killed(dir: &Path, start: u64, batch: u64) -> anyhow::Result<()> {
    eprintln!("opening");
    let store = open_store(dir, true)?;
    eprintln!("opened");
    let mut stdout = std::io::stdout().lock();
    let mut next = start;
    loop {
        let keys = next..next.saturating_add(batch);
        store.write(|w| {
            for key in keys.clone() {
                w.put(&TABLE, &key, &value(key))?;
            }
            Ok(())
        })?;
        // The transaction is durable: acknowledge its keys.
        let mut acks = String::new();
        for key in keys {
            acks.push_str(&key.to_string());
            acks.push('\n');
        }
        stdout.write_all(acks.as_bytes())?;
        stdout.flush()?;
        next = next.saturating_add(batch);
    }
}

/// Reopens the store in `dir` (running crash recovery) and checks every key listed in
/// `ack_files` (one decimal key per line): returns (missing, corrupt).
pub fn verify(dir: &Path, ack_files: &[PathBuf]) -> anyhow::Result<(u64, u64)> {
    let mut keys = Vec::new();
    for file in ack_files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let key: u64 = line
                .parse()
                .with_context(|| format!("{}:{}: {line:?} is not a key", file.display(), n + 1))?;
            keys.push(key);
        }
    }
    if !Store::exists(dir) {
        // Killed before the store was ever created: only an empty acknowledgement is right.
        return Ok((keys.len() as u64, 0));
    }
    let store = open_store(dir, false)?;
    let (mut missing, mut corrupt) = (0u64, 0u64);
    store.read(|r| {
        for &key in &keys {
            match r.get(&TABLE, &key) {
                Ok(Some(v)) if v == value(key) => {}
                Ok(Some(_)) => {
                    corrupt += 1;
                    eprintln!("corrupt: {key} holds another value");
                }
                Ok(None) => {
                    missing += 1;
                    if missing <= 10 {
                        eprintln!("missing: {key}");
                    }
                }
                Err(e) if e.is_integrity() => {
                    corrupt += 1;
                    eprintln!("corrupt: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })?;
    Ok((missing, corrupt))
}
