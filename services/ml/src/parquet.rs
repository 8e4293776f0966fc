//! Parquet uploads: the footer, the schema it declares, and the column data, read with the
//! `parquet` crate's low-level page and column readers (no arrow), under bounds of our own.
//!
//! A Parquet file ends with its metadata (Thrift compact protocol), the metadata's length and
//! `PAR1`. An upload streams into its blob like a CSV file, keeping only the tail of the stream
//! ([`Tail`], at most [`MAX_METADATA_BYTES`] and 8); at the end the footer is parsed
//! ([`Footer::parse`]) and checked against the file's size, then the data is decoded in one
//! sequential pass over the stored blob ([`decode`]), column chunk by column chunk and page by
//! page: memory is bounded by one page ([`MAX_PAGE_BYTES`]) and a batch of values, whatever the
//! size of the file.
//!
//! The crate trusts sizes that hostile input controls in a few places (it reserves list and
//! schema capacities from counts in the footer, a dictionary from its page's value count, and a
//! gzip page inflates without a limit); each is checked here before the crate sees the bytes:
//! the footer's Thrift structure is walked first (depth, list and byte lengths within the
//! input, a flat schema), every page header is read here first (sizes within the column chunk
//! and [`MAX_PAGE_BYTES`]), dictionaries must fit their page, and gzip pages are inflated with a
//! limit before the crate inflates them.
//!
//! Types: `BOOLEAN` → boolean; integers, `FLOAT`, `DOUBLE` and decimals → numeric (integers past
//! 2^53 are rounded to the nearest `f64`; NaN and ±∞ count as missing); strings (`STRING`,
//! `ENUM`, `JSON` or unannotated `BYTE_ARRAY`, which must be UTF-8) → categorical or text by
//! the CSV rule (values repeat: at most [`MAX_CATEGORIES`](super::MAX_CATEGORIES) distinct values and at most half as
//! many distinct values as values); `TIMESTAMP`, `DATE` and `INT96` → timestamp (Unix seconds,
//! sub-seconds dropped). Nulls are missing. Nested or repeated columns, `TIME`, `INTERVAL`,
//! `FLOAT16`, `UUID` and other binary columns are refused, naming the column.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

use ::parquet::basic::{
    Compression, ConvertedType, Encoding, LogicalType, TimeUnit, Type as Physical,
};
use ::parquet::column::page::{Page, PageMetadata, PageReader};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl, get_column_reader};
use ::parquet::data_type::DataType;
use ::parquet::errors::ParquetError as CrateError;
use ::parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData, ParquetMetaDataReader};
use ::parquet::file::properties::ReaderProperties;
use ::parquet::file::serialized_reader::SerializedPageReader;
use ::parquet::schema::types::ColumnDescPtr;
use bytes::Bytes;

use super::{ColumnSchema, DatasetError, Distinct, MAX_COLUMN_NAME_BYTES, MAX_COLUMNS};
use crate::frame::{Column, ColumnData, ColumnKind, Frame};

/// The magic at both ends of a Parquet file.
pub const MAGIC: &[u8; 4] = b"PAR1";
/// The magic that ends a file whose footer is encrypted.
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";
/// Largest footer metadata accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 << 20;
/// Largest page accepted (compressed or not), in bytes.
pub const MAX_PAGE_BYTES: usize = 64 << 20;
/// Largest page header accepted, in bytes (headers may carry statistics).
const MAX_PAGE_HEADER_BYTES: usize = 1 << 20;
/// Most row groups a file may have (the crate numbers them with an `i16`).
pub const MAX_ROW_GROUPS: usize = 32_767;
/// Most elements any list in the footer may declare.
const MAX_THRIFT_LIST: usize = 1 << 16;
/// Deepest nesting of Thrift structures accepted.
const MAX_THRIFT_DEPTH: usize = 32;
/// Values decoded per step.
const BATCH: usize = 8192;
/// Julian day of 1970-01-01 (INT96 timestamps count days from the Julian epoch).
const JULIAN_UNIX_EPOCH: i64 = 2_440_588;

/// Why a Parquet file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("the file is {bytes} bytes: too short to be Parquet (at least 12)")]
    TooShort { bytes: u64 },
    #[error("the file does not start with the Parquet magic \"PAR1\"")]
    BadMagic,
    #[error(
        "the file does not end with the Parquet magic \"PAR1\": it is truncated or not Parquet"
    )]
    BadTrailer,
    #[error("the file's footer is encrypted (\"PARE\"): encrypted Parquet is not supported")]
    Encrypted,
    #[error("the footer claims {len} bytes of metadata; the file has room for {room}")]
    FooterLength { len: u64, room: u64 },
    #[error("the footer's metadata is {len} bytes; at most {max} are accepted")]
    FooterTooLarge { len: u64, max: usize },
    #[error("the footer's metadata is malformed: {what}")]
    Metadata { what: String },
    #[error("the footer's metadata could not be decoded")]
    Decode(#[source] CrateError),
    #[error("the file has no columns")]
    NoColumns,
    #[error("the file has {found} columns; at most {max} are accepted")]
    TooManyColumns { found: usize, max: usize },
    #[error("column {column} has an empty name")]
    EmptyColumnName { column: usize },
    #[error("column {column} has a name longer than {max} bytes")]
    ColumnNameTooLong { column: usize, max: usize },
    #[error("column name {name:?} appears twice (columns {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("column {column:?}: {what} is not supported")]
    Unsupported { column: String, what: String },
    #[error("row group {row_group}, column {column:?}: compression {codec} is not supported")]
    Codec {
        row_group: usize,
        column: String,
        codec: String,
    },
    #[error("the row groups hold {found} rows; the footer says {expected}")]
    RowCount { found: u64, expected: u64 },
    #[error("row group {row_group}, column {column:?}: {what}")]
    Chunk {
        row_group: usize,
        column: String,
        what: String,
    },
    #[error("row group {row_group}, column {column:?}: the data could not be decoded")]
    Data {
        row_group: usize,
        column: String,
        #[source]
        source: CrateError,
    },
    #[error("column {column:?}, row {row}: {what}")]
    Value {
        column: String,
        row: u64,
        what: String,
    },
    #[error("could not read the file")]
    Read(#[source] io::Error),
    /// The `parquet` crate panicked on this file (a bug of its own: found by fuzzing, e.g. a
    /// shift overflow in its bit reader where overflow checks are on); caught, and the file
    /// refused.
    #[error("the Parquet decoder failed on this file while {during}: {message}")]
    DecoderPanicked {
        during: &'static str,
        message: String,
    },
}

/// Runs `f`, turning a panic inside the `parquet` crate into [`ParquetError::DecoderPanicked`].
/// Whatever `f` touched is dropped with the error.
fn guarded<T>(
    during: &'static str,
    f: impl FnOnce() -> Result<T, ParquetError>,
) -> Result<T, ParquetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        tracing::warn!(component = "ml", during, %message, "the parquet crate panicked; the file is refused");
        Err(ParquetError::DecoderPanicked { during, message })
    })
}

// ---------------------------------------------------------------------------------------------
// The tail of a stream

/// The last bytes of a stream, where the footer is: at most [`MAX_METADATA_BYTES`] and 8, plus
/// one chunk, held as the chunks that came.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    chunks: VecDeque<Vec<u8>>,
    len: usize,
    head: Vec<u8>,
}

impl Tail {
    const KEEP: usize = MAX_METADATA_BYTES + 8;

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.head.len() < MAGIC.len() {
            let n = (MAGIC.len() - self.head.len()).min(chunk.len());
            self.head
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        let start = chunk.len().saturating_sub(Self::KEEP);
        let chunk = chunk.get(start..).unwrap_or_default();
        self.chunks.push_back(chunk.to_vec());
        self.len += chunk.len();
        while let Some(front) = self.chunks.front() {
            if self.len - front.len() < Self::KEEP {
                break;
            }
            self.len -= front.len();
            self.chunks.pop_front();
        }
    }

    /// The first bytes of the stream (up to 4).
    pub(crate) fn head(&self) -> &[u8] {
        &self.head
    }

    /// The last `n` bytes (fewer if fewer are kept).
    fn last(&self, n: usize) -> Vec<u8> {
        let n = n.min(self.len);
        let mut out = Vec::with_capacity(n);
        let mut skip = self.len - n;
        for c in &self.chunks {
            let from = skip.min(c.len());
            skip -= from;
            out.extend_from_slice(c.get(from..).unwrap_or_default());
        }
        out
    }

    /// What [`Footer::parse`] needs: the metadata its last 8 bytes claim and those 8 bytes
    /// (only the 8 when the claim is more than is kept).
    pub(crate) fn footer(&self) -> Vec<u8> {
        let trailer = self.last(8);
        let claimed = trailer
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes);
        let claimed = usize::try_from(claimed).unwrap_or(usize::MAX);
        if claimed > MAX_METADATA_BYTES {
            trailer
        } else {
            self.last(claimed + 8)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A Thrift compact-protocol walker: checks structure and bounds before the crate decodes.

#[derive(Debug)]
enum ThriftError {
    /// The input ended inside the structure.
    Incomplete,
    Invalid(String),
}

struct Compact<'a> {
    buf: &'a [u8],
    pos: usize,
}

const T_BOOL_TRUE: u8 = 1;
const T_BOOL_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;
const T_UUID: u8 = 13;

impl<'a> Compact<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Compact { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, ThriftError> {
        let b = *self.buf.get(self.pos).ok_or(ThriftError::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), ThriftError> {
        if n > self.remaining() {
            return Err(ThriftError::Incomplete);
        }
        self.pos += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, ThriftError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(ThriftError::Invalid("a varint overflows 64 bits".into()));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ThriftError::Invalid("a varint is too long".into()))
    }

    fn zigzag(&mut self) -> Result<i64, ThriftError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, ThriftError> {
        i32::try_from(self.zigzag()?)
            .map_err(|_| ThriftError::Invalid("an i32 is out of range".into()))
    }

    fn binary(&mut self) -> Result<&'a [u8], ThriftError> {
        let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        if len > self.remaining() {
            return Err(ThriftError::Incomplete);
        }
        let start = self.pos;
        self.pos += len;
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    /// A list or set header: element type and count (at most [`MAX_THRIFT_LIST`], and no more
    /// than bytes remain: every element takes at least one).
    fn list_header(&mut self) -> Result<(u8, usize), ThriftError> {
        let h = self.byte()?;
        let ty = h & 0x0f;
        let size = match h >> 4 {
            15 => usize::try_from(self.varint()?).unwrap_or(usize::MAX),
            n => usize::from(n),
        };
        if size > MAX_THRIFT_LIST {
            return Err(ThriftError::Invalid(format!(
                "a list declares {size} elements (at most {MAX_THRIFT_LIST})"
            )));
        }
        if size > self.remaining() {
            return Err(ThriftError::Incomplete);
        }
        Ok((ty, size))
    }

    /// Walks a struct's fields, handing each `(id, type)` to `field`; fields it does not
    /// consume (returns `false`) are skipped.
    fn walk_struct(
        &mut self,
        depth: usize,
        field: &mut dyn FnMut(&mut Self, i16, u8) -> Result<bool, ThriftError>,
    ) -> Result<(), ThriftError> {
        if depth > MAX_THRIFT_DEPTH {
            return Err(ThriftError::Invalid(format!(
                "structures nest deeper than {MAX_THRIFT_DEPTH}"
            )));
        }
        let mut last = 0i16;
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            let ty = h & 0x0f;
            let delta = h >> 4;
            let id = if delta == 0 {
                i16::try_from(self.zigzag()?)
                    .map_err(|_| ThriftError::Invalid("a field id is out of range".into()))?
            } else {
                last.checked_add(i16::from(delta))
                    .ok_or_else(|| ThriftError::Invalid("a field id is out of range".into()))?
            };
            last = id;
            if !field(self, id, ty)? {
                self.skip_value(ty, depth)?;
            }
        }
    }

    fn skip_value(&mut self, ty: u8, depth: usize) -> Result<(), ThriftError> {
        match ty {
            T_BOOL_TRUE | T_BOOL_FALSE => Ok(()),
            T_BYTE => self.skip(1),
            T_I16 | T_I32 | T_I64 => self.varint().map(drop),
            T_DOUBLE => self.skip(8),
            T_BINARY => self.binary().map(drop),
            T_UUID => self.skip(16),
            T_LIST | T_SET => {
                let (elem, size) = self.list_header()?;
                for _ in 0..size {
                    self.skip_element(elem, depth + 1)?;
                }
                Ok(())
            }
            T_MAP => {
                let size = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                if size == 0 {
                    return Ok(());
                }
                if size > MAX_THRIFT_LIST || size > self.remaining() {
                    return Err(ThriftError::Invalid(format!(
                        "a map declares {size} entries"
                    )));
                }
                let kv = self.byte()?;
                for _ in 0..size {
                    self.skip_element(kv >> 4, depth + 1)?;
                    self.skip_element(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            T_STRUCT => self.walk_struct(depth + 1, &mut |_, _, _| Ok(false)),
            other => Err(ThriftError::Invalid(format!("unknown field type {other}"))),
        }
    }

    /// List elements: booleans take a byte each.
    fn skip_element(&mut self, ty: u8, depth: usize) -> Result<(), ThriftError> {
        match ty {
            T_BOOL_TRUE | T_BOOL_FALSE => self.skip(1),
            other => self.skip_value(other, depth),
        }
    }
}

fn thrift_err(e: ThriftError) -> ParquetError {
    ParquetError::Metadata {
        what: match e {
            ThriftError::Incomplete => "it ends early".into(),
            ThriftError::Invalid(what) => what,
        },
    }
}

/// What the walk of the footer found out.
#[derive(Debug)]
struct FooterShape {
    /// Schema elements after the root: (name, has children).
    leaves: Vec<(String, bool)>,
    root_children: Option<i32>,
}

/// Walks `FileMetaData`: every list, string and nesting within bounds; the schema flat
/// (no groups under the root); at most [`MAX_ROW_GROUPS`] row groups.
fn check_footer(meta: &[u8]) -> Result<FooterShape, ParquetError> {
    let mut c = Compact::new(meta);
    let mut shape = FooterShape {
        leaves: Vec::new(),
        root_children: None,
    };
    let mut schema_seen = false;
    c.walk_struct(0, &mut |c, id, ty| match (id, ty) {
        // 2: list<SchemaElement> schema
        (2, T_LIST) => {
            if schema_seen {
                return Err(ThriftError::Invalid("the schema appears twice".into()));
            }
            schema_seen = true;
            let (elem, size) = c.list_header()?;
            if elem != T_STRUCT {
                return Err(ThriftError::Invalid(
                    "the schema is not a list of structs".into(),
                ));
            }
            if size > MAX_COLUMNS + 1 {
                return Err(ThriftError::Invalid(format!(
                    "the schema has {size} elements; at most {} columns are accepted",
                    MAX_COLUMNS
                )));
            }
            for i in 0..size {
                let mut name = String::new();
                let mut children: Option<i32> = None;
                c.walk_struct(1, &mut |c, id, ty| match (id, ty) {
                    (4, T_BINARY) => {
                        name = String::from_utf8_lossy(c.binary()?).into_owned();
                        Ok(true)
                    }
                    (5, T_I32) => {
                        children = Some(c.i32()?);
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                if i == 0 {
                    shape.root_children = children;
                } else {
                    shape.leaves.push((name, children.is_some_and(|n| n != 0)));
                }
            }
            Ok(true)
        }
        // 4: list<RowGroup> row_groups
        (4, T_LIST) => {
            let start = c.pos;
            let (_, size) = c.list_header()?;
            if size > MAX_ROW_GROUPS {
                return Err(ThriftError::Invalid(format!(
                    "{size} row groups (at most {MAX_ROW_GROUPS})"
                )));
            }
            c.pos = start;
            c.skip_value(T_LIST, 0)?;
            Ok(true)
        }
        _ => Ok(false),
    })
    .map_err(thrift_err)?;
    if c.remaining() != 0 {
        return Err(ParquetError::Metadata {
            what: format!("{} bytes follow it", c.remaining()),
        });
    }
    if !schema_seen {
        return Err(ParquetError::Metadata {
            what: "it has no schema".into(),
        });
    }
    if let Some((name, _)) = shape.leaves.iter().find(|(_, group)| *group) {
        return Err(ParquetError::Unsupported {
            column: name.clone(),
            what: "a nested column (a group)".into(),
        });
    }
    let expected = i32::try_from(shape.leaves.len()).unwrap_or(i32::MAX);
    if shape.root_children != Some(expected) {
        return Err(ParquetError::Metadata {
            what: format!(
                "the schema's root claims {:?} columns; {} follow",
                shape.root_children,
                shape.leaves.len()
            ),
        });
    }
    Ok(shape)
}

/// What a page header says, read by [`Compact`] before the crate reads it.
#[derive(Debug)]
struct PageHead {
    /// Bytes of the header itself.
    len: usize,
    kind: i32,
    uncompressed: usize,
    compressed: usize,
    /// A v2 data page: bytes of levels stored uncompressed ahead of the values, and whether
    /// the values are compressed.
    v2: Option<(usize, bool)>,
}

const PAGE_DATA: i32 = 0;
const PAGE_INDEX: i32 = 1;
const PAGE_DICTIONARY: i32 = 2;
const PAGE_DATA_V2: i32 = 3;

fn page_head(buf: &[u8]) -> Result<PageHead, ThriftError> {
    let mut c = Compact::new(buf);
    let (mut kind, mut uncompressed, mut compressed) = (None, None, None);
    let mut v2: Option<(i64, bool)> = None;
    c.walk_struct(0, &mut |c, id, ty| {
        if (id, ty) == (8, T_STRUCT) {
            let mut levels = 0i64;
            let mut is_compressed = true;
            c.walk_struct(1, &mut |c, id, ty| match (id, ty) {
                (5 | 6, T_I32) => {
                    levels += i64::from(c.i32()?);
                    Ok(true)
                }
                (7, T_BOOL_TRUE) => {
                    is_compressed = true;
                    Ok(true)
                }
                (7, T_BOOL_FALSE) => {
                    is_compressed = false;
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            v2 = Some((levels, is_compressed));
            return Ok(true);
        }
        let slot = match (id, ty) {
            (1, T_I32) => &mut kind,
            (2, T_I32) => &mut uncompressed,
            (3, T_I32) => &mut compressed,
            _ => return Ok(false),
        };
        if slot.replace(c.i32()?).is_some() {
            return Err(ThriftError::Invalid(format!("field {id} appears twice")));
        }
        Ok(true)
    })?;
    let (Some(kind), Some(uncompressed), Some(compressed)) = (kind, uncompressed, compressed)
    else {
        return Err(ThriftError::Invalid(
            "a page header lacks its type or sizes".into(),
        ));
    };
    let size = |v: i32| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= MAX_PAGE_BYTES)
            .ok_or_else(|| {
                ThriftError::Invalid(format!(
                    "a page claims {v} bytes (at most {MAX_PAGE_BYTES} are accepted)"
                ))
            })
    };
    let v2 = match v2 {
        None => None,
        Some((levels, is_compressed)) => Some((
            usize::try_from(levels)
                .ok()
                .filter(|&l| l <= compressed as usize)
                .ok_or_else(|| {
                    ThriftError::Invalid(format!("a v2 page claims {levels} bytes of levels"))
                })?,
            is_compressed,
        )),
    };
    Ok(PageHead {
        len: c.pos,
        kind,
        uncompressed: size(uncompressed)?,
        compressed: size(compressed)?,
        v2,
    })
}

// ---------------------------------------------------------------------------------------------
// The footer

/// How a column's values become a [`Frame`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conv {
    Bool,
    Int {
        unsigned: bool,
    },
    Float,
    Decimal {
        scale: u32,
    },
    /// Days since the epoch.
    Date,
    /// Units per second.
    Timestamp {
        per_second: i64,
    },
    Int96,
    Utf8,
}

#[derive(Debug)]
struct ColumnPlan {
    name: String,
    conv: Conv,
    descr: ColumnDescPtr,
}

impl ColumnPlan {
    /// The kind before the values are seen (strings are settled by their values).
    fn kind(&self) -> ColumnKind {
        match self.conv {
            Conv::Bool => ColumnKind::Boolean,
            Conv::Int { .. } | Conv::Float | Conv::Decimal { .. } => ColumnKind::Numeric,
            Conv::Date | Conv::Timestamp { .. } | Conv::Int96 => ColumnKind::Timestamp,
            Conv::Utf8 => ColumnKind::Text,
        }
    }
}

/// One column chunk, where it lies in the file.
#[derive(Debug)]
struct Chunk {
    row_group: usize,
    column: usize,
    start: u64,
    len: u64,
    rows: u64,
    codec: Compression,
}

/// A parsed and checked footer: the columns, the row count and the column chunks in file order.
#[derive(Debug)]
pub struct Footer {
    columns: Vec<ColumnPlan>,
    chunks: Vec<Chunk>,
    rows: u64,
}

fn unsupported(column: &str, what: impl Into<String>) -> ParquetError {
    ParquetError::Unsupported {
        column: column.to_owned(),
        what: what.into(),
    }
}

fn unit_per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::MILLIS => 1_000,
        TimeUnit::MICROS => 1_000_000,
        TimeUnit::NANOS => 1_000_000_000,
    }
}

/// How column `descr` converts, or why it cannot.
fn conversion(name: &str, descr: &ColumnDescPtr) -> Result<Conv, ParquetError> {
    if descr.max_rep_level() != 0 {
        return Err(unsupported(name, "a repeated column"));
    }
    let physical = descr.physical_type();
    let scale = || {
        u32::try_from(descr.type_scale())
            .ok()
            .filter(|&s| s <= 76)
            .ok_or_else(|| unsupported(name, format!("a decimal of scale {}", descr.type_scale())))
    };
    let conv = match (descr.logical_type_ref(), physical) {
        (_, Physical::BOOLEAN) => Conv::Bool,
        (Some(LogicalType::Decimal(_)), _) => Conv::Decimal { scale: scale()? },
        (None, _) if descr.converted_type() == ConvertedType::DECIMAL => {
            Conv::Decimal { scale: scale()? }
        }
        (Some(LogicalType::Date), Physical::INT32) => Conv::Date,
        (None, Physical::INT32) if descr.converted_type() == ConvertedType::DATE => Conv::Date,
        (Some(LogicalType::Timestamp(t)), Physical::INT64) => Conv::Timestamp {
            per_second: unit_per_second(&t.unit),
        },
        (None, Physical::INT64) if descr.converted_type() == ConvertedType::TIMESTAMP_MILLIS => {
            Conv::Timestamp { per_second: 1_000 }
        }
        (None, Physical::INT64) if descr.converted_type() == ConvertedType::TIMESTAMP_MICROS => {
            Conv::Timestamp {
                per_second: 1_000_000,
            }
        }
        (Some(LogicalType::Integer(i)), Physical::INT32 | Physical::INT64) => Conv::Int {
            unsigned: !i.is_signed,
        },
        (Some(LogicalType::Time(_)), _) => return Err(unsupported(name, "a TIME column")),
        (None, Physical::INT32 | Physical::INT64) => match descr.converted_type() {
            ConvertedType::NONE
            | ConvertedType::INT_8
            | ConvertedType::INT_16
            | ConvertedType::INT_32
            | ConvertedType::INT_64 => Conv::Int { unsigned: false },
            ConvertedType::UINT_8
            | ConvertedType::UINT_16
            | ConvertedType::UINT_32
            | ConvertedType::UINT_64 => Conv::Int { unsigned: true },
            other => {
                return Err(unsupported(
                    name,
                    format!("an integer column of type {other}"),
                ));
            }
        },
        (None, Physical::INT96) => Conv::Int96,
        (None, Physical::FLOAT | Physical::DOUBLE) => Conv::Float,
        (
            Some(LogicalType::String | LogicalType::Enum | LogicalType::Json),
            Physical::BYTE_ARRAY,
        ) => Conv::Utf8,
        (None, Physical::BYTE_ARRAY) => match descr.converted_type() {
            ConvertedType::NONE
            | ConvertedType::UTF8
            | ConvertedType::ENUM
            | ConvertedType::JSON => Conv::Utf8,
            other => {
                return Err(unsupported(
                    name,
                    format!("a binary column of type {other}"),
                ));
            }
        },
        (Some(logical), _) => {
            return Err(unsupported(
                name,
                format!("a {physical} column of logical type {logical:?}"),
            ));
        }
        (None, _) => return Err(unsupported(name, format!("a {physical} column"))),
    };
    Ok(conv)
}

fn codec_supported(codec: Compression) -> bool {
    matches!(
        codec,
        Compression::UNCOMPRESSED
            | Compression::SNAPPY
            | Compression::GZIP(_)
            | Compression::LZ4
            | Compression::LZ4_RAW
            | Compression::ZSTD(_)
    )
}

impl Footer {
    /// Parses and checks the footer of a file of `file_len` bytes whose last bytes are `tail`
    /// (at least the metadata and 8 bytes, or the whole file) and whose first bytes are `head`.
    pub(crate) fn parse(head: &[u8], tail: &[u8], file_len: u64) -> Result<Footer, ParquetError> {
        if file_len < 12 || tail.len() < 8 {
            return Err(ParquetError::TooShort { bytes: file_len });
        }
        if head.get(..4) != Some(MAGIC.as_slice()) {
            return Err(ParquetError::BadMagic);
        }
        let end = tail.len();
        let trailer = tail.get(end - 4..).unwrap_or_default();
        if trailer == MAGIC_ENCRYPTED {
            return Err(ParquetError::Encrypted);
        }
        if trailer != MAGIC {
            return Err(ParquetError::BadTrailer);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(tail.get(end - 8..end - 4).unwrap_or(&[0; 4]));
        let len = u64::from(u32::from_le_bytes(len));
        let room = file_len - 12;
        if len > room {
            return Err(ParquetError::FooterLength { len, room });
        }
        if len > MAX_METADATA_BYTES as u64 {
            return Err(ParquetError::FooterTooLarge {
                len,
                max: MAX_METADATA_BYTES,
            });
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let meta = (end - 8)
            .checked_sub(len)
            .and_then(|start| tail.get(start..end - 8))
            .ok_or(ParquetError::TooShort { bytes: file_len })?;
        check_footer(meta)?;
        let parsed = guarded("decoding the footer", || {
            ParquetMetaDataReader::decode_metadata(meta).map_err(ParquetError::Decode)
        })?;
        // Column chunks must lie between the leading magic and the metadata.
        let data_end = file_len - 8 - len as u64;
        Footer::check(&parsed, data_end)
    }

    fn check(meta: &ParquetMetaData, data_end: u64) -> Result<Footer, ParquetError> {
        let schema = meta.file_metadata().schema_descr();
        let n = schema.num_columns();
        if n == 0 {
            return Err(ParquetError::NoColumns);
        }
        if n > MAX_COLUMNS {
            return Err(ParquetError::TooManyColumns {
                found: n,
                max: MAX_COLUMNS,
            });
        }
        let mut columns: Vec<ColumnPlan> = Vec::with_capacity(n);
        for i in 0..n {
            let descr = schema.column(i);
            let column = i + 1;
            let name = descr.name().trim().to_owned();
            if name.is_empty() {
                return Err(ParquetError::EmptyColumnName { column });
            }
            if name.len() > MAX_COLUMN_NAME_BYTES {
                return Err(ParquetError::ColumnNameTooLong {
                    column,
                    max: MAX_COLUMN_NAME_BYTES,
                });
            }
            if descr.path().parts().len() != 1 {
                return Err(unsupported(&name, "a nested column"));
            }
            if let Some(first) = columns.iter().position(|c| c.name == name) {
                return Err(ParquetError::DuplicateColumn {
                    name,
                    first: first + 1,
                    second: column,
                });
            }
            let conv = conversion(&name, &descr)?;
            columns.push(ColumnPlan { name, conv, descr });
        }

        let expected =
            u64::try_from(meta.file_metadata().num_rows()).map_err(|_| ParquetError::Metadata {
                what: format!("a row count of {}", meta.file_metadata().num_rows()),
            })?;
        let mut chunks = Vec::new();
        let mut total = 0u64;
        for (g, rg) in meta.row_groups().iter().enumerate() {
            let row_group = g + 1;
            let rows = u64::try_from(rg.num_rows()).map_err(|_| ParquetError::Metadata {
                what: format!("row group {row_group} has {} rows", rg.num_rows()),
            })?;
            total = total.saturating_add(rows);
            if rg.num_columns() != n {
                return Err(ParquetError::Metadata {
                    what: format!(
                        "row group {row_group} has {} columns; the schema has {n}",
                        rg.num_columns()
                    ),
                });
            }
            for (c, cc) in rg.columns().iter().enumerate() {
                let plan = columns.get(c).ok_or(ParquetError::NoColumns)?;
                let bad = |what: String| ParquetError::Chunk {
                    row_group,
                    column: plan.name.clone(),
                    what,
                };
                chunks.push(chunk(cc, row_group, c, rows, data_end, &bad)?);
                if !codec_supported(cc.compression()) {
                    return Err(ParquetError::Codec {
                        row_group,
                        column: plan.name.clone(),
                        codec: cc.compression().to_string(),
                    });
                }
            }
        }
        if total != expected {
            return Err(ParquetError::RowCount {
                found: total,
                expected,
            });
        }
        chunks.sort_by_key(|c| c.start);
        for pair in chunks.windows(2) {
            if let [a, b] = pair
                && a.start + a.len > b.start
            {
                return Err(ParquetError::Chunk {
                    row_group: b.row_group,
                    column: columns
                        .get(b.column)
                        .map(|c| c.name.clone())
                        .unwrap_or_default(),
                    what: format!(
                        "it overlaps the chunk of row group {}, column {}",
                        a.row_group,
                        a.column + 1
                    ),
                });
            }
        }
        // Values are appended per column in file order: each column's chunks must come in row
        // group order.
        let mut last = vec![0usize; n];
        for c in &chunks {
            let prev = last.get_mut(c.column).ok_or(ParquetError::NoColumns)?;
            if c.row_group < *prev {
                return Err(ParquetError::Chunk {
                    row_group: c.row_group,
                    column: columns
                        .get(c.column)
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                    what: "it lies before the chunk of an earlier row group".into(),
                });
            }
            *prev = c.row_group;
        }
        Ok(Footer {
            columns,
            chunks,
            rows: expected,
        })
    }

    /// Data rows.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

fn chunk(
    cc: &ColumnChunkMetaData,
    row_group: usize,
    column: usize,
    rows: u64,
    data_end: u64,
    bad: &dyn Fn(String) -> ParquetError,
) -> Result<Chunk, ParquetError> {
    let data = cc.data_page_offset();
    let start = match cc.dictionary_page_offset() {
        // Some writers record 0 for "no dictionary".
        Some(d) if d > 0 => {
            if d >= data {
                return Err(bad(format!(
                    "its dictionary (at {d}) does not precede its data (at {data})"
                )));
            }
            d
        }
        _ => data,
    };
    let start = u64::try_from(start)
        .ok()
        .filter(|&s| s >= MAGIC.len() as u64)
        .ok_or_else(|| bad(format!("it starts at offset {start}")))?;
    let len = u64::try_from(cc.compressed_size())
        .map_err(|_| bad(format!("it claims {} bytes", cc.compressed_size())))?;
    if start.saturating_add(len) > data_end {
        return Err(bad(format!(
            "its {len} bytes at offset {start} run past the data, which ends at {data_end}"
        )));
    }
    if u64::try_from(cc.num_values()).ok() != Some(rows) {
        return Err(bad(format!(
            "it holds {} values; the row group has {rows} rows",
            cc.num_values()
        )));
    }
    if rows > 0 && len == 0 {
        return Err(bad(format!("it holds {rows} rows in no bytes")));
    }
    Ok(Chunk {
        row_group,
        column,
        start,
        len,
        rows,
        codec: cc.compression(),
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// One value, as a [`Frame`] holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Missing,
    Bool(bool),
    Num(f64),
    Text(&'a str),
    Time(i64),
}

/// Receives the decoded values: column by column within a row group, rows in order.
pub(crate) trait CellSink {
    fn cell(&mut self, column: usize, cell: Cell<'_>) -> Result<(), ParquetError>;
}

/// A `Read` with its position, that can skip ahead.
struct Cursor<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Cursor<R> {
    fn read_exact_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<(), ParquetError> {
        let start = out.len();
        out.resize(start + n, 0);
        let dst = out.get_mut(start..).unwrap_or_default();
        self.inner.read_exact(dst).map_err(ParquetError::Read)?;
        self.pos += n as u64;
        Ok(())
    }

    fn skip_to(&mut self, offset: u64) -> Result<(), ParquetError> {
        let n = offset.saturating_sub(self.pos);
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(ParquetError::Read)?;
        self.pos += copied;
        if copied != n {
            return Err(ParquetError::Read(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }
}

/// Pages handed to the crate's column reader one at a time.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<VecDeque<Page>>>);

impl Queue {
    fn push(&self, page: Page) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(page);
    }

    fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

impl Iterator for Queue {
    type Item = Result<Page, CrateError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for Queue {
    fn get_next_page(&mut self) -> Result<Option<Page>, CrateError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front())
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>, CrateError> {
        // Only used to skip records and for repeated columns, neither of which happens here.
        Ok(None)
    }

    fn skip_next_page(&mut self) -> Result<(), CrateError> {
        self.get_next_page().map(drop)
    }
}

/// Fewest bytes one PLAIN-encoded value of `physical` takes (booleans: one bit, rounded up).
fn min_value_bytes(physical: Physical, type_length: i32) -> usize {
    match physical {
        Physical::BOOLEAN => 1,
        Physical::INT32 | Physical::FLOAT | Physical::BYTE_ARRAY => 4,
        Physical::INT64 | Physical::DOUBLE => 8,
        Physical::INT96 => 12,
        Physical::FIXED_LEN_BYTE_ARRAY => usize::try_from(type_length).unwrap_or(1).max(1),
    }
}

/// Reads one column chunk's pages from `src` and decodes them into `sink`.
struct ChunkReader<'a, R> {
    src: &'a mut Cursor<R>,
    chunk: &'a Chunk,
    plan: &'a ColumnPlan,
    /// Bytes of the chunk not yet read from `src`.
    remaining: u64,
    /// Bytes read from `src` and not yet used.
    pending: Vec<u8>,
    /// Rows of the chunk decoded so far.
    rows: u64,
    /// Rows of the file before this row group.
    first_row: u64,
    dictionary: bool,
    queue: Queue,
}

impl<R: Read> ChunkReader<'_, R> {
    fn fail(&self, what: impl Into<String>) -> ParquetError {
        ParquetError::Chunk {
            row_group: self.chunk.row_group,
            column: self.plan.name.clone(),
            what: what.into(),
        }
    }

    fn data_err(&self, source: CrateError) -> ParquetError {
        ParquetError::Data {
            row_group: self.chunk.row_group,
            column: self.plan.name.clone(),
            source,
        }
    }

    /// Makes `pending` hold at least `n` bytes, or all the chunk has left.
    fn fill(&mut self, n: usize) -> Result<(), ParquetError> {
        if self.pending.len() >= n {
            return Ok(());
        }
        let want = (n - self.pending.len()) as u64;
        let take = want.min(self.remaining);
        let take = usize::try_from(take).unwrap_or(usize::MAX);
        self.src.read_exact_into(&mut self.pending, take)?;
        self.remaining -= take as u64;
        Ok(())
    }

    fn left(&self) -> u64 {
        self.remaining + self.pending.len() as u64
    }

    /// The next page, decompressed; `None` at the end of the chunk.
    fn next_page(&mut self) -> Result<Option<Page>, ParquetError> {
        loop {
            if self.left() == 0 {
                return Ok(None);
            }
            let mut want = 256;
            let head = loop {
                self.fill(want)?;
                match page_head(&self.pending) {
                    Ok(h) => break h,
                    Err(ThriftError::Incomplete) => {
                        // `fill` read all it could: the chunk ended, or the header is too long.
                        if self.remaining == 0 || want >= MAX_PAGE_HEADER_BYTES {
                            return Err(self.fail("a page header is cut off or too long"));
                        }
                        want = (want * 4).min(MAX_PAGE_HEADER_BYTES);
                    }
                    Err(ThriftError::Invalid(what)) => {
                        return Err(self.fail(format!("a page header is malformed: {what}")));
                    }
                }
            };
            let total = head.len + head.compressed;
            if total as u64 > self.left() {
                return Err(self.fail(format!(
                    "a page of {} bytes runs past the end of the chunk",
                    head.compressed
                )));
            }
            self.fill(total)?;
            let bytes: Vec<u8> = self.pending.drain(..total).collect();
            match head.kind {
                PAGE_INDEX => continue,
                PAGE_DATA | PAGE_DICTIONARY | PAGE_DATA_V2 => {}
                other => return Err(self.fail(format!("a page of unknown type {other}"))),
            }
            if matches!(self.chunk.codec, Compression::GZIP(_)) {
                self.check_gzip(bytes.get(head.len..).unwrap_or_default(), &head)?;
            }
            return self.decode_page(bytes).map(Some);
        }
    }

    /// A gzip page must not inflate past its declared size (the crate inflates without limit).
    fn check_gzip(&self, body: &[u8], head: &PageHead) -> Result<(), ParquetError> {
        let body = match head.v2 {
            Some((_, false)) => return Ok(()),
            Some((levels, true)) => body.get(levels..).unwrap_or_default(),
            None => body,
        };
        let limit = head.uncompressed as u64;
        let inflated = io::copy(
            &mut flate2::read::MultiGzDecoder::new(body).take(limit + 1),
            &mut io::sink(),
        );
        match inflated {
            Ok(n) if n <= limit => Ok(()),
            Ok(_) => Err(self.fail(format!(
                "a gzip page inflates past its declared {limit} bytes"
            ))),
            Err(e) => Err(self.fail(format!("a gzip page does not inflate: {e}"))),
        }
    }

    /// Checks the value counts of a `DELTA_LENGTH_BYTE_ARRAY` or `DELTA_BYTE_ARRAY` page: each
    /// delta-binary-packed header (one; two for `DELTA_BYTE_ARRAY`, whose first stream is walked
    /// to find the second) must count no more values than the page holds, nor more than
    /// [`MAX_DELTA_VALUES`].
    fn check_delta(&self, page: &Page, page_rows: u64) -> Result<(), ParquetError> {
        let max_def = self.plan.descr.max_def_level();
        let values = match page {
            Page::DataPage {
                buf,
                num_values,
                def_level_encoding,
                ..
            } => {
                // No repetition levels (repeated columns are refused); definition levels
                // first when the column is optional.
                let skip = if max_def == 0 {
                    0
                } else if *def_level_encoding == Encoding::RLE {
                    let len = buf
                        .get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        .ok_or_else(|| self.fail("a page's definition levels are cut off"))?;
                    len.saturating_add(4)
                } else {
                    // BIT_PACKED (deprecated): one bit per value for a flat optional column.
                    let bits = 16 - max_def.leading_zeros() as usize;
                    (*num_values as usize).saturating_mul(bits).div_ceil(8)
                };
                buf.get(skip..)
            }
            Page::DataPageV2 {
                buf,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => buf.get(
                (*def_levels_byte_len as usize).saturating_add(*rep_levels_byte_len as usize)..,
            ),
            Page::DictionaryPage { .. } => return Ok(()),
        }
        .ok_or_else(|| self.fail("a page's levels run past its end"))?;
        let limit = page_rows.min(MAX_DELTA_VALUES);
        let fail = |what: String| {
            self.fail(format!(
                "a delta-encoded page ({} values at most): {what}",
                page_rows
            ))
        };
        // DELTA_LENGTH_BYTE_ARRAY: the lengths, then the bytes. DELTA_BYTE_ARRAY: the prefix
        // lengths, then the suffixes as DELTA_LENGTH_BYTE_ARRAY.
        let mut lengths = delta_stream(values, limit).map_err(fail)?;
        if page.encoding() == Encoding::DELTA_BYTE_ARRAY {
            let rest = values.get(lengths.len..).unwrap_or_default();
            let suffixes =
                delta_stream(rest, limit).map_err(|what| fail(format!("its suffixes: {what}")))?;
            if suffixes.values != lengths.values {
                return Err(fail(format!(
                    "{} prefixes but {} suffixes",
                    lengths.values, suffixes.values
                )));
            }
            lengths = DeltaStream {
                len: lengths.len + suffixes.len,
                ..suffixes
            };
        }
        let bytes = values.len() - lengths.len.min(values.len());
        if lengths.sum > bytes as u64 {
            return Err(fail(format!(
                "its lengths add up to {} bytes; {bytes} follow them",
                lengths.sum
            )));
        }
        Ok(())
    }

    fn decode_page(&self, bytes: Vec<u8>) -> Result<Page, ParquetError> {
        let len = bytes.len();
        let meta = ColumnChunkMetaData::builder(self.plan.descr.clone())
            .set_compression(self.chunk.codec)
            .set_data_page_offset(0)
            .set_total_compressed_size(i64::try_from(len).unwrap_or(i64::MAX))
            .set_num_values(i64::try_from(self.chunk.rows).unwrap_or(i64::MAX))
            .build()
            .map_err(|e| self.data_err(e))?;
        let props = Arc::new(
            ReaderProperties::builder()
                .set_backward_compatible_lz4(false)
                .build(),
        );
        let rows = usize::try_from(self.chunk.rows).unwrap_or(usize::MAX);
        let mut pages = SerializedPageReader::new_with_properties(
            Arc::new(Bytes::from(bytes)),
            &meta,
            rows,
            None,
            props,
        )
        .map_err(|e| self.data_err(e))?;
        pages
            .get_next_page()
            .map_err(|e| self.data_err(e))?
            .ok_or_else(|| self.fail("a page holds nothing"))
    }

    /// Decodes the chunk with the crate's typed column reader.
    fn read<T: DataType>(
        &mut self,
        mut reader: ColumnReaderImpl<T>,
        sink: &mut dyn CellSink,
        convert: &dyn Fn(&T::T) -> Result<Cell<'_>, String>,
    ) -> Result<(), ParquetError> {
        let max_def = self.plan.descr.max_def_level();
        let mut values: Vec<T::T> = Vec::with_capacity(BATCH);
        let mut levels: Vec<i16> = Vec::with_capacity(BATCH);
        while let Some(page) = self.next_page()? {
            let page_rows = match &page {
                Page::DictionaryPage {
                    num_values, buf, ..
                } => {
                    if self.dictionary {
                        return Err(self.fail("it has two dictionary pages"));
                    }
                    let need = usize::try_from(*num_values)
                        .unwrap_or(usize::MAX)
                        .saturating_mul(min_value_bytes(
                            self.plan.descr.physical_type(),
                            self.plan.descr.type_length(),
                        ));
                    if need > buf.len() {
                        return Err(self.fail(format!(
                            "a dictionary of {num_values} values in {} bytes",
                            buf.len()
                        )));
                    }
                    self.dictionary = true;
                    self.queue.push(page);
                    continue;
                }
                Page::DataPage { num_values, .. } => u64::from(*num_values),
                Page::DataPageV2 {
                    num_values,
                    num_rows,
                    ..
                } => {
                    if num_values != num_rows {
                        return Err(self.fail(format!(
                            "a v2 page holds {num_values} values in {num_rows} rows"
                        )));
                    }
                    u64::from(*num_rows)
                }
            };
            if matches!(
                page.encoding(),
                Encoding::DELTA_LENGTH_BYTE_ARRAY | Encoding::DELTA_BYTE_ARRAY
            ) {
                // The crate sizes these decoders' length buffers from value counts inside the
                // page that it does not check: bounded here first.
                self.check_delta(&page, page_rows)?;
            }
            if matches!(
                page.encoding(),
                Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY
            ) && !self.dictionary
            {
                return Err(self.fail("a dictionary-encoded page comes without a dictionary"));
            }
            if self.rows + page_rows > self.chunk.rows {
                return Err(self.fail(format!(
                    "its pages hold more than the row group's {} rows",
                    self.chunk.rows
                )));
            }
            if page_rows == 0 {
                continue;
            }
            self.queue.push(page);
            let mut left = page_rows;
            while left > 0 {
                let want = usize::try_from(left.min(BATCH as u64)).unwrap_or(BATCH);
                values.clear();
                levels.clear();
                let (records, read, nlevels) = reader
                    .read_records(want, Some(&mut levels), None, &mut values)
                    .map_err(|e| self.data_err(e))?;
                if records == 0 || records > want {
                    return Err(self.fail(format!(
                        "a page holds fewer values than its header's {page_rows}"
                    )));
                }
                if read != values.len() || (max_def > 0 && nlevels != records) {
                    return Err(self.fail("a page's levels and values disagree"));
                }
                let mut vi = values.iter();
                for i in 0..records {
                    let present = max_def == 0 || levels.get(i) == Some(&max_def);
                    let cell = if present {
                        let v = vi
                            .next()
                            .ok_or_else(|| self.fail("a page has fewer values than levels"))?;
                        convert(v).map_err(|what| ParquetError::Value {
                            column: self.plan.name.clone(),
                            row: self.first_row + self.rows + 1,
                            what,
                        })?
                    } else {
                        Cell::Missing
                    };
                    sink.cell(self.chunk.column, cell)?;
                    self.rows += 1;
                }
                if vi.next().is_some() {
                    return Err(self.fail("a page has more values than levels"));
                }
                left -= records as u64;
            }
            if !self.queue.is_empty() {
                return Err(self.fail("a page was left unread"));
            }
        }
        if self.rows != self.chunk.rows {
            return Err(self.fail(format!(
                "its pages hold {} rows; the row group has {}",
                self.rows, self.chunk.rows
            )));
        }
        Ok(())
    }
}

/// Most values one delta-encoded page may count: the crate holds a 4-byte length per value
/// (twice for `DELTA_BYTE_ARRAY`), so 16 MiB each.
const MAX_DELTA_VALUES: u64 = 1 << 22;

/// A delta-binary-packed stream of lengths: how many, their sum, and its own length in bytes.
#[derive(Debug, PartialEq, Eq)]
struct DeltaStream {
    values: u64,
    sum: u64,
    len: usize,
}

/// An unsigned LEB128 varint of at most 64 bits at `*at`.
fn uleb(b: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("a varint is cut off")?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a varint is longer than 64 bits".into())
}

/// A zigzag varint as the 32-bit value the crate decodes it into (wrapping, as it does).
fn zigzag32(b: &[u8], at: &mut usize) -> Result<i32, String> {
    let u = uleb(b, at)?;
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    let v = ((u >> 1) as i64 ^ -((u & 1) as i64)) as i32;
    Ok(v)
}

/// Decodes a DELTA_BINARY_PACKED stream of 32-bit lengths (header, then blocks of a min delta,
/// the miniblocks' bit widths and their bit-packed deltas, least significant bit first), as the
/// crate would, after checking its count against `limit`: its count, the lengths' sum (each
/// must be 0 or more) and its byte length. Work is bounded by `limit`.
fn delta_stream(b: &[u8], limit: u64) -> Result<DeltaStream, String> {
    let mut at = 0;
    let block = uleb(b, &mut at)?;
    let miniblocks = uleb(b, &mut at)?;
    let values = uleb(b, &mut at)?;
    if values > limit {
        return Err(format!("it counts {values} values"));
    }
    let mut last = zigzag32(b, &mut at)?;
    if block == 0 || block % 128 != 0 || block > 1 << 20 {
        return Err(format!("a block of {block} values"));
    }
    if miniblocks == 0 || block % miniblocks != 0 || (block / miniblocks) % 32 != 0 {
        return Err(format!(
            "{miniblocks} miniblocks in a block of {block} values"
        ));
    }
    let per_mini = usize::try_from(block / miniblocks).map_err(|_| "too large")?;
    let miniblocks = usize::try_from(miniblocks).map_err(|_| "too many miniblocks")?;
    let mut sum = 0u64;
    let mut add = |v: i32| {
        u64::try_from(v)
            .map(|v| sum += v)
            .map_err(|_| format!("a negative length {v}"))
    };
    if values > 0 {
        add(last)?;
    }
    let mut left = values.saturating_sub(1);
    while left > 0 {
        let min_delta = zigzag32(b, &mut at)?;
        let widths_end = at
            .checked_add(miniblocks)
            .filter(|&e| e <= b.len())
            .ok_or("a block's bit widths are cut off")?;
        let widths = &b[at..widths_end];
        at = widths_end;
        for &w in widths {
            if left == 0 {
                break; // the widths of unused miniblocks may be anything
            }
            if w > 32 {
                return Err(format!("a miniblock of {w}-bit deltas"));
            }
            let w = usize::from(w);
            // per_mini is a multiple of 32, so whole bytes.
            let end = at
                .checked_add(per_mini * w / 8)
                .filter(|&e| e <= b.len())
                .ok_or("a miniblock is cut off")?;
            let data = &b[at..end];
            at = end;
            let take = usize::try_from(left.min(per_mini as u64)).unwrap_or(per_mini);
            for j in 0..take {
                let mut delta = 0u64;
                for bit in 0..w {
                    let i = j * w + bit;
                    delta |= u64::from((data[i / 8] >> (i % 8)) & 1) << bit;
                }
                #[allow(clippy::cast_possible_truncation)]
                let delta = delta as u32;
                last = last.wrapping_add(min_delta).wrapping_add_unsigned(delta);
                add(last)?;
            }
            left -= take as u64;
        }
    }
    Ok(DeltaStream {
        values,
        sum,
        len: at,
    })
}

fn finite(x: f64) -> Cell<'static> {
    if x.is_finite() {
        Cell::Num(x)
    } else {
        Cell::Missing
    }
}

/// `unscaled × 10^-scale`, correctly rounded.
fn decimal(unscaled: i128, scale: u32) -> Cell<'static> {
    finite(
        format!("{unscaled}e-{scale}")
            .parse::<f64>()
            .unwrap_or(f64::NAN),
    )
}

/// A big-endian two's-complement integer of at most 16 bytes.
fn be_i128(b: &[u8]) -> Result<i128, String> {
    if b.is_empty() || b.len() > 16 {
        return Err(format!("a decimal of {} bytes (1 to 16 are read)", b.len()));
    }
    let fill = if b.first().is_some_and(|&x| x & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut full = [fill; 16];
    full.get_mut(16 - b.len()..)
        .unwrap_or_default()
        .copy_from_slice(b);
    Ok(i128::from_be_bytes(full))
}

fn seconds(units: i64, per_second: i64) -> Cell<'static> {
    Cell::Time(units.div_euclid(per_second))
}

fn int96_seconds(words: &[u32]) -> Result<Cell<'static>, String> {
    let [lo, hi, day] = *words else {
        return Err("an INT96 of the wrong size".into());
    };
    let nanos = i128::from((u64::from(hi) << 32) | u64::from(lo));
    let secs = (i128::from(day) - i128::from(JULIAN_UNIX_EPOCH)) * 86_400
        + nanos.div_euclid(1_000_000_000);
    i64::try_from(secs)
        .map(Cell::Time)
        .map_err(|_| "an INT96 timestamp out of range".into())
}

fn utf8(b: &[u8]) -> Result<Cell<'_>, String> {
    std::str::from_utf8(b)
        .map(Cell::Text)
        .map_err(|_| "the value is not valid UTF-8".into())
}

/// Decodes every column chunk of `footer` from `file` (the whole file, read once, in order),
/// handing the values to `sink`. Reads up to the footer, not past it.
pub(crate) fn decode(
    footer: &Footer,
    file: impl Read,
    sink: &mut dyn CellSink,
) -> Result<(), ParquetError> {
    guarded("decoding the data", || decode_unguarded(footer, file, sink))
}

fn decode_unguarded(
    footer: &Footer,
    file: impl Read,
    sink: &mut dyn CellSink,
) -> Result<(), ParquetError> {
    let mut src = Cursor {
        inner: file,
        pos: 0,
    };
    let mut first_rows = Vec::new();
    let mut acc = 0u64;
    for c in footer.chunks.iter().filter(|c| c.column == 0) {
        first_rows.push((c.row_group, acc));
        acc += c.rows;
    }
    for chunk in &footer.chunks {
        let plan = footer
            .columns
            .get(chunk.column)
            .ok_or(ParquetError::NoColumns)?;
        src.skip_to(chunk.start)?;
        let first_row = first_rows
            .iter()
            .find(|(g, _)| *g == chunk.row_group)
            .map_or(0, |(_, r)| *r);
        let queue = Queue::default();
        let reader = get_column_reader(plan.descr.clone(), Box::new(queue.clone()));
        let mut r = ChunkReader {
            src: &mut src,
            chunk,
            plan,
            remaining: chunk.len,
            pending: Vec::new(),
            rows: 0,
            first_row,
            dictionary: false,
            queue,
        };
        let conv = plan.conv;
        match reader {
            ColumnReader::BoolColumnReader(rd) => r.read(rd, sink, &|v| Ok(Cell::Bool(*v)))?,
            ColumnReader::Int32ColumnReader(rd) => r.read(rd, sink, &|v| {
                Ok(match conv {
                    Conv::Int { unsigned: true } => Cell::Num(f64::from(*v as u32)),
                    Conv::Decimal { scale } => decimal(i128::from(*v), scale),
                    Conv::Date => Cell::Time(i64::from(*v) * 86_400),
                    _ => Cell::Num(f64::from(*v)),
                })
            })?,
            ColumnReader::Int64ColumnReader(rd) => r.read(rd, sink, &|v| {
                Ok(match conv {
                    Conv::Int { unsigned: true } => Cell::Num(*v as u64 as f64),
                    Conv::Decimal { scale } => decimal(i128::from(*v), scale),
                    Conv::Timestamp { per_second } => seconds(*v, per_second),
                    _ => Cell::Num(*v as f64),
                })
            })?,
            ColumnReader::Int96ColumnReader(rd) => {
                r.read(rd, sink, &|v| int96_seconds(v.data()))?
            }
            ColumnReader::FloatColumnReader(rd) => {
                r.read(rd, sink, &|v| Ok(finite(f64::from(*v))))?
            }
            ColumnReader::DoubleColumnReader(rd) => r.read(rd, sink, &|v| Ok(finite(*v)))?,
            ColumnReader::ByteArrayColumnReader(rd) => r.read(rd, sink, &|v| match conv {
                Conv::Decimal { scale } => Ok(decimal(be_i128(v.data())?, scale)),
                _ => utf8(v.data()),
            })?,
            ColumnReader::FixedLenByteArrayColumnReader(rd) => {
                r.read(rd, sink, &|v| match conv {
                    Conv::Decimal { scale } => Ok(decimal(be_i128(v.data())?, scale)),
                    _ => utf8(v.data()),
                })?
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sinks: schema inference and frames

/// Counts missing values per column and settles string columns as categorical or text.
pub(crate) struct Inference {
    kinds: Vec<ColumnKind>,
    missing: Vec<u64>,
    present: Vec<u64>,
    distinct: Vec<Distinct>,
}

impl Inference {
    pub(crate) fn new(footer: &Footer) -> Self {
        let n = footer.columns.len();
        Inference {
            kinds: footer.columns.iter().map(ColumnPlan::kind).collect(),
            missing: vec![0; n],
            present: vec![0; n],
            distinct: vec![Distinct::default(); n],
        }
    }

    pub(crate) fn schema(self, footer: &Footer) -> Vec<ColumnSchema> {
        footer
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let present = self.present.get(i).copied().unwrap_or(0);
                let kind = match self.kinds.get(i) {
                    Some(ColumnKind::Text) if present > 0 => {
                        match self.distinct.get(i).and_then(Distinct::count) {
                            Some(d) if (d as u64).saturating_mul(2) <= present => {
                                ColumnKind::Categorical
                            }
                            _ => ColumnKind::Text,
                        }
                    }
                    Some(k) => *k,
                    None => ColumnKind::Text,
                };
                ColumnSchema {
                    name: c.name.clone(),
                    kind,
                    missing: self.missing.get(i).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}

impl CellSink for Inference {
    fn cell(&mut self, column: usize, cell: Cell<'_>) -> Result<(), ParquetError> {
        match cell {
            Cell::Missing => {
                if let Some(m) = self.missing.get_mut(column) {
                    *m += 1;
                }
            }
            Cell::Text(v) => {
                if let Some(p) = self.present.get_mut(column) {
                    *p += 1;
                }
                if let Some(d) = self.distinct.get_mut(column) {
                    d.insert(v);
                }
            }
            _ => {
                if let Some(p) = self.present.get_mut(column) {
                    *p += 1;
                }
            }
        }
        Ok(())
    }
}

/// Builds a [`Frame`] by a stored schema.
pub(crate) struct FrameSink<'a> {
    schema: &'a [ColumnSchema],
    data: Vec<ColumnData>,
}

impl<'a> FrameSink<'a> {
    pub(crate) fn new(schema: &'a [ColumnSchema], rows: usize) -> Self {
        // The capacity hint is only a hint: a hostile row count must not reserve memory.
        let rows = rows.min(1 << 20);
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
        FrameSink { schema, data }
    }

    pub(crate) fn frame(self) -> Result<Frame, DatasetError> {
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

impl CellSink for FrameSink<'_> {
    fn cell(&mut self, column: usize, cell: Cell<'_>) -> Result<(), ParquetError> {
        let (Some(data), Some(schema)) = (self.data.get_mut(column), self.schema.get(column))
        else {
            return Err(ParquetError::NoColumns);
        };
        let row = data.len() as u64 + 1;
        match (data, cell) {
            (ColumnData::Numeric(v), Cell::Missing) => v.push(f64::NAN),
            (ColumnData::Numeric(v), Cell::Num(x)) => v.push(x),
            (ColumnData::Boolean(v), Cell::Missing) => v.push(None),
            (ColumnData::Boolean(v), Cell::Bool(b)) => v.push(Some(b)),
            (ColumnData::Text(v), Cell::Missing) => v.push(None),
            (ColumnData::Text(v), Cell::Text(s)) => v.push(Some(s.to_owned())),
            (ColumnData::Timestamp(v), Cell::Missing) => v.push(None),
            (ColumnData::Timestamp(v), Cell::Time(t)) => v.push(Some(t)),
            _ => {
                return Err(ParquetError::Value {
                    column: schema.name.clone(),
                    row,
                    what: format!("the value is not {:?}", schema.kind),
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Without a store (the fuzz target, tests)

/// What a Parquet file holds, as [`infer_parquet`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetSummary {
    pub rows: u64,
    pub columns: Vec<ColumnSchema>,
}

/// Parses the footer of a whole file held in memory.
pub fn footer(file: &[u8]) -> Result<Footer, DatasetError> {
    let tail_start = file.len().saturating_sub(MAX_METADATA_BYTES + 8);
    Ok(Footer::parse(
        file,
        file.get(tail_start..).unwrap_or_default(),
        file.len() as u64,
    )?)
}

/// Reads a Parquet file held in memory: its schema, inferred as an upload infers it, and its
/// row count. Nothing is stored.
pub fn infer_parquet(file: &[u8]) -> Result<ParquetSummary, DatasetError> {
    let footer = footer(file)?;
    let mut inference = Inference::new(&footer);
    decode(&footer, file, &mut inference)?;
    Ok(ParquetSummary {
        rows: footer.rows,
        columns: inference.schema(&footer),
    })
}

/// Reads a Parquet file held in memory into a [`Frame`] by `schema` (as [`infer_parquet`] or a
/// stored version gives it).
pub fn parse_parquet(file: &[u8], schema: &[ColumnSchema]) -> Result<Frame, DatasetError> {
    let footer = footer(file)?;
    frame_from(&footer, file, schema)
}

/// Decodes `file` (whose footer is `footer`) into a [`Frame`] by `schema`.
pub(crate) fn frame_from(
    footer: &Footer,
    file: impl Read,
    schema: &[ColumnSchema],
) -> Result<Frame, DatasetError> {
    if schema.len() != footer.columns.len()
        || schema
            .iter()
            .zip(&footer.columns)
            .any(|(s, c)| s.name != c.name)
    {
        return Err(DatasetError::HeaderMismatch {
            expected: schema.len(),
        });
    }
    let rows = usize::try_from(footer.rows).unwrap_or(usize::MAX);
    let mut sink = FrameSink::new(schema, rows);
    decode(footer, file, &mut sink)?;
    sink.frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream as pyarrow writes it: lengths 3, 5, 4, 4, 10 (first value 3, min delta -1,
    /// deltas +1 -1 0 +6 on 3 bits).
    fn lengths_stream() -> Vec<u8> {
        // Header: block 128, 4 miniblocks, 5 values, first 3 (zigzag 6).
        let mut b = vec![0x80, 0x01, 4, 5, 6];
        // Block: min delta -1 (zigzag 1), widths 3 and three unused; deltas - min = 3, 0, 1, 7.
        b.extend([1, 3, 0xee, 0xee, 0xee]);
        let mut bits = 0u128;
        for (j, d) in [3u128, 0, 1, 7].iter().enumerate() {
            bits |= d << (3 * j);
        }
        b.extend(&bits.to_le_bytes()[..12]); // 32 values x 3 bits
        b
    }

    #[test]
    fn delta_lengths_decode_as_the_crate_does() {
        let b = lengths_stream();
        let mut tail = b.clone();
        tail.push(0xbb);
        assert_eq!(
            delta_stream(&tail, 100).unwrap(),
            DeltaStream {
                values: 5,
                sum: 3 + 5 + 4 + 4 + 10,
                len: b.len()
            }
        );
        // Header only (one value), then other bytes.
        assert_eq!(
            delta_stream(&[0x80, 0x01, 4, 1, 14, 0xaa], 1).unwrap(),
            DeltaStream {
                values: 1,
                sum: 7,
                len: 5
            }
        );
        delta_stream(&b[..b.len() - 1], 100).unwrap_err();
        assert!(delta_stream(&b, 4).unwrap_err().contains("counts 5 values"));
        // A negative length (first value -1, zigzag 1).
        let mut neg = b.clone();
        neg[4] = 1;
        assert!(delta_stream(&neg, 100).unwrap_err().contains("negative"));
        for bad in [
            &[0x00, 4, 1, 0][..],       // a block of 0
            &[0x81, 0x01, 4, 1, 0][..], // 129
            &[0x80, 0x01, 0, 1, 0][..], // no miniblocks
            &[0x80, 0x01, 8, 1, 0][..], // miniblocks of 16
            &[0x80, 0x01][..],
            &[0xff; 11][..],
        ] {
            delta_stream(bad, 100).unwrap_err();
        }
        // 33-bit deltas do not fit 32-bit lengths.
        let mut wide = b.clone();
        wide[6] = 33;
        delta_stream(&wide, 100).unwrap_err();
    }

    #[test]
    fn tail_keeps_the_last_bytes_and_the_first_four() {
        let mut t = Tail::default();
        t.push(b"PA");
        t.push(b"R1xyz\x02\0\0\0PAR1");
        assert_eq!(t.head(), b"PAR1");
        assert_eq!(t.footer(), b"yz\x02\0\0\0PAR1");
        let big = vec![7u8; Tail::KEEP + 10];
        t.push(&big);
        assert_eq!(t.len, Tail::KEEP);
        for _ in 0..3 {
            t.push(&[1; 1000]);
        }
        // The big chunk stays until the small ones cover the bound.
        assert_eq!(t.len, Tail::KEEP + 3000);
        assert_eq!(t.last(3), vec![1; 3]);
        // A claim past the bound gives the trailer alone.
        t.push(b"\xff\xff\xff\xffPAR1");
        assert_eq!(t.footer(), b"\xff\xff\xff\xffPAR1");
        assert_eq!(t.head(), b"PAR1");
    }

    #[test]
    fn footers_are_refused_with_reasons() {
        let err = |file: &[u8]| match footer(file) {
            Err(DatasetError::Parquet(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(err(b"PAR1").contains("too short"));
        assert!(err(b"PAR1\0\0\0\0\0\0\0\0PAR0").contains("does not end"));
        assert!(err(b"XXXX\0\0\0\0\0\0\0\0PAR1").contains("does not start"));
        assert!(err(b"PAR1\0\0\0\0\x05\0\0\0PARE").contains("encrypted"));
        assert!(err(b"PAR1\0\0\0\0\x05\0\0\0PAR1").contains("room for 4"));
        assert!(err(b"PAR1\0\0\0\0\x04\0\0\0PAR1").contains("malformed"));
    }

    #[test]
    fn thrift_walk_bounds_lists_and_depth() {
        // A list claiming 2^20 elements.
        let list = [0x19, 0xf8, 0x80, 0x80, 0x40, 0x00];
        assert!(matches!(
            check_footer(&list),
            Err(ParquetError::Metadata { .. })
        ));
        // Structs nested 100 deep in field 1.
        let mut deep = vec![0x1c; 100];
        deep.extend(vec![0; 101]);
        let e = check_footer(&deep).unwrap_err().to_string();
        assert!(e.contains("deeper"), "{e}");
    }

    #[test]
    fn conversions() {
        assert_eq!(decimal(12345, 2), Cell::Num(123.45));
        assert_eq!(decimal(-5, 0), Cell::Num(-5.0));
        assert_eq!(be_i128(&[0xff, 0x85]).unwrap(), -123);
        assert_eq!(be_i128(&[0x00, 0x85]).unwrap(), 133);
        assert_eq!(seconds(-1, 1000), Cell::Time(-1));
        assert_eq!(seconds(1_500, 1000), Cell::Time(1));
        // 2000-01-01 00:00:01 as INT96: Julian day 2451545, 1 s of nanoseconds.
        let ns: u64 = 1_000_000_000;
        let words = [
            u32::try_from(ns & 0xffff_ffff).unwrap(),
            u32::try_from(ns >> 32).unwrap(),
            2_451_545,
        ];
        assert_eq!(int96_seconds(&words).unwrap(), Cell::Time(946_684_801));
    }
}
