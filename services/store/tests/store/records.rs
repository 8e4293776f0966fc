//! Records: typed tables, durability across reopen, integrity of every stored byte.

use std::path::Path;

use hearth_store::{Bytes, Json, KeySource, OpenError, Store, StoreError, StoreOptions, Table};
use redb::{ReadableDatabase as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{TestStore, key_file};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    role: String,
}

const USERS: Table<str, Json<User>> = Table::new("users");
const NUMBERS: Table<u64, Bytes> = Table::new("numbers");

fn alice() -> User {
    User {
        name: "Alice Liddell".into(),
        role: "admin".into(),
    }
}

type Raw = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// The stored envelope of `table`/`key`, read with redb directly (the store must be closed).
fn raw_get(db: &Path, table: &'static str, key: &[u8]) -> Option<Vec<u8>> {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(Raw::new(table)).unwrap();
    t.get(key).unwrap().map(|v| v.value().to_vec())
}

/// Overwrites `table`/`key` with `bytes`, with redb directly (the store must be closed).
fn raw_put(db: &Path, table: &'static str, key: &[u8], bytes: &[u8]) {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(Raw::new(table))
        .unwrap()
        .insert(key, bytes)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn values_round_trip_through_typed_tables() {
    let t = TestStore::dev();
    let s = t.store();
    s.put(&USERS, "alice", &alice()).unwrap();
    assert_eq!(s.get(&USERS, "alice").unwrap(), Some(alice()));
    assert_eq!(s.get(&USERS, "nobody").unwrap(), None);
    assert_eq!(
        s.get(&NUMBERS, &1).unwrap(),
        None,
        "unwritten table reads empty"
    );

    s.write(|w| {
        for n in [3u64, 1, 2, 300] {
            w.put(&NUMBERS, &n, &n.to_string().into_bytes())?;
        }
        // A transaction sees its own writes.
        assert_eq!(w.get(&NUMBERS, &300)?, Some(b"300".to_vec()));
        Ok(())
    })
    .unwrap();
    let listed = s.list(&NUMBERS).unwrap();
    let keys: Vec<u64> = listed.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, [1, 2, 3, 300], "u64 keys sort numerically");
    assert_eq!(listed[3].1, b"300");

    assert!(s.remove(&NUMBERS, &2).unwrap());
    assert!(!s.remove(&NUMBERS, &2).unwrap());
    assert_eq!(s.list(&NUMBERS).unwrap().len(), 3);
}

#[test]
fn acknowledged_writes_survive_reopening() {
    let mut t = TestStore::dev();
    t.store().put(&USERS, "alice", &alice()).unwrap();
    t.store()
        .write(|w| {
            for n in 0..100u64 {
                w.put(&NUMBERS, &n, &vec![7; 1024])?;
            }
            Ok(())
        })
        .unwrap();
    let s = t.reopen();
    assert_eq!(s.get(&USERS, "alice").unwrap(), Some(alice()));
    assert_eq!(s.list(&NUMBERS).unwrap().len(), 100);
}

#[test]
fn a_failed_transaction_commits_nothing() {
    let t = TestStore::dev();
    let s = t.store();
    let err = s
        .write(|w| {
            w.put(&USERS, "alice", &alice())?;
            w.put(&USERS, "_x", &alice())?;
            // A caller's error, after a successful put: all or nothing.
            Err::<(), _>(StoreError::ReservedTable { name: "caller" })
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::ReservedTable { .. }), "{err}");
    assert_eq!(s.get(&USERS, "alice").unwrap(), None);
}

#[test]
fn reserved_table_names_are_refused() {
    let t = TestStore::dev();
    const SNEAKY: Table<str, Bytes> = Table::new("_hearth/meta");
    let err = t.store().put(&SNEAKY, "canary", &vec![1]).unwrap_err();
    assert!(matches!(err, StoreError::ReservedTable { .. }), "{err}");
    let err = t.store().get(&SNEAKY, "canary").unwrap_err();
    assert!(matches!(err, StoreError::ReservedTable { .. }), "{err}");
}

#[test]
fn every_single_byte_flip_of_a_stored_record_is_an_integrity_error_naming_table_and_key() {
    let mut t = TestStore::dev();
    t.store().put(&USERS, "alice", &alice()).unwrap();
    t.close();
    let db = t.db_path();
    let original = raw_get(&db, "users", b"alice").unwrap();
    for i in 0..original.len() {
        let mut flipped = original.clone();
        flipped[i] ^= 0x20;
        raw_put(&db, "users", b"alice", &flipped);
        let err = t.reopen().get(&USERS, "alice").unwrap_err();
        assert!(err.is_integrity(), "byte {i}: {err}");
        let text = err.to_string();
        assert!(text.contains("users/alice"), "byte {i}: {text}");
        assert!(!text.contains("Liddell"), "byte {i}: {text}");
        t.close();
    }
    raw_put(&db, "users", b"alice", &original);
    assert_eq!(t.reopen().get(&USERS, "alice").unwrap(), Some(alice()));
}

#[test]
fn a_record_copied_to_another_key_does_not_authenticate_there() {
    let mut t = TestStore::dev();
    t.store().put(&USERS, "alice", &alice()).unwrap();
    t.close();
    let envelope = raw_get(&t.db_path(), "users", b"alice").unwrap();
    raw_put(&t.db_path(), "users", b"mallory", &envelope);
    let err = t.reopen().get(&USERS, "mallory").unwrap_err();
    assert!(err.is_integrity(), "{err}");
    assert!(err.to_string().contains("users/mallory"), "{err}");
    // Listing the table meets the bad row too: never skipped, never returned.
    let err = t.store().list(&USERS).unwrap_err();
    assert!(err.is_integrity(), "{err}");
}

#[test]
fn plaintext_never_reaches_the_database_file() {
    let mut t = TestStore::dev();
    let marker = "Plaintext-Marker-7f3a9c";
    t.store()
        .put(
            &USERS,
            "alice",
            &User {
                name: marker.into(),
                role: marker.into(),
            },
        )
        .unwrap();
    t.close();
    let bytes = std::fs::read(t.db_path()).unwrap();
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "plaintext found in the database file"
    );
}

#[test]
fn a_wrong_root_secret_is_refused_by_the_key_check() {
    let mut t = TestStore::dev();
    t.store().put(&USERS, "alice", &alice()).unwrap();
    t.close();
    // Another store's dev key file, copied over ours.
    let other = TestStore::dev();
    std::fs::copy(key_file(other.dir.path()), key_file(t.dir.path())).unwrap();
    let key = key_file(t.dir.path());
    let err = Store::open(
        &t.path(),
        KeySource::DevKeyFile { path: &key },
        &StoreOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, OpenError::WrongRootSecret { .. }), "{err}");
}

#[test]
fn a_keyring_from_another_store_is_refused() {
    let mut t = TestStore::dev();
    t.store().put(&USERS, "alice", &alice()).unwrap();
    t.close();
    let mut other = TestStore::dev();
    other.close();
    let keyring = hearth_store::KEYRING_FILE;
    std::fs::copy(other.path().join(keyring), t.path().join(keyring)).unwrap();
    std::fs::copy(key_file(other.dir.path()), key_file(t.dir.path())).unwrap();
    let key = key_file(t.dir.path());
    let err = Store::open(
        &t.path(),
        KeySource::DevKeyFile { path: &key },
        &StoreOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, OpenError::WrongRootSecret { .. }), "{err}");
}

#[test]
fn create_refuses_to_overwrite_a_store() {
    let t = TestStore::dev();
    let key = key_file(t.dir.path());
    let err = Store::create(
        &t.path(),
        KeySource::DevKeyFile { path: &key },
        &StoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, hearth_store::CreateError::AlreadyExists { .. }),
        "{err}"
    );
}

#[test]
fn opening_a_directory_without_a_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let err = Store::open(
        dir.path(),
        KeySource::DevKeyFile { path: &key },
        &StoreOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, OpenError::NotInitialized { .. }), "{err}");
    assert!(!Store::exists(dir.path()));
}

#[test]
fn a_recovery_key_opens_only_its_own_store() {
    let mut t = TestStore::dev();
    t.store().put(&USERS, "alice", &alice()).unwrap();
    let other = TestStore::dev();
    let key = key_file(t.dir.path());
    let typed = other.recovery.to_display_string().to_string();
    let err = t
        .store()
        .unlock_with_recovery(
            &typed.parse().unwrap(),
            KeySource::DevKeyFile { path: &key },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            hearth_store::UnlockError::Recover(hearth_store::RecoverError::WrongKey)
        ),
        "{err}"
    );
    // Its own key works (and rewrites the key file with the same root secret).
    t.store()
        .unlock_with_recovery(&t.recovery, KeySource::DevKeyFile { path: &key })
        .unwrap();
    assert_eq!(t.reopen().get(&USERS, "alice").unwrap(), Some(alice()));
}

#[test]
fn a_byte_flipped_anywhere_in_the_database_file_is_an_error_never_a_crash_or_wrong_data() {
    const ROWS: Table<u64, Bytes> = Table::new("rows");
    let mut t = TestStore::dev();
    t.store()
        .write(|w| {
            for k in 0..50u64 {
                w.put(&ROWS, &k, &k.to_be_bytes().repeat(90))?;
            }
            Ok(())
        })
        .unwrap();
    t.close();
    let db = t.db_path();
    let original = std::fs::read(&db).unwrap();
    let key = key_file(t.dir.path());
    let (mut intact, mut refused) = (0, 0);
    // Every 211th byte: headers, allocator state, branch and leaf pages, free space.
    for i in (0..original.len()).step_by(211) {
        let mut flipped = original.clone();
        flipped[i] ^= 0x10;
        std::fs::write(&db, &flipped).unwrap();
        let opened = std::panic::catch_unwind(|| {
            let store = Store::open(
                &t.path(),
                KeySource::DevKeyFile { path: &key },
                &StoreOptions::default(),
            )?;
            store.list(&ROWS).map_err(|e| OpenError::Io {
                op: "list",
                path: t.path(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        match opened {
            Err(_) => panic!("flip at byte {i} crashed the store"),
            Ok(Err(_)) => refused += 1,
            Ok(Ok(rows)) => {
                assert_eq!(rows.len(), 50, "flip at byte {i}");
                for (k, v) in rows {
                    assert_eq!(v, k.to_be_bytes().repeat(90), "flip at byte {i}");
                }
                intact += 1;
            }
        }
    }
    std::fs::write(&db, &original).unwrap();
    assert!(
        refused > 0 && intact > 0,
        "refused {refused}, intact {intact}"
    );
}
