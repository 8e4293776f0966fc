//! Datasets: operators' tables, uploaded as CSV or Parquet and kept as encrypted blobs in the
//! store, with numbered versions, an inferred schema and lineage.
//!
//! [`ingest`] tells the formats apart by their first bytes: a file that starts with `PAR1` is
//! Parquet ([`ingest_parquet`], see [`parquet`] for what it reads and how it is bounded), any
//! other is CSV ([`ingest_csv`]). The rest of this page is about CSV.
//!
//! An upload is read once: its bytes go to an encrypted blob ([`Store::blob_writer`]) while they
//! are hashed (SHA-256, the content digest recorded for lineage) and parsed, which infers the
//! schema, counts the rows and checks the shape. The parser holds one record at a time: memory is
//! bounded by [`MAX_RECORD_BYTES`] and [`MAX_COLUMNS`] whatever the size of the file. An upload
//! that fails a check leaves no blob and no version behind; the dataset's other versions are
//! untouched.
//!
//! The parser ([`infer_csv`], [`parse_csv`]) runs on any `Read`, with no store: the fuzz target
//! drives it directly.
//!
//! Records: table `ml/datasets` (name → its live versions and the next version number) and table
//! `ml/dataset-versions` (`<name>/<version, 10 digits>` → [`DatasetVersion`]). Names and version
//! numbers are keys, stored in clear: a dataset name must not hold personal data. Version numbers
//! are never reused within a dataset, so lineage references stay unambiguous after an erase.
//!
//! Schema inference, per column, on the trimmed values that are not missing (empty, `NA`, `N/A`,
//! `null`, `NaN`, any case): [`ColumnKind::Boolean`] if all are `true/false/yes/no/0/1`;
//! [`ColumnKind::Numeric`] if all are finite decimal numbers (a leading `+`, a leading zero
//! before a digit, or an integer of more than 15 digits make a value text: phone numbers,
//! postcodes, card numbers and long ids are not quantities and must not lose digits);
//! [`ColumnKind::Timestamp`] if all are `YYYY-MM-DD`, optionally followed by ` HH:MM:SS` or
//! `THH:MM:SS`, fractional seconds and `Z` or `±HH:MM`; otherwise [`ColumnKind::Categorical`]
//! when values repeat (at most [`MAX_CATEGORIES`] distinct values, and at most half as many
//! distinct values as values), else [`ColumnKind::Text`]. A column with no values is text.

use std::collections::HashSet;
use std::fmt;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::{self, Read, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_store::{BlobError, BlobId, BlobWriter, Json, Store, StoreError, Table};
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::frame::{Column, ColumnData, ColumnKind, Frame};

#[path = "parquet.rs"]
pub mod parquet;

pub use self::parquet::ParquetError;

/// Most columns a file may have.
pub const MAX_COLUMNS: usize = 1024;
/// Longest field, in bytes.
pub const MAX_FIELD_BYTES: usize = 1 << 20;
/// Longest record (all its fields together), in bytes.
pub const MAX_RECORD_BYTES: usize = 4 << 20;
/// Longest column name, in bytes.
pub const MAX_COLUMN_NAME_BYTES: usize = 256;
/// Most distinct values a categorical column may have; inference stops tracking past this.
pub const MAX_CATEGORIES: usize = 1000;
/// Longest dataset name.
pub const MAX_NAME_LEN: usize = 64;

/// Bytes read from an upload (or a blob) per step.
const READ_CHUNK: usize = 64 << 10;
/// The record buffer starts at this size and doubles up to [`MAX_RECORD_BYTES`].
const INITIAL_RECORD_BYTES: usize = 64 << 10;

const DATASETS: Table<str, Json<DatasetRecord>> = Table::new("ml/datasets");
const VERSIONS: Table<str, Json<DatasetVersion>> = Table::new("ml/dataset-versions");

/// Why a CSV file was refused. Lines count from 1, as an editor shows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty: its first line must name the columns")]
    NoHeader,
    #[error("column {column} of the header (line {line}) has an empty name")]
    EmptyColumnName { line: u64, column: usize },
    #[error("column {column} of the header (line {line}) has a name longer than {max} bytes")]
    ColumnNameTooLong {
        line: u64,
        column: usize,
        max: usize,
    },
    #[error("column name {name:?} appears twice in the header (columns {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("line {line} has more than {max} fields")]
    TooManyColumns { line: u64, max: usize },
    #[error("line {line} has {found} fields; the header has {expected}")]
    Ragged {
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("line {line}, column {column}: the field is longer than {max} bytes")]
    FieldTooLong {
        line: u64,
        column: usize,
        max: usize,
    },
    #[error("the record starting at line {line} is longer than {max} bytes")]
    RecordTooLong { line: u64, max: usize },
    #[error("line {line}, column {column}: the field is not valid UTF-8")]
    InvalidUtf8 { line: u64, column: usize },
}

/// Why a dataset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "dataset name {name:?} is not valid: use 1 to {MAX_NAME_LEN} characters of a-z, 0-9, \
         '.', '_' and '-'"
    )]
    InvalidName { name: String },

    #[error("no dataset {name:?}")]
    NotFound { name: String },

    #[error("dataset {name:?} has no version {version}")]
    VersionNotFound { name: String, version: u32 },

    #[error("dataset {name:?} has no versions")]
    NoVersions { name: String },

    #[error("dataset {name:?} has used up its version numbers")]
    VersionsExhausted { name: String },

    /// The upload is not an acceptable CSV file; nothing was stored.
    #[error(transparent)]
    Csv(#[from] CsvError),

    /// The upload is not an acceptable Parquet file; nothing was stored.
    #[error("the Parquet file is refused")]
    Parquet(#[from] ParquetError),

    #[error("could not read the upload")]
    Read(#[source] io::Error),

    #[error("the blob store failed")]
    Blob(#[source] BlobError),

    #[error("the dataset tables failed")]
    Store(#[source] StoreError),

    #[error("the header does not name the columns of the schema ({expected} columns)")]
    HeaderMismatch { expected: usize },

    #[error("line {line}: column {column:?} holds a value that is not {kind:?}")]
    SchemaMismatch {
        line: u64,
        column: String,
        kind: ColumnKind,
    },

    #[error("dataset {name:?} version {version} does not match its record: {what}")]
    Corrupt {
        name: String,
        version: u32,
        what: String,
    },

    #[error("dataset {name:?} version {version} has no column {column:?}")]
    NoColumn {
        name: String,
        version: u32,
        column: String,
    },

    #[error("no columns to pseudonymize were named")]
    NoColumnsNamed,

    #[error("could not get the pseudonym purpose key from the store")]
    Key(#[source] StoreError),

    #[error("could not derive the dataset's pseudonym key")]
    KeyDerivation,
}

/// A column of a stored version: its name, inferred kind and how many values are missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    pub name: String,
    pub kind: ColumnKind,
    pub missing: u64,
}

/// What a CSV file holds, as the parser found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvSummary {
    /// Data rows (the header excluded).
    pub rows: u64,
    pub columns: Vec<ColumnSchema>,
}

/// How a version's blob is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// RFC 4180 CSV, UTF-8, comma-separated, with a header line.
    Csv,
    /// Apache Parquet, flat (one value per column and row), as [`parquet`] reads it.
    Parquet,
}

/// One version of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub dataset: String,
    pub version: u32,
}

/// Where a version came from: nothing (an upload), or another version and what was done to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub parent: Option<VersionRef>,
    /// What was done to the parent, e.g. `"pseudonymized: email, phone"`.
    pub transform: Option<String>,
}

/// The record of one stored version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetVersion {
    pub dataset: String,
    /// 1, 2, …; never reused within the dataset.
    pub version: u32,
    pub format: DataFormat,
    /// The encrypted blob holding the file's bytes exactly as uploaded.
    #[serde(with = "blob_id_hex")]
    pub blob: BlobId,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 of the file's bytes, hex: the content digest for lineage.
    pub sha256: String,
    /// Data rows (the header excluded).
    pub rows: u64,
    pub schema: Vec<ColumnSchema>,
    pub created_unix_ms: u64,
    pub lineage: Lineage,
}

/// A dataset and its live versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub name: String,
    pub created_unix_ms: u64,
    /// Live versions, oldest first.
    pub versions: Vec<u32>,
}

impl DatasetSummary {
    pub fn latest(&self) -> Option<u32> {
        self.versions.last().copied()
    }
}

/// Which version to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSel {
    /// The highest live version.
    Latest,
    Number(u32),
}

impl From<u32> for VersionSel {
    fn from(v: u32) -> Self {
        VersionSel::Number(v)
    }
}

/// The row of `ml/datasets`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetRecord {
    name: String,
    created_unix_ms: u64,
    next_version: u32,
    versions: Vec<u32>,
}

mod blob_id_hex {
    use hearth_store::BlobId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &BlobId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlobId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// Whether a (trimmed) value counts as missing.
pub(crate) fn is_missing(v: &str) -> bool {
    v.is_empty()
        || ["na", "n/a", "null", "nan"]
            .iter()
            .any(|m| v.eq_ignore_ascii_case(m))
}

/// `true/yes/1` and `false/no/0`, any case.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    if ["true", "yes", "1"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
    {
        Some(true)
    } else if ["false", "no", "0"]
        .iter()
        .any(|f| v.eq_ignore_ascii_case(f))
    {
        Some(false)
    } else {
        None
    }
}

/// A finite decimal number. Refused (left as text): a leading `+` (E.164 phone numbers), a
/// leading zero before another digit (postcodes, ids), integers of more than 15 digits (card
/// numbers, ids: an `f64` would lose digits), `inf`, `nan` and hex.
pub(crate) fn parse_number(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    let first = *b.first()?;
    if first == b'+' {
        return None;
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    let unsigned = b.strip_prefix(b"-").unwrap_or(b);
    if unsigned.len() > 1 && unsigned[0] == b'0' && unsigned[1].is_ascii_digit() {
        return None;
    }
    let digits = unsigned.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == 0 || (digits == unsigned.len() && digits > 15) {
        return None;
    }
    v.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits_value(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b.iter()
            .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')),
    )
}

/// `YYYY-MM-DD`, optionally followed by ` HH:MM:SS` or `THH:MM:SS`, fractional seconds (dropped)
/// and `Z` or a `±HH:MM` / `±HHMM` / `±HH` offset; as Unix seconds. No offset means UTC.
pub(crate) fn parse_timestamp(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits_value(&b[0..4])?;
    let month = digits_value(&b[5..7])?;
    let day = digits_value(&b[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(secs);
    }
    if !matches!(rest[0], b' ' | b'T' | b't') || rest.len() < 9 || rest[3] != b':' {
        return None;
    }
    let hour = digits_value(&rest[1..3])?;
    let minute = digits_value(&rest[4..6])?;
    if rest[6] != b':' {
        return None;
    }
    let second = digits_value(&rest[7..9])?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    secs += hour * 3600 + minute * 60 + second;
    rest = &rest[9..];
    if let Some(frac) = rest.strip_prefix(b".").or_else(|| rest.strip_prefix(b",")) {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    match rest {
        [] | [b'Z' | b'z'] => Some(secs),
        [sign @ (b'+' | b'-'), offset @ ..] => {
            let two = |a: u8, b: u8| digits_value(&[a, b]);
            let (h, m) = match *offset {
                [h1, h2] => (two(h1, h2)?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (two(h1, h2)?, two(m1, m2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            Some(if *sign == b'+' {
                secs - offset
            } else {
                secs + offset
            })
        }
        _ => None,
    }
}

/// Counts distinct values up to [`MAX_CATEGORIES`], by 64-bit hash (memory stays bounded
/// whatever the values' sizes); past that it only remembers that it overflowed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Distinct {
    seen: HashSet<u64>,
    overflow: bool,
}

impl Distinct {
    pub(crate) fn insert(&mut self, v: &str) {
        if self.overflow {
            return;
        }
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        self.seen.insert(h.finish());
        if self.seen.len() > MAX_CATEGORIES {
            self.overflow = true;
            self.seen = HashSet::new();
        }
    }

    /// The count, or `None` past [`MAX_CATEGORIES`].
    pub(crate) fn count(&self) -> Option<usize> {
        (!self.overflow).then_some(self.seen.len())
    }
}

/// What one column's values allow so far.
#[derive(Clone, Debug)]
pub(crate) struct ColumnInference {
    missing: u64,
    present: u64,
    numeric: bool,
    boolean: bool,
    timestamp: bool,
    distinct: Distinct,
}

impl Default for ColumnInference {
    fn default() -> Self {
        ColumnInference {
            missing: 0,
            present: 0,
            numeric: true,
            boolean: true,
            timestamp: true,
            distinct: Distinct::default(),
        }
    }
}

impl ColumnInference {
    /// Takes one raw field (or `None` for a value already known to be missing).
    pub(crate) fn observe(&mut self, raw: Option<&str>) {
        let Some(raw) = raw.filter(|r| !is_missing(r.trim())) else {
            self.missing += 1;
            return;
        };
        let v = raw.trim();
        self.present += 1;
        if self.boolean && parse_bool(v).is_none() {
            self.boolean = false;
        }
        if self.numeric && parse_number(v).is_none() {
            self.numeric = false;
        }
        if self.timestamp && parse_timestamp(v).is_none() {
            self.timestamp = false;
        }
        self.distinct.insert(raw);
    }

    pub(crate) fn missing(&self) -> u64 {
        self.missing
    }

    pub(crate) fn kind(&self) -> ColumnKind {
        if self.present == 0 {
            ColumnKind::Text
        } else if self.boolean {
            ColumnKind::Boolean
        } else if self.numeric {
            ColumnKind::Numeric
        } else if self.timestamp {
            ColumnKind::Timestamp
        } else {
            match self.distinct.count() {
                Some(d) if (d as u64).saturating_mul(2) <= self.present => ColumnKind::Categorical,
                _ => ColumnKind::Text,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parser

/// Receives what the parser reads: the header once, then each record, with the line it starts on.
pub(crate) trait RecordSink {
    fn header(&mut self, names: &[String]) -> Result<(), DatasetError>;
    fn record(&mut self, line: u64, fields: &[&str]) -> Result<(), DatasetError>;
}

/// A push parser over `csv_core` (the `csv` crate's parser) with bounded buffers: it checks
/// limits, the header, the shape of every record and UTF-8, and hands records to its sink.
pub(crate) struct CsvParser<S> {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    last_byte: u8,
    /// The first bytes, held until there are [`BOM_LEN`] of them: `csv_core` strips a UTF-8
    /// BOM only if its first read sees all of it, so its first read must not depend on how the
    /// file is split.
    head: Option<Vec<u8>>,
    columns: Option<usize>,
    rows: u64,
    sink: S,
}

/// Length of the UTF-8 byte order mark.
const BOM_LEN: usize = 3;

impl<S: RecordSink> CsvParser<S> {
    pub(crate) fn new(sink: S) -> Self {
        CsvParser {
            core: csv_core::Reader::new(),
            out: vec![0; INITIAL_RECORD_BYTES],
            ends: vec![0; 64],
            nout: 0,
            nend: 0,
            last_byte: 0,
            head: Some(Vec::with_capacity(BOM_LEN)),
            columns: None,
            rows: 0,
            sink,
        }
    }

    /// Parses the next bytes of the file.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<(), DatasetError> {
        if input.is_empty() {
            return Ok(());
        }
        match self.head.take() {
            None => self.run(input),
            Some(mut head) if head.len() + input.len() < BOM_LEN => {
                head.extend_from_slice(input);
                self.head = Some(head);
                Ok(())
            }
            Some(mut head) => {
                head.extend_from_slice(input);
                self.run(&head)
            }
        }
    }

    /// Ends the file: parses what is left and returns the sink and the number of data rows.
    pub(crate) fn finish(mut self) -> Result<(S, u64), DatasetError> {
        if let Some(head) = self.head.take().filter(|h| !h.is_empty()) {
            self.run(&head)?;
        }
        self.run(&[])?;
        if self.columns.is_none() {
            return Err(CsvError::NoHeader.into());
        }
        Ok((self.sink, self.rows))
    }

    fn run(&mut self, mut input: &[u8]) -> Result<(), DatasetError> {
        let at_end = input.is_empty();
        loop {
            let out = self.out.get_mut(self.nout..).unwrap_or_default();
            let ends = self.ends.get_mut(self.nend..).unwrap_or_default();
            let (res, nin, nout, nend) = self.core.read_record(input, out, ends);
            if let Some(&b) = input.get(..nin).and_then(<[u8]>::last) {
                self.last_byte = b;
            }
            input = input.get(nin..).unwrap_or_default();
            self.nout += nout;
            self.nend += nend;
            match res {
                csv_core::ReadRecordResult::InputEmpty => {
                    if at_end || input.is_empty() {
                        return Ok(());
                    }
                }
                csv_core::ReadRecordResult::OutputFull => self.grow_out()?,
                csv_core::ReadRecordResult::OutputEndsFull => self.grow_ends()?,
                csv_core::ReadRecordResult::Record => self.record()?,
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
    }

    /// The line the current record starts on: the reader's line, less the newlines inside the
    /// record's fields, less the terminator if it was a newline and is consumed.
    fn start_line(&self, complete: bool) -> u64 {
        let inside = self
            .out
            .get(..self.nout)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        let mut line = self.core.line();
        if complete && self.last_byte == b'\n' {
            line = line.saturating_sub(1);
        }
        line.saturating_sub(inside).max(1)
    }

    fn grow_out(&mut self) -> Result<(), DatasetError> {
        let field_start = match self.nend.checked_sub(1) {
            Some(i) => self.ends.get(i).copied().unwrap_or(0),
            None => 0,
        };
        if self.nout.saturating_sub(field_start) > MAX_FIELD_BYTES {
            return Err(CsvError::FieldTooLong {
                line: self.start_line(false),
                column: self.nend + 1,
                max: MAX_FIELD_BYTES,
            }
            .into());
        }
        if self.out.len() >= MAX_RECORD_BYTES {
            return Err(CsvError::RecordTooLong {
                line: self.start_line(false),
                max: MAX_RECORD_BYTES,
            }
            .into());
        }
        let len = (self.out.len() * 2).min(MAX_RECORD_BYTES);
        self.out.resize(len, 0);
        Ok(())
    }

    fn grow_ends(&mut self) -> Result<(), DatasetError> {
        if self.ends.len() >= MAX_COLUMNS {
            return Err(CsvError::TooManyColumns {
                line: self.start_line(false),
                max: MAX_COLUMNS,
            }
            .into());
        }
        let len = (self.ends.len() * 2).min(MAX_COLUMNS);
        self.ends.resize(len, 0);
        Ok(())
    }

    fn record(&mut self) -> Result<(), DatasetError> {
        let line = self.start_line(true);
        let (nout, nend) = (self.nout, self.nend);
        self.nout = 0;
        self.nend = 0;
        let data = self.out.get(..nout).unwrap_or_default();
        let mut fields = Vec::with_capacity(nend);
        let mut start = 0;
        for (i, &end) in self.ends.get(..nend).unwrap_or_default().iter().enumerate() {
            let bytes = data.get(start..end).unwrap_or_default();
            start = end;
            if bytes.len() > MAX_FIELD_BYTES {
                return Err(CsvError::FieldTooLong {
                    line,
                    column: i + 1,
                    max: MAX_FIELD_BYTES,
                }
                .into());
            }
            let field = std::str::from_utf8(bytes).map_err(|_| CsvError::InvalidUtf8 {
                line,
                column: i + 1,
            })?;
            fields.push(field);
        }
        match self.columns {
            None => {
                let names = header_names(line, &fields)?;
                self.columns = Some(names.len());
                self.sink.header(&names)
            }
            Some(expected) if expected != nend => Err(CsvError::Ragged {
                line,
                expected,
                found: nend,
            }
            .into()),
            Some(_) => {
                self.rows += 1;
                self.sink.record(line, &fields)
            }
        }
    }
}

/// Checks the header: names trimmed, non-empty, not too long, unique.
fn header_names(line: u64, fields: &[&str]) -> Result<Vec<String>, CsvError> {
    let mut names: Vec<String> = Vec::with_capacity(fields.len());
    for (i, raw) in fields.iter().enumerate() {
        let name = raw.trim_start_matches('\u{feff}').trim();
        let column = i + 1;
        if name.is_empty() {
            return Err(CsvError::EmptyColumnName { line, column });
        }
        if name.len() > MAX_COLUMN_NAME_BYTES {
            return Err(CsvError::ColumnNameTooLong {
                line,
                column,
                max: MAX_COLUMN_NAME_BYTES,
            });
        }
        if let Some(first) = names.iter().position(|n| n == name) {
            return Err(CsvError::DuplicateColumn {
                name: name.to_owned(),
                first: first + 1,
                second: column,
            });
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Infers each column's kind and missing count.
#[derive(Debug, Default)]
pub(crate) struct Inference {
    names: Vec<String>,
    columns: Vec<ColumnInference>,
}

impl RecordSink for Inference {
    fn header(&mut self, names: &[String]) -> Result<(), DatasetError> {
        self.names = names.to_vec();
        self.columns = vec![ColumnInference::default(); names.len()];
        Ok(())
    }

    fn record(&mut self, _line: u64, fields: &[&str]) -> Result<(), DatasetError> {
        for (c, f) in self.columns.iter_mut().zip(fields) {
            c.observe(Some(f));
        }
        Ok(())
    }
}

impl Inference {
    fn schema(self) -> Vec<ColumnSchema> {
        self.names
            .into_iter()
            .zip(self.columns)
            .map(|(name, c)| ColumnSchema {
                name,
                kind: c.kind(),
                missing: c.missing(),
            })
            .collect()
    }
}

/// Builds a [`Frame`] from records, parsing each value by the stored schema.
struct FrameBuilder<'a> {
    schema: &'a [ColumnSchema],
    data: Vec<ColumnData>,
}

impl<'a> FrameBuilder<'a> {
    fn new(schema: &'a [ColumnSchema], rows: usize) -> Self {
        let data = schema
            .iter()
            .map(|c| match c.kind {
                ColumnKind::Numeric => ColumnData::Numeric(Vec::with_capacity(rows)),
                ColumnKind::Boolean => ColumnData::Boolean(Vec::with_capacity(rows)),
                ColumnKind::Categorical | ColumnKind::Text => {
                    ColumnData::Text(Vec::with_capacity(rows))
                }
                ColumnKind::Timestamp => ColumnData::Timestamp(Vec::with_capacity(rows)),
            })
            .collect();
        FrameBuilder { schema, data }
    }

    fn frame(self) -> Result<Frame, DatasetError> {
        let columns = self
            .schema
            .iter()
            .zip(self.data)
            .map(|(s, data)| Column {
                name: s.name.clone(),
                kind: s.kind,
                data,
            })
            .collect();
        Frame::new(columns).map_err(|_| DatasetError::HeaderMismatch {
            expected: self.schema.len(),
        })
    }
}

impl RecordSink for FrameBuilder<'_> {
    fn header(&mut self, names: &[String]) -> Result<(), DatasetError> {
        if names.len() != self.schema.len()
            || names.iter().zip(self.schema).any(|(n, s)| *n != s.name)
        {
            return Err(DatasetError::HeaderMismatch {
                expected: self.schema.len(),
            });
        }
        Ok(())
    }

    fn record(&mut self, line: u64, fields: &[&str]) -> Result<(), DatasetError> {
        for ((schema, data), raw) in self.schema.iter().zip(&mut self.data).zip(fields) {
            let v = raw.trim();
            let missing = is_missing(v);
            let mismatch = || DatasetError::SchemaMismatch {
                line,
                column: schema.name.clone(),
                kind: schema.kind,
            };
            match data {
                ColumnData::Numeric(col) => col.push(if missing {
                    f64::NAN
                } else {
                    parse_number(v).ok_or_else(mismatch)?
                }),
                ColumnData::Boolean(col) => col.push(if missing {
                    None
                } else {
                    Some(parse_bool(v).ok_or_else(mismatch)?)
                }),
                ColumnData::Text(col) => col.push((!missing).then(|| (*raw).to_owned())),
                ColumnData::Timestamp(col) => col.push(if missing {
                    None
                } else {
                    Some(parse_timestamp(v).ok_or_else(mismatch)?)
                }),
            }
        }
        Ok(())
    }
}

/// Feeds everything `reader` yields to `f`, in chunks of [`READ_CHUNK`] bytes (the last one
/// shorter): short reads are gathered, so a reader that trickles costs no more than one that
/// fills.
fn for_each_chunk(
    reader: &mut dyn Read,
    mut f: impl FnMut(&[u8]) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(buf.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DatasetError::Read(e)),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        f(buf.get(..filled).unwrap_or_default())?;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// Schema inference fed bytes as they come (for bodies that arrive in pieces): the same checks
/// and result as [`infer_csv`], however the bytes are split. Bounded memory.
pub struct SchemaInference {
    parser: CsvParser<Inference>,
}

impl Default for SchemaInference {
    fn default() -> Self {
        SchemaInference::new()
    }
}

impl fmt::Debug for SchemaInference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaInference")
            .field("rows", &self.parser.rows)
            .finish_non_exhaustive()
    }
}

impl SchemaInference {
    pub fn new() -> Self {
        SchemaInference {
            parser: CsvParser::new(Inference::default()),
        }
    }

    /// The next bytes of the file. After an error, the file is refused: stop feeding.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), DatasetError> {
        self.parser.feed(bytes)
    }

    /// The end of the file.
    pub fn finish(self) -> Result<CsvSummary, DatasetError> {
        let (inference, rows) = self.parser.finish()?;
        Ok(CsvSummary {
            rows,
            columns: inference.schema(),
        })
    }
}

/// Reads a CSV file and infers its schema, without storing anything. Bounded memory.
pub fn infer_csv(mut reader: impl Read) -> Result<CsvSummary, DatasetError> {
    let mut inference = SchemaInference::new();
    for_each_chunk(&mut reader, |chunk| inference.feed(chunk))?;
    inference.finish()
}

/// Reads a CSV file into a [`Frame`] by `schema` (as [`infer_csv`] or a stored version gives
/// it): the header must name the schema's columns in order, and every value must parse as its
/// column's kind.
pub fn parse_csv(mut reader: impl Read, schema: &[ColumnSchema]) -> Result<Frame, DatasetError> {
    let mut parser = CsvParser::new(FrameBuilder::new(schema, 0));
    for_each_chunk(&mut reader, |chunk| parser.feed(chunk))?;
    let (builder, _) = parser.finish()?;
    builder.frame()
}

// ---------------------------------------------------------------------------------------------
// Uploads into the store

/// A file on its way into the store: bytes to the encrypted blob, the digest and the parser.
pub(crate) struct Upload<'s> {
    blob: BlobWriter<'s>,
    digest: digest::Context,
    bytes: u64,
    parser: CsvParser<Inference>,
}

/// A finished upload, before its version is committed.
pub(crate) struct Uploaded {
    blob: BlobId,
    bytes: u64,
    sha256: String,
    rows: u64,
    schema: Vec<ColumnSchema>,
    format: DataFormat,
}

impl Uploaded {
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }
}

impl<'s> Upload<'s> {
    pub(crate) fn new(store: &'s Store) -> Result<Self, DatasetError> {
        Ok(Upload {
            blob: store.blob_writer().map_err(DatasetError::Blob)?,
            digest: digest::Context::new(&digest::SHA256),
            bytes: 0,
            parser: CsvParser::new(Inference::default()),
        })
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), DatasetError> {
        self.parser.feed(chunk)?;
        self.digest.update(chunk);
        self.blob
            .write_all(chunk)
            .map_err(|e| DatasetError::Blob(self.blob.write_error(e)))?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Checks the end of the file, then makes the blob durable. Dropped before this (or when
    /// this fails), the upload leaves nothing behind.
    pub(crate) fn finish(self) -> Result<Uploaded, DatasetError> {
        let (inference, rows) = self.parser.finish()?;
        let info = self.blob.finish().map_err(DatasetError::Blob)?;
        Ok(Uploaded {
            blob: info.id,
            bytes: self.bytes,
            sha256: hex::encode(self.digest.finish().as_ref()),
            rows,
            schema: inference.schema(),
            format: DataFormat::Csv,
        })
    }
}

/// Checks a dataset name: 1 to [`MAX_NAME_LEN`] characters of `a-z0-9._-`.
pub fn validate_name(name: &str) -> Result<(), DatasetError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(DatasetError::InvalidName {
            name: name.chars().take(MAX_NAME_LEN + 1).collect(),
        })
    }
}

fn version_key(name: &str, version: u32) -> String {
    format!("{name}/{version:010}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Records `uploaded` as the next version of `name` (creating the dataset if needed), in one
/// durable transaction. If that fails, the blob is erased.
pub(crate) fn commit_version(
    store: &Store,
    name: &str,
    uploaded: Uploaded,
    lineage: Lineage,
) -> Result<DatasetVersion, DatasetError> {
    let blob = uploaded.blob;
    let result = store.write(|w| {
        let now = now_ms();
        let mut record = w.get(&DATASETS, name)?.unwrap_or_else(|| DatasetRecord {
            name: name.to_owned(),
            created_unix_ms: now,
            next_version: 1,
            versions: Vec::new(),
        });
        if let Some(parent) = &lineage.parent {
            let key = version_key(&parent.dataset, parent.version);
            if w.get(&VERSIONS, key.as_str())?.is_none() {
                return Ok(Err(DatasetError::VersionNotFound {
                    name: parent.dataset.clone(),
                    version: parent.version,
                }));
            }
        }
        let version = record.next_version;
        let Some(next) = version.checked_add(1) else {
            return Ok(Err(DatasetError::VersionsExhausted {
                name: name.to_owned(),
            }));
        };
        record.next_version = next;
        record.versions.push(version);
        let v = DatasetVersion {
            dataset: name.to_owned(),
            version,
            format: uploaded.format,
            blob,
            bytes: uploaded.bytes,
            sha256: uploaded.sha256,
            rows: uploaded.rows,
            schema: uploaded.schema,
            created_unix_ms: now,
            lineage,
        };
        w.put(&DATASETS, name, &record)?;
        w.put(&VERSIONS, version_key(name, version).as_str(), &v)?;
        Ok(Ok(v))
    });
    let result = result.map_err(DatasetError::Store).and_then(|r| r);
    if result.is_err()
        && let Err(e) = store.erase_blob(blob)
    {
        tracing::warn!(component = "ml", %blob, error = %e, "could not erase the blob of an uncommitted dataset version");
    }
    result
}

/// Uploads a CSV file as the next version of dataset `name` (created on its first upload).
///
/// One pass over `reader`: the bytes are encrypted into a new blob, hashed and parsed, with
/// memory bounded whatever the size. `progress` is called after each chunk with the bytes read
/// so far. A file that fails a check (see [`CsvError`]), or a reader that fails, leaves no blob
/// and no version.
pub fn ingest_csv(
    store: &Store,
    name: &str,
    mut reader: impl Read,
    progress: &mut dyn FnMut(u64),
) -> Result<DatasetVersion, DatasetError> {
    validate_name(name)?;
    let mut upload = Upload::new(store)?;
    for_each_chunk(&mut reader, |chunk| {
        upload.push(chunk)?;
        progress(upload.bytes());
        Ok(())
    })?;
    let uploaded = upload.finish()?;
    let v = commit_version(store, name, uploaded, Lineage::default())?;
    tracing::info!(
        component = "ml",
        dataset = %v.dataset,
        version = v.version,
        rows = v.rows,
        bytes = v.bytes,
        columns = v.schema.len(),
        "dataset version stored"
    );
    Ok(v)
}

/// Every dataset, by name.
pub fn list_datasets(store: &Store) -> Result<Vec<DatasetSummary>, DatasetError> {
    let rows = store.list(&DATASETS).map_err(DatasetError::Store)?;
    Ok(rows
        .into_iter()
        .map(|(_, r)| DatasetSummary {
            name: r.name,
            created_unix_ms: r.created_unix_ms,
            versions: r.versions,
        })
        .collect())
}

fn dataset_record(store: &Store, name: &str) -> Result<DatasetRecord, DatasetError> {
    validate_name(name)?;
    store
        .get(&DATASETS, name)
        .map_err(DatasetError::Store)?
        .ok_or_else(|| DatasetError::NotFound {
            name: name.to_owned(),
        })
}

/// The live versions of `name`, oldest first.
pub fn list_versions(store: &Store, name: &str) -> Result<Vec<DatasetVersion>, DatasetError> {
    let record = dataset_record(store, name)?;
    store
        .read(|r| {
            let mut out = Vec::with_capacity(record.versions.len());
            for &v in &record.versions {
                if let Some(version) = r.get(&VERSIONS, version_key(name, v).as_str())? {
                    out.push(version);
                }
            }
            Ok(out)
        })
        .map_err(DatasetError::Store)
}

/// One version's record.
pub fn get_version(
    store: &Store,
    name: &str,
    version: VersionSel,
) -> Result<DatasetVersion, DatasetError> {
    let record = dataset_record(store, name)?;
    let number = match version {
        VersionSel::Latest => {
            record
                .versions
                .last()
                .copied()
                .ok_or_else(|| DatasetError::NoVersions {
                    name: name.to_owned(),
                })?
        }
        VersionSel::Number(n) => n,
    };
    store
        .get(&VERSIONS, version_key(name, number).as_str())
        .map_err(DatasetError::Store)?
        .ok_or_else(|| DatasetError::VersionNotFound {
            name: name.to_owned(),
            version: number,
        })
}

/// Streams a version as CSV through `f`: a CSV version's file as stored (authenticated chunk by
/// chunk, its size and SHA-256 checked at the end), a Parquet version's table rendered as CSV
/// (see [`render_csv`]; the table is read into memory first, as [`load_frame`] reads it).
pub(crate) fn read_version(
    store: &Store,
    v: &DatasetVersion,
    f: impl FnMut(&[u8]) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    match v.format {
        DataFormat::Csv => read_blob(store, v, f),
        DataFormat::Parquet => render_csv(&load_parquet(store, v)?, f),
    }
}

/// Streams a version's file (authenticated chunk by chunk) through `f`, and checks at the end
/// that it has the recorded size and SHA-256.
fn read_blob(
    store: &Store,
    v: &DatasetVersion,
    mut f: impl FnMut(&[u8]) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    let mut blob = store.open_blob(v.blob).map_err(DatasetError::Blob)?;
    let mut digest = digest::Context::new(&digest::SHA256);
    let mut bytes = 0u64;
    while let Some(chunk) = blob.next_chunk().map_err(DatasetError::Blob)? {
        digest.update(chunk);
        bytes += chunk.len() as u64;
        f(chunk)?;
    }
    let sha256 = hex::encode(digest.finish().as_ref());
    if bytes != v.bytes || sha256 != v.sha256 {
        return Err(DatasetError::Corrupt {
            name: v.dataset.clone(),
            version: v.version,
            what: format!(
                "the blob holds {bytes} bytes with SHA-256 {sha256}; the record says {} bytes \
                 with {}",
                v.bytes, v.sha256
            ),
        });
    }
    Ok(())
}

/// Reads a version into a [`Frame`], streaming its blob and parsing it by the stored schema.
/// The whole table ends up in memory: check [`DatasetVersion::bytes`] first (for Parquet, which
/// compresses, rows × columns; its file is read into memory too, then decoded).
pub fn load_frame(store: &Store, name: &str, version: VersionSel) -> Result<Frame, DatasetError> {
    let v = get_version(store, name, version)?;
    if v.format == DataFormat::Parquet {
        return load_parquet(store, &v);
    }
    let rows = usize::try_from(v.rows).unwrap_or(0);
    let mut parser = CsvParser::new(FrameBuilder::new(&v.schema, rows));
    read_version(store, &v, |chunk| parser.feed(chunk))?;
    let (builder, found) = parser.finish()?;
    if found != v.rows {
        return Err(DatasetError::Corrupt {
            name: v.dataset.clone(),
            version: v.version,
            what: format!("{found} rows read; the record says {}", v.rows),
        });
    }
    builder.frame()
}

/// Reads a Parquet version into a [`Frame`]: its file into memory (the size the record gives,
/// checked with its SHA-256), then decoded by the stored schema.
fn load_parquet(store: &Store, v: &DatasetVersion) -> Result<Frame, DatasetError> {
    let capacity = usize::try_from(v.bytes).unwrap_or(0).min(1 << 30);
    let mut file = Vec::with_capacity(capacity);
    read_blob(store, v, |chunk| {
        file.extend_from_slice(chunk);
        Ok(())
    })?;
    let footer = parquet::footer(&file)?;
    if footer.rows() != v.rows {
        return Err(DatasetError::Corrupt {
            name: v.dataset.clone(),
            version: v.version,
            what: format!(
                "{} rows in the file; the record says {}",
                footer.rows(),
                v.rows
            ),
        });
    }
    parquet::frame_from(&footer, file.as_slice(), &v.schema)
}

/// A number as CSV text that [`parse_number`] reads back to the same `f64`: the shortest
/// round-trip form, with an exponent from 10^15 up (longer digit runs would read as text).
fn csv_number(x: f64) -> String {
    if x.abs() >= 1e15 {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (H. Hinnant's civil-from-days).
fn csv_timestamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Appends one CSV field, quoted when it must be (RFC 4180).
fn csv_field(out: &mut Vec<u8>, field: &str) {
    if field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

/// Renders `frame` as CSV through `f`, in chunks of about [`READ_CHUNK`] bytes: a header line,
/// then one line per row; a missing value is an empty field; numbers, `true`/`false` and
/// timestamps as [`parse_number`], [`parse_bool`] and [`parse_timestamp`] read them back.
fn render_csv(
    frame: &Frame,
    mut f: impl FnMut(&[u8]) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    let columns = frame.columns();
    let mut out = Vec::with_capacity(READ_CHUNK + (64 << 10));
    let line = |out: &mut Vec<u8>, fields: &mut dyn Iterator<Item = String>| {
        let mut empty_only = true;
        for (i, v) in fields.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            empty_only &= v.is_empty();
            csv_field(out, &v);
        }
        if empty_only && columns.len() == 1 {
            // A lone empty field would be an empty line, which CSV readers skip.
            out.extend_from_slice(b"\"\"");
        }
        out.push(b'\n');
    };
    line(&mut out, &mut columns.iter().map(|c| c.name.clone()));
    for row in 0..frame.rows() {
        line(
            &mut out,
            &mut columns.iter().map(|c| match &c.data {
                ColumnData::Numeric(v) => v
                    .get(row)
                    .filter(|x| !x.is_nan())
                    .map(|x| csv_number(*x))
                    .unwrap_or_default(),
                ColumnData::Boolean(v) => v
                    .get(row)
                    .copied()
                    .flatten()
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
                ColumnData::Text(v) => v.get(row).cloned().flatten().unwrap_or_default(),
                ColumnData::Timestamp(v) => v
                    .get(row)
                    .copied()
                    .flatten()
                    .map(csv_timestamp)
                    .unwrap_or_default(),
            }),
        );
        if out.len() >= READ_CHUNK {
            f(&out)?;
            out.clear();
        }
    }
    if !out.is_empty() {
        f(&out)?;
    }
    Ok(())
}

/// Crypto-erases one version: its blob's key is destroyed, then its record removed. Other
/// versions, and the lineage records that name this one, stay. Erasing again after a failure
/// finishes the job.
pub fn erase_version(store: &Store, name: &str, version: u32) -> Result<(), DatasetError> {
    let v = get_version(store, name, VersionSel::Number(version))?;
    store.erase_blob(v.blob).map_err(DatasetError::Blob)?;
    store
        .write(|w| {
            w.remove(&VERSIONS, version_key(name, version).as_str())?;
            if let Some(mut record) = w.get(&DATASETS, name)? {
                record.versions.retain(|&n| n != version);
                w.put(&DATASETS, name, &record)?;
            }
            Ok(())
        })
        .map_err(DatasetError::Store)?;
    tracing::info!(component = "ml", dataset = %name, version, "dataset version erased");
    Ok(())
}

/// Crypto-erases every version of `name` and forgets the dataset; returns the versions erased.
pub fn erase_dataset(store: &Store, name: &str) -> Result<Vec<u32>, DatasetError> {
    let versions = list_versions(store, name)?;
    for v in &versions {
        store.erase_blob(v.blob).map_err(DatasetError::Blob)?;
    }
    store
        .write(|w| {
            for v in &versions {
                w.remove(&VERSIONS, version_key(name, v.version).as_str())?;
            }
            w.remove(&DATASETS, name)?;
            Ok(())
        })
        .map_err(DatasetError::Store)?;
    tracing::info!(component = "ml", dataset = %name, versions = versions.len(), "dataset erased");
    Ok(versions.into_iter().map(|v| v.version).collect())
}

/// Uploads a CSV or Parquet file as the next version of dataset `name`: Parquet if it starts
/// with `PAR1` ([`ingest_parquet`]), else CSV ([`ingest_csv`]). A CSV file whose first bytes
/// happen to be `PAR1` is taken for Parquet and refused.
pub fn ingest(
    store: &Store,
    name: &str,
    mut reader: impl Read,
    progress: &mut dyn FnMut(u64),
) -> Result<DatasetVersion, DatasetError> {
    validate_name(name)?;
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(head.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DatasetError::Read(e)),
        }
    }
    let head = head.get(..filled).unwrap_or_default();
    let whole = head.chain(reader);
    if head == parquet::MAGIC {
        ingest_parquet(store, name, whole, progress)
    } else {
        ingest_csv(store, name, whole, progress)
    }
}

/// Uploads a Parquet file as the next version of dataset `name` (created on its first upload).
///
/// One pass over `reader`: the bytes are encrypted into a new blob and hashed, and only the
/// tail of the stream is kept (the footer, at most [`parquet::MAX_METADATA_BYTES`]); then the
/// footer is checked against the file and the stored blob is decoded in one sequential pass
/// (memory bounded by a page, [`parquet::MAX_PAGE_BYTES`]), which counts missing values and
/// settles string columns as categorical or text. `progress` is called after each chunk with
/// the bytes read so far. A file that fails a check (see [`ParquetError`]), or a reader that
/// fails, leaves no blob and no version.
pub fn ingest_parquet(
    store: &Store,
    name: &str,
    mut reader: impl Read,
    progress: &mut dyn FnMut(u64),
) -> Result<DatasetVersion, DatasetError> {
    validate_name(name)?;
    let mut blob = store.blob_writer().map_err(DatasetError::Blob)?;
    let mut digest = digest::Context::new(&digest::SHA256);
    let mut tail = parquet::Tail::default();
    let mut bytes = 0u64;
    for_each_chunk(&mut reader, |chunk| {
        if bytes == 0 && !chunk.starts_with(parquet::MAGIC) {
            return Err(ParquetError::BadMagic.into());
        }
        tail.push(chunk);
        digest.update(chunk);
        blob.write_all(chunk)
            .map_err(|e| DatasetError::Blob(blob.write_error(e)))?;
        bytes += chunk.len() as u64;
        progress(bytes);
        Ok(())
    })?;
    let footer = parquet::Footer::parse(tail.head(), &tail.footer(), bytes)?;
    drop(tail);
    let info = blob.finish().map_err(DatasetError::Blob)?;
    let decoded = store
        .open_blob(info.id)
        .map_err(DatasetError::Blob)
        .and_then(|file| {
            let mut inference = parquet::Inference::new(&footer);
            parquet::decode(&footer, file, &mut inference)?;
            Ok(inference.schema(&footer))
        });
    let schema = match decoded {
        Ok(schema) => schema,
        Err(e) => {
            if let Err(erase) = store.erase_blob(info.id) {
                tracing::warn!(component = "ml", blob = %info.id, error = %erase, "could not erase the blob of a refused upload");
            }
            return Err(e);
        }
    };
    let uploaded = Uploaded {
        blob: info.id,
        bytes,
        sha256: hex::encode(digest.finish().as_ref()),
        rows: footer.rows(),
        schema,
        format: DataFormat::Parquet,
    };
    let v = commit_version(store, name, uploaded, Lineage::default())?;
    tracing::info!(
        component = "ml",
        dataset = %v.dataset,
        version = v.version,
        rows = v.rows,
        bytes = v.bytes,
        columns = v.schema.len(),
        format = "parquet",
        "dataset version stored"
    );
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in chunks of `step` bytes.
    fn summary_in_steps(data: &[u8], step: usize) -> Result<CsvSummary, DatasetError> {
        let mut inference = SchemaInference::new();
        for chunk in data.chunks(step) {
            inference.feed(chunk)?;
        }
        inference.finish()
    }

    fn csv_err(data: &[u8]) -> CsvError {
        match infer_csv(data) {
            Err(DatasetError::Csv(e)) => e,
            other => panic!("expected a CSV error, got {other:?}"),
        }
    }

    #[test]
    fn numbers_refuse_phone_numbers_ids_and_long_integers() {
        assert_eq!(parse_number("42"), Some(42.0));
        assert_eq!(parse_number("-0.5"), Some(-0.5));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("0"), Some(0.0));
        assert_eq!(parse_number("123456789012345"), Some(123_456_789_012_345.0));
        for v in [
            "+4915112345678",
            "0171",
            "4111111111111111",
            "inf",
            "NaN",
            "-",
            "1-2",
            "0x10",
            "1e999",
            "",
        ] {
            assert_eq!(parse_number(v), None, "{v}");
        }
    }

    #[test]
    fn timestamps_parse_dates_times_and_offsets() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("2000-03-01"), Some(951_868_800));
        assert_eq!(parse_timestamp("2024-02-29 12:00:00"), Some(1_709_208_000));
        assert_eq!(parse_timestamp("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(
            parse_timestamp("2024-02-29T12:00:00.123Z"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T14:00:00+02:00"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T07:00:00-0500"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), Some(-1));
        for v in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01 24:00:00",
            "2024-01-01T12:00",
            "2024-01-01X",
            "2024/01/01",
            "2024-01-01T12:00:00+2",
            "2024-01-01T12:00:00.Z",
            "12345678901",
        ] {
            assert_eq!(parse_timestamp(v), None, "{v}");
        }
    }

    #[test]
    fn inference_picks_each_kind() {
        let mut data = String::from("n,b,c,t,ts,empty\n");
        for i in 0..10 {
            data.push_str(&format!(
                "{},{},{},free text {i},2024-01-{:02},\n",
                if i == 3 {
                    "NA".to_owned()
                } else {
                    format!("{i}.5")
                },
                if i % 2 == 0 { "yes" } else { "No" },
                ["red", "green", "blue"][i % 3],
                i + 1
            ));
        }
        let s = infer_csv(data.as_bytes()).unwrap();
        assert_eq!(s.rows, 10);
        let kinds: Vec<_> = s
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.missing))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("n", ColumnKind::Numeric, 1),
                ("b", ColumnKind::Boolean, 0),
                ("c", ColumnKind::Categorical, 0),
                ("t", ColumnKind::Text, 0),
                ("ts", ColumnKind::Timestamp, 0),
                ("empty", ColumnKind::Text, 10),
            ]
        );
    }

    #[test]
    fn categorical_stops_past_the_distinct_limit() {
        let mut c = ColumnInference::default();
        for i in 0..3 * (MAX_CATEGORIES + 1) {
            c.observe(Some(&format!("v{}", i % (MAX_CATEGORIES + 1))));
        }
        assert_eq!(c.distinct.count(), None);
        assert_eq!(c.kind(), ColumnKind::Text);
        let mut c = ColumnInference::default();
        for i in 0..3 * MAX_CATEGORIES {
            c.observe(Some(&format!("v{}", i % MAX_CATEGORIES)));
        }
        assert_eq!(c.kind(), ColumnKind::Categorical);
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let data = "\u{feff}a,b,c\r\n1,\"x, \"\"quoted\"\"\nline\",2024-01-01\r\n2,plain,2024-01-02\n\n3,,NA\n";
        let whole = infer_csv(data.as_bytes()).unwrap();
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                summary_in_steps(data.as_bytes(), step).unwrap(),
                whole,
                "step {step}"
            );
        }
        assert_eq!(whole.rows, 3);
        assert_eq!(whole.columns[0].name, "a");
        // A BOM split across reads is still a BOM (found by the fuzz target).
        for data in [&b"\xef\xbb\xbf\na\x0b"[..], b"\xef\xbb\xbf", b"\xef\xbb"] {
            for step in [1, 2] {
                assert_eq!(
                    summary_in_steps(data, step).map_err(|e| e.to_string()),
                    infer_csv(data).map_err(|e| e.to_string()),
                    "{data:?} in steps of {step}"
                );
            }
        }
        let frame = parse_csv(data.as_bytes(), &whole.columns).unwrap();
        assert_eq!(
            frame.column("b").unwrap().data,
            ColumnData::Text(vec![
                Some("x, \"quoted\"\nline".into()),
                Some("plain".into()),
                None
            ])
        );
    }

    #[test]
    fn errors_name_the_line_the_record_starts_on() {
        // LF, CRLF, and a quoted field spanning lines before the bad record.
        assert_eq!(
            csv_err(b"a,b\n1,2\n3\n"),
            CsvError::Ragged {
                line: 3,
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            csv_err(b"a,b\r\n1,2\r\n3,4,5\r\n"),
            CsvError::Ragged {
                line: 3,
                expected: 2,
                found: 3
            }
        );
        assert_eq!(
            csv_err(b"a,b\n1,\"two\nlines\"\n\n3\n"),
            CsvError::Ragged {
                line: 5,
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            csv_err(b"a,b\n1,2\n3,\"x\ny\",z"),
            CsvError::Ragged {
                line: 3,
                expected: 2,
                found: 3
            }
        );
        assert_eq!(
            csv_err(b"a,b\n1,\xff\n"),
            CsvError::InvalidUtf8 { line: 2, column: 2 }
        );
    }

    #[test]
    fn header_and_limits_are_checked() {
        assert_eq!(csv_err(b""), CsvError::NoHeader);
        assert_eq!(csv_err(b"\n\n"), CsvError::NoHeader);
        assert_eq!(
            csv_err(b"a, ,c\n"),
            CsvError::EmptyColumnName { line: 1, column: 2 }
        );
        assert_eq!(
            csv_err(b"a,b,a\n"),
            CsvError::DuplicateColumn {
                name: "a".into(),
                first: 1,
                second: 3
            }
        );
        let wide = (0..MAX_COLUMNS)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            infer_csv(format!("{wide}\n").as_bytes())
                .unwrap()
                .columns
                .len(),
            MAX_COLUMNS
        );
        assert_eq!(
            csv_err(format!("{wide},x\n").as_bytes()),
            CsvError::TooManyColumns {
                line: 1,
                max: MAX_COLUMNS
            }
        );
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        assert_eq!(
            csv_err(format!("a,b\n1,2\n3,{long}\n").as_bytes()),
            CsvError::FieldTooLong {
                line: 3,
                column: 2,
                max: MAX_FIELD_BYTES
            }
        );
        let near = "y".repeat(MAX_FIELD_BYTES - 10);
        let record = [near.as_str(); 5].join(",");
        assert_eq!(
            csv_err(format!("a,b,c,d,e\n{record}\n").as_bytes()),
            CsvError::RecordTooLong {
                line: 2,
                max: MAX_RECORD_BYTES
            }
        );
        let name = "n".repeat(MAX_COLUMN_NAME_BYTES + 1);
        assert_eq!(
            csv_err(format!("a,{name}\n").as_bytes()),
            CsvError::ColumnNameTooLong {
                line: 1,
                column: 2,
                max: MAX_COLUMN_NAME_BYTES
            }
        );
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "sales-2026.q1_v2", &"x".repeat(MAX_NAME_LEN)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Sales",
            "a/b",
            "a b",
            "ä",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(
                matches!(validate_name(bad), Err(DatasetError::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn parse_refuses_values_outside_the_schema() {
        let schema = vec![ColumnSchema {
            name: "n".into(),
            kind: ColumnKind::Numeric,
            missing: 0,
        }];
        assert!(matches!(
            parse_csv(&b"n\n1\nx\n"[..], &schema),
            Err(DatasetError::SchemaMismatch { line: 3, .. })
        ));
        assert!(matches!(
            parse_csv(&b"m\n1\n"[..], &schema),
            Err(DatasetError::HeaderMismatch { expected: 1 })
        ));
    }
}
