//! hearth-keys: Hearth's key hierarchy and the encryption formats built on it.
//!
//! What it is for: the 32-byte **root secret**, sealed by the TPM to a PCR policy
//! ([`Keyring::create_sealed`], default `sha256:7,11`) and wrapped by a **recovery key** shown
//! once ([`RecoveryKey`]: 13 groups of 5 base32 symbols with per-group check symbols); purpose
//! keys derived from it with HKDF-SHA256 and a label ([`Purpose`]); AES-256-GCM **record
//! envelopes** bound to their table and key ([`RecordCipher`]); and **STREAM** chunked encryption
//! for large objects under per-object data keys ([`EncryptingWriter`], or [`StreamSealer`] for
//! callers that move sealed chunks themselves; [`DecryptingReader`]; [`KeyWrapper`]). When the TPM refuses to unseal, the answer is a value,
//! [`Unsealed::Locked`] with a [`LockReason`] naming the PCRs that moved.
//!
//! What it is not for: storage. Where keyrings, records and blobs live, and how they are made
//! durable, is `hearth-store`'s business; talking to the TPM is `hearth-tpm`'s.
//!
//! Invariants:
//! - No secret (root secret, recovery key, purpose or data key) appears in `Debug` output, logs
//!   or errors; all live in zeroizing buffers. (ring's expanded AES key schedules are not
//!   zeroized on drop; that is a limit of ring.)
//! - Nothing is returned as plaintext before it authenticated: a record as a whole, a blob chunk
//!   by chunk (and a blob that stops early is an error, never a short success).
//! - No nonce repeats under one key: records use a random 64-bit epoch per cipher instance with a
//!   32-bit counter; blob chunks use a key derived per write from a random salt, with the chunk
//!   counter and last-chunk flag in the nonce.
//! - The only secret ever written in clear is by [`write_dev_key_file`], which exists for dev
//!   and tests and logs a warning each time it is used.

mod keyring;
mod record;
mod recovery;
mod secret;
mod stream;

pub use keyring::{
    CreateError, DevKeyError, KEYRING_FORMAT, Keyring, KeyringError, KeysConfig, LockReason,
    NewKeyring, Protection, RecoverError, ResealError, STORE_ID_LEN, UnsealError, Unsealed,
    default_seal_pcrs, read_dev_key_file, write_dev_key_file,
};
pub use record::{
    EnvelopeHeader, RECORD_FORMAT_VERSION, RECORD_OVERHEAD, RecordCipher, RecordError, describe_key,
};
pub use recovery::{RECOVERY_GROUPS, RECOVERY_SYMBOLS, RecoveryKey, RecoveryKeyError};
pub use secret::{KEY_LEN, Purpose, PurposeKey, RandomError, RootSecret};
pub use stream::{
    BLOB_FORMAT_VERSION, BLOB_HEADER_LEN, BLOB_MAGIC, BlobHeader, CHUNK_TAG_LEN,
    DEFAULT_CHUNK_SIZE, DataKey, DecryptingReader, EncryptingWriter, HeaderError, KeyId,
    KeyWrapper, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, StreamError, StreamSealer,
};
