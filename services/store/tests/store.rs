//! hearth-store against real files: a real redb database in a temp directory, real blob files,
//! real swtpm processes for the TPM path, and real processes killed with SIGKILL for the crash
//! test.

#![allow(clippy::unwrap_used)]

#[path = "store/blobs.rs"]
mod blobs;
#[path = "store/crash.rs"]
mod crash;
#[path = "store/records.rs"]
mod records;
#[path = "store/tpm.rs"]
mod tpm;

use std::path::{Path, PathBuf};

use hearth_store::{KeySource, RecoveryKey, Store, StoreOptions};
use tempfile::TempDir;

/// A fresh store in a temp directory, its root secret in a dev key file beside it.
pub struct TestStore {
    pub dir: TempDir,
    pub store: Option<Store>,
    pub recovery: RecoveryKey,
    pub options: StoreOptions,
}

impl TestStore {
    pub fn dev() -> TestStore {
        TestStore::with_options(StoreOptions::default())
    }

    pub fn with_options(options: StoreOptions) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let (store, recovery) = Store::create(
            &store_dir(dir.path()),
            KeySource::DevKeyFile { path: &key },
            &options,
        )
        .unwrap();
        TestStore {
            dir,
            store: Some(store),
            recovery,
            options,
        }
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    pub fn path(&self) -> PathBuf {
        store_dir(self.dir.path())
    }

    pub fn db_path(&self) -> PathBuf {
        self.path().join(hearth_store::DB_FILE)
    }

    /// Closes the store (releasing the database file).
    pub fn close(&mut self) {
        self.store = None;
    }

    /// Closes and opens again.
    pub fn reopen(&mut self) -> &Store {
        self.close();
        let key = key_file(self.dir.path());
        self.store = Some(
            Store::open(
                &self.path(),
                KeySource::DevKeyFile { path: &key },
                &self.options,
            )
            .unwrap(),
        );
        self.store()
    }
}

pub fn store_dir(root: &Path) -> PathBuf {
    root.join("store")
}

pub fn key_file(root: &Path) -> PathBuf {
    root.join("dev-root.key")
}
