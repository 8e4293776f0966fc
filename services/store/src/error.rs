//! Errors, one enum per operation.

use std::io;
use std::path::PathBuf;

use hearth_keys::{
    DevKeyError, KeyringError, LockReason, RandomError, RecordError, RecoverError, ResealError,
    StreamError, UnsealError,
};

use crate::blob::BlobId;

/// Why a store could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a store already exists at {path}")]
    AlreadyExists { path: PathBuf },

    #[error("could not {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not create the key hierarchy")]
    Keys(#[source] hearth_keys::CreateError),

    #[error(transparent)]
    DevKey(#[from] DevKeyError),

    #[error(transparent)]
    Keyring(#[from] KeyringError),

    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Why a store could not be opened. (A store the TPM will not unseal is not an error: it opens
/// [`crate::StoreState::Locked`].)
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no store at {dir} (its keyring is missing)")]
    NotInitialized { dir: PathBuf },

    #[error(transparent)]
    Keyring(#[from] KeyringError),

    #[error("could not get the root secret from the TPM")]
    Unseal(#[source] UnsealError),

    #[error(transparent)]
    DevKey(#[from] DevKeyError),

    #[error("the keyring keeps its root secret {keyring}, but the store was opened with a {given}")]
    KeySourceMismatch {
        keyring: String,
        given: &'static str,
    },

    #[error("could not re-seal the root secret to the configured PCRs")]
    Reseal(#[source] ResealError),

    #[error("could not set up the store's ciphers")]
    Random(#[source] RandomError),

    #[error("database {path} could not be opened")]
    Db {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },

    #[error(
        "the root secret does not open database {path}: wrong key, or a keyring that belongs to \
         another database"
    )]
    WrongRootSecret { path: PathBuf },

    #[error("database {path} holds data but no key check record; refusing to trust it")]
    MissingCanary { path: PathBuf },

    #[error("could not {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why the recovery key did not unlock the store.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error(transparent)]
    Recover(#[from] RecoverError),

    #[error(transparent)]
    Reseal(#[from] ResealError),

    #[error(transparent)]
    DevKey(#[from] DevKeyError),

    #[error(transparent)]
    Keyring(#[from] KeyringError),

    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Why a record operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is locked; nothing is read or written until the recovery key opens it.
    #[error("store is locked: {reason}")]
    Locked { reason: LockReason },

    #[error("key purpose {purpose} is the store's own and is not handed out")]
    ReservedPurpose { purpose: hearth_keys::Purpose },

    #[error("table name {name:?} is reserved for the store itself (names starting with '_')")]
    ReservedTable { name: &'static str },

    /// A stored value failed authentication (names table and key), or a value was too large.
    #[error(transparent)]
    Record(#[from] RecordError),

    #[error("value for {table}/{key} could not be encoded")]
    Encode {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("value of {table}/{key} authenticated but does not decode as the table's type")]
    Decode {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("key {key} of table {table} does not decode as the table's key type")]
    BadKey { table: &'static str, key: String },

    #[error("database {path} failed")]
    Db {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
}

impl StoreError {
    /// Whether this is an integrity failure: stored bytes that did not authenticate.
    pub fn is_integrity(&self) -> bool {
        matches!(self, StoreError::Record(RecordError::Integrity { .. }))
    }
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("store is locked: {reason}")]
    Locked { reason: LockReason },

    #[error("no blob {id}")]
    NotFound { id: BlobId },

    #[error("blob {id} was erased")]
    Erased { id: BlobId },

    #[error("blob {id} has a key but its file {path} is missing")]
    FileMissing { id: BlobId, path: PathBuf },

    /// The file did not authenticate: flipped, truncated, reordered, duplicated, spliced or
    /// extended. Nothing unauthenticated was returned.
    #[error("blob {id} failed its integrity check")]
    Integrity {
        id: BlobId,
        #[source]
        source: StreamError,
    },

    /// The file authenticated but holds another length than its metadata row records.
    #[error("blob {id} holds {found} bytes, its metadata records {expected}")]
    LengthMismatch {
        id: BlobId,
        expected: u64,
        found: u64,
    },

    /// The blob's metadata row (its wrapped data key) did not authenticate.
    #[error("blob {id}'s key record failed its integrity check")]
    KeyIntegrity {
        id: BlobId,
        #[source]
        source: RecordError,
    },

    #[error("blob {id}'s metadata authenticated but does not decode")]
    Meta {
        id: BlobId,
        #[source]
        source: serde_json::Error,
    },

    #[error("could not {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("reading the data for blob {id} failed")]
    Source {
        id: BlobId,
        #[source]
        source: io::Error,
    },

    #[error("could not encrypt blob {id}")]
    Encrypt {
        id: BlobId,
        #[source]
        source: StreamError,
    },

    #[error("could not draw a blob id or key")]
    Random(#[source] RandomError),

    #[error("database {path} failed")]
    Db {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
}

impl BlobError {
    /// Whether this is an integrity failure of the blob file or of its key record.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            BlobError::Integrity { .. }
                | BlobError::KeyIntegrity { .. }
                | BlobError::LengthMismatch { .. }
        )
    }
}
