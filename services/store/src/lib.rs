//! hearth-store: Hearth's encrypted key-value store and encrypted blob store.
//!
//! What it is for: keeping everything operators give the appliance (users, datasets, models,
//! audit records) at rest under keys that only this appliance, booted into measured software,
//! can unseal. Small values live in typed tables over redb ([`Table`], [`Store::put`],
//! [`Store::write`]), each sealed in an AES-256-GCM envelope bound to its table and key; large
//! objects are chunked STREAM-encrypted files ([`Store::blob_writer`], [`Store::open_blob`])
//! under per-blob data keys kept wrapped in the database, so deleting the wrapped key
//! crypto-erases the blob ([`Store::erase_blob`]). The root secret comes from the TPM
//! ([`KeySource::Tpm`]); when the TPM refuses, the store opens [`StoreState::Locked`] with the
//! reason and the recovery key opens it ([`Store::unlock_with_recovery`]).
//!
//! What it is not for: the cryptography itself (that is `hearth-keys`), talking to the TPM
//! (`hearth-tpm`), or hiding which tables and keys exist: table names, keys, value sizes and
//! access patterns are visible to whoever reads the disk. Use ids, not personal data, as keys.
//!
//! Invariants:
//! - Nothing unauthenticated is ever returned: a value or blob chunk that does not authenticate
//!   is an integrity error naming the table and key, or the blob id and chunk.
//! - What a call acknowledged survives a crash: every write transaction commits with
//!   `Durability::Immediate` (fsync) and redb's quick repair; a blob's file is fsynced and
//!   renamed into place, and its directory fsynced, before its row commits.
//! - A blob exists exactly when its row is committed; files without a row are deleted at open.
//! - A locked store performs no operation; each fails with the lock reason. It never falls back
//!   to plaintext or to another key.

mod blob;
mod error;
mod store;
mod table;

pub use blob::{BlobId, BlobInfo, BlobReader, BlobWriter, ParseBlobIdError};
pub use error::{BlobError, CreateError, OpenError, StoreError, UnlockError};
pub use hearth_keys::{
    LockReason, Purpose, PurposeKey, RecoverError, RecoveryKey, RecoveryKeyError,
};
pub use store::{BLOB_DIR, DB_FILE, KEYRING_FILE, KeySource, Store, StoreOptions, StoreState};
pub use table::{Bytes, Json, Key, ReadTxn, Rows, Table, Value, WriteTxn};
