//! Blobs: round trips, tampering with the files, crypto-erase, crash leftovers.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;

use hearth_store::{BlobError, BlobId, StoreOptions};
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::TestStore;

/// Plaintext bytes per chunk in the tampering tests: small, so every byte can be flipped.
const SMALL: u32 = 64;
const HEADER: usize = 61;
const SEALED: usize = SMALL as usize + 16;

fn small_chunks() -> TestStore {
    TestStore::with_options(StoreOptions {
        blob_chunk_size: SMALL,
        ..StoreOptions::default()
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 131 + usize::from(seed)).to_le_bytes()[0])
        .collect()
}

fn chunk(file: &[u8], i: usize) -> &[u8] {
    &file[HEADER + i * SEALED..(HEADER + (i + 1) * SEALED).min(file.len())]
}

fn assert_integrity_error(t: &TestStore, id: BlobId, what: &str) {
    let err = t.store().read_blob(id).unwrap_err();
    assert!(err.is_integrity(), "{what}: {err}");
    assert!(err.to_string().contains(&id.to_string()), "{what}: {err}");
}

#[test]
fn blobs_round_trip_at_chunk_boundaries() {
    let t = small_chunks();
    for len in [0usize, 1, 63, 64, 65, 128, 1000] {
        let data = pattern(len, 1);
        let info = t.store().put_blob(&data).unwrap();
        assert_eq!(info.len, len as u64);
        assert_eq!(t.store().read_blob(info.id).unwrap(), data, "{len}");
        assert_eq!(t.store().blob_info(info.id).unwrap(), info);
    }
    assert_eq!(t.store().list_blobs().unwrap().len(), 7);
}

#[test]
fn megabyte_chunked_blobs_stream_in_and_out() {
    let mut t = TestStore::dev();
    let data = pattern(3 * 1024 * 1024 + 17, 2);
    let info = t.store().put_blob_from(&mut &data[..]).unwrap();
    let path = t.store().blob_path(info.id).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        (HEADER + data.len() + 4 * 16) as u64,
        "header + 4 chunks of 1 MiB (the last partial) + tags"
    );
    t.reopen();
    let mut back = Vec::new();
    t.store()
        .open_blob(info.id)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data, "blob read back differs");
}

#[test]
fn every_single_byte_flip_in_a_blob_file_is_an_integrity_error_naming_the_blob() {
    let t = small_chunks();
    let info = t.store().put_blob(&pattern(150, 3)).unwrap();
    let path = t.store().blob_path(info.id).unwrap();
    let original = fs::read(&path).unwrap();
    assert_eq!(original.len(), HEADER + 150 + 3 * 16);
    for i in 0..original.len() {
        let mut flipped = original.clone();
        flipped[i] ^= 0x04;
        fs::write(&path, &flipped).unwrap();
        assert_integrity_error(&t, info.id, &format!("flip at byte {i}"));
    }
    fs::write(&path, &original).unwrap();
    assert_eq!(t.store().read_blob(info.id).unwrap(), pattern(150, 3));
}

#[test]
fn truncated_reordered_duplicated_spliced_and_extended_files_are_detected() {
    let t = small_chunks();
    let a = t.store().put_blob(&pattern(250, 4)).unwrap(); // 4 chunks
    let b = t.store().put_blob(&pattern(250, 5)).unwrap();
    let path = t.store().blob_path(a.id).unwrap();
    let file = fs::read(&path).unwrap();
    let other = fs::read(t.store().blob_path(b.id).unwrap()).unwrap();
    let header = &file[..HEADER];

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [
        HEADER,
        HEADER + SEALED,
        HEADER + 2 * SEALED,
        file.len() - 1,
        10,
    ] {
        cases.push((format!("truncated to {cut}"), file[..cut].to_vec()));
    }
    cases.push((
        "chunks 1 and 2 swapped".into(),
        [
            header,
            chunk(&file, 0),
            chunk(&file, 2),
            chunk(&file, 1),
            chunk(&file, 3),
        ]
        .concat(),
    ));
    cases.push((
        "chunk 1 duplicated".into(),
        [
            header,
            chunk(&file, 0),
            chunk(&file, 1),
            chunk(&file, 1),
            chunk(&file, 2),
            chunk(&file, 3),
        ]
        .concat(),
    ));
    cases.push((
        "chunk 1 spliced from another blob".into(),
        [
            header,
            chunk(&file, 0),
            chunk(&other, 1),
            chunk(&file, 2),
            chunk(&file, 3),
        ]
        .concat(),
    ));
    cases.push(("another blob's file in its place".into(), other.clone()));
    cases.push(("a byte appended".into(), [&file[..], &[0]].concat()));
    cases.push((
        "a chunk appended".into(),
        [&file[..], chunk(&file, 1)].concat(),
    ));
    for (what, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        assert_integrity_error(&t, a.id, &what);
    }
}

#[test]
fn the_reader_returns_only_authenticated_chunks_before_an_error() {
    let t = small_chunks();
    let data = pattern(200, 6);
    let info = t.store().put_blob(&data).unwrap();
    let path = t.store().blob_path(info.id).unwrap();
    let mut file = fs::read(&path).unwrap();
    file[HEADER + 2 * SEALED + 3] ^= 1; // damage chunk 2
    fs::write(&path, &file).unwrap();
    let mut reader = t.store().open_blob(info.id).unwrap();
    let mut got = Vec::new();
    let err = reader.read_to_end(&mut got).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains(&info.id.to_string()), "{err}");
    assert_eq!(got, data[..128], "exactly chunks 0 and 1 were returned");
}

fn wrapped_key_rows(db: &Path) -> usize {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn
        .open_table(TableDefinition::<&[u8], &[u8]>::new("_hearth/blobs"))
        .unwrap();
    t.iter().unwrap().count()
}

#[test]
fn crypto_erase_makes_a_blob_unreadable_though_its_file_remains() {
    let mut t = small_chunks();
    let keep = t.store().put_blob(b"keep me").unwrap();
    let gone = t.store().put_blob(&pattern(300, 7)).unwrap();
    let path = t.store().blob_path(gone.id).unwrap();
    // A copy of the file survives the erase: a backup, a snapshot, a remapped SSD block.
    let surviving = fs::read(&path).unwrap();

    t.store().erase_blob(gone.id).unwrap();
    t.store().erase_blob(gone.id).unwrap(); // idempotent
    assert!(!path.exists(), "the file is unlinked too");
    fs::write(&path, &surviving).unwrap(); // ...but it remains elsewhere
    let err = t.store().read_blob(gone.id).unwrap_err();
    assert!(matches!(err, BlobError::Erased { .. }), "{err}");
    assert!(matches!(
        t.store().blob_info(gone.id),
        Err(BlobError::Erased { .. })
    ));
    assert_eq!(t.store().list_blobs().unwrap(), vec![keep.clone()]);

    // The wrapped data key is gone from the database: only the kept blob's row is left, so no
    // key the store holds can decrypt the surviving file.
    t.close();
    assert_eq!(wrapped_key_rows(&t.db_path()), 1);
    t.reopen();
    assert!(
        !path.exists(),
        "the surviving file is an orphan, removed at open"
    );
    assert_eq!(t.store().read_blob(keep.id).unwrap(), b"keep me");
}

#[test]
fn files_left_by_interrupted_writes_are_removed_at_open() {
    let mut t = small_chunks();
    let live = t.store().put_blob(b"live").unwrap();
    let blobs = t.path().join(hearth_store::BLOB_DIR);
    // A crash before the rename, and a crash after the rename but before the commit.
    let tmp = blobs.join("0123456789abcdef0123456789abcdef.tmp");
    let uncommitted = blobs.join("fedcba9876543210fedcba9876543210.blob");
    fs::write(&tmp, b"half a blob").unwrap();
    fs::copy(t.store().blob_path(live.id).unwrap(), &uncommitted).unwrap();
    let unrelated = blobs.join("README");
    fs::write(&unrelated, b"not ours").unwrap();

    t.reopen();
    assert!(!tmp.exists());
    assert!(!uncommitted.exists());
    assert!(
        unrelated.exists(),
        "files the store did not name are left alone"
    );
    assert_eq!(t.store().read_blob(live.id).unwrap(), b"live");
}

#[test]
fn an_unfinished_writer_leaves_nothing_behind() {
    let t = small_chunks();
    let mut w = t.store().blob_writer().unwrap();
    let id = w.id();
    w.write_all(&pattern(500, 8)).unwrap();
    drop(w);
    let left: Vec<_> = fs::read_dir(t.path().join(hearth_store::BLOB_DIR))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        t.store().read_blob(id),
        Err(BlobError::NotFound { .. })
    ));
}

#[test]
fn a_missing_file_and_an_unknown_id_are_told_apart() {
    let t = small_chunks();
    let info = t.store().put_blob(b"x").unwrap();
    fs::remove_file(t.store().blob_path(info.id).unwrap()).unwrap();
    assert!(matches!(
        t.store().read_blob(info.id),
        Err(BlobError::FileMissing { .. })
    ));
    let unknown: BlobId = "00000000000000000000000000000001".parse().unwrap();
    assert!(matches!(
        t.store().read_blob(unknown),
        Err(BlobError::NotFound { .. })
    ));
    "xyz".parse::<BlobId>().unwrap_err();
}

#[test]
fn a_tampered_key_row_is_an_integrity_error() {
    let mut t = small_chunks();
    let info = t.store().put_blob(b"secret").unwrap();
    t.close();
    {
        let db = redb::Database::open(t.db_path()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn
                .open_table(TableDefinition::<&[u8], &[u8]>::new("_hearth/blobs"))
                .unwrap();
            let mut row = table.get(&info.id.0[..]).unwrap().unwrap().value().to_vec();
            let last = row.len() - 1;
            row[last] ^= 1;
            table.insert(&info.id.0[..], row.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = t.reopen().read_blob(info.id).unwrap_err();
    assert!(matches!(err, BlobError::KeyIntegrity { .. }), "{err}");
}

#[test]
fn a_failing_source_is_reported_as_such_and_leaves_nothing() {
    struct Broken(usize);
    impl std::io::Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("upload connection reset"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let t = small_chunks();
    let err = t.store().put_blob_from(&mut Broken(1000)).unwrap_err();
    assert!(matches!(err, BlobError::Source { .. }), "{err}");
    let left: Vec<_> = fs::read_dir(t.path().join(hearth_store::BLOB_DIR))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(t.store().list_blobs().unwrap().is_empty());
}
