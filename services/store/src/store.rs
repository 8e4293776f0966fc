//! The store: a directory holding the keyring, the redb database and the blob files, in one of
//! two states, open or locked.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use hearth_keys::{
    DEFAULT_CHUNK_SIZE, KeyWrapper, Keyring, LockReason, Protection, Purpose, PurposeKey,
    RecordCipher, RecoveryKey, RootSecret, Unsealed, read_dev_key_file, write_dev_key_file,
};
use hearth_tpm::{PcrSelection, Tpm};
use redb::{Database, Durability, ReadableDatabase as _, TableHandle as _};

use crate::error::{CreateError, OpenError, StoreError, UnlockError};
use crate::table::{Bytes, Key, ReadTxn, Rows, Table, Value, WriteTxn, raw};

/// The keyring file in a store directory.
pub const KEYRING_FILE: &str = "keyring.json";
/// The redb database in a store directory.
pub const DB_FILE: &str = "store.redb";
/// The directory of blob files in a store directory.
pub const BLOB_DIR: &str = "blobs";

pub(crate) const META_TABLE: &str = "_hearth/meta";
pub(crate) const BLOBS_TABLE: &str = "_hearth/blobs";
pub(crate) const ERASED_TABLE: &str = "_hearth/erased";
const CANARY_KEY: &[u8] = b"canary";
const CANARY_VALUE: &[u8] = b"hearth-store key check v1";

/// Where the root secret comes from.
#[derive(Debug)]
pub enum KeySource<'a> {
    /// The appliance: sealed by this TPM to `seal_pcrs` (one bank; `KeysConfig::seal_pcrs`,
    /// default `sha256:7,11`). A keyring sealed to other PCRs is re-sealed to these on open.
    Tpm {
        tpm: &'a mut Tpm,
        seal_pcrs: &'a PcrSelection,
    },
    /// **Dev and tests only**: the root secret in clear in `path` (mode 0600, logged as a
    /// warning). Used by the crash test and examples; never by the appliance.
    DevKeyFile { path: &'a Path },
}

impl KeySource<'_> {
    fn describe(&self) -> &'static str {
        match self {
            KeySource::Tpm { .. } => "TPM",
            KeySource::DevKeyFile { .. } => "dev key file",
        }
    }
}

/// Tunables; the defaults are the appliance's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Plaintext bytes per blob chunk (default 1 MiB). Readers take whatever the file's header
    /// says, so this only affects new blobs; small values exist for tests.
    pub blob_chunk_size: u32,
    /// redb's page cache; `None` is redb's default (1 GiB, allocated as used).
    pub cache_size: Option<usize>,
    /// Verify the checksum of every page of the database at open (default `true`). Costs a read
    /// of the whole file per open (once per boot on the appliance), and turns a database file
    /// altered on disk into an open error; without it, redb may panic on such a file.
    pub check_integrity_on_open: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            blob_chunk_size: DEFAULT_CHUNK_SIZE,
            cache_size: None,
            check_integrity_on_open: true,
        }
    }
}

/// What a store can do right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreState {
    Open,
    /// The TPM refused the root secret; every operation fails with this reason until
    /// [`Store::unlock_with_recovery`].
    Locked {
        reason: LockReason,
    },
}

pub(crate) struct OpenStore {
    pub(crate) db: Database,
    pub(crate) db_path: PathBuf,
    pub(crate) blob_dir: PathBuf,
    pub(crate) records: RecordCipher,
    pub(crate) keys: KeyWrapper,
    pub(crate) keyring: Keyring,
    pub(crate) chunk_size: u32,
    /// Kept for [`Store::purpose_key`]; zeroed on drop with the open state.
    pub(crate) root: RootSecret,
}

enum State {
    Locked {
        reason: LockReason,
        keyring: Box<Keyring>,
    },
    Open(Box<OpenStore>),
}

/// An encrypted key-value store with an encrypted blob store beside it.
///
/// Directory layout: `keyring.json` (the protected root secret), `store.redb` (values sealed
/// in AEAD envelopes), `blobs/<id>.blob` (STREAM-encrypted files). `Send + Sync`; share it
/// behind an `Arc`.
pub struct Store {
    dir: PathBuf,
    options: StoreOptions,
    state: RwLock<State>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("state", &self.state())
            .finish()
    }
}

impl Store {
    /// Whether `dir` holds a store (its keyring).
    pub fn exists(dir: &Path) -> bool {
        dir.join(KEYRING_FILE).exists()
    }

    /// Creates a store in `dir` (created if missing) with a new root secret, and returns it open
    /// with the recovery key: show that once, then drop it.
    ///
    /// Crash-safe: the keyring is written (atomically) before the database; a create
    /// interrupted after that completes on the next [`Store::open`], though its recovery key was
    /// never shown (the store is empty: create a new one).
    pub fn create(
        dir: &Path,
        keys: KeySource<'_>,
        options: &StoreOptions,
    ) -> Result<(Store, RecoveryKey), CreateError> {
        let keyring_path = dir.join(KEYRING_FILE);
        let db_path = dir.join(DB_FILE);
        for path in [&keyring_path, &db_path] {
            if path.exists() {
                return Err(CreateError::AlreadyExists { path: path.clone() });
            }
        }
        let blob_dir = dir.join(BLOB_DIR);
        fs::create_dir_all(&blob_dir).map_err(|source| CreateError::Io {
            op: "create directory",
            path: blob_dir.clone(),
            source,
        })?;
        let new = match keys {
            KeySource::Tpm { tpm, seal_pcrs } => {
                Keyring::create_sealed(tpm, seal_pcrs).map_err(CreateError::Keys)?
            }
            KeySource::DevKeyFile { path } => {
                let new = Keyring::create_for_dev_key_file().map_err(CreateError::Keys)?;
                write_dev_key_file(path, &new.root)?;
                new
            }
        };
        new.keyring.save(&keyring_path)?;
        sync_dir(dir).map_err(|source| CreateError::Io {
            op: "sync directory",
            path: dir.to_owned(),
            source,
        })?;
        let open = OpenStore::open(dir, new.keyring, new.root, options)?;
        tracing::info!(component = "store", dir = %dir.display(), "store created");
        Ok((
            Store {
                dir: dir.to_owned(),
                options: options.clone(),
                state: RwLock::new(State::Open(Box::new(open))),
            },
            new.recovery_key,
        ))
    }

    /// Opens the store in `dir`. If the TPM refuses the root secret (PCRs moved, or another
    /// TPM), the store opens **locked**, with the reason; that is not an error.
    ///
    /// Opening runs redb's crash recovery if the last process died, and deletes blob files
    /// that no committed row refers to (writes that crashed before their commit).
    pub fn open(
        dir: &Path,
        keys: KeySource<'_>,
        options: &StoreOptions,
    ) -> Result<Store, OpenError> {
        let keyring_path = dir.join(KEYRING_FILE);
        let mut keyring = match Keyring::load(&keyring_path) {
            Ok(k) => k,
            Err(hearth_keys::KeyringError::NotFound { .. }) => {
                return Err(OpenError::NotInitialized {
                    dir: dir.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let given = keys.describe();
        let root = match keys {
            KeySource::Tpm { tpm, seal_pcrs } => {
                match keyring.unseal(tpm).map_err(OpenError::Unseal)? {
                    Unsealed::Open(root) => {
                        let sealed_to = match keyring.protection() {
                            Protection::Tpm { sealed } => Some(sealed.selection.clone()),
                            Protection::DevKeyFile => None,
                        };
                        if sealed_to.as_ref() != Some(seal_pcrs) {
                            tracing::info!(
                                component = "store",
                                to = %seal_pcrs,
                                "configured PCR policy changed: re-sealing the root secret"
                            );
                            keyring
                                .reseal(tpm, &root, seal_pcrs)
                                .map_err(OpenError::Reseal)?;
                            keyring.save(&keyring_path)?;
                        }
                        root
                    }
                    Unsealed::Locked(reason) => {
                        tracing::warn!(
                            component = "store",
                            dir = %dir.display(),
                            %reason,
                            "store is locked"
                        );
                        return Ok(Store {
                            dir: dir.to_owned(),
                            options: options.clone(),
                            state: RwLock::new(State::Locked {
                                reason,
                                keyring: Box::new(keyring),
                            }),
                        });
                    }
                }
            }
            KeySource::DevKeyFile { path } => {
                if !matches!(keyring.protection(), Protection::DevKeyFile) {
                    return Err(OpenError::KeySourceMismatch {
                        keyring: keyring.protection().to_string(),
                        given,
                    });
                }
                read_dev_key_file(path)?
            }
        };
        let open = OpenStore::open(dir, keyring, root, options)?;
        Ok(Store {
            dir: dir.to_owned(),
            options: options.clone(),
            state: RwLock::new(State::Open(Box::new(open))),
        })
    }

    /// Unwraps the root secret with the recovery key, checks that it opens this database,
    /// re-protects it with `keys` (re-sealed to the TPM's current PCRs, or written to the dev key
    /// file) and opens the store. Also works on an open store (to re-seal after an intended
    /// change of measurements).
    pub fn unlock_with_recovery(
        &self,
        recovery_key: &RecoveryKey,
        keys: KeySource<'_>,
    ) -> Result<(), UnlockError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut keyring = match &*state {
            State::Locked { keyring, .. } => (**keyring).clone(),
            State::Open(open) => open.keyring.clone(),
        };
        let root = keyring.recover(recovery_key)?;
        // Prove the root opens this database before re-protecting it or touching the keyring on
        // disk (opening a locked store checks the key check record, and removes orphans).
        let (opened, checked_root) = match &*state {
            State::Open(open) => {
                OpenStore::check_root(open, &keyring, &root)?;
                (None, Some(root))
            }
            State::Locked { .. } => (
                Some(OpenStore::open(
                    &self.dir,
                    keyring.clone(),
                    root,
                    &self.options,
                )?),
                None,
            ),
        };
        let Some(root) = opened.as_ref().map(|o| &o.root).or(checked_root.as_ref()) else {
            unreachable!("either the store opened with the root or the root was checked")
        };
        match keys {
            KeySource::Tpm { tpm, seal_pcrs } => keyring.reseal(tpm, root, seal_pcrs)?,
            KeySource::DevKeyFile { path } => {
                write_dev_key_file(path, root)?;
                keyring.use_dev_key_file();
            }
        }
        keyring.save(&self.dir.join(KEYRING_FILE))?;
        match opened {
            Some(mut open) => {
                open.keyring = keyring;
                *state = State::Open(Box::new(open));
            }
            None => {
                if let State::Open(open) = &mut *state {
                    open.keyring = keyring;
                }
            }
        }
        tracing::info!(
            component = "store",
            dir = %self.dir.display(),
            "unlocked with the recovery key; root secret re-protected"
        );
        Ok(())
    }

    /// Open or locked (with the reason).
    pub fn state(&self) -> StoreState {
        match &*self.state.read().unwrap_or_else(PoisonError::into_inner) {
            State::Open(_) => StoreState::Open,
            State::Locked { reason, .. } => StoreState::Locked {
                reason: reason.clone(),
            },
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` on the open store, or fails with the lock reason.
    pub(crate) fn with_open<R, E>(
        &self,
        locked: impl FnOnce(LockReason) -> E,
        f: impl FnOnce(&OpenStore) -> Result<R, E>,
    ) -> Result<R, E> {
        let guard: RwLockReadGuard<'_, State> =
            self.state.read().unwrap_or_else(PoisonError::into_inner);
        match &*guard {
            State::Open(open) => f(open),
            State::Locked { reason, .. } => Err(locked(reason.clone())),
        }
    }

    /// Runs `f` in one write transaction and commits it durably (fsync before returning).
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with_open(|reason| StoreError::Locked { reason }, |open| open.write(f))
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<R>(
        &self,
        f: impl FnOnce(&mut ReadTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with_open(|reason| StoreError::Locked { reason }, |open| open.read(f))
    }

    /// Stores one value, durably.
    pub fn put<K: Key + ?Sized, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
        value: &V::Owned,
    ) -> Result<(), StoreError> {
        self.write(|w| w.put(table, key, value))
    }

    /// Reads one value; `None` if absent; an integrity error if it does not authenticate.
    pub fn get<K: Key + ?Sized, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V::Owned>, StoreError> {
        self.read(|r| r.get(table, key))
    }

    /// Removes one value, durably; whether it was there.
    pub fn remove<K: Key + ?Sized, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<bool, StoreError> {
        self.write(|w| w.remove(table, key))
    }

    /// The key for `purpose` derived from this store's root secret, for the services built on
    /// the store (the audit log's MAC key, console session secrets). The store's own purposes
    /// (`STORE`, `BLOB`) are refused: holding them would let a caller forge stored values.
    /// Fails with the lock reason on a locked store.
    pub fn purpose_key(&self, purpose: Purpose) -> Result<PurposeKey, StoreError> {
        if purpose == Purpose::STORE || purpose == Purpose::BLOB {
            return Err(StoreError::ReservedPurpose { purpose });
        }
        self.with_open(
            |reason| StoreError::Locked { reason },
            |open| Ok(open.keyring.derive(&open.root, purpose)),
        )
    }

    /// Every entry of `table`, in key order.
    pub fn list<K: Key + ?Sized, V: Value>(
        &self,
        table: &Table<K, V>,
    ) -> Result<Rows<K, V>, StoreError> {
        self.read(|r| r.list(table))
    }
}

impl OpenStore {
    /// Derives the ciphers, opens (or creates) the database, checks (or, in an empty database,
    /// writes) the key check record, and removes orphaned blob files.
    fn open(
        dir: &Path,
        keyring: Keyring,
        root: RootSecret,
        options: &StoreOptions,
    ) -> Result<OpenStore, OpenError> {
        let db_path = dir.join(DB_FILE);
        let blob_dir = dir.join(BLOB_DIR);
        fs::create_dir_all(&blob_dir).map_err(|source| OpenError::Io {
            op: "create directory",
            path: blob_dir.clone(),
            source,
        })?;
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(options.check_integrity_on_open);
        if let Some(size) = options.cache_size {
            builder.set_cache_size(size);
        }
        let repair_path = db_path.clone();
        builder.set_repair_callback(move |session| {
            tracing::info!(
                component = "store",
                path = %repair_path.display(),
                progress = session.progress(),
                "repairing database after an unclean shutdown"
            );
        });
        let db_err = |e: redb::Error| OpenError::Db {
            path: db_path.clone(),
            source: e,
        };
        let db = builder.create(&db_path).map_err(|e| db_err(e.into()))?;
        let keys =
            KeyWrapper::new(&keyring.derive(&root, Purpose::BLOB)).map_err(OpenError::Random)?;
        let mut open = OpenStore {
            db,
            db_path: db_path.clone(),
            blob_dir,
            records: RecordCipher::new(&keyring.derive(&root, Purpose::STORE))
                .map_err(OpenError::Random)?,
            keys,
            root,
            keyring,
            chunk_size: options.blob_chunk_size,
        };
        open.check_or_write_canary()?;
        let removed = open.clean_orphans()?;
        if removed > 0 {
            tracing::info!(
                component = "store",
                removed,
                "removed blob files left by interrupted writes or erasures"
            );
        }
        Ok(open)
    }

    fn db_error(&self, e: impl Into<redb::Error>) -> OpenError {
        OpenError::Db {
            path: self.db_path.clone(),
            source: e.into(),
        }
    }

    fn check_or_write_canary(&mut self) -> Result<(), OpenError> {
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let found = match txn.open_table(raw(META_TABLE)) {
            Ok(t) => t
                .get(CANARY_KEY)
                .map_err(|e| self.db_error(e))?
                .map(|g| g.value().to_vec()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.db_error(e)),
        };
        if let Some(envelope) = found {
            return match self.records.open(META_TABLE, CANARY_KEY, &envelope) {
                Ok(v) if v == CANARY_VALUE => Ok(()),
                _ => Err(OpenError::WrongRootSecret {
                    path: self.db_path.clone(),
                }),
            };
        }
        // No canary: only a database that holds nothing may get one (a create that stopped
        // between writing the keyring and the database).
        let holds_data = txn
            .list_tables()
            .map_err(|e| self.db_error(e))?
            .any(|t| t.name() != META_TABLE);
        drop(txn);
        if holds_data {
            return Err(OpenError::MissingCanary {
                path: self.db_path.clone(),
            });
        }
        self.write(|w| w.put_raw::<Bytes>(META_TABLE, CANARY_KEY, &CANARY_VALUE.to_vec()))
            .map_err(|e| match e {
                StoreError::Db { path, source } => OpenError::Db { path, source },
                other => OpenError::Io {
                    op: "write the key check record of",
                    path: self.db_path.clone(),
                    source: io::Error::other(other.to_string()),
                },
            })
    }

    /// Checks that `root` (under `keyring`) opens this database's key check record.
    fn check_root(open: &OpenStore, keyring: &Keyring, root: &RootSecret) -> Result<(), OpenError> {
        let cipher =
            RecordCipher::new(&keyring.derive(root, Purpose::STORE)).map_err(OpenError::Random)?;
        match open.raw_envelope(META_TABLE, CANARY_KEY)? {
            Some(env)
                if cipher
                    .open(META_TABLE, CANARY_KEY, &env)
                    .is_ok_and(|v| v == CANARY_VALUE) =>
            {
                Ok(())
            }
            _ => Err(OpenError::WrongRootSecret {
                path: open.db_path.clone(),
            }),
        }
    }

    /// The stored envelope of `key`, unopened.
    fn raw_envelope(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, OpenError> {
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        match txn.open_table(raw(table)) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| self.db_error(e))?
                .map(|g| g.value().to_vec())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.db_error(e)),
        }
    }

    pub(crate) fn store_db_error(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.db_path.clone(),
            source: e.into(),
        }
    }

    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.store_db_error(e))?;
        // Durable on return, and fast to recover after a crash (2-phase commit, allocator state
        // saved with each commit).
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.store_db_error(e))?;
        txn.set_quick_repair(true);
        let mut w = WriteTxn::new(&txn, &self.records, &self.db_path);
        let result = f(&mut w);
        drop(w);
        match result {
            Ok(r) => {
                txn.commit().map_err(|e| self.store_db_error(e))?;
                Ok(r)
            }
            Err(e) => {
                // Dropping would abort too; abort explicitly to surface nothing new.
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&mut ReadTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.store_db_error(e))?;
        let mut r = ReadTxn::new(txn, &self.records, &self.db_path);
        f(&mut r)
    }

    /// Deletes temp files and blob files with no committed row. Returns how many went.
    fn clean_orphans(&self) -> Result<usize, OpenError> {
        let live: std::collections::HashSet<Vec<u8>> = self
            .read(|r| r.keys_raw(BLOBS_TABLE))
            .map_err(|e| match e {
                StoreError::Db { path, source } => OpenError::Db { path, source },
                other => OpenError::Io {
                    op: "list blobs of",
                    path: self.db_path.clone(),
                    source: io::Error::other(other.to_string()),
                },
            })?
            .into_iter()
            .collect();
        let io_err = |op, source| OpenError::Io {
            op,
            path: self.blob_dir.clone(),
            source,
        };
        let mut removed = 0;
        for entry in fs::read_dir(&self.blob_dir).map_err(|e| io_err("list", e))? {
            let entry = entry.map_err(|e| io_err("list", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                tracing::warn!(component = "store", file = ?entry.path(), "unexpected file in blob directory");
                continue;
            };
            let orphan = if name.ends_with(crate::blob::TEMP_SUFFIX) {
                true
            } else if let Some(stem) = name.strip_suffix(crate::blob::BLOB_SUFFIX) {
                match hex::decode(stem) {
                    Ok(id) if id.len() == 16 => !live.contains(&id),
                    _ => false,
                }
            } else {
                false
            };
            if orphan {
                fs::remove_file(entry.path()).map_err(|e| OpenError::Io {
                    op: "remove orphaned blob file",
                    path: entry.path(),
                    source: e,
                })?;
                removed += 1;
            } else if !name.ends_with(crate::blob::BLOB_SUFFIX) {
                tracing::warn!(component = "store", file = %name, "unexpected file in blob directory");
            }
        }
        if removed > 0 {
            sync_dir(&self.blob_dir).map_err(|e| io_err("sync", e))?;
        }
        Ok(removed)
    }
}

/// fsync a directory, so renames and unlinks in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
