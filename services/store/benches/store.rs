//! The store's cost against its peers, measured in the same run:
//!
//! - encrypted store vs plain redb (same redb settings: durable commits with quick repair,
//!   same key encoding) on N records of 1 KiB: batched load, random reads, durable single writes;
//! - blob encrypt + write + fsync of 2 GiB vs a plain file write + fsync of the same bytes;
//! - raw AES-256-GCM (ring) and the STREAM writer to a sink, for reference.
//!
//! Run by hand, not in CI (it writes ~6 GiB and takes minutes):
//! `cargo bench -p hearth-store --bench store`. Environment: `HEARTH_BENCH_DIR` (default: the
//! temp dir), `HEARTH_BENCH_RECORDS` (default 1000000), `HEARTH_BENCH_SINGLE_WRITES` (default
//! 2000), `HEARTH_BENCH_BLOB_MIB` (default 2048), `HEARTH_BENCH_READ_ROUNDS` (passes of random
//! reads over the loaded records, each with its own keys, default 1), `HEARTH_BENCH_ONLY=reads`
//! (only the load that the reads need and the random reads: no single writes, reopen or blobs).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_keys::{DataKey, EncryptingWriter, KeyId};
use hearth_store::{Bytes, KeySource, Store, StoreOptions, Table};
use redb::{Durability, ReadableDatabase as _, TableDefinition};

const RECORDS: Table<u64, Bytes> = Table::new("bench");
const PLAIN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");
const VALUE_LEN: usize = 1024;
const BATCH: u64 = 1000;
const READ_TXN: u64 = 1000;
const MIB: usize = 1 << 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn value(key: u64) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_LEN];
    for (i, chunk) in v.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(key.wrapping_mul(31).wrapping_add(i as u64)).to_le_bytes());
    }
    v
}

/// What both engines do with each value they read: the owned value reaches the caller (the
/// optimizer may not drop the copy or the allocation), which checks that it is the right one.
fn use_value(key: u64, v: Vec<u8>) -> usize {
    let v = std::hint::black_box(v);
    assert_eq!(v[..8], key.wrapping_mul(31).to_le_bytes());
    v.len()
}

/// This thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap(),
        u32::try_from(ts.tv_nsec).unwrap(),
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The two key-value engines under the same workload.
trait Kv {
    fn load(&self, keys: std::ops::Range<u64>);
    fn read(&self, keys: &[u64]) -> usize;
    fn put_one(&self, key: u64);
}

struct PlainRedb(redb::Database);

impl PlainRedb {
    fn write(&self, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>)) {
        let mut txn = self.0.begin_write().unwrap();
        txn.set_durability(Durability::Immediate).unwrap();
        txn.set_quick_repair(true);
        {
            let mut t = txn.open_table(PLAIN).unwrap();
            f(&mut t);
        }
        txn.commit().unwrap();
    }
}

impl Kv for PlainRedb {
    fn load(&self, keys: std::ops::Range<u64>) {
        self.write(|t| {
            for k in keys {
                t.insert(&k.to_be_bytes()[..], value(k).as_slice()).unwrap();
            }
        });
    }

    fn read(&self, keys: &[u64]) -> usize {
        let txn = self.0.begin_read().unwrap();
        let t = txn.open_table(PLAIN).unwrap();
        let mut n = 0;
        for k in keys {
            // Owned, as the encrypted store returns it.
            let v = t
                .get(&k.to_be_bytes()[..])
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            n += use_value(*k, v);
        }
        n
    }

    fn put_one(&self, key: u64) {
        self.write(|t| {
            t.insert(&key.to_be_bytes()[..], value(key).as_slice())
                .unwrap();
        });
    }
}

struct Encrypted(Store);

impl Kv for Encrypted {
    fn load(&self, keys: std::ops::Range<u64>) {
        self.0
            .write(|w| {
                for k in keys {
                    w.put(&RECORDS, &k, &value(k))?;
                }
                Ok(())
            })
            .unwrap();
    }

    fn read(&self, keys: &[u64]) -> usize {
        self.0
            .read(|r| {
                let mut n = 0;
                for k in keys {
                    n += use_value(*k, r.get(&RECORDS, k)?.unwrap());
                }
                Ok(n)
            })
            .unwrap()
    }

    fn put_one(&self, key: u64) {
        self.0.put(&RECORDS, &key, &value(key)).unwrap();
    }
}

#[derive(Default)]
struct KvTimes {
    load: Duration,
    /// One entry per round of random reads.
    reads: Vec<Duration>,
    /// The same reads' on-CPU time of this thread (not counting time the scheduler gave to
    /// other processes: the machine is shared).
    reads_cpu: Duration,
    single: Duration,
}

/// Runs the same workload on both engines, interleaved step by step (alternating which goes
/// first), so that the shared, noisy disk and CPU drift affect both alike. Both read the same
/// keys, in read transactions of the same size.
fn run_kv(
    engines: [&dyn Kv; 2],
    records: u64,
    read_rounds: u64,
    single: u64,
    seed: u64,
) -> [KvTimes; 2] {
    let mut times = [KvTimes::default(), KvTimes::default()];
    let order = |step: u64| {
        if step.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        }
    };

    let mut step = 0;
    let mut start = 0;
    while start < records {
        let end = (start + BATCH).min(records);
        for e in order(step) {
            let t = Instant::now();
            engines[e].load(start..end);
            times[e].load += t.elapsed();
        }
        start = end;
        step += 1;
    }

    for round in 0..read_rounds {
        let mut rng = Rng(seed + round);
        let keys: Vec<u64> = (0..records).map(|_| rng.next() % records).collect();
        let mut round_times = [Duration::ZERO; 2];
        for (step, chunk) in keys.chunks(usize::try_from(READ_TXN).unwrap()).enumerate() {
            for e in order(step as u64) {
                let cpu = thread_cpu_time();
                let t = Instant::now();
                let bytes = engines[e].read(chunk);
                round_times[e] += t.elapsed();
                times[e].reads_cpu += thread_cpu_time() - cpu;
                assert_eq!(bytes, chunk.len() * VALUE_LEN);
            }
        }
        for e in 0..2 {
            times[e].reads.push(round_times[e]);
        }
    }

    for i in 0..single {
        for e in order(i) {
            let t = Instant::now();
            engines[e].put_one(records + i);
            times[e].single += t.elapsed();
        }
    }
    times
}

/// `sync(1)`: flushes every dirty page of the machine.
fn sync_all() {
    let _ = std::process::Command::new("sync").status();
}

fn plain_file_write(path: &Path, buf: &[u8], mib: usize) -> Duration {
    let t = Instant::now();
    let mut f = fs::File::create(path).unwrap();
    for _ in 0..mib {
        f.write_all(buf).unwrap();
    }
    f.sync_all().unwrap();
    fs::File::open(path.parent().unwrap())
        .unwrap()
        .sync_all()
        .unwrap();
    t.elapsed()
}

fn blob_write(store: &Store, buf: &[u8], mib: usize) -> (Duration, hearth_store::BlobId) {
    let t = Instant::now();
    let mut w = store.blob_writer().unwrap();
    for _ in 0..mib {
        w.write_all(buf).unwrap();
    }
    let info = w.finish().unwrap();
    (t.elapsed(), info.id)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported: use HEARTH_BENCH_ONLY.
    let only_reads = match std::env::var("HEARTH_BENCH_ONLY") {
        Ok(v) if v == "reads" => true,
        Ok(v) if !v.is_empty() => panic!("HEARTH_BENCH_ONLY: only `reads` is known, not {v:?}"),
        _ => false,
    };
    let records = env_or("HEARTH_BENCH_RECORDS", 1_000_000);
    let read_rounds = env_or("HEARTH_BENCH_READ_ROUNDS", 1).max(1);
    let single = if only_reads {
        0
    } else {
        env_or("HEARTH_BENCH_SINGLE_WRITES", 2000)
    };
    let blob_mib = usize::try_from(env_or("HEARTH_BENCH_BLOB_MIB", 2048)).unwrap();
    let base = std::env::var_os("HEARTH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("hearth-store-bench-")
        .tempdir_in(&base)
        .unwrap();
    if only_reads {
        println!(
            "hearth-store bench (reads only): {records} records x {VALUE_LEN} B loaded in batches \
             of {BATCH}, {read_rounds} round(s) of {records} random reads in transactions of \
             {READ_TXN}; in {}",
            root.path().display()
        );
    } else {
        println!(
            "hearth-store bench: {records} records x {VALUE_LEN} B, batches of {BATCH}, \
             {read_rounds} round(s) of random reads in transactions of {READ_TXN}, {single} \
             durable single writes, blob {blob_mib} MiB; in {}",
            root.path().display()
        );
    }

    // Raw AES-256-GCM, and the STREAM writer into a sink.
    let mut buf = vec![0x5au8; MIB];
    let key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
    );
    let rounds = 1024u64;
    let t = Instant::now();
    for i in 0..rounds {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_be_bytes());
        let _tag = key
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::empty(),
                &mut buf,
            )
            .unwrap();
    }
    let raw_gcm = (rounds as f64) * (MIB as f64) / secs(t.elapsed()) / 1e9;
    let dek = DataKey::generate(KeyId([1; 16])).unwrap();
    let mut w =
        EncryptingWriter::new(std::io::sink(), &dek, hearth_keys::DEFAULT_CHUNK_SIZE).unwrap();
    let t = Instant::now();
    for _ in 0..rounds {
        w.write_all(&buf).unwrap();
    }
    w.finish().unwrap();
    let stream_gcm = (rounds as f64) * (MIB as f64) / secs(t.elapsed()) / 1e9;

    // One record envelope of 1 KiB, sealed and opened in memory; and, as the floor, ring alone
    // opening 1 KiB in place (same AAD length, no copy, no allocation).
    let cipher = hearth_keys::RecordCipher::new(
        &hearth_keys::RootSecret::generate()
            .unwrap()
            .derive(b"bench", hearth_keys::Purpose::STORE),
    )
    .unwrap();
    let record = value(7);
    let n = 200_000u32;
    let t = Instant::now();
    let mut envelope = Vec::new();
    for _ in 0..n {
        envelope = cipher.seal("bench", &7u64.to_be_bytes(), &record).unwrap();
    }
    let seal_us = secs(t.elapsed()) * 1e6 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        let plain = cipher
            .open("bench", &7u64.to_be_bytes(), &envelope)
            .unwrap();
        use_value(7, plain);
    }
    let open_us = secs(t.elapsed()) * 1e6 / f64::from(n);
    let aad = [0x11u8; 43];
    let mut sealed = record.clone();
    let tag = key
        .seal_in_place_separate_tag(
            ring::aead::Nonce::assume_unique_for_key([1; 12]),
            ring::aead::Aad::from(aad),
            &mut sealed,
        )
        .unwrap();
    sealed.extend_from_slice(tag.as_ref());
    let mut scratch = sealed.clone();
    let t = Instant::now();
    for _ in 0..n {
        scratch.copy_from_slice(&sealed);
        let plain = key
            .open_in_place(
                ring::aead::Nonce::assume_unique_for_key([1; 12]),
                ring::aead::Aad::from(aad),
                std::hint::black_box(&mut scratch[..]),
            )
            .unwrap();
        assert_eq!(plain.len(), VALUE_LEN);
    }
    let ring_open_us = secs(t.elapsed()) * 1e6 / f64::from(n);

    // Key-value: both engines open side by side, each on its own file, workload interleaved.
    let store_dir = root.path().join("store");
    let dev_key = root.path().join("dev-root.key");
    let plain_path = root.path().join("plain.redb");
    let plain = PlainRedb(redb::Database::create(&plain_path).unwrap());
    let (store, _) = Store::create(
        &store_dir,
        KeySource::DevKeyFile { path: &dev_key },
        &StoreOptions::default(),
    )
    .unwrap();
    let enc = Encrypted(store);
    let [plain_times, enc_times] = run_kv([&plain, &enc], records, read_rounds, single, 42);
    drop(plain);
    drop(enc);
    let plain_db_bytes = fs::metadata(&plain_path).unwrap().len();
    let db_bytes = fs::metadata(store_dir.join(hearth_store::DB_FILE))
        .unwrap()
        .len();

    let blobs = (!only_reads).then(|| {
        // Reopening the full store: the key check, and redb's check of every page checksum.
        let t = Instant::now();
        let reopened = Store::open(
            &store_dir,
            KeySource::DevKeyFile { path: &dev_key },
            &StoreOptions::default(),
        )
        .unwrap();
        let reopen = t.elapsed();
        drop(reopened);
        fs::remove_file(&plain_path).unwrap();
        fs::remove_dir_all(&store_dir).unwrap();
        let (store, _) = Store::create(
            &store_dir,
            KeySource::DevKeyFile { path: &dev_key },
            &StoreOptions::default(),
        )
        .unwrap();

        // Blobs: five rounds, alternating which goes first (the disk is noisy); the median
        // counts.
        let data: Vec<u8> = (0..MIB).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
        let plain_path = root.path().join("plain.bin");
        let mut plain_blob = Vec::new();
        let mut enc_blob = Vec::new();
        for round in 0..5 {
            for engine in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                // Start every run with no dirty data left by the one before.
                sync_all();
                if engine == 0 {
                    plain_blob.push(plain_file_write(&plain_path, &data, blob_mib));
                    fs::remove_file(&plain_path).unwrap();
                } else {
                    let (d, id) = blob_write(&store, &data, blob_mib);
                    enc_blob.push(d);
                    store.erase_blob(id).unwrap();
                }
            }
        }
        (reopen, plain_blob, enc_blob)
    });
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let mb = |d: Duration| (blob_mib * MIB) as f64 / secs(d) / 1e6;

    println!();
    println!("| workload | plain | encrypted | encrypted / plain | target |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, p: Duration, e: Duration, n: u64| {
        let ratio = secs(e) / secs(p);
        println!(
            "| {name} | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | {ratio:.3}x time | <= 1.10x ({}) |",
            secs(p),
            n as f64 / secs(p),
            secs(e),
            n as f64 / secs(e),
            if ratio <= 1.10 { "met" } else { "missed" }
        );
    };
    row(
        &format!("batched load, {records} x 1 KiB"),
        plain_times.load,
        enc_times.load,
        records,
    );
    if read_rounds > 1 {
        for (i, (p, e)) in plain_times.reads.iter().zip(&enc_times.reads).enumerate() {
            row(
                &format!("random reads, {records}, round {}", i + 1),
                *p,
                *e,
                records,
            );
        }
    }
    row(
        &format!("random reads, {records} x {read_rounds} round(s)"),
        plain_times.reads.iter().sum(),
        enc_times.reads.iter().sum(),
        records * read_rounds,
    );
    row(
        &format!("random reads, {records} x {read_rounds} round(s), on-CPU time"),
        plain_times.reads_cpu,
        enc_times.reads_cpu,
        records * read_rounds,
    );
    if single > 0 {
        row(
            &format!("durable single writes, {single}"),
            plain_times.single,
            enc_times.single,
            single,
        );
    }
    if let Some((_, plain_blob, enc_blob)) = &blobs {
        let share = mb(median(enc_blob)) / mb(median(plain_blob));
        println!(
            "| blob write + fsync, {blob_mib} MiB (median of 5) | {:.0} MB/s | {:.0} MB/s | {:.1}% of plain throughput | >= 80% ({}) |",
            mb(median(plain_blob)),
            mb(median(enc_blob)),
            share * 100.0,
            if share >= 0.8 { "met" } else { "missed" }
        );
    }
    println!(
        "\nAES-256-GCM (ring, 1 MiB messages, one core): {raw_gcm:.2} GB/s; STREAM writer to a \
         sink: {stream_gcm:.2} GB/s"
    );
    println!(
        "record envelope of 1 KiB in memory: seal {seal_us:.2} us, open {open_us:.2} us; ring \
         alone opening 1 KiB in place: {ring_open_us:.2} us"
    );
    println!(
        "database files after the key-value workload: plain {:.2} GB, encrypted {:.2} GB",
        plain_db_bytes as f64 / 1e9,
        db_bytes as f64 / 1e9
    );
    if let Some((reopen, plain_blob, enc_blob)) = &blobs {
        println!(
            "reopening the encrypted store ({:.2} GB database, integrity check on): {:.2} s",
            db_bytes as f64 / 1e9,
            secs(*reopen)
        );
        println!(
            "blob runs (plain, encrypted) MB/s: {:?}, {:?}",
            plain_blob
                .iter()
                .map(|d| mb(*d).round())
                .collect::<Vec<_>>(),
            enc_blob.iter().map(|d| mb(*d).round()).collect::<Vec<_>>()
        );
    }
}
