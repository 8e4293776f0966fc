// Datasets against a real encrypted store on disk (dev key file in a temp dir): uploads,
// versions, lineage, crypto-erase, quality reports, PII detection and pseudonymization.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::PathBuf;

use hearth_ml::dataset::{
    self, CsvError, DatasetError, DatasetVersion, MAX_FIELD_BYTES, VersionSel,
};
use hearth_ml::pii::{self, PiiKind, PiiReport};
use hearth_ml::quality::QualityReport;
use hearth_ml::{Column, ColumnData, ColumnKind, Frame, Rng};
use hearth_store::{BlobError, KeySource, Store, StoreOptions};
use tempfile::TempDir;

#[path = "parquet.rs"]
mod parquet;

struct TestStore {
    dir: TempDir,
    store: Option<Store>,
}

impl TestStore {
    fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let (store, _recovery) = Store::create(
            &dir.path().join("store"),
            KeySource::DevKeyFile {
                path: &dir.path().join("dev-root.key"),
            },
            &StoreOptions::default(),
        )
        .unwrap();
        TestStore {
            dir,
            store: Some(store),
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.store = None;
        self.store = Some(
            Store::open(
                &self.dir.path().join("store"),
                KeySource::DevKeyFile {
                    path: &self.dir.path().join("dev-root.key"),
                },
                &StoreOptions::default(),
            )
            .unwrap(),
        );
    }

    fn blob_dir(&self) -> PathBuf {
        self.dir.path().join("store").join(hearth_store::BLOB_DIR)
    }

    /// Live blobs, and every file in the blob directory (temp files included).
    fn blobs(&self) -> (usize, BTreeSet<String>) {
        let files = std::fs::read_dir(self.blob_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        (self.store().list_blobs().unwrap().len(), files)
    }

    fn ingest(&self, name: &str, data: &[u8]) -> Result<DatasetVersion, DatasetError> {
        dataset::ingest_csv(self.store(), name, data, &mut |_| {})
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Frames are equal, with NaN equal to NaN (`Frame`'s `PartialEq` says NaN != NaN).
#[track_caller]
fn assert_same_frame(actual: &Frame, expected: &Frame) {
    assert_eq!(actual.rows(), expected.rows(), "rows");
    let names = |f: &Frame| {
        f.columns()
            .iter()
            .map(|c| (c.name.clone(), c.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(actual), names(expected), "columns");
    for (a, e) in actual.columns().iter().zip(expected.columns()) {
        let same = match (&a.data, &e.data) {
            (ColumnData::Numeric(x), ColumnData::Numeric(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
            }
            (x, y) => x == y,
        };
        assert!(
            same,
            "column {}: got {:?}, expected {:?}",
            a.name, a.data, e.data
        );
    }
}

fn text(values: &[Option<&str>]) -> ColumnData {
    ColumnData::Text(values.iter().map(|v| v.map(str::to_owned)).collect())
}

fn col(name: &str, kind: ColumnKind, data: ColumnData) -> Column {
    Column {
        name: name.into(),
        kind,
        data,
    }
}

const EVERY_KIND: &str = "\u{feff}id, score,segment,active,comment,signed_up\r\n\
1,0.5,gold,yes,\"Likes, commas\",2024-01-15\r\n\
2,,silver,no,\"says \"\"hi\"\"\",2024-01-16 08:30:00\r\n\
3,2.25,gold,TRUE,\"two\nlines\",2024-01-17T09:00:00Z\r\n\
4,NA,bronze,false,plain,2024-01-18T10:00:00+01:00\r\n\
5,-1e3,gold,1,text five,\r\n\
6,7,silver,0,text six,2024-01-20\r\n";

fn every_kind_frame() -> Frame {
    Frame::new(vec![
        col(
            "id",
            ColumnKind::Numeric,
            ColumnData::Numeric(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        col(
            "score",
            ColumnKind::Numeric,
            ColumnData::Numeric(vec![0.5, f64::NAN, 2.25, f64::NAN, -1000.0, 7.0]),
        ),
        col(
            "segment",
            ColumnKind::Categorical,
            text(&[
                Some("gold"),
                Some("silver"),
                Some("gold"),
                Some("bronze"),
                Some("gold"),
                Some("silver"),
            ]),
        ),
        col(
            "active",
            ColumnKind::Boolean,
            ColumnData::Boolean(vec![
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                Some(false),
            ]),
        ),
        col(
            "comment",
            ColumnKind::Text,
            text(&[
                Some("Likes, commas"),
                Some("says \"hi\""),
                Some("two\nlines"),
                Some("plain"),
                Some("text five"),
                Some("text six"),
            ]),
        ),
        col(
            "signed_up",
            ColumnKind::Timestamp,
            ColumnData::Timestamp(vec![
                Some(1_705_276_800),
                Some(1_705_393_800),
                Some(1_705_482_000),
                Some(1_705_568_400),
                None,
                Some(1_705_708_800),
            ]),
        ),
    ])
    .unwrap()
}

#[test]
fn round_trip_of_every_kind() {
    let mut t = TestStore::new();
    let mut progress = Vec::new();
    let v = dataset::ingest_csv(t.store(), "customers", EVERY_KIND.as_bytes(), &mut |n| {
        progress.push(n)
    })
    .unwrap();
    assert_eq!(progress, vec![EVERY_KIND.len() as u64]);
    assert_eq!((v.dataset.as_str(), v.version, v.rows), ("customers", 1, 6));
    assert_eq!(v.bytes, EVERY_KIND.len() as u64);
    assert_eq!(v.sha256, sha256_hex(EVERY_KIND.as_bytes()));
    let schema: Vec<_> = v
        .schema
        .iter()
        .map(|c| (c.name.as_str(), c.kind, c.missing))
        .collect();
    assert_eq!(
        schema,
        vec![
            ("id", ColumnKind::Numeric, 0),
            ("score", ColumnKind::Numeric, 2),
            ("segment", ColumnKind::Categorical, 0),
            ("active", ColumnKind::Boolean, 0),
            ("comment", ColumnKind::Text, 0),
            ("signed_up", ColumnKind::Timestamp, 1),
        ]
    );
    assert_eq!(v.lineage, dataset::Lineage::default());
    // The blob holds the upload byte for byte.
    assert_eq!(t.store().read_blob(v.blob).unwrap(), EVERY_KIND.as_bytes());

    let frame = dataset::load_frame(t.store(), "customers", VersionSel::Latest).unwrap();
    assert_same_frame(&frame, &every_kind_frame());

    // Durable: the same after reopening the store.
    t.reopen();
    assert_eq!(
        dataset::get_version(t.store(), "customers", VersionSel::Number(1)).unwrap(),
        v
    );
    let listed = dataset::list_datasets(t.store()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].latest()),
        ("customers", Some(1))
    );
    assert_same_frame(
        &dataset::load_frame(t.store(), "customers", 1.into()).unwrap(),
        &every_kind_frame(),
    );
}

/// Produces a CSV of about `target` bytes row by row, hashing what it yields.
struct RowSource {
    rng: Rng,
    target: u64,
    produced: u64,
    rows: u64,
    line: Vec<u8>,
    pos: usize,
    digest: ring::digest::Context,
}

impl RowSource {
    fn new(target: u64) -> RowSource {
        let header = b"i,x,segment,flag,at,note\n".to_vec();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(&header);
        RowSource {
            rng: Rng::new(42),
            target,
            produced: header.len() as u64,
            rows: 0,
            line: header,
            pos: 0,
            digest,
        }
    }
}

impl Read for RowSource {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.line.len() {
            if self.produced >= self.target {
                return Ok(0);
            }
            let r = &mut self.rng;
            let line = format!(
                "{},{:.4},{},{},2024-{:02}-{:02} 12:{:02}:00,note {:x}\n",
                self.rows,
                r.normal() * 100.0,
                ["north", "south", "east", "west", "centre"][r.below(5)],
                if r.below(2) == 0 { "yes" } else { "no" },
                1 + r.below(12),
                1 + r.below(28),
                r.below(60),
                r.next_u64(),
            );
            self.line = line.into_bytes();
            self.pos = 0;
            self.rows += 1;
            self.produced += self.line.len() as u64;
            self.digest.update(&self.line);
        }
        let n = out.len().min(self.line.len() - self.pos);
        out[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// kB from a `/proc/self/status` line such as `VmHWM:   12345 kB`.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_large_upload_streams_in_bounded_memory() {
    let _heavy = crate::measuring();
    let t = TestStore::new();
    const SIZE: u64 = 64 << 20;
    let mut source = RowSource::new(SIZE);
    // Reset the peak (VmHWM) to the current RSS where the kernel allows it.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = if reset {
        status_kb("VmRSS:")
    } else {
        status_kb("VmHWM:")
    };
    let mut progress: Vec<u64> = Vec::new();
    let v = dataset::ingest_csv(t.store(), "telemetry", &mut source, &mut |n| {
        progress.push(n)
    })
    .unwrap();
    let growth_kb = status_kb("VmHWM:").saturating_sub(before);
    eprintln!(
        "64 MiB upload: peak RSS grew by {growth_kb} kB (reset: {reset}), {} progress calls",
        progress.len()
    );
    assert!(
        growth_kb < 16 * 1024,
        "peak RSS grew by {growth_kb} kB for a {} kB upload",
        SIZE / 1024
    );

    assert!(v.bytes >= SIZE && v.bytes < SIZE + 200);
    assert_eq!(v.bytes, source.produced);
    assert_eq!(v.rows, source.rows);
    assert_eq!(
        v.sha256,
        hex::encode(source.digest.clone().finish().as_ref())
    );
    let kinds: Vec<_> = v.schema.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ColumnKind::Numeric,
            ColumnKind::Numeric,
            ColumnKind::Categorical,
            ColumnKind::Boolean,
            ColumnKind::Timestamp,
            ColumnKind::Text,
        ]
    );
    // Progress: one call per 64 KiB read, strictly increasing, ending at the size.
    assert_eq!(progress.len() as u64, v.bytes.div_ceil(64 << 10));
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(progress.last().copied(), Some(v.bytes));
    assert_eq!(t.store().blob_info(v.blob).unwrap().len, v.bytes);
}

/// Yields `data`, then fails.
struct FailingReader<'a>(&'a [u8]);

impl Read for FailingReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::other("connection reset"));
        }
        let n = out.len().min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn malformed_uploads_leave_nothing_behind() {
    let _heavy = crate::measuring();
    let t = TestStore::new();
    let v1 = t.ingest("sales", b"a,b\n1,2\n3,4\n").unwrap();
    let before = t.blobs();
    assert_eq!(before.0, 1);

    let big = format!("a,b\n1,2\n3,{}\n", "x".repeat(2 << 20));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "ragged",
            b"a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n".to_vec(),
            "line 4 has 2 fields; the header has 3",
        ),
        (
            "duplicate header",
            b"a,b,a\n1,2,3\n".to_vec(),
            "column name \"a\" appears twice in the header (columns 1 and 3)",
        ),
        (
            "empty header name",
            b"a,,c\n1,2,3\n".to_vec(),
            "column 2 of the header (line 1) has an empty name",
        ),
        (
            "2 MiB field",
            big.into_bytes(),
            "line 3, column 2: the field is longer than 1048576 bytes",
        ),
        (
            "invalid UTF-8",
            b"a,b\n1,2\n3,caf\xe9\n".to_vec(),
            "line 3, column 2: the field is not valid UTF-8",
        ),
        (
            "empty file",
            Vec::new(),
            "the file is empty: its first line must name the columns",
        ),
    ];
    for (what, data, message) in &cases {
        let err = t.ingest("sales", data).unwrap_err();
        assert!(matches!(err, DatasetError::Csv(_)), "{what}: {err:?}");
        assert_eq!(err.to_string(), *message, "{what}");
        assert_eq!(t.blobs(), before, "{what}: a blob or temp file was left");
    }
    assert_eq!(MAX_FIELD_BYTES, 1 << 20);

    // A reader that fails half-way, and a bad name.
    let err = dataset::ingest_csv(
        t.store(),
        "sales",
        FailingReader(b"a,b\n1,2\n"),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, DatasetError::Read(_)), "{err:?}");
    assert!(matches!(
        t.ingest("Sales 2026", b"a\n1\n"),
        Err(DatasetError::InvalidName { .. })
    ));
    assert_eq!(t.blobs(), before);

    // Version 1 is intact, and failures used no version number.
    let versions = dataset::list_versions(t.store(), "sales").unwrap();
    assert_eq!(versions, vec![v1.clone()]);
    let frame = dataset::load_frame(t.store(), "sales", VersionSel::Latest).unwrap();
    assert_eq!(
        frame.column("b").unwrap().data,
        ColumnData::Numeric(vec![2.0, 4.0])
    );
    assert_eq!(t.ingest("sales", b"a,b\n5,6\n").unwrap().version, 2);
}

#[test]
fn erasing_versions_crypto_erases_their_blobs() {
    let t = TestStore::new();
    let v1 = t.ingest("logs", b"a\n1\n").unwrap();
    let v2 = t.ingest("logs", b"a\n2\n").unwrap();
    let path = t.store().blob_path(v1.blob).unwrap();
    assert!(path.exists());
    dataset::erase_version(t.store(), "logs", 1).unwrap();
    assert!(!path.exists());
    assert!(matches!(
        t.store().open_blob(v1.blob),
        Err(BlobError::Erased { .. })
    ));
    assert!(matches!(
        dataset::get_version(t.store(), "logs", 1.into()),
        Err(DatasetError::VersionNotFound { version: 1, .. })
    ));
    assert_eq!(
        dataset::get_version(t.store(), "logs", VersionSel::Latest).unwrap(),
        v2
    );
    // Numbers are not reused.
    assert_eq!(t.ingest("logs", b"a\n3\n").unwrap().version, 3);
    assert_eq!(
        dataset::erase_dataset(t.store(), "logs").unwrap(),
        vec![2, 3]
    );
    assert!(dataset::list_datasets(t.store()).unwrap().is_empty());
    assert_eq!(t.blobs().0, 0);
    assert!(matches!(
        dataset::get_version(t.store(), "logs", VersionSel::Latest),
        Err(DatasetError::NotFound { .. })
    ));
}

#[test]
fn quality_report_finds_what_was_planted() {
    // 40 rows: x has 2 missing and one far outlier, c is constant, rows 38 and 39 repeat rows
    // 0 and 1, the target is 10 % positive.
    let n = 40;
    let mut x: Vec<f64> = (0..n).map(|i| f64::from(i % 10)).collect();
    x[5] = f64::NAN;
    x[6] = f64::NAN;
    x[7] = 1000.0;
    let mut city: Vec<Option<String>> = (0..n).map(|i| Some(format!("city {i}"))).collect();
    city[3] = None;
    let mut y: Vec<Option<bool>> = (0..n).map(|i| Some(i % 10 == 9)).collect();
    for (dup, orig) in [(38, 0), (39, 1)] {
        x[dup] = x[orig];
        city[dup] = city[orig].clone();
        y[dup] = y[orig];
    }
    let frame = Frame::new(vec![
        col("x", ColumnKind::Numeric, ColumnData::Numeric(x)),
        col(
            "c",
            ColumnKind::Categorical,
            ColumnData::Text(vec![Some("same".into()); 40]),
        ),
        col("city", ColumnKind::Text, ColumnData::Text(city)),
        col("y", ColumnKind::Boolean, ColumnData::Boolean(y)),
    ])
    .unwrap();
    let r = QualityReport::compute(&frame, Some("y"));
    assert_eq!(r.rows, 40);
    let x = r.column("x").unwrap();
    assert_eq!((x.missing, x.missing_share), (2, 0.05));
    let o = x.outliers.as_ref().unwrap();
    assert_eq!((o.beyond_fences, o.beyond_z4), (1, 1));
    assert_eq!(r.column("city").unwrap().missing, 1);
    assert!(r.column("city").unwrap().outliers.is_none());
    assert_eq!(r.duplicate_rows, 2);
    assert_eq!(r.constant_columns, vec!["c".to_owned()]);
    let target = r.target.as_ref().unwrap();
    let counts: Vec<_> = target
        .classes
        .iter()
        .map(|c| (c.value.as_str(), c.count))
        .collect();
    // Rows 9, 19, 29 are positive; 39 copies row 1 (negative).
    assert_eq!(counts, vec![("false", 37), ("true", 3)]);
    for w in [
        "column \"c\" is constant",
        "column \"x\" has 1 extreme values (|z| > 4)",
        "2 duplicate rows (5.0 %)",
        "target is 7.5 % positive: imbalanced",
    ] {
        assert!(
            r.warnings.iter().any(|x| x == w),
            "{w:?} not in {:?}",
            r.warnings
        );
    }
    assert!(
        !r.warnings.iter().any(|w| w.contains("missing")),
        "{:?}",
        r.warnings
    );
    // Serializable for the console.
    let json = serde_json::to_string(&r).unwrap();
    let back: QualityReport = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (back.duplicate_rows, &back.warnings, &back.constant_columns),
        (r.duplicate_rows, &r.warnings, &r.constant_columns)
    );
}

/// A valid card number (Luhn) with the given 15-digit prefix.
fn with_luhn(prefix: &str) -> String {
    for d in 0..10 {
        let candidate = format!("{prefix}{d}");
        let sum: u32 = candidate
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let v = u32::from(b - b'0');
                if i % 2 == 1 {
                    if v * 2 > 9 { v * 2 - 9 } else { v * 2 }
                } else {
                    v
                }
            })
            .sum();
        if sum.is_multiple_of(10) {
            return candidate;
        }
    }
    unreachable!()
}

#[test]
fn pii_is_found_where_it_is_and_not_where_it_is_not() {
    let t = TestStore::new();
    let mut rng = Rng::new(7);
    let first = ["Maria", "John", "Anna", "Peter", "Sophie"];
    let mut csv = String::from(
        "id,contact,tel,cc,cc_bad,account,account_bad,holder,surname,order_ref,notes\n",
    );
    for i in 0..50 {
        let card = with_luhn(&format!("4{:014}", rng.next_u64() % 100_000_000_000_000));
        // Change the check digit: no longer Luhn-valid.
        let last = card.as_bytes()[15] - b'0';
        let bad_card = format!("{}{}", &card[..15], (last + 1) % 10);
        let phone = if i % 2 == 0 {
            format!("+49 151 {:08}", rng.below(100_000_000))
        } else {
            format!("030 {:07}", rng.below(10_000_000))
        };
        csv.push_str(&format!(
            "{id},user{i}@example.org,{phone},{} {} {} {},{bad_card},{iban},{iban_bad},{} Schmidt,Schmidt{i},{order},{note}\n",
            &card[0..4],
            &card[4..8],
            &card[8..12],
            &card[12..16],
            first[i % 5],
            id = 1000 + i,
            iban = ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32"][i % 2],
            iban_bad = ["DE89370400440532013001", "GB82 WEST 1234 5698 7654 33"][i % 2],
            // 16-digit ids: about 1 in 10 pass Luhn by chance, which must not flag the column.
            order = 4_000_000_000_000_000u64 + rng.next_u64() % 1_000_000_000_000_000,
            note = if i % 10 == 0 { "call back" } else { "ok" },
        ));
    }
    t.ingest("crm", csv.as_bytes()).unwrap();
    let frame = dataset::load_frame(t.store(), "crm", VersionSel::Latest).unwrap();
    assert_eq!(frame.column("id").unwrap().kind, ColumnKind::Numeric);
    assert_eq!(frame.column("order_ref").unwrap().kind, ColumnKind::Text);
    let report = PiiReport::detect(&frame);
    let kinds = |name: &str| report.column(name).unwrap().kinds.clone();
    assert_eq!(kinds("contact"), vec![PiiKind::Email]);
    assert_eq!(kinds("tel"), vec![PiiKind::Phone]);
    assert_eq!(kinds("cc"), vec![PiiKind::CardNumber]);
    assert_eq!(kinds("account"), vec![PiiKind::Iban]);
    assert_eq!(kinds("holder"), vec![PiiKind::Name]);
    assert_eq!(kinds("surname"), vec![PiiKind::Name]);
    assert_eq!(
        report.flagged(),
        vec!["contact", "tel", "cc", "account", "holder", "surname"]
    );
    let contact = report.column("contact").unwrap();
    assert_eq!(contact.matches.get(&PiiKind::Email), Some(&50));
    assert_eq!(contact.sampled, 50);
    assert_eq!(
        report.column("tel").unwrap().matches.get(&PiiKind::Phone),
        Some(&50)
    );
    assert_eq!(
        report
            .column("cc_bad")
            .unwrap()
            .matches
            .get(&PiiKind::CardNumber),
        None
    );
    assert_eq!(
        report
            .column("account_bad")
            .unwrap()
            .matches
            .get(&PiiKind::Iban),
        None
    );
    let id = report.column("id").unwrap();
    assert!(id.kinds.is_empty() && id.matches.is_empty() && id.sampled == 0);
    let order = report.column("order_ref").unwrap();
    let lucky = order
        .matches
        .get(&PiiKind::CardNumber)
        .copied()
        .unwrap_or(0);
    assert!(order.kinds.is_empty() && lucky < 25, "{order:?}");
    assert_eq!(
        report.column("surname").unwrap().name_hint,
        Some(PiiKind::Name)
    );
    assert!(report.column("notes").unwrap().kinds.is_empty());
}

const PEOPLE: &str = "email,phone,name,amount,active\n\
alice@example.org,+49 151 1234567,Alice Meyer,10.5,yes\n\
bob@example.org,,Bob Jones,7,no\n\
alice@example.org,+49 151 1234567,Alice Meyer,3,yes\n\
,030 1234567,\"Doe, John\",NA,no\n";

#[test]
fn pseudonymized_versions_keep_lineage_and_joins() {
    let mut t = TestStore::new();
    let v1 = t.ingest("people", PEOPLE.as_bytes()).unwrap();
    let original = dataset::load_frame(t.store(), "people", 1.into()).unwrap();

    let v2 = pii::pseudonymize_version(
        t.store(),
        "people",
        VersionSel::Latest,
        &["phone", "email", "amount"],
    )
    .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.rows, 4);
    assert_eq!(
        v2.lineage,
        dataset::Lineage {
            parent: Some(dataset::VersionRef {
                dataset: "people".into(),
                version: 1
            }),
            transform: Some("pseudonymized: email, phone, amount".into()),
        }
    );
    // The source is unchanged.
    assert_eq!(
        dataset::get_version(t.store(), "people", 1.into()).unwrap(),
        v1
    );
    assert_same_frame(
        &dataset::load_frame(t.store(), "people", 1.into()).unwrap(),
        &original,
    );

    let pseudo = dataset::load_frame(t.store(), "people", 2.into()).unwrap();
    let ColumnData::Text(emails) = &pseudo.column("email").unwrap().data else {
        panic!("email is not text")
    };
    // Same value, same token (joins work); missing stays missing; no clear text left.
    assert_eq!(emails[0], emails[2]);
    assert_ne!(emails[0], emails[1]);
    assert_eq!(emails[3], None);
    assert!(emails[0].as_deref().unwrap().starts_with("p_"));
    let blob = t.store().read_blob(v2.blob).unwrap();
    let stored = String::from_utf8(blob).unwrap();
    for secret in ["alice@", "bob@", "1234567", "10.5"] {
        assert!(!stored.contains(secret), "{secret} left in {stored}");
    }
    // Untouched columns are as they were.
    assert_eq!(
        pseudo.column("name").unwrap(),
        original.column("name").unwrap()
    );
    assert_eq!(
        pseudo.column("active").unwrap(),
        original.column("active").unwrap()
    );
    // The stored version is the frame-level transform under the dataset's key.
    let key = pii::dataset_key(t.store(), "people").unwrap();
    let expected = pii::pseudonymize(&original, &["email", "phone", "amount"], &key).unwrap();
    assert_same_frame(&pseudo, &expected);
    // Detection sees tokens, not personal data, even in a column named "email".
    let report = PiiReport::detect(&pseudo);
    assert!(report.column("email").unwrap().pseudonymized);
    assert_eq!(report.flagged(), vec!["name"]);

    // Deterministic per key: again (also after a reopen) gives the same bytes.
    t.reopen();
    let v3 =
        pii::pseudonymize_version(t.store(), "people", 1.into(), &["email", "phone", "amount"])
            .unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(v3.sha256, v2.sha256);
    // Another dataset with the same content gets another key: other tokens.
    t.ingest("people-copy", PEOPLE.as_bytes()).unwrap();
    let other = pii::pseudonymize_version(
        t.store(),
        "people-copy",
        1.into(),
        &["email", "phone", "amount"],
    )
    .unwrap();
    assert_ne!(other.sha256, v2.sha256);
    let other_key = pii::dataset_key(t.store(), "people-copy").unwrap();
    assert_ne!(*other_key, *key);
    let a = pii::pseudonymize(&original, &["email"], &key).unwrap();
    let b = pii::pseudonymize(&original, &["email"], &other_key).unwrap();
    assert_ne!(a.column("email").unwrap(), b.column("email").unwrap());
    assert_eq!(
        a.column("email").unwrap(),
        pii::pseudonymize(&original, &["email"], &key)
            .unwrap()
            .column("email")
            .unwrap()
    );

    // Unknown columns are refused before anything is written.
    let blobs = t.blobs();
    assert!(matches!(
        pii::pseudonymize_version(t.store(), "people", 1.into(), &["ssn"]),
        Err(DatasetError::NoColumn { .. })
    ));
    assert!(matches!(
        pii::pseudonymize(&original, &["ssn"], &key),
        Err(hearth_ml::FrameError::Missing { .. })
    ));
    assert_eq!(t.blobs(), blobs);
}

#[test]
fn the_parser_needs_no_store() {
    let summary = dataset::infer_csv(EVERY_KIND.as_bytes()).unwrap();
    assert_eq!(summary.rows, 6);
    let frame = dataset::parse_csv(EVERY_KIND.as_bytes(), &summary.columns).unwrap();
    assert_same_frame(&frame, &every_kind_frame());
    assert!(matches!(
        dataset::infer_csv(&b"a,b\n1\n"[..]),
        Err(DatasetError::Csv(CsvError::Ragged { line: 2, .. }))
    ));
}
