//! The TPM path, against real swtpm processes: sealing, locking on moved PCRs, recovery.

use hearth_store::{
    BlobError, Bytes, KeySource, RecoveryKey, Store, StoreError, StoreOptions, StoreState, Table,
    UnlockError,
};
use hearth_tpm::{PcrSelection, Tpm};
use hearth_tpm_testkit::Swtpm;

const NOTES: Table<str, Bytes> = Table::new("notes");

fn pcrs(text: &str) -> PcrSelection {
    text.parse().unwrap()
}

fn open_tpm(sw: &Swtpm) -> Tpm {
    Tpm::open(&sw.config()).unwrap()
}

/// A TPM-sealed store with one record and one blob; returns the recovery key and blob id.
fn tpm_store(sw: &Swtpm, dir: &std::path::Path) -> (RecoveryKey, hearth_store::BlobId) {
    let mut tpm = open_tpm(sw);
    let sel = pcrs("sha256:7,11");
    let (store, recovery) = Store::create(
        dir,
        KeySource::Tpm {
            tpm: &mut tpm,
            seal_pcrs: &sel,
        },
        &StoreOptions::default(),
    )
    .unwrap();
    store.put(&NOTES, "hello", &b"world".to_vec()).unwrap();
    let blob = store.put_blob(b"model weights").unwrap();
    (recovery, blob.id)
}

fn open(sw: &Swtpm, dir: &std::path::Path, sel: &str) -> Store {
    let sel = pcrs(sel);
    Store::open(
        dir,
        KeySource::Tpm {
            tpm: &mut open_tpm(sw),
            seal_pcrs: &sel,
        },
        &StoreOptions::default(),
    )
    .unwrap()
}

#[test]
fn a_tpm_sealed_store_reopens_after_a_reboot() {
    let mut sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, blob) = tpm_store(&sw, dir.path());
    let keyring = std::fs::read_to_string(dir.path().join(hearth_store::KEYRING_FILE)).unwrap();
    assert!(keyring.contains("\"protection\": \"tpm\""), "{keyring}");
    sw.restart().unwrap();
    let store = open(&sw, dir.path(), "sha256:7,11");
    assert_eq!(store.state(), StoreState::Open);
    assert_eq!(store.get(&NOTES, "hello").unwrap(), Some(b"world".to_vec()));
    assert_eq!(store.read_blob(blob).unwrap(), b"model weights");
}

#[test]
fn a_moved_pcr_locks_the_store_and_every_operation_names_it() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, blob) = tpm_store(&sw, dir.path());
    open_tpm(&sw).pcr_extend(11, b"an unknown kernel").unwrap();

    let store = open(&sw, dir.path(), "sha256:7,11");
    let StoreState::Locked { reason } = store.state() else {
        panic!("opened although PCR 11 moved");
    };
    assert_eq!(reason.changed_pcrs(), &[11]);
    let names_pcr = |text: String| assert!(text.contains("PCR 11 changed"), "{text}");
    let err = store.get(&NOTES, "hello").unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    names_pcr(err.to_string());
    names_pcr(store.put(&NOTES, "x", &vec![1]).unwrap_err().to_string());
    names_pcr(store.list(&NOTES).unwrap_err().to_string());
    names_pcr(store.read_blob(blob).unwrap_err().to_string());
    names_pcr(store.blob_writer().unwrap_err().to_string());
    names_pcr(store.list_blobs().unwrap_err().to_string());
    assert!(matches!(
        store.erase_blob(blob),
        Err(BlobError::Locked { .. })
    ));
}

#[test]
fn the_recovery_key_opens_a_locked_store_and_reseals_it_to_the_current_pcrs() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (recovery, blob) = tpm_store(&sw, dir.path());
    let written_down = recovery.to_display_string().to_string();
    drop(recovery);
    open_tpm(&sw)
        .pcr_extend(7, b"secure boot db update")
        .unwrap();

    let store = open(&sw, dir.path(), "sha256:7,11");
    assert!(matches!(store.state(), StoreState::Locked { .. }));

    // One typo: caught before anything is tried, naming the group.
    let mut typo: Vec<char> = written_down.chars().collect();
    typo[7] = if typo[7] == 'A' { 'B' } else { 'A' };
    let err = RecoveryKey::parse(&typo.into_iter().collect::<String>()).unwrap_err();
    assert!(err.to_string().contains("group 2"), "{err}");

    let sel = pcrs("sha256:7,11");
    let key = RecoveryKey::parse(&written_down).unwrap();
    store
        .unlock_with_recovery(
            &key,
            KeySource::Tpm {
                tpm: &mut open_tpm(&sw),
                seal_pcrs: &sel,
            },
        )
        .unwrap();
    assert_eq!(store.state(), StoreState::Open);
    assert_eq!(store.get(&NOTES, "hello").unwrap(), Some(b"world".to_vec()));
    assert_eq!(store.read_blob(blob).unwrap(), b"model weights");
    drop(store);

    // Re-sealed to the current PCRs: the TPM alone opens it now.
    let store = open(&sw, dir.path(), "sha256:7,11");
    assert_eq!(store.state(), StoreState::Open);
    assert_eq!(store.get(&NOTES, "hello").unwrap(), Some(b"world".to_vec()));
}

#[test]
fn a_wrong_recovery_key_leaves_the_store_locked() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm_store(&sw, dir.path());
    open_tpm(&sw).pcr_extend(11, b"x").unwrap();
    let store = open(&sw, dir.path(), "sha256:7,11");
    let sel = pcrs("sha256:7,11");
    let err = store
        .unlock_with_recovery(
            &RecoveryKey::generate().unwrap(),
            KeySource::Tpm {
                tpm: &mut open_tpm(&sw),
                seal_pcrs: &sel,
            },
        )
        .unwrap_err();
    assert!(matches!(err, UnlockError::Recover(_)), "{err}");
    assert!(matches!(store.state(), StoreState::Locked { .. }));
}

#[test]
fn a_changed_pcr_policy_in_the_config_reseals_on_open() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm_store(&sw, dir.path());
    // The operator drops PCR 11 from the policy; the next open re-seals to sha256:7 alone.
    drop(open(&sw, dir.path(), "sha256:7"));
    open_tpm(&sw).pcr_extend(11, b"kernel update").unwrap();
    let store = open(&sw, dir.path(), "sha256:7");
    assert_eq!(store.state(), StoreState::Open);
    assert_eq!(store.get(&NOTES, "hello").unwrap(), Some(b"world".to_vec()));
}

#[test]
fn a_tpm_store_is_not_opened_with_a_dev_key_file() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm_store(&sw, dir.path());
    let key = dir.path().join("dev-root.key");
    let err = Store::open(
        dir.path(),
        KeySource::DevKeyFile { path: &key },
        &StoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, hearth_store::OpenError::KeySourceMismatch { .. }),
        "{err}"
    );
}

#[test]
fn the_store_opens_on_the_tpm_owner_thread_as_hearthd_does() {
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm_store(&sw, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        let handle = hearth_tpm::TpmHandle::open(sw.config()).await.unwrap();
        let path = dir.path().to_owned();
        handle
            .call(move |tpm| {
                let sel = pcrs("sha256:7,11");
                Ok(Store::open(
                    &path,
                    KeySource::Tpm {
                        tpm,
                        seal_pcrs: &sel,
                    },
                    &StoreOptions::default(),
                ))
            })
            .await
            .unwrap()
            .unwrap()
    });
    assert_eq!(store.state(), StoreState::Open);
    // The store then moves freely between threads.
    let store = std::sync::Arc::new(store);
    let reader = std::sync::Arc::clone(&store);
    let got = std::thread::spawn(move || reader.get(&NOTES, "hello").unwrap())
        .join()
        .unwrap();
    assert_eq!(got, Some(b"world".to_vec()));
}
