//! The durable journal: one JSON line per record, appended and fsynced before `append` returns.
//!
//! # Durability and ordering
//!
//! - `create` makes the file with `O_CREAT | O_EXCL`, fsyncs it, then fsyncs its directory, so
//!   the empty journal's directory entry survives a crash before the first record relies on it.
//! - `append` writes the whole line (record + `\n`) with `O_APPEND`, then `fdatasync`s (which
//!   also persists the file size, the metadata needed to read the data back). Only then does it
//!   move the in-memory head and return the record: an acknowledged record is on stable storage.
//!   If the write or the sync fails, the line may be partly or wholly in the file and the page
//!   cache can no longer be trusted, so the log is *poisoned*: every later append fails until
//!   the journal is reopened, which re-reads what really reached the file.
//! - `open` truncates a torn tail (below) and fsyncs the truncation before it returns, so a new
//!   record never follows garbage, and a crash during recovery only repeats it.
//!
//! # Torn final line
//!
//! A crash during `append` can leave a final line without its `\n` (any prefix of the line,
//! possibly followed by zeros on file systems that extend the size before the data). Such a
//! line was never acknowledged, because `append` returns only after the whole line with its
//! newline was synced. So: bytes after the last `\n`, if any, are a torn tail. `open` cuts them
//! off, logs a warning, and reports them (offset and bytes) in [`OpenReport::torn`], so the
//! caller can record the recovery in the log itself. A tail longer than [`MAX_LINE`] cannot come
//! from a torn append, so the journal is refused instead. A newline-terminated last line that
//! does not verify is not treated as torn: the journal is refused, naming it.
//!
//! Note what no journal check can see: someone who can write the file can remove whole records
//! from its end (or cut a final newline, so the last record reads as torn). Only a head kept
//! elsewhere can reveal that: the `audit_head` in an auditor's attestation quote, or a head
//! hearthd stores in its sealed store and compares with [`OpenReport::head`].
//!
//! # Concurrency
//!
//! One writer: `append` takes `&mut self`; share an `AuditLog` behind a `Mutex` (or one owner
//! task). Nothing stops two processes from opening the same file, and they would corrupt it;
//! hearthd is the only writer by construction.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::MAX_LINE;
use crate::chain::{Break, BreakKind, Chain, Head, ParentProblem};
use crate::key::AuditKey;
use crate::record::{Entry, FieldError, Malformed, Record};
use crate::time::{ClockError, Timestamp};

/// The audit journal, open for appending.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    key: AuditKey,
    chain: Chain,
    /// Bytes of the file that hold acknowledged records.
    len: u64,
    /// An earlier write or sync failed; see the module docs.
    poisoned: bool,
}

/// What [`AuditLog::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Records verified (hash, MAC, seq, link, parent), all of them.
    pub records: u64,
    pub head: Head,
    /// Started records without a completion (actions interrupted by a crash, for instance).
    pub unfinished: Vec<u64>,
    /// A torn final line that was cut off, if there was one.
    pub torn: Option<TornTail>,
}

/// Bytes after the journal's last newline: the remains of an append that never returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where they started, which is the journal's length now.
    pub offset: u64,
    /// What they were (at most [`MAX_LINE`] bytes).
    pub bytes: Vec<u8>,
}

/// Why a journal could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("an audit journal already exists at {path}")]
    AlreadyExists { path: PathBuf },
    #[error("could not {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not {op} the audit journal {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The journal does not verify (edited, records removed or inserted, another key, garbled):
    /// it is not opened, so nothing is appended after the damage.
    #[error("the audit journal {path} does not verify")]
    Tampered {
        path: PathBuf,
        #[source]
        at: Box<Break>,
    },
}

/// Why a record was not appended. Nothing was acknowledged; the caller must not act.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid audit entry")]
    Invalid(#[source] FieldError),
    #[error("invalid audit entry: completion of seq {parent}: {problem}")]
    Parent { parent: u64, problem: ParentProblem },
    #[error("cannot time the audit record")]
    Clock(#[source] ClockError),
    #[error("the audit journal {path} had a failed write earlier; reopen it")]
    Poisoned { path: PathBuf },
    #[error("could not {op} the audit journal {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why [`AuditLog::export_to`] could not copy the journal.
#[derive(Debug, thiserror::Error)]
pub enum ExportWriteError {
    #[error("could not read the audit journal {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the audit journal {path} is shorter than its acknowledged records")]
    Shrunk { path: PathBuf },
    #[error("could not write the audit export")]
    Write(#[source] io::Error),
}

impl AuditLog {
    /// Creates a new, empty journal at `path` (first boot). Refuses an existing file: a journal
    /// is never silently replaced.
    pub fn create(path: &Path, key: AuditKey) -> Result<AuditLog, CreateError> {
        let io = |op| {
            move |source: io::Error| CreateError::Io {
                op,
                path: path.to_owned(),
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => CreateError::AlreadyExists {
                    path: path.to_owned(),
                },
                _ => io("create")(source),
            })?;
        file.sync_all().map_err(io("sync"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the directory of"))?;
        Ok(AuditLog {
            path: path.to_owned(),
            file,
            key,
            chain: Chain::new(),
            len: 0,
            poisoned: false,
        })
    }

    /// Opens an existing journal: reads and verifies every record under `key` (refusing a
    /// journal that does not verify, naming the first bad line), cuts off a torn final line (see
    /// the module docs) and returns the log positioned after its last record. A missing file is
    /// an error, never an empty log: after first boot, a vanished journal is an incident.
    pub fn open(path: &Path, key: AuditKey) -> Result<(AuditLog, OpenReport), OpenError> {
        let io = |op| {
            move |source: io::Error| OpenError::Io {
                op,
                path: path.to_owned(),
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io("open"))?;
        let mut reader = BufReader::with_capacity(64 * 1024, &file);
        let mut chain = Chain::new();
        let mut buf = Vec::with_capacity(1024);
        let mut offset = 0u64;
        let mut line_no = 0u64;
        let torn = loop {
            line_no += 1;
            let tampered = |seq, kind| OpenError::Tampered {
                path: path.to_owned(),
                at: Box::new(Break {
                    line: line_no,
                    expected_seq: chain.next_seq(),
                    seq,
                    kind,
                }),
            };
            match next_line(&mut reader, &mut buf).map_err(io("read"))? {
                Segment::End => break None,
                Segment::TooLong => {
                    let kind = BreakKind::Malformed(Malformed::TooLong { max: MAX_LINE });
                    return Err(tampered(None, kind));
                }
                Segment::Torn => {
                    break Some(TornTail {
                        offset,
                        bytes: std::mem::take(&mut buf),
                    });
                }
                Segment::Line => {
                    let record = Record::from_json_line(&buf)
                        .map_err(|m| tampered(None, BreakKind::Malformed(m)))?;
                    chain
                        .check(&record, Some(&key))
                        .map_err(|kind| tampered(Some(record.seq), kind))?;
                    chain.accept(&record);
                    offset += u64::try_from(buf.len() + 1).unwrap_or(u64::MAX);
                }
            }
        };
        drop(reader);
        if let Some(tail) = &torn {
            tracing::warn!(
                component = "audit",
                path = %path.display(),
                offset = tail.offset,
                len = tail.bytes.len(),
                "cutting off a torn final line of the audit journal (an append that never returned)"
            );
            file.set_len(tail.offset).map_err(io("truncate"))?;
            file.sync_all().map_err(io("sync"))?;
        }
        let report = OpenReport {
            records: chain.next_seq(),
            head: chain.head(),
            unfinished: chain.unfinished(),
            torn,
        };
        let log = AuditLog {
            path: path.to_owned(),
            file,
            key,
            chain,
            len: offset,
            poisoned: false,
        };
        Ok((log, report))
    }

    /// Appends `entry`, timed now. See [`AuditLog::append_at`].
    pub fn append(&mut self, entry: Entry) -> Result<Record, AppendError> {
        let time = Timestamp::now().map_err(AppendError::Clock)?;
        self.append_at(entry, time)
    }

    /// Appends `entry` as the next record at `time`: validates it (fields; a completion must
    /// close an open started record of the same action and object), seals it (seq, prev, hash,
    /// MAC), writes its line and fsyncs. Returns only once the record is durable; on any error
    /// nothing was acknowledged and the caller must not perform the action.
    ///
    /// `time` is recorded as given (hearthd passes the clock; tests pass fixed times). Times that
    /// go backwards are allowed (clock steps) and counted by verification.
    pub fn append_at(&mut self, entry: Entry, time: Timestamp) -> Result<Record, AppendError> {
        if self.poisoned {
            return Err(AppendError::Poisoned {
                path: self.path.clone(),
            });
        }
        entry.validate().map_err(AppendError::Invalid)?;
        self.chain
            .check_parent(&entry.outcome, entry.parent, &entry.action, &entry.object)
            .map_err(|(parent, problem)| AppendError::Parent { parent, problem })?;
        let head = self.chain.head();
        let record = Record::seal(entry, self.chain.next_seq(), time, head.hash, &self.key);
        let mut line = record.to_json_line().into_bytes();
        line.push(b'\n');
        let io = |op, source| AppendError::Io {
            op,
            path: self.path.clone(),
            source,
        };
        if let Err(source) = (&self.file).write_all(&line) {
            self.poisoned = true;
            return Err(io("write", source));
        }
        if let Err(source) = self.file.sync_data() {
            self.poisoned = true;
            return Err(io("sync", source));
        }
        self.chain.accept(&record);
        self.len += u64::try_from(line.len()).unwrap_or(u64::MAX);
        Ok(record)
    }

    /// Makes every later append fail as after a failed write, until the journal is reopened.
    /// For tests of callers that must not act without their record (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// The newest record's seq and hash.
    pub fn head(&self) -> Head {
        self.chain.head()
    }

    /// The 32 bytes hearthd binds into TPM quotes: the newest record's hash ([`GENESIS`] when
    /// empty).
    ///
    /// [`GENESIS`]: crate::GENESIS
    pub fn audit_head(&self) -> [u8; 32] {
        self.chain.head().hash.0
    }

    /// Started records without a completion so far, ascending.
    pub fn unfinished(&self) -> Vec<u64> {
        self.chain.unfinished()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the export (the journal's acknowledged lines, byte for byte) to `out`, and
    /// returns the head it ends at. Reads with positioned reads, so it needs only `&self`;
    /// records appended meanwhile are not included.
    pub fn export_to(&self, out: &mut dyn Write) -> Result<Head, ExportWriteError> {
        let head = self.chain.head();
        let mut buf = vec![0u8; 64 * 1024];
        let mut pos = 0u64;
        while pos < self.len {
            let want = usize::try_from(self.len - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = match self.file.read_at(&mut buf[..want], pos) {
                Ok(0) => {
                    return Err(ExportWriteError::Shrunk {
                        path: self.path.clone(),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ExportWriteError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            out.write_all(&buf[..n]).map_err(ExportWriteError::Write)?;
            pos += u64::try_from(n).unwrap_or(u64::MAX);
        }
        out.flush().map_err(ExportWriteError::Write)?;
        Ok(head)
    }
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("head", &self.chain.head())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

enum Segment {
    /// A complete line, newline stripped, in the buffer.
    Line,
    /// Bytes with no newline before the end of the file, in the buffer.
    Torn,
    /// More than [`MAX_LINE`] bytes without a newline; the buffer holds the first of them.
    TooLong,
    End,
}

/// Reads up to the next newline, keeping at most [`MAX_LINE`] bytes.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Segment> {
    buf.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Segment::End
            } else {
                Segment::Torn
            });
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(available.len());
        if buf.len() + take > MAX_LINE {
            let room = MAX_LINE - buf.len();
            buf.extend_from_slice(&available[..room]);
            return Ok(Segment::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        match newline {
            Some(_) => {
                reader.consume(take + 1);
                return Ok(Segment::Line);
            }
            None => reader.consume(take),
        }
    }
}
