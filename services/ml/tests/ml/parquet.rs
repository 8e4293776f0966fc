// Parquet uploads against a real encrypted store: files written by pyarrow (another
// implementation; `tests/fixtures/make_parquet.py` made them, CI never runs it) ingest to the
// same frame as the same table in CSV, with the file's digest and row count; broken copies are
// refused and leave nothing behind; quality, PII, pseudonymization and training work on them.

use std::ops::ControlFlow;

use hearth_ml::dataset::parquet::{self as pq, ParquetError};
use hearth_ml::dataset::{self, DataFormat, DatasetError, VersionSel};
use hearth_ml::pii::{self, PiiReport};
use hearth_ml::quality::QualityReport;
use hearth_ml::train::{ModelKind, TrainSpec, train};
use hearth_ml::{ColumnData, ColumnKind};

use super::{TestStore, assert_same_frame, sha256_hex};

const PEOPLE: &[u8] = include_bytes!("../fixtures/people.parquet");
const PEOPLE_ZSTD_V2: &[u8] = include_bytes!("../fixtures/people-zstd-v2.parquet");
const PEOPLE_CSV: &[u8] = include_bytes!("../fixtures/people.csv");
/// Delta encodings (strings DELTA_BYTE_ARRAY and DELTA_LENGTH_BYTE_ARRAY, ids
/// DELTA_BINARY_PACKED), v1 pages uncompressed and v2 pages with zstd.
const PEOPLE_DELTA: &[u8] = include_bytes!("../fixtures/people-delta.parquet");
const PEOPLE_DELTA_V2: &[u8] = include_bytes!("../fixtures/people-delta-v2.parquet");
const ROWS: u64 = 300;

fn ingest(t: &TestStore, name: &str, data: &[u8]) -> Result<dataset::DatasetVersion, DatasetError> {
    dataset::ingest(t.store(), name, data, &mut |_| {})
}

#[test]
fn parquet_from_pyarrow_ingests_to_the_frame_of_its_csv() {
    let t = TestStore::new();
    let csv = ingest(&t, "people-csv", PEOPLE_CSV).unwrap();
    assert_eq!(csv.format, DataFormat::Csv);
    let csv_frame = dataset::load_frame(t.store(), "people-csv", VersionSel::Latest).unwrap();

    for (name, file) in [
        ("people", PEOPLE),
        ("people-zstd", PEOPLE_ZSTD_V2),
        ("people-delta", PEOPLE_DELTA),
        ("people-delta-v2", PEOPLE_DELTA_V2),
    ] {
        let mut seen = Vec::new();
        let v = dataset::ingest(t.store(), name, file, &mut |n| seen.push(n)).unwrap();
        assert_eq!(v.format, DataFormat::Parquet, "{name}");
        assert_eq!(v.bytes, file.len() as u64, "{name}");
        assert_eq!(v.sha256, sha256_hex(file), "{name}");
        assert_eq!(v.rows, ROWS, "{name}");
        assert_eq!(seen.last(), Some(&(file.len() as u64)), "{name}: progress");
        // The same schema as the CSV: kinds and missing counts.
        assert_eq!(v.schema, csv.schema, "{name}");
        let kinds: Vec<_> = v.schema.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("id", ColumnKind::Numeric),
                ("amount", ColumnKind::Numeric),
                ("score", ColumnKind::Numeric),
                ("active", ColumnKind::Boolean),
                ("segment", ColumnKind::Categorical),
                ("note", ColumnKind::Text),
                ("signup", ColumnKind::Timestamp),
                ("day", ColumnKind::Timestamp),
                ("price", ColumnKind::Numeric),
            ]
        );
        let frame = dataset::load_frame(t.store(), name, VersionSel::Latest).unwrap();
        assert_same_frame(&frame, &csv_frame);
        // And without a store, as the fuzz target reads it.
        let summary = pq::infer_parquet(file).unwrap();
        assert_eq!((summary.rows, &summary.columns), (ROWS, &v.schema));
        assert_same_frame(&pq::parse_parquet(file, &v.schema).unwrap(), &csv_frame);
    }
    // Spot checks against what the script wrote.
    let frame = dataset::load_frame(t.store(), "people", VersionSel::Latest).unwrap();
    let ColumnData::Timestamp(signup) = &frame.column("signup").unwrap().data else {
        panic!("signup is not a timestamp");
    };
    assert_eq!(signup[0], Some(1_704_067_200)); // 2024-01-01T00:00:00Z
    assert_eq!(signup[1], Some(1_704_067_200 + 7 * 3600 + 1));
    assert_eq!(signup[2], None);
    let ColumnData::Numeric(price) = &frame.column("price").unwrap().data else {
        panic!("price is not numeric");
    };
    assert_eq!(price[..3], [0.25, 3.25, 6.25]);
}

#[test]
fn reports_pseudonymization_and_training_work_on_parquet() {
    let t = TestStore::new();
    let v1 = ingest(&t, "people", PEOPLE).unwrap();
    let frame = dataset::load_frame(t.store(), "people", VersionSel::Latest).unwrap();

    let quality = QualityReport::compute(&frame, Some("active"));
    let amount = quality.column("amount").unwrap();
    assert_eq!(amount.missing, 18, "{amount:?}");

    let pii = PiiReport::detect(&frame);
    assert!(pii.flagged().is_empty(), "{:?}", pii.flagged());

    // Pseudonymizing writes CSV, with lineage to the Parquet version.
    let v2 = pii::pseudonymize_version(t.store(), "people", 1.into(), &["note", "amount"]).unwrap();
    assert_eq!(v2.format, DataFormat::Csv);
    assert_eq!(v2.rows, v1.rows);
    assert_eq!(v2.lineage.parent.as_ref().unwrap().version, 1);
    assert_eq!(
        v2.lineage.transform.as_deref(),
        Some("pseudonymized: amount, note")
    );
    let pseudo = dataset::load_frame(t.store(), "people", 2.into()).unwrap();
    let key = pii::dataset_key(t.store(), "people").unwrap();
    let expected = pii::pseudonymize(&frame, &["note", "amount"], &key).unwrap();
    for name in ["note", "amount", "segment", "price", "signup", "day"] {
        assert_eq!(
            pseudo.column(name).unwrap().data,
            expected.column(name).unwrap().data,
            "{name}"
        );
    }

    let spec = TrainSpec {
        target: "active".into(),
        model: ModelKind::LogReg,
        features: Some(vec![
            "amount".into(),
            "score".into(),
            "segment".into(),
            "signup".into(),
            "price".into(),
        ]),
        epochs: 5,
        ..TrainSpec::default()
    };
    let trained = train(&frame, &spec, &mut |_| ControlFlow::Continue(())).unwrap();
    assert!(trained.report.rows.test > 0);
}

/// Byte offset of the Parquet footer's length field.
fn footer_len_at(file: &[u8]) -> usize {
    file.len() - 8
}

#[test]
fn broken_parquet_is_refused_and_leaves_nothing_behind() {
    let t = TestStore::new();
    let v1 = ingest(&t, "people", PEOPLE).unwrap();
    let before = t.blobs();

    let n = PEOPLE.len();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    for cut in [n - 1, n - 8, n / 2, 100, 12] {
        cases.push(("truncated", PEOPLE[..cut].to_vec(), "does not end with"));
    }
    cases.push(("truncated", PEOPLE[..11].to_vec(), "too short"));
    cases.push(("magic only", b"PAR1".to_vec(), "too short"));
    let mut bad = PEOPLE.to_vec();
    bad[n - 1] = b'X';
    cases.push(("bad trailer", bad, "does not end with"));
    let mut bad = PEOPLE.to_vec();
    bad[n - 4..].copy_from_slice(b"PARE");
    cases.push(("encrypted", bad, "encrypted"));
    let mut bad = PEOPLE.to_vec();
    let at = footer_len_at(&bad);
    bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("lying footer length", bad, "has room for"));
    let mut bad = PEOPLE.to_vec();
    let at = footer_len_at(&bad);
    let len = u32::from_le_bytes(bad[at..at + 4].try_into().unwrap()) as usize;
    for b in &mut bad[at - len..at - len + 16] {
        *b = 0xff;
    }
    cases.push(("corrupt footer", bad, "metadata"));
    let mut bad = PEOPLE.to_vec();
    for b in &mut bad[4..24] {
        *b = 0xee;
    }
    cases.push(("corrupt page header", bad, "row group 1, column \"id\""));
    // A page's compressed bytes overwritten: snappy refuses them.
    let mut bad = PEOPLE.to_vec();
    for b in &mut bad[60..400] {
        *b = 0x5a;
    }
    cases.push(("corrupt page", bad, "row group 1"));

    // A delta-encoded page that counts more strings than the page holds (the crate would size
    // its buffer by the count): the first page of "segment" in people-delta.parquet has its
    // DELTA_BYTE_ARRAY header (block 128, 4 miniblocks, 109 values) at byte 1774.
    let mut bad = PEOPLE_DELTA.to_vec();
    assert_eq!(
        bad[1774..1778],
        [0x80, 0x01, 0x04, 109],
        "the fixture changed"
    );
    bad[1777] = 127;
    cases.push((
        "lying delta count",
        bad,
        "(120 values at most): it counts 127 values",
    ));

    for (what, data, message) in &cases {
        let err = ingest(&t, "people", data).unwrap_err();
        assert!(matches!(err, DatasetError::Parquet(_)), "{what}: {err:?}");
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains(message), "{what}: {chain}");
        assert_eq!(t.blobs(), before, "{what}: a blob or temp file was left");
    }
    // Found by the fuzz target: the parquet crate's bit reader panics on these files (a shift
    // overflow where overflow checks are on, as in tests; a read past its buffer); the panic
    // is caught and the file refused.
    // And a DELTA_BINARY_PACKED page whose header counts no values but is read anyway (an
    // integer underflow in the crate's decoder).
    for crash in [
        &include_bytes!("../fixtures/fuzz-shift-overflow.parquet")[..],
        &include_bytes!("../fixtures/fuzz-short-read.parquet")[..],
        &include_bytes!("../fixtures/fuzz-delta-count-zero.parquet")[..],
    ] {
        let err = ingest(&t, "people", crash).unwrap_err();
        assert!(matches!(err, DatasetError::Parquet(_)), "{err:?}");
        assert_eq!(t.blobs(), before, "fuzz case: a blob or temp file was left");
    }

    // Found by the fuzz target in a delta-encoded page: string lengths adding up past the page
    // (the crate slices past its buffer); refused before the crate reads it.
    let err = ingest(
        &t,
        "people",
        include_bytes!("../fixtures/fuzz-delta-lengths.parquet"),
    )
    .unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("its lengths add up to"), "{chain}");
    assert_eq!(t.blobs(), before);

    // Called directly, a CSV file is refused as not Parquet.
    let err = dataset::ingest_parquet(t.store(), "people", PEOPLE_CSV, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, DatasetError::Parquet(ParquetError::BadMagic)),
        "{err:?}"
    );
    assert_eq!(t.blobs(), before);
    assert_eq!(
        dataset::list_versions(t.store(), "people").unwrap(),
        vec![v1]
    );
    assert_eq!(ingest(&t, "people", PEOPLE).unwrap().version, 2);
}

/// Writes a Parquet file of about `size` bytes with the parquet crate's own writer (uncompressed,
/// so the size is the data's): a double, an int64 and an optional string column, in row groups
/// of 256 Ki rows. Returns the rows written.
fn write_large_parquet(path: &std::path::Path, size: u64) -> u64 {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = parse_message_type(
        "message m { required double x; required int64 n; optional binary s (STRING); }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema.into(), props.into()).unwrap();
    const GROUP: usize = 256 << 10;
    let mut rows = 0u64;
    let mut written = 0u64;
    while written < size {
        let first = rows;
        let x: Vec<f64> = (0..GROUP)
            .map(|i| (first + i as u64) as f64 * 0.5)
            .collect();
        let n: Vec<i64> = (0..GROUP)
            .map(|i| ((first + i as u64) % 1000) as i64)
            .collect();
        let defs: Vec<i16> = (0..GROUP).map(|i| i16::from(i % 10 != 0)).collect();
        let s: Vec<ByteArray> = (0..GROUP)
            .filter(|i| i % 10 != 0)
            .map(|i| ByteArray::from(["alpha", "beta", "gamma"][i % 3]))
            .collect();
        let mut g = w.next_row_group().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<DoubleType>().write_batch(&x, None, None).unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<Int64Type>().write_batch(&n, None, None).unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>()
            .write_batch(&s, Some(&defs), None)
            .unwrap();
        c.close().unwrap();
        written += g.close().unwrap().compressed_size() as u64;
        rows += GROUP as u64;
    }
    w.close().unwrap();
    rows
}

#[test]
fn a_large_parquet_upload_streams_in_bounded_memory() {
    let _heavy = crate::measuring();
    let t = TestStore::new();
    let path = t.dir.path().join("large.parquet");
    let rows = write_large_parquet(&path, 64 << 20);
    let size = std::fs::metadata(&path).unwrap().len();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = if reset {
        super::status_kb("VmRSS:")
    } else {
        super::status_kb("VmHWM:")
    };
    let mut calls = 0u64;
    let v = dataset::ingest(
        t.store(),
        "large",
        std::fs::File::open(&path).unwrap(),
        &mut |_| calls += 1,
    )
    .unwrap();
    let growth_kb = super::status_kb("VmHWM:").saturating_sub(before);
    eprintln!(
        "{} MiB Parquet upload ({rows} rows): peak RSS grew by {growth_kb} kB (reset: {reset})",
        size >> 20
    );
    // The tail kept for the footer (16 MiB at most), a page and a batch: not the file.
    assert!(
        growth_kb < 40 * 1024,
        "peak RSS grew by {growth_kb} kB for a {} kB upload",
        size / 1024
    );
    assert_eq!((v.rows, v.bytes), (rows, size));
    assert_eq!(calls, size.div_ceil(64 << 10));
    let kinds: Vec<_> = v.schema.iter().map(|c| (c.kind, c.missing)).collect();
    assert_eq!(
        kinds,
        vec![
            (ColumnKind::Numeric, 0),
            (ColumnKind::Numeric, 0),
            (
                ColumnKind::Categorical,
                rows / (256 << 10) * (256u64 << 10).div_ceil(10)
            ),
        ]
    );
}
