//! Blobs: large objects as STREAM-encrypted files in `blobs/`, each under its own data key,
//! which is kept (wrapped by the blob key) in a metadata row of the database.
//!
//! Write protocol: encrypt into `blobs/<id>.tmp` → fsync → rename to `blobs/<id>.blob` → fsync
//! the directory → commit the metadata row (durably). A crash anywhere before the commit leaves
//! a file that no row names; [`crate::Store::open`] deletes those. A blob exists exactly when its
//! row is committed, and its file is whole and durable by then.
//!
//! Erasure deletes the row (so the wrapped data key) in a durable transaction, records a
//! tombstone, then unlinks the file. Once the row is gone the file is ciphertext under a key
//! that no longer exists: a copy of the file that survives anywhere is unreadable.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_keys::{
    CHUNK_TAG_LEN, DataKey, DecryptingReader, KeyId, RecordError, StreamError, StreamSealer,
};
use serde::{Deserialize, Serialize};

use crate::error::{BlobError, StoreError};
use crate::store::{BLOBS_TABLE, ERASED_TABLE, OpenStore, Store, sync_dir};
use crate::table::Json;

pub(crate) const BLOB_SUFFIX: &str = ".blob";
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// A blob's id: 128 random bits, shown as 32 hex digits. Also the id of its data key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId(pub [u8; 16]);

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a blob id (32 hex digits)")]
pub struct ParseBlobIdError(pub String);

impl FromStr for BlobId {
    type Err = ParseBlobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).map_err(|_| ParseBlobIdError(s.to_owned()))?;
        Ok(BlobId(id))
    }
}

/// What the store knows about a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: BlobId,
    /// Plaintext length.
    pub len: u64,
    pub created_unix_ms: u64,
}

/// The metadata row of a live blob (sealed like every value).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobMeta {
    len: u64,
    created_unix_ms: u64,
    #[serde(with = "hex_bytes")]
    wrapped_key: Vec<u8>,
}

/// What remains of an erased blob: when it went.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tombstone {
    erased_unix_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn locked(reason: hearth_keys::LockReason) -> BlobError {
    BlobError::Locked { reason }
}

fn from_store(id: BlobId, e: StoreError) -> BlobError {
    match e {
        StoreError::Locked { reason } => BlobError::Locked { reason },
        StoreError::Record(source @ RecordError::Integrity { .. }) => {
            BlobError::KeyIntegrity { id, source }
        }
        StoreError::Record(source) => BlobError::KeyIntegrity { id, source },
        StoreError::Decode { source, .. } | StoreError::Encode { source, .. } => {
            BlobError::Meta { id, source }
        }
        StoreError::Db { path, source } => BlobError::Db { path, source },
        // Not produced by the blob table's internal accessors; mapped for completeness.
        StoreError::ReservedTable { .. }
        | StoreError::ReservedPurpose { .. }
        | StoreError::BadKey { .. } => BlobError::Io {
            op: "use the blob table",
            path: PathBuf::from(BLOBS_TABLE),
            source: io::Error::other(e.to_string()),
        },
    }
}

impl OpenStore {
    fn blob_path(&self, id: BlobId) -> PathBuf {
        self.blob_dir.join(format!("{id}{BLOB_SUFFIX}"))
    }

    fn blob_meta(&self, id: BlobId) -> Result<BlobMeta, BlobError> {
        let (meta, erased) = self
            .read(|r| {
                let meta = r.get_raw::<Json<BlobMeta>>(BLOBS_TABLE, &id.0)?;
                let erased = match meta {
                    Some(_) => false,
                    None => r.get_raw::<Json<Tombstone>>(ERASED_TABLE, &id.0)?.is_some(),
                };
                Ok((meta, erased))
            })
            .map_err(|e| from_store(id, e))?;
        match meta {
            Some(meta) => Ok(meta),
            None if erased => Err(BlobError::Erased { id }),
            None => Err(BlobError::NotFound { id }),
        }
    }
}

impl Store {
    /// Starts a new blob; write to it, then [`BlobWriter::finish`]. Dropped unfinished, it
    /// leaves nothing behind.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>, BlobError> {
        let (blob_dir, chunk_size) =
            self.with_open(locked, |o| Ok((o.blob_dir.clone(), o.chunk_size)))?;
        let key_id = KeyId::random().map_err(BlobError::Random)?;
        let id = BlobId(key_id.0);
        let key = DataKey::generate(key_id).map_err(BlobError::Random)?;
        let tmp = blob_dir.join(format!("{id}{TEMP_SUFFIX}"));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|source| BlobError::Io {
                op: "create",
                path: tmp.clone(),
                source,
            })?;
        let sealer = match StreamSealer::new(&key, chunk_size) {
            Ok(sealer) => sealer,
            Err(source) => {
                let _ = fs::remove_file(&tmp);
                return Err(BlobError::Encrypt { id, source });
            }
        };
        let mut pipe = PipelinedFile::new(file).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            BlobError::Io {
                op: "start the writer thread for",
                path: tmp.clone(),
                source,
            }
        })?;
        if let Err(source) = pipe.send(sealer.header().to_vec()) {
            drop(pipe);
            let _ = fs::remove_file(&tmp);
            return Err(BlobError::Io {
                op: "write",
                path: tmp,
                source,
            });
        }
        let buf = Vec::with_capacity(sealer.chunk_size() + CHUNK_TAG_LEN);
        Ok(BlobWriter {
            store: self,
            id,
            key,
            tmp,
            blob_dir,
            sealer,
            buf,
            written: 0,
            pipe: Some(pipe),
        })
    }

    /// Stores `data` as a new blob.
    pub fn put_blob(&self, data: &[u8]) -> Result<BlobInfo, BlobError> {
        let mut w = self.blob_writer()?;
        w.write_all(data).map_err(|e| w.write_error(e))?;
        w.finish()
    }

    /// Stores everything `reader` yields as a new blob, streaming.
    pub fn put_blob_from(&self, reader: &mut impl Read) -> Result<BlobInfo, BlobError> {
        let mut w = self.blob_writer()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BlobError::Source { id: w.id(), source }),
            };
            w.write_all(&buf[..n]).map_err(|e| w.write_error(e))?;
        }
        w.finish()
    }

    /// Metadata of a blob.
    pub fn blob_info(&self, id: BlobId) -> Result<BlobInfo, BlobError> {
        let meta = self.with_open(locked, |o| o.blob_meta(id))?;
        Ok(BlobInfo {
            id,
            len: meta.len,
            created_unix_ms: meta.created_unix_ms,
        })
    }

    /// Every live blob, by id.
    pub fn list_blobs(&self) -> Result<Vec<BlobInfo>, BlobError> {
        self.with_open(locked, |o| {
            let keys = o
                .read(|r| r.keys_raw(BLOBS_TABLE))
                .map_err(|e| from_store(BlobId([0; 16]), e))?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                // Keys of the blob table are ids the store wrote; anything else is skipped.
                let Ok(id) = <[u8; 16]>::try_from(key.as_slice()) else {
                    tracing::warn!(component = "store", key = %hex::encode(&key), "malformed blob id in the blob table");
                    continue;
                };
                let id = BlobId(id);
                let meta = o.blob_meta(id)?;
                out.push(BlobInfo {
                    id,
                    len: meta.len,
                    created_unix_ms: meta.created_unix_ms,
                });
            }
            Ok(out)
        })
    }

    /// Where the blob's file is (whether or not it exists).
    pub fn blob_path(&self, id: BlobId) -> Result<PathBuf, BlobError> {
        self.with_open(locked, |o| Ok(o.blob_path(id)))
    }

    /// A reader that returns the blob's plaintext chunk by chunk, each chunk only once it
    /// authenticated; a damaged or truncated file is an error where the damage starts.
    pub fn open_blob(&self, id: BlobId) -> Result<BlobReader, BlobError> {
        self.with_open(locked, |o| {
            let meta = o.blob_meta(id)?;
            let key = o
                .keys
                .unwrap(KeyId(id.0), &meta.wrapped_key)
                .map_err(|source| BlobError::KeyIntegrity { id, source })?;
            let path = o.blob_path(id);
            let file = fs::File::open(&path).map_err(|source| {
                if source.kind() == io::ErrorKind::NotFound {
                    BlobError::FileMissing {
                        id,
                        path: path.clone(),
                    }
                } else {
                    BlobError::Io {
                        op: "open",
                        path: path.clone(),
                        source,
                    }
                }
            })?;
            let inner = DecryptingReader::new(io::BufReader::with_capacity(1 << 16, file), &key)
                .map_err(|source| stream_error(id, &path, source))?;
            Ok(BlobReader {
                id,
                path,
                expected_len: meta.len,
                inner,
            })
        })
    }

    /// The whole blob in memory (use [`Store::open_blob`] for large ones).
    pub fn read_blob(&self, id: BlobId) -> Result<Vec<u8>, BlobError> {
        let mut reader = self.open_blob(id)?;
        let mut out = Vec::with_capacity(usize::try_from(reader.len()).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk()? {
            out.extend_from_slice(chunk);
        }
        Ok(out)
    }

    /// Crypto-erases a blob: its wrapped data key is deleted in a durable transaction (leaving a
    /// tombstone), then its file is unlinked. Any surviving copy of the file is unreadable.
    /// Readers opened before keep reading (they hold the key). Erasing twice is fine.
    pub fn erase_blob(&self, id: BlobId) -> Result<(), BlobError> {
        let path = self.with_open(locked, |o| {
            let existed = o
                .write(|w| {
                    let existed = w.remove_raw(BLOBS_TABLE, &id.0)?;
                    if existed {
                        w.put_raw::<Json<Tombstone>>(
                            ERASED_TABLE,
                            &id.0,
                            &Tombstone {
                                erased_unix_ms: now_ms(),
                            },
                        )?;
                    }
                    Ok(existed)
                })
                .map_err(|e| from_store(id, e))?;
            if !existed {
                // Erased before, or never existed.
                o.blob_meta(id)?;
            }
            Ok(o.blob_path(id))
        });
        let path = match path {
            Ok(p) => p,
            Err(BlobError::Erased { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                // The key is gone already; the file is unreadable ciphertext, and the next open
                // removes it as an orphan.
                tracing::warn!(
                    component = "store",
                    path = %path.display(),
                    error = %source,
                    "could not unlink an erased blob's file"
                );
                return Ok(());
            }
        }
        if let Some(dir) = path.parent() {
            let _ = sync_dir(dir);
        }
        Ok(())
    }
}

fn stream_error(id: BlobId, path: &std::path::Path, source: StreamError) -> BlobError {
    match source {
        StreamError::Io(source) => BlobError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        },
        source => BlobError::Integrity { id, source },
    }
}

/// A blob being written. Implements `Write`; nothing exists until [`BlobWriter::finish`].
///
/// Chunks are sealed in place on the caller's thread and handed, without copying, to a writer
/// thread, so encryption overlaps the file writes.
pub struct BlobWriter<'s> {
    store: &'s Store,
    id: BlobId,
    key: DataKey,
    tmp: PathBuf,
    blob_dir: PathBuf,
    sealer: StreamSealer,
    buf: Vec<u8>,
    written: u64,
    pipe: Option<PipelinedFile>,
}

impl fmt::Debug for BlobWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobWriter")
            .field("id", &self.id)
            .field("tmp", &self.tmp)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl BlobWriter<'_> {
    pub fn id(&self) -> BlobId {
        self.id
    }

    /// The typed error behind an `io::Error` from this writer's `Write` methods.
    pub fn write_error(&self, e: io::Error) -> BlobError {
        self.encrypt_error(StreamError::from_io(e))
    }

    fn encrypt_error(&self, e: StreamError) -> BlobError {
        match e {
            StreamError::Io(source) => BlobError::Io {
                op: "write",
                path: self.tmp.clone(),
                source,
            },
            source => BlobError::Encrypt {
                id: self.id,
                source,
            },
        }
    }

    /// Seals the buffered chunk and queues it for the writer thread.
    fn seal_and_send(&mut self, last: bool) -> Result<(), StreamError> {
        let Some(pipe) = &mut self.pipe else {
            return Err(StreamError::Finished);
        };
        self.sealer.seal_chunk(&mut self.buf, last)?;
        let mut next = pipe.recycled();
        next.clear();
        next.reserve(self.sealer.chunk_size() + CHUNK_TAG_LEN);
        let sealed = std::mem::replace(&mut self.buf, next);
        pipe.send(sealed).map_err(StreamError::Io)
    }

    /// Seals the final chunk, makes the file durable under its final name, and commits the
    /// blob's row: when this returns `Ok`, the blob survives a crash.
    pub fn finish(mut self) -> Result<BlobInfo, BlobError> {
        let id = self.id;
        let io_err = |op, path: &PathBuf| {
            let path = path.clone();
            move |source| BlobError::Io { op, path, source }
        };
        self.seal_and_send(true)
            .map_err(|e| self.encrypt_error(e))?;
        let Some(pipe) = self.pipe.take() else {
            // Unreachable: `seal_and_send` just used the pipe, and only `finish` takes it.
            return Err(self.encrypt_error(StreamError::Finished));
        };
        let file = pipe.finish().map_err(io_err("write", &self.tmp))?;
        file.sync_all().map_err(io_err("sync", &self.tmp))?;
        drop(file);
        let path = self.blob_dir.join(format!("{id}{BLOB_SUFFIX}"));
        fs::rename(&self.tmp, &path).map_err(io_err("rename", &self.tmp))?;
        let committed = sync_dir(&self.blob_dir)
            .map_err(io_err("sync", &self.blob_dir))
            .and_then(|()| self.commit(self.written));
        match committed {
            Ok(info) => Ok(info),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn commit(&self, len: u64) -> Result<BlobInfo, BlobError> {
        let id = self.id;
        let created_unix_ms = now_ms();
        self.store.with_open(locked, |o| {
            let wrapped_key = o
                .keys
                .wrap(&self.key)
                .map_err(|source| BlobError::KeyIntegrity { id, source })?;
            let meta = BlobMeta {
                len,
                created_unix_ms,
                wrapped_key,
            };
            o.write(|w| w.put_raw::<Json<BlobMeta>>(BLOBS_TABLE, &id.0, &meta))
                .map_err(|e| from_store(id, e))
        })?;
        Ok(BlobInfo {
            id,
            len,
            created_unix_ms,
        })
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more data arrives: the final chunk may be full.
        let size = self.sealer.chunk_size();
        if self.buf.len() == size {
            self.seal_and_send(false).map_err(StreamError::into_io)?;
        }
        let n = (size - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        Ok(n)
    }

    /// Nothing to flush early: durability comes with [`BlobWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // Unfinished, or failed before the rename: the temp file is garbage.
        if self.tmp.exists() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Sealed chunks in flight between the encrypting caller and the writing thread.
const PIPELINE_DEPTH: usize = 4;

/// A file written by a dedicated thread from owned buffers, so that sealing the next chunk
/// overlaps writing this one, with no copy in between (on fast disks, serial encryption costs a
/// third of the throughput). Bounded: at most [`PIPELINE_DEPTH`] chunks queued; buffers are
/// recycled.
struct PipelinedFile {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    free: mpsc::Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<fs::File>>>,
}

impl PipelinedFile {
    fn new(file: fs::File) -> io::Result<PipelinedFile> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPELINE_DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("blob-writer".into())
            .spawn(move || {
                let mut file = file;
                for buf in rx {
                    file.write_all(&buf)?;
                    let _ = free_tx.send(buf);
                }
                Ok(file)
            })?;
        Ok(PipelinedFile {
            tx: Some(tx),
            free: free_rx,
            thread: Some(thread),
        })
    }

    /// Waits for every queued write and returns the file (not synced).
    fn finish(mut self) -> io::Result<fs::File> {
        self.join()
    }

    fn join(&mut self) -> io::Result<fs::File> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("blob writer thread panicked"))),
            None => Err(io::Error::other("blob writer thread already stopped")),
        }
    }
}

impl PipelinedFile {
    /// Queues `buf` to be written; blocks while [`PIPELINE_DEPTH`] buffers are queued. If the
    /// thread stopped on a write error, returns that error.
    fn send(&mut self, buf: Vec<u8>) -> io::Result<()> {
        let Some(tx) = &self.tx else {
            return Err(io::Error::other("blob writer thread already stopped"));
        };
        if tx.send(buf).is_err() {
            return Err(match self.join() {
                Err(e) => e,
                Ok(_) => io::Error::other("blob writer thread stopped early"),
            });
        }
        Ok(())
    }

    /// A buffer the thread has finished with, or a new one.
    fn recycled(&mut self) -> Vec<u8> {
        self.free.try_recv().unwrap_or_default()
    }
}

impl Drop for PipelinedFile {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// Reads a blob's plaintext: every byte returned has authenticated, and the stream is known
/// whole only when it reports its end (`Ok(0)` / `None`) without error.
pub struct BlobReader {
    id: BlobId,
    path: PathBuf,
    expected_len: u64,
    inner: DecryptingReader<io::BufReader<fs::File>>,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("id", &self.id)
            .field("len", &self.expected_len)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    pub fn id(&self) -> BlobId {
        self.id
    }

    /// The plaintext length recorded when the blob was written.
    pub fn len(&self) -> u64 {
        self.expected_len
    }

    pub fn is_empty(&self) -> bool {
        self.expected_len == 0
    }

    /// The next authenticated chunk; `None` at the (authenticated) end.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, BlobError> {
        let (id, expected) = (self.id, self.expected_len);
        if self.inner.is_complete() {
            let found = self.inner.authenticated();
            return if found == expected {
                Ok(None)
            } else {
                Err(BlobError::LengthMismatch {
                    id,
                    expected,
                    found,
                })
            };
        }
        self.inner
            .next_chunk()
            .map_err(|source| stream_error(id, &self.path, source))
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(out) {
            Ok(0) if !out.is_empty() => {
                let (expected, found) = (self.expected_len, self.inner.authenticated());
                if found == expected {
                    Ok(0)
                } else {
                    Err(to_io(BlobError::LengthMismatch {
                        id: self.id,
                        expected,
                        found,
                    }))
                }
            }
            Ok(n) => Ok(n),
            Err(e) => Err(to_io(stream_error(
                self.id,
                &self.path,
                StreamError::from_io(e),
            ))),
        }
    }
}

fn to_io(e: BlobError) -> io::Error {
    match e {
        BlobError::Io { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}
