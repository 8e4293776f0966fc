//! hearth-keys against real swtpm processes: one TPM per test, own state, own ports.

#![allow(clippy::unwrap_used)]

use hearth_keys::{
    Keyring, LockReason, Protection, Purpose, RecoverError, RecoveryKey, UnsealError, Unsealed,
    default_seal_pcrs,
};
use hearth_tpm::Tpm;
use hearth_tpm_testkit::Swtpm;

fn open(sw: &Swtpm) -> Tpm {
    Tpm::open(&sw.config()).unwrap()
}

fn same_root(a: &hearth_keys::RootSecret, b: &hearth_keys::RootSecret, k: &Keyring) -> bool {
    // Roots are not comparable from outside the crate; their derived keys are.
    k.derive(a, Purpose::STORE).expose() == k.derive(b, Purpose::STORE).expose()
}

mod sealing {
    use super::*;

    #[test]
    fn sealed_root_unseals_to_the_same_secret_after_a_reboot() {
        let mut sw = Swtpm::start().unwrap();
        let new = Keyring::create_sealed(&mut open(&sw), &default_seal_pcrs()).unwrap();
        assert!(matches!(new.keyring.protection(), Protection::Tpm { .. }));
        let Unsealed::Open(root) = new.keyring.unseal(&mut open(&sw)).unwrap() else {
            panic!("locked right after sealing");
        };
        assert!(same_root(&root, &new.root, &new.keyring));

        sw.restart().unwrap();
        let Unsealed::Open(root) = new.keyring.unseal(&mut open(&sw)).unwrap() else {
            panic!("locked after a reboot with unchanged measurements");
        };
        assert!(same_root(&root, &new.root, &new.keyring));
    }

    #[test]
    fn extending_a_sealed_pcr_locks_the_keyring_naming_that_pcr() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let new = Keyring::create_sealed(&mut tpm, &default_seal_pcrs()).unwrap();
        tpm.pcr_extend(11, b"another kernel").unwrap();
        let Unsealed::Locked(reason) = new.keyring.unseal(&mut tpm).unwrap() else {
            panic!("unsealed after PCR 11 moved");
        };
        assert_eq!(reason.changed_pcrs(), &[11]);
        let text = reason.to_string();
        assert!(text.contains("PCR 11 changed since sealing"), "{text}");
        assert!(text.contains("recovery key"), "{text}");

        tpm.pcr_extend(7, b"secure boot off").unwrap();
        let Unsealed::Locked(reason) = new.keyring.unseal(&mut tpm).unwrap() else {
            panic!("unsealed after PCRs 7 and 11 moved");
        };
        assert_eq!(reason.changed_pcrs(), &[7, 11]);
    }

    #[test]
    fn extending_a_pcr_outside_the_policy_changes_nothing() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let new = Keyring::create_sealed(&mut tpm, &default_seal_pcrs()).unwrap();
        tpm.pcr_extend(16, b"debug").unwrap();
        assert!(matches!(
            new.keyring.unseal(&mut tpm).unwrap(),
            Unsealed::Open(_)
        ));
    }

    #[test]
    fn a_keyring_sealed_by_another_tpm_is_locked_not_an_error() {
        let sw = Swtpm::start().unwrap();
        let new = Keyring::create_sealed(&mut open(&sw), &default_seal_pcrs()).unwrap();
        // A TPM with its own seeds (manufactured afresh), like a replaced motherboard.
        let state = tempfile::tempdir().unwrap();
        let other = Swtpm::start_in(state.path()).unwrap();
        let Unsealed::Locked(reason) = new.keyring.unseal(&mut open(&other)).unwrap() else {
            panic!("another TPM unsealed our root");
        };
        assert!(
            matches!(reason, LockReason::SealedRootRejected { .. }),
            "{reason}"
        );
    }

    #[test]
    fn a_tpm_that_stops_answering_is_an_error_not_a_lock() {
        let mut sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let new = Keyring::create_sealed(&mut tpm, &default_seal_pcrs()).unwrap();
        sw.stop();
        let err = new.keyring.unseal(&mut tpm).unwrap_err();
        assert!(matches!(err, UnsealError::Tpm(_)), "{err}");
    }

    #[test]
    fn a_dev_keyring_is_not_unsealed_by_a_tpm() {
        let sw = Swtpm::start().unwrap();
        let new = Keyring::create_for_dev_key_file().unwrap();
        let err = new.keyring.unseal(&mut open(&sw)).unwrap_err();
        assert!(matches!(err, UnsealError::NotSealed { .. }), "{err}");
    }
}

mod recovery {
    use super::*;

    #[test]
    fn recovery_key_opens_a_locked_keyring_and_reseals_it_to_the_current_pcrs() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = open(&sw);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let new = Keyring::create_sealed(&mut tpm, &default_seal_pcrs()).unwrap();
        new.keyring.save(&path).unwrap();
        // What the operator wrote down, typed back in lower case.
        let typed = new.recovery_key.to_display_string().to_lowercase();
        drop(new.recovery_key);

        tpm.pcr_extend(7, b"new secure boot db").unwrap();
        let mut keyring = Keyring::load(&path).unwrap();
        assert!(matches!(
            keyring.unseal(&mut tpm).unwrap(),
            Unsealed::Locked(_)
        ));

        let key = RecoveryKey::parse(&typed).unwrap();
        let root = keyring.recover(&key).unwrap();
        assert!(same_root(&root, &new.root, &keyring));
        keyring
            .reseal(&mut tpm, &root, &default_seal_pcrs())
            .unwrap();
        keyring.save(&path).unwrap();

        let Unsealed::Open(again) = Keyring::load(&path).unwrap().unseal(&mut tpm).unwrap() else {
            panic!("still locked after re-sealing to the current PCRs");
        };
        assert!(same_root(&again, &new.root, &keyring));
        // The recovery key keeps working after a re-seal.
        keyring.recover(&key).unwrap();
    }

    #[test]
    fn a_well_formed_but_wrong_recovery_key_is_refused() {
        let new = Keyring::create_for_dev_key_file().unwrap();
        let wrong = RecoveryKey::generate().unwrap();
        let wrong = RecoveryKey::parse(&wrong.to_display_string()).unwrap();
        assert!(matches!(
            new.keyring.recover(&wrong),
            Err(RecoverError::WrongKey)
        ));
    }
}
