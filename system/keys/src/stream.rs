//! Streaming encryption of large objects: the STREAM construction (Hoang, Reyhanitabar, Rogaway,
//! Vizár, "Online authenticated-encryption and its nonce-reuse misuse-resistance", 2015) over
//! AES-256-GCM, in chunks of (by default) 1 MiB.
//!
//! File layout (format version 1):
//!
//! ```text
//! header  61 bytes: magic "HEARTHbl" (8) | version 1 (1) | chunk size, u32 BE (4)
//!                   | key id (16) | salt (32)
//! chunk 0         : AES-256-GCM(chunk size bytes) || tag (16)
//! ...
//! chunk n (final) : AES-256-GCM(0 ..= chunk size bytes) || tag (16)
//! ```
//!
//! - Chunk key = HKDF-SHA256(data key, salt, "hearth/blob-chunk/v1"): a fresh key for every
//!   write, even if a data key were reused.
//! - Chunk nonce = 7 zero bytes || chunk counter (u32 BE) || last-chunk flag (0 or 1).
//! - Every chunk's associated data is the whole header, so a header change fails chunk 0.
//!
//! What this detects: any changed bit (tag), reordered or duplicated chunks (counter in the nonce),
//! chunks spliced in from another blob (other key), truncation at or inside a chunk (the final
//! chunk is sealed with the last flag, and a non-final chunk read as final fails), and data
//! appended after the final chunk (the final chunk then reads as non-final and fails).
//!
//! A reader returns a chunk's plaintext only after that chunk authenticated; a stream that stops
//! early is an error at the point where it stops, so a consumer must treat a blob as whole only
//! once it has read to the end without error.

use std::fmt;
use std::io::{self, Read, Write};

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use zeroize::Zeroizing;

use crate::record::{RecordCipher, RecordError};
use crate::secret::{
    KEY_LEN, PurposeKey, RandomError, aead_key, hkdf_sha256, random_bytes, random_key,
};

/// The first bytes of every blob file.
pub const BLOB_MAGIC: [u8; 8] = *b"HEARTHbl";
/// The blob format this crate writes.
pub const BLOB_FORMAT_VERSION: u8 = 1;
/// Length of the blob header.
pub const BLOB_HEADER_LEN: usize = 8 + 1 + 4 + 16 + 32;
/// The chunk size the store writes.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size a header may declare (small chunks exist for tests).
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest chunk size a header may declare: bounds a reader's memory.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Bytes of GCM tag after every chunk.
pub const CHUNK_TAG_LEN: usize = 16;

const CHUNK_KEY_LABEL: &[u8] = b"hearth/blob-chunk/v1";
const WRAP_TABLE: &str = "hearth/data-key";

/// Identifies a data key, and so the blob it encrypts. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// A fresh random id (128 bits: collisions are not a concern).
    pub fn random() -> Result<KeyId, RandomError> {
        let mut id = [0u8; 16];
        random_bytes(&mut id)?;
        Ok(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A per-blob data key (DEK): random, used for one blob, stored only wrapped by the blob purpose
/// key ([`KeyWrapper`]). Destroying the wrapped copy makes the blob unreadable (crypto-erase).
pub struct DataKey {
    id: KeyId,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl DataKey {
    pub fn generate(id: KeyId) -> Result<DataKey, RandomError> {
        Ok(DataKey {
            id,
            bytes: random_key()?,
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    fn chunk_key(&self, salt: &[u8]) -> LessSafeKey {
        aead_key(&hkdf_sha256(self.bytes.as_ref(), salt, &[CHUNK_KEY_LABEL]))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({}, [redacted])", self.id)
    }
}

/// Wraps and unwraps data keys under the blob purpose key ([`crate::Purpose::BLOB`]), as
/// record envelopes bound to the key id.
#[derive(Debug)]
pub struct KeyWrapper {
    cipher: RecordCipher,
}

impl KeyWrapper {
    pub fn new(blob_key: &PurposeKey) -> Result<KeyWrapper, RandomError> {
        Ok(KeyWrapper {
            cipher: RecordCipher::new(blob_key)?,
        })
    }

    /// The wrapped form of `key`: safe to store; 61 bytes.
    pub fn wrap(&self, key: &DataKey) -> Result<Vec<u8>, RecordError> {
        self.cipher.seal(WRAP_TABLE, &key.id.0, key.bytes.as_ref())
    }

    /// Unwraps the data key of blob `id`; fails if `wrapped` was altered or belongs to another id.
    pub fn unwrap(&self, id: KeyId, wrapped: &[u8]) -> Result<DataKey, RecordError> {
        let mut buf = Zeroizing::new(wrapped.to_vec());
        let plain = self.cipher.open_in_place(WRAP_TABLE, &id.0, &mut buf)?;
        let bytes: [u8; KEY_LEN] = (&*plain).try_into().map_err(|_| RecordError::Integrity {
            table: WRAP_TABLE.to_owned(),
            key: id.to_string(),
            reason: "wrapped data key has the wrong length",
        })?;
        let key = DataKey {
            id,
            bytes: Zeroizing::new(bytes),
        };
        plain.fill(0);
        Ok(key)
    }
}

/// Why a blob header does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("{len} bytes is shorter than the {BLOB_HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("not a Hearth blob (bad magic)")]
    BadMagic,
    #[error("unsupported blob format version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("chunk size {size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    BadChunkSize { size: u32 },
}

/// The plaintext header of a blob file. Parsing checks its framing; its contents are
/// authenticated by every chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    pub chunk_size: u32,
    pub key_id: KeyId,
    pub salt: [u8; 32],
}

impl BlobHeader {
    /// Parses the first [`BLOB_HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<BlobHeader, HeaderError> {
        let Some(h) = bytes.get(..BLOB_HEADER_LEN) else {
            return Err(HeaderError::TooShort { len: bytes.len() });
        };
        if h[..8] != BLOB_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if h[8] != BLOB_FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion { version: h[8] });
        }
        let mut size = [0u8; 4];
        size.copy_from_slice(&h[9..13]);
        let chunk_size = u32::from_be_bytes(size);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(HeaderError::BadChunkSize { size: chunk_size });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[13..29]);
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&h[29..61]);
        Ok(BlobHeader {
            chunk_size,
            key_id: KeyId(id),
            salt,
        })
    }

    pub fn to_bytes(&self) -> [u8; BLOB_HEADER_LEN] {
        let mut h = [0u8; BLOB_HEADER_LEN];
        h[..8].copy_from_slice(&BLOB_MAGIC);
        h[8] = BLOB_FORMAT_VERSION;
        h[9..13].copy_from_slice(&self.chunk_size.to_be_bytes());
        h[13..29].copy_from_slice(&self.key_id.0);
        h[29..61].copy_from_slice(&self.salt);
        h
    }
}

/// Why a blob could not be written or read back whole.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("blob header is invalid")]
    Header(#[source] HeaderError),

    #[error("blob is encrypted under data key {found}, not {expected}")]
    WrongKey { expected: KeyId, found: KeyId },

    #[error(
        "chunk {chunk} failed authentication (altered, reordered, duplicated, spliced from \
         another blob, or followed by extra data)"
    )]
    Chunk { chunk: u64 },

    #[error("blob is truncated: it stops after {chunks} chunks without its final chunk")]
    Truncated { chunks: u64 },

    #[error("blob exceeds the format's 2^32 chunks")]
    TooLong,

    #[error("chunk size {size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize { size: u32 },

    #[error("the stream already failed; it cannot be read further")]
    AlreadyFailed,

    #[error("a {} chunk of {len} bytes does not fit chunks of {chunk_size}", if *last { "final" } else { "non-final" })]
    ChunkLength {
        len: usize,
        chunk_size: usize,
        last: bool,
    },

    #[error("the stream is already finished")]
    Finished,

    #[error("blob I/O failed")]
    Io(#[source] io::Error),

    #[error("could not draw a salt")]
    Random(#[source] RandomError),
}

impl StreamError {
    /// The `io::Error` a `Read`/`Write` implementation reports for this error; the original is
    /// recoverable with [`StreamError::from_io`].
    pub fn into_io(self) -> io::Error {
        match self {
            StreamError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }

    /// Recovers the stream error inside an `io::Error` from [`EncryptingWriter`] or
    /// [`DecryptingReader`]; other I/O errors become [`StreamError::Io`].
    pub fn from_io(e: io::Error) -> StreamError {
        if e.get_ref().is_some_and(|inner| inner.is::<StreamError>()) {
            if let Some(inner) = e.into_inner()
                && let Ok(stream) = inner.downcast::<StreamError>()
            {
                return *stream;
            }
            // Unreachable: `is::<StreamError>()` held just above.
            return StreamError::AlreadyFailed;
        }
        StreamError::Io(e)
    }
}

fn chunk_nonce(counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn check_chunk_size(size: u32) -> Result<usize, StreamError> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
        usize::try_from(size).map_err(|_| StreamError::ChunkSize { size })
    } else {
        Err(StreamError::ChunkSize { size })
    }
}

/// The sealing half of STREAM, without I/O: for callers that move sealed chunks themselves
/// (the store hands them to a writer thread without copying). [`EncryptingWriter`] is built on
/// it. Write [`StreamSealer::header`] first, then each sealed chunk, in order.
pub struct StreamSealer {
    key: LessSafeKey,
    header: [u8; BLOB_HEADER_LEN],
    chunk_size: usize,
    counter: u32,
    counter_exhausted: bool,
    finished: bool,
}

impl fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSealer")
            .field("chunk_size", &self.chunk_size)
            .field("chunks", &self.counter)
            .finish_non_exhaustive()
    }
}

impl StreamSealer {
    /// A sealer for a new stream under `key`, with a fresh random salt.
    pub fn new(key: &DataKey, chunk_size: u32) -> Result<StreamSealer, StreamError> {
        let size = check_chunk_size(chunk_size)?;
        let mut salt = [0u8; 32];
        random_bytes(&mut salt).map_err(StreamError::Random)?;
        let header = BlobHeader {
            chunk_size,
            key_id: key.id,
            salt,
        }
        .to_bytes();
        Ok(StreamSealer {
            key: key.chunk_key(&salt),
            header,
            chunk_size: size,
            counter: 0,
            counter_exhausted: false,
            finished: false,
        })
    }

    /// The header: the stream's first bytes.
    pub fn header(&self) -> &[u8; BLOB_HEADER_LEN] {
        &self.header
    }

    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Encrypts the plaintext in `chunk` in place and appends its tag. Every chunk but the last
    /// holds exactly [`StreamSealer::chunk_size`] bytes; the last (`last = true`) holds 0 to
    /// that many; nothing follows it.
    pub fn seal_chunk(&mut self, chunk: &mut Vec<u8>, last: bool) -> Result<(), StreamError> {
        if self.finished {
            return Err(StreamError::Finished);
        }
        if self.counter_exhausted {
            return Err(StreamError::TooLong);
        }
        let fits = if last {
            chunk.len() <= self.chunk_size
        } else {
            chunk.len() == self.chunk_size
        };
        if !fits {
            return Err(StreamError::ChunkLength {
                len: chunk.len(),
                chunk_size: self.chunk_size,
                last,
            });
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(
                chunk_nonce(self.counter, last),
                Aad::from(&self.header[..]),
                chunk,
            )
            .map_err(|_| StreamError::TooLong)?;
        chunk.extend_from_slice(tag.as_ref());
        match self.counter.checked_add(1) {
            Some(next) => self.counter = next,
            None => self.counter_exhausted = true,
        }
        self.finished = last;
        Ok(())
    }
}

/// Encrypts a stream into `inner`: header first, then sealed chunks. Call
/// [`EncryptingWriter::finish`] to seal the final chunk; a writer dropped without it leaves a
/// stream that readers reject as truncated.
pub struct EncryptingWriter<W: Write> {
    inner: W,
    sealer: StreamSealer,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("sealer", &self.sealer)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the header (with a fresh random salt) to `inner` and returns the writer.
    pub fn new(mut inner: W, key: &DataKey, chunk_size: u32) -> Result<Self, StreamError> {
        let sealer = StreamSealer::new(key, chunk_size)?;
        inner.write_all(sealer.header()).map_err(StreamError::Io)?;
        Ok(EncryptingWriter {
            inner,
            buf: Vec::with_capacity(sealer.chunk_size() + CHUNK_TAG_LEN),
            sealer,
            written: 0,
        })
    }

    fn seal_chunk(&mut self, last: bool) -> Result<(), StreamError> {
        self.sealer.seal_chunk(&mut self.buf, last)?;
        self.inner.write_all(&self.buf).map_err(StreamError::Io)?;
        self.buf.clear();
        Ok(())
    }

    /// Plaintext bytes taken so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Seals the final chunk and returns the inner writer (not flushed or synced) and the
    /// plaintext length.
    pub fn finish(mut self) -> Result<(W, u64), StreamError> {
        self.seal_chunk(true)?;
        Ok((self.inner, self.written))
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more data arrives: the final chunk may be full.
        let size = self.sealer.chunk_size();
        if self.buf.len() == size {
            self.seal_chunk(false).map_err(StreamError::into_io)?;
        }
        let n = (size - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        Ok(n)
    }

    /// Flushes the inner writer; a partly filled chunk stays buffered until more data or
    /// [`EncryptingWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a stream written by [`EncryptingWriter`], chunk by chunk, returning only
/// authenticated plaintext. `Read` errors carry a [`StreamError`] (see
/// [`StreamError::from_io`]).
pub struct DecryptingReader<R: Read> {
    inner: R,
    header: BlobHeader,
    header_bytes: [u8; BLOB_HEADER_LEN],
    key: LessSafeKey,
    chunk_size: usize,
    buf: Vec<u8>,
    carry: Option<u8>,
    counter: u64,
    pos: usize,
    end: usize,
    done: bool,
    failed: bool,
    read: u64,
}

impl<R: Read> fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("header", &self.header)
            .field("chunk", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptingReader<R> {
    /// Reads and checks the header; fails if the blob is not under `key`.
    pub fn new(mut inner: R, key: &DataKey) -> Result<Self, StreamError> {
        let mut header_bytes = [0u8; BLOB_HEADER_LEN];
        let got = read_full(&mut inner, &mut header_bytes).map_err(StreamError::Io)?;
        let header = BlobHeader::parse(&header_bytes[..got]).map_err(StreamError::Header)?;
        if header.key_id != key.id {
            return Err(StreamError::WrongKey {
                expected: key.id,
                found: header.key_id,
            });
        }
        let chunk_size = check_chunk_size(header.chunk_size)?;
        Ok(DecryptingReader {
            key: key.chunk_key(&header.salt),
            inner,
            header,
            header_bytes,
            chunk_size,
            buf: Vec::new(),
            carry: None,
            counter: 0,
            pos: 0,
            end: 0,
            done: false,
            failed: false,
            read: 0,
        })
    }

    pub fn header(&self) -> &BlobHeader {
        &self.header
    }

    /// Plaintext bytes authenticated so far.
    pub fn authenticated(&self) -> u64 {
        self.read
    }

    /// Whether the final chunk has been read and authenticated.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// The next chunk's plaintext, once authenticated; `None` after the final chunk.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, StreamError> {
        if self.done {
            return Ok(None);
        }
        if self.failed {
            return Err(StreamError::AlreadyFailed);
        }
        match self.fill_and_open() {
            Ok(len) => {
                self.pos = 0;
                self.end = len;
                self.read += len as u64;
                Ok(Some(&self.buf[..len]))
            }
            Err(e) => {
                self.failed = true;
                self.pos = 0;
                self.end = 0;
                Err(e)
            }
        }
    }

    fn fill_and_open(&mut self) -> Result<usize, StreamError> {
        let sealed = self.chunk_size + CHUNK_TAG_LEN;
        // Allocated once; never cleared, so no chunk pays for zeroing a megabyte.
        if self.buf.len() != sealed + 1 {
            self.buf.resize(sealed + 1, 0);
        }
        let mut got = 0;
        if let Some(c) = self.carry.take() {
            self.buf[0] = c;
            got = 1;
        }
        got += read_full(&mut self.inner, &mut self.buf[got..]).map_err(StreamError::Io)?;
        // One byte of look-ahead tells a non-final chunk (more follows) from the final one.
        let last = got <= sealed;
        if !last {
            self.carry = Some(self.buf[sealed]);
            got = sealed;
        }
        let counter = u32::try_from(self.counter).map_err(|_| StreamError::TooLong)?;
        if got < CHUNK_TAG_LEN {
            return Err(if got == 0 {
                StreamError::Truncated {
                    chunks: self.counter,
                }
            } else {
                StreamError::Chunk {
                    chunk: self.counter,
                }
            });
        }
        // Only for the final chunk: keep the ciphertext, to tell truncation at a chunk boundary
        // (a full non-final chunk where the stream ends) from damage.
        let kept = (last && got == sealed).then(|| self.buf[..got].to_vec());
        let opened = self.key.open_in_place(
            chunk_nonce(counter, last),
            Aad::from(&self.header_bytes[..]),
            &mut self.buf[..got],
        );
        match opened {
            Ok(plain) => {
                let len = plain.len();
                self.counter += 1;
                self.done = last;
                Ok(len)
            }
            Err(_) => {
                if let Some(mut copy) = kept {
                    let as_non_final = self.key.open_in_place(
                        chunk_nonce(counter, false),
                        Aad::from(&self.header_bytes[..]),
                        &mut copy,
                    );
                    if as_non_final.is_ok() {
                        return Err(StreamError::Truncated {
                            chunks: self.counter + 1,
                        });
                    }
                }
                Err(StreamError::Chunk {
                    chunk: self.counter,
                })
            }
        }
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if self.next_chunk().map_err(StreamError::into_io)?.is_none() {
                return Ok(0);
            }
        }
        let n = (self.end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Purpose, RootSecret};

    const SMALL: u32 = 64;

    fn dek(tag: u8) -> DataKey {
        DataKey::generate(KeyId([tag; 16])).unwrap()
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7).to_le_bytes()[0]).collect()
    }

    fn encrypt(key: &DataKey, plain: &[u8], chunk: u32) -> Vec<u8> {
        let mut w = EncryptingWriter::new(Vec::new(), key, chunk).unwrap();
        // Uneven writes, to exercise the buffering.
        for part in plain.chunks(37) {
            w.write_all(part).unwrap();
        }
        let (out, n) = w.finish().unwrap();
        assert_eq!(n, plain.len() as u64);
        out
    }

    fn decrypt(key: &DataKey, file: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut r = DecryptingReader::new(file, key)?;
        let mut out = Vec::new();
        while let Some(chunk) = r.next_chunk()? {
            out.extend_from_slice(chunk);
        }
        assert!(r.is_complete());
        Ok(out)
    }

    fn chunk_span(i: usize) -> std::ops::Range<usize> {
        let sealed = SMALL as usize + CHUNK_TAG_LEN;
        BLOB_HEADER_LEN + i * sealed..BLOB_HEADER_LEN + (i + 1) * sealed
    }

    #[test]
    fn round_trips_at_every_size_around_chunk_boundaries() {
        let key = dek(1);
        for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let plain = pattern(len);
            let file = encrypt(&key, &plain, SMALL);
            let chunks = len.div_ceil(SMALL as usize).max(1);
            assert_eq!(
                file.len(),
                BLOB_HEADER_LEN + len + chunks * CHUNK_TAG_LEN,
                "{len}"
            );
            assert_eq!(decrypt(&key, &file).unwrap(), plain, "{len}");
            let mut via_read = Vec::new();
            DecryptingReader::new(&file[..], &key)
                .unwrap()
                .read_to_end(&mut via_read)
                .unwrap();
            assert_eq!(via_read, plain, "{len}");
        }
    }

    #[test]
    fn round_trips_with_megabyte_chunks() {
        let key = dek(2);
        let plain = pattern(2 * DEFAULT_CHUNK_SIZE as usize + 5);
        let file = encrypt(&key, &plain, DEFAULT_CHUNK_SIZE);
        assert_eq!(decrypt(&key, &file).unwrap(), plain);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let key = dek(3);
        let plain = pattern(150); // chunks of 64, 64, 22
        let file = encrypt(&key, &plain, SMALL);
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            let Err(_) = decrypt(&key, &bad) else {
                panic!("flip at byte {i} not detected");
            };
        }
    }

    #[test]
    fn truncation_anywhere_is_detected() {
        let key = dek(4);
        let plain = pattern(150);
        let file = encrypt(&key, &plain, SMALL);
        for cut in 0..file.len() {
            let Err(_) = decrypt(&key, &file[..cut]) else {
                panic!("cut at {cut}");
            };
        }
        // At a chunk boundary the error says what happened.
        let err = decrypt(&key, &file[..chunk_span(1).end]).unwrap_err();
        assert!(matches!(err, StreamError::Truncated { chunks: 2 }), "{err}");
        let err = decrypt(&key, &file[..BLOB_HEADER_LEN]).unwrap_err();
        assert!(matches!(err, StreamError::Truncated { chunks: 0 }), "{err}");
    }

    #[test]
    fn reordered_chunks_are_detected() {
        let key = dek(5);
        let file = encrypt(&key, &pattern(200), SMALL); // 4 chunks
        let mut swapped = file[..chunk_span(0).start].to_vec();
        swapped.extend_from_slice(&file[chunk_span(1)]);
        swapped.extend_from_slice(&file[chunk_span(0)]);
        swapped.extend_from_slice(&file[chunk_span(2).start..]);
        let err = decrypt(&key, &swapped).unwrap_err();
        assert!(matches!(err, StreamError::Chunk { chunk: 0 }), "{err}");
    }

    #[test]
    fn duplicated_chunks_are_detected() {
        let key = dek(6);
        let file = encrypt(&key, &pattern(200), SMALL);
        let mut dup = file[..chunk_span(1).end].to_vec();
        dup.extend_from_slice(&file[chunk_span(1)]);
        dup.extend_from_slice(&file[chunk_span(2).start..]);
        let err = decrypt(&key, &dup).unwrap_err();
        assert!(matches!(err, StreamError::Chunk { chunk: 2 }), "{err}");
    }

    #[test]
    fn chunks_spliced_from_another_blob_are_detected() {
        // Same key id and data key even: the per-write salt still separates them.
        let key = dek(7);
        let a = encrypt(&key, &pattern(200), SMALL);
        let b = encrypt(&key, &pattern(200), SMALL);
        let mut spliced = a[..chunk_span(1).start].to_vec();
        spliced.extend_from_slice(&b[chunk_span(1)]);
        spliced.extend_from_slice(&a[chunk_span(2).start..]);
        let err = decrypt(&key, &spliced).unwrap_err();
        assert!(matches!(err, StreamError::Chunk { chunk: 1 }), "{err}");
        // Another blob's header in front of this blob's chunks.
        let mut rehead = b[..BLOB_HEADER_LEN].to_vec();
        rehead.extend_from_slice(&a[BLOB_HEADER_LEN..]);
        decrypt(&key, &rehead).unwrap_err();
    }

    #[test]
    fn extension_after_the_final_chunk_is_detected() {
        let key = dek(8);
        let file = encrypt(&key, &pattern(150), SMALL);
        for extra in [&[0u8][..], &[0; 16], &file[chunk_span(0)]] {
            let mut longer = file.clone();
            longer.extend_from_slice(extra);
            let Err(_) = decrypt(&key, &longer) else {
                panic!("{} extra", extra.len());
            };
        }
        // Dropping the final chunk of a blob whose last chunk was full.
        let full = encrypt(&key, &pattern(128), SMALL);
        decrypt(&key, &full[..chunk_span(0).end]).unwrap_err();
    }

    #[test]
    fn a_blob_under_another_data_key_is_refused_by_id() {
        let file = encrypt(&dek(9), b"secret", SMALL);
        let err = decrypt(&dek(10), &file).unwrap_err();
        assert!(matches!(err, StreamError::WrongKey { .. }), "{err}");
        // Same id, different key bytes: authentication fails on chunk 0.
        let err = decrypt(&dek(9), &file).unwrap_err();
        assert!(matches!(err, StreamError::Chunk { chunk: 0 }), "{err}");
    }

    #[test]
    fn read_errors_carry_the_stream_error() {
        let key = dek(11);
        let mut file = encrypt(&key, &pattern(100), SMALL);
        let n = file.len();
        file[n - 1] ^= 1;
        let mut out = Vec::new();
        let err = DecryptingReader::new(&file[..], &key)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            StreamError::from_io(err),
            StreamError::Chunk { chunk: 1 }
        ));
        // Only the authenticated first chunk reached the caller.
        assert_eq!(out, pattern(64));
    }

    #[test]
    fn header_parser_rejects_bad_framing() {
        let h = BlobHeader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            key_id: KeyId([1; 16]),
            salt: [2; 32],
        };
        let bytes = h.to_bytes();
        assert_eq!(BlobHeader::parse(&bytes).unwrap(), h);
        assert_eq!(
            BlobHeader::parse(&bytes[..60]),
            Err(HeaderError::TooShort { len: 60 })
        );
        let mut bad = bytes;
        bad[0] ^= 1;
        assert_eq!(BlobHeader::parse(&bad), Err(HeaderError::BadMagic));
        let mut bad = bytes;
        bad[8] = 2;
        assert_eq!(
            BlobHeader::parse(&bad),
            Err(HeaderError::UnsupportedVersion { version: 2 })
        );
        for size in [0u32, 15, MAX_CHUNK_SIZE + 1, u32::MAX] {
            let mut bad = bytes;
            bad[9..13].copy_from_slice(&size.to_be_bytes());
            assert_eq!(
                BlobHeader::parse(&bad),
                Err(HeaderError::BadChunkSize { size })
            );
        }
    }

    #[test]
    fn sealer_refuses_misshapen_chunks_and_anything_after_the_last() {
        let key = dek(15);
        let mut sealer = StreamSealer::new(&key, SMALL).unwrap();
        let err = sealer.seal_chunk(&mut vec![0; 10], false).unwrap_err();
        assert!(
            matches!(err, StreamError::ChunkLength { len: 10, .. }),
            "{err}"
        );
        let err = sealer.seal_chunk(&mut vec![0; 65], true).unwrap_err();
        assert!(
            matches!(err, StreamError::ChunkLength { len: 65, .. }),
            "{err}"
        );
        let mut file = sealer.header().to_vec();
        let mut chunk = pattern(64);
        sealer.seal_chunk(&mut chunk, false).unwrap();
        file.extend_from_slice(&chunk);
        let mut last = pattern(5);
        sealer.seal_chunk(&mut last, true).unwrap();
        file.extend_from_slice(&last);
        let err = sealer.seal_chunk(&mut vec![], true).unwrap_err();
        assert!(matches!(err, StreamError::Finished), "{err}");
        let mut expect = pattern(64);
        expect.extend_from_slice(&pattern(5));
        assert_eq!(decrypt(&key, &file).unwrap(), expect);
    }

    #[test]
    fn writer_refuses_chunk_sizes_outside_the_format() {
        for size in [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1] {
            let err = EncryptingWriter::new(Vec::new(), &dek(12), size).unwrap_err();
            assert!(matches!(err, StreamError::ChunkSize { .. }), "{err}");
        }
    }

    #[test]
    fn wrapped_data_keys_unwrap_only_under_their_id_and_blob_key() {
        let root = RootSecret::generate().unwrap();
        let wrapper = KeyWrapper::new(&root.derive(b"s", Purpose::BLOB)).unwrap();
        let key = dek(13);
        let wrapped = wrapper.wrap(&key).unwrap();
        let back = wrapper.unwrap(key.id(), &wrapped).unwrap();
        assert_eq!(back.bytes.as_ref(), key.bytes.as_ref());
        wrapper.unwrap(KeyId([14; 16]), &wrapped).unwrap_err();
        let other = KeyWrapper::new(&root.derive(b"t", Purpose::BLOB)).unwrap();
        other.unwrap(key.id(), &wrapped).unwrap_err();
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x40;
            let Err(_) = wrapper.unwrap(key.id(), &bad) else {
                panic!("byte {i}");
            };
        }
        assert!(!format!("{back:?}").contains(&hex::encode(back.bytes.as_ref())));
    }
}
