//! The keyring file: how the root secret is kept at rest.
//!
//! ```json
//! {
//!   "format": "hearth-keyring/1",
//!   "store_id": "<32 hex: random, the HKDF salt of every purpose key>",
//!   "protection": "tpm",
//!   "sealed": { ...hearth-tpm-sealed/1... },
//!   "recovery": { "nonce": "<24 hex>", "wrapped": "<base64: AES-256-GCM of the root secret>" }
//! }
//! ```
//!
//! `protection` is `"tpm"` (with `sealed`) on the appliance, or `"dev-key-file"` (without) when
//! the root secret sits in a plain file (dev and tests only).
//! The recovery wrap is AES-256-GCM under HKDF-SHA256(recovery key, store id,
//! "hearth/recovery-wrap/v1") with the store id in the associated data.
//!
//! The file holds nothing secret in clear. It is not authenticated as a whole: a changed field
//! makes the TPM refuse (locked), the recovery wrap fail, or the derived keys differ; the store
//! checks a canary record so a keyring that does not belong to its database is refused.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use hearth_tpm::{Bank, PcrSelection, SealedBlob, Tpm, TpmError};
use ring::aead::{Aad, NONCE_LEN, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::recovery::RecoveryKey;
use crate::secret::{
    KEY_LEN, Purpose, PurposeKey, RandomError, RootSecret, aead_key, hkdf_sha256, random_bytes,
};

/// The format tag of keyring files.
pub const KEYRING_FORMAT: &str = "hearth-keyring/1";
/// Length of a store id.
pub const STORE_ID_LEN: usize = 16;

const RECOVERY_WRAP_LABEL: &[u8] = b"hearth/recovery-wrap/v1";

/// The key-hierarchy part of a daemon's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// PCRs the root secret is sealed to, as text of one bank (`"sha256:7,11"`, the default:
    /// the Secure Boot state and the unified kernel image).
    #[serde(with = "selection_text")]
    pub seal_pcrs: PcrSelection,
}

mod selection_text {
    use hearth_tpm::PcrSelection;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &PcrSelection, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PcrSelection, D::Error> {
        let text = String::deserialize(d)?;
        let sel: PcrSelection = text.parse().map_err(serde::de::Error::custom)?;
        if sel.single_bank().is_none() {
            return Err(serde::de::Error::custom(format!(
                "seal_pcrs {text:?} must name PCRs of exactly one bank"
            )));
        }
        Ok(sel)
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            seal_pcrs: default_seal_pcrs(),
        }
    }
}

/// `sha256:7,11`.
pub fn default_seal_pcrs() -> PcrSelection {
    // PCRs 7 and 11 exist in every PC-Client TPM: the constructor cannot refuse them.
    PcrSelection::new(Bank::Sha256, [7, 11]).expect("PCRs 7 and 11 are valid")
}

/// How the root secret is protected at rest (besides the recovery wrap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Sealed by the TPM to a PCR policy.
    Tpm { sealed: SealedBlob },
    /// In a plain file beside nothing: dev and test only, no protection at rest.
    DevKeyFile,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::Tpm { sealed } => write!(f, "TPM-sealed to {}", sealed.selection),
            Protection::DevKeyFile => f.write_str("dev key file"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryWrap {
    #[serde(with = "hex_bytes")]
    nonce: Vec<u8>,
    #[serde(with = "b64")]
    wrapped: Vec<u8>,
}

/// The keyring: store id, protected root secret, recovery-wrapped root secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KeyringFile", into = "KeyringFile")]
pub struct Keyring {
    format: String,
    store_id: Vec<u8>,
    protection: Protection,
    recovery: RecoveryWrap,
}

/// The file form. Flat rather than an internally tagged enum: serde buffers tagged enums, and
/// the buffered sealed blob's integer map keys then fail to parse.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: String,
    #[serde(with = "hex_bytes")]
    store_id: Vec<u8>,
    protection: ProtectionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<SealedBlob>,
    recovery: RecoveryWrap,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ProtectionKind {
    Tpm,
    DevKeyFile,
}

impl From<Keyring> for KeyringFile {
    fn from(k: Keyring) -> Self {
        let (protection, sealed) = match k.protection {
            Protection::Tpm { sealed } => (ProtectionKind::Tpm, Some(sealed)),
            Protection::DevKeyFile => (ProtectionKind::DevKeyFile, None),
        };
        KeyringFile {
            format: k.format,
            store_id: k.store_id,
            protection,
            sealed,
            recovery: k.recovery,
        }
    }
}

impl TryFrom<KeyringFile> for Keyring {
    type Error = String;

    fn try_from(f: KeyringFile) -> Result<Self, String> {
        if f.format != KEYRING_FORMAT {
            return Err(format!(
                "format is {:?}, expected {KEYRING_FORMAT:?}",
                f.format
            ));
        }
        if f.store_id.len() != STORE_ID_LEN {
            return Err(format!("store id is not {STORE_ID_LEN} bytes"));
        }
        let protection = match (f.protection, f.sealed) {
            (ProtectionKind::Tpm, Some(sealed)) => Protection::Tpm { sealed },
            (ProtectionKind::Tpm, None) => return Err("protection \"tpm\" needs \"sealed\"".into()),
            (ProtectionKind::DevKeyFile, None) => Protection::DevKeyFile,
            (ProtectionKind::DevKeyFile, Some(_)) => {
                return Err("protection \"dev-key-file\" takes no \"sealed\"".into());
            }
        };
        Ok(Keyring {
            format: f.format,
            store_id: f.store_id,
            protection,
            recovery: f.recovery,
        })
    }
}

/// A keyring just made, with the two secrets only its creator ever sees together.
#[derive(Debug)]
pub struct NewKeyring {
    pub keyring: Keyring,
    pub root: RootSecret,
    /// Show once, then drop.
    pub recovery_key: RecoveryKey,
}

/// What unsealing gave: the root secret, or the reason the TPM keeps it locked.
#[derive(Debug)]
pub enum Unsealed {
    Open(RootSecret),
    Locked(LockReason),
}

/// Why the TPM would not release the root secret. The recovery key opens the store regardless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockReason {
    /// These PCRs (of `selection`) differ from their values at sealing time.
    PcrsChanged {
        selection: PcrSelection,
        changed: Vec<u8>,
    },
    /// The TPM refused the sealed object itself: sealed by another TPM, or altered.
    SealedRootRejected { detail: String },
}

impl LockReason {
    /// The PCRs that moved, if that is the reason.
    pub fn changed_pcrs(&self) -> &[u8] {
        match self {
            LockReason::PcrsChanged { changed, .. } => changed,
            LockReason::SealedRootRejected { .. } => &[],
        }
    }
}

impl fmt::Display for LockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockReason::PcrsChanged { selection, changed } => {
                let list: Vec<String> = changed.iter().map(u8::to_string).collect();
                let noun = if changed.len() == 1 { "PCR" } else { "PCRs" };
                write!(
                    f,
                    "the TPM refused to unseal the root secret: {noun} {} changed since sealing \
                     (policy {selection}); the recovery key opens the store",
                    list.join(", ")
                )
            }
            LockReason::SealedRootRejected { detail } => write!(
                f,
                "the TPM refused the sealed root secret ({detail}); the recovery key opens the store"
            ),
        }
    }
}

/// Why a keyring could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("could not generate keys")]
    Random(#[source] RandomError),
    #[error("could not seal the root secret to {selection}")]
    Seal {
        selection: PcrSelection,
        #[source]
        source: TpmError,
    },
}

/// Why the TPM path could not decide between open and locked.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    #[error("the root secret is not TPM-sealed (the keyring uses a {protection})")]
    NotSealed { protection: String },
    #[error("the TPM could not unseal the root secret")]
    Tpm(#[source] TpmError),
    #[error("the TPM released {len} bytes, not a {KEY_LEN}-byte root secret")]
    BadLength { len: usize },
}

/// Why the recovery key did not open the keyring.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(
        "this recovery key does not open this store (or the keyring's recovery wrap was altered)"
    )]
    WrongKey,
    #[error("the keyring's recovery wrap is malformed: {reason}")]
    Malformed { reason: &'static str },
}

/// Why re-protecting the root secret failed.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error("could not seal the root secret to {selection}")]
    Seal {
        selection: PcrSelection,
        #[source]
        source: TpmError,
    },
}

/// Why a keyring file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no keyring at {path}")]
    NotFound { path: PathBuf },
    #[error("reading keyring {path} failed")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("keyring {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("writing keyring {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why the dev key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("reading dev key file {path} failed")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dev key file {path} does not hold a 64-hex-digit root secret")]
    Malformed { path: PathBuf },
    #[error("writing dev key file {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Keyring {
    /// A new root secret sealed by `tpm` to the current values of `selection`, and a new
    /// recovery key wrapping it.
    pub fn create_sealed(
        tpm: &mut Tpm,
        selection: &PcrSelection,
    ) -> Result<NewKeyring, CreateError> {
        let root = RootSecret::generate().map_err(CreateError::Random)?;
        let sealed = tpm
            .seal(root.expose(), selection)
            .map_err(|source| CreateError::Seal {
                selection: selection.clone(),
                source,
            })?;
        Keyring::assemble(root, Protection::Tpm { sealed })
    }

    /// A new root secret for the insecure dev key file (the caller writes it with
    /// [`write_dev_key_file`]), and a recovery key wrapping it.
    pub fn create_for_dev_key_file() -> Result<NewKeyring, CreateError> {
        let root = RootSecret::generate().map_err(CreateError::Random)?;
        Keyring::assemble(root, Protection::DevKeyFile)
    }

    fn assemble(root: RootSecret, protection: Protection) -> Result<NewKeyring, CreateError> {
        let mut store_id = vec![0u8; STORE_ID_LEN];
        random_bytes(&mut store_id).map_err(CreateError::Random)?;
        let recovery_key = RecoveryKey::generate().map_err(CreateError::Random)?;
        let recovery = wrap_root(&root, &recovery_key, &store_id).map_err(CreateError::Random)?;
        Ok(NewKeyring {
            keyring: Keyring {
                format: KEYRING_FORMAT.to_owned(),
                store_id,
                protection,
                recovery,
            },
            root,
            recovery_key,
        })
    }

    /// The store id: random, not secret; the HKDF salt of every purpose key.
    pub fn store_id(&self) -> &[u8] {
        &self.store_id
    }

    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// The key for `purpose` under this keyring's store id.
    pub fn derive(&self, root: &RootSecret, purpose: Purpose) -> PurposeKey {
        root.derive(&self.store_id, purpose)
    }

    /// Asks the TPM for the root secret. A PCR policy mismatch, or a sealed object the TPM
    /// refuses, is [`Unsealed::Locked`] with the reason; only failures to ask at all are errors.
    pub fn unseal(&self, tpm: &mut Tpm) -> Result<Unsealed, UnsealError> {
        let Protection::Tpm { sealed } = &self.protection else {
            return Err(UnsealError::NotSealed {
                protection: self.protection.to_string(),
            });
        };
        match tpm.unseal(sealed) {
            Ok(secret) => RootSecret::from_slice(secret.expose())
                .map(Unsealed::Open)
                .ok_or(UnsealError::BadLength {
                    len: secret.expose().len(),
                }),
            Err(TpmError::PolicyMismatch { changed }) => {
                Ok(Unsealed::Locked(LockReason::PcrsChanged {
                    selection: sealed.selection.clone(),
                    changed,
                }))
            }
            Err(TpmError::MalformedBlob { reason }) => {
                Ok(Unsealed::Locked(LockReason::SealedRootRejected {
                    detail: reason,
                }))
            }
            Err(e) => Err(UnsealError::Tpm(e)),
        }
    }

    /// Unwraps the root secret with the recovery key.
    pub fn recover(&self, key: &RecoveryKey) -> Result<RootSecret, RecoverError> {
        let nonce: [u8; NONCE_LEN] =
            self.recovery
                .nonce
                .as_slice()
                .try_into()
                .map_err(|_| RecoverError::Malformed {
                    reason: "nonce is not 12 bytes",
                })?;
        if self.recovery.wrapped.len() != KEY_LEN + 16 {
            return Err(RecoverError::Malformed {
                reason: "wrapped root secret is not 48 bytes",
            });
        }
        let kek = aead_key(&recovery_kek(key, &self.store_id));
        let mut buf = Zeroizing::new(self.recovery.wrapped.clone());
        let plain = kek
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(recovery_aad(&self.store_id)),
                &mut buf,
            )
            .map_err(|_| RecoverError::WrongKey)?;
        RootSecret::from_slice(plain).ok_or(RecoverError::Malformed {
            reason: "wrapped root secret has the wrong length",
        })
    }

    /// Seals `root` (which the caller obtained from this keyring) to the current values of
    /// `selection`, replacing the protection. Save the keyring afterwards.
    pub fn reseal(
        &mut self,
        tpm: &mut Tpm,
        root: &RootSecret,
        selection: &PcrSelection,
    ) -> Result<(), ResealError> {
        let sealed = tpm
            .seal(root.expose(), selection)
            .map_err(|source| ResealError::Seal {
                selection: selection.clone(),
                source,
            })?;
        self.protection = Protection::Tpm { sealed };
        Ok(())
    }

    /// Marks the root secret as kept in a dev key file (the caller writes it).
    pub fn use_dev_key_file(&mut self) {
        self.protection = Protection::DevKeyFile;
    }

    /// Parses keyring JSON (untrusted input: bounded by serde, fuzzed).
    pub fn from_json(bytes: &[u8]) -> Result<Keyring, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        // Strings, byte strings as text, and the sealed blob's maps: cannot fail to serialize.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads the keyring at `path`.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let bytes = fs::read(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                KeyringError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                KeyringError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Keyring::from_json(&bytes).map_err(|reason| KeyringError::Malformed {
            path: path.to_owned(),
            reason,
        })
    }

    /// Writes the keyring to `path` atomically and durably (temp file, fsync, rename, fsync
    /// directory): after a crash the old or the new keyring is there, whole.
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        let mut text = self.to_json();
        text.push('\n');
        write_atomic(path, text.as_bytes(), 0o644).map_err(|source| KeyringError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

fn recovery_kek(key: &RecoveryKey, store_id: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf_sha256(key.expose(), store_id, &[RECOVERY_WRAP_LABEL])
}

fn recovery_aad(store_id: &[u8]) -> Vec<u8> {
    [RECOVERY_WRAP_LABEL, store_id].concat()
}

fn wrap_root(
    root: &RootSecret,
    key: &RecoveryKey,
    store_id: &[u8],
) -> Result<RecoveryWrap, RandomError> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let kek = aead_key(&recovery_kek(key, store_id));
    let mut wrapped = root.expose().to_vec();
    let tag = kek
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(recovery_aad(store_id)),
            &mut wrapped,
        )
        .map_err(|_| RandomError)?;
    wrapped.extend_from_slice(tag.as_ref());
    Ok(RecoveryWrap {
        nonce: nonce.to_vec(),
        wrapped,
    })
}

/// Writes the root secret to `path` in clear (hex, mode 0600), atomically. **Dev and tests
/// only**: anyone who reads the file reads every key of the store. Logged as a warning.
pub fn write_dev_key_file(path: &Path, root: &RootSecret) -> Result<(), DevKeyError> {
    tracing::warn!(
        component = "keys",
        path = %path.display(),
        "writing a dev key file: the root secret is stored in clear (dev and test only)"
    );
    let mut text = Zeroizing::new(hex::encode(root.expose()));
    text.push('\n');
    write_atomic(path, text.as_bytes(), 0o600).map_err(|source| DevKeyError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Reads a root secret written by [`write_dev_key_file`]. Logged as a warning.
pub fn read_dev_key_file(path: &Path) -> Result<RootSecret, DevKeyError> {
    tracing::warn!(
        component = "keys",
        path = %path.display(),
        "using a dev key file: the root secret is stored in clear (dev and test only)"
    );
    let text = Zeroizing::new(fs::read(path).map_err(|source| DevKeyError::Read {
        path: path.to_owned(),
        source,
    })?);
    let malformed = || DevKeyError::Malformed {
        path: path.to_owned(),
    };
    let trimmed = text.trim_ascii();
    if trimmed.len() != 2 * KEY_LEN {
        return Err(malformed());
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(trimmed, bytes.as_mut()).map_err(|_| malformed())?;
    RootSecret::from_slice(bytes.as_ref()).ok_or_else(malformed)
}

/// Temp file beside `path`, write, fsync, rename over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_key_unwraps_the_root_secret() {
        let new = Keyring::create_for_dev_key_file().unwrap();
        let root = new.keyring.recover(&new.recovery_key).unwrap();
        assert_eq!(root.expose(), new.root.expose());
    }

    #[test]
    fn another_recovery_key_is_refused() {
        let new = Keyring::create_for_dev_key_file().unwrap();
        let other = RecoveryKey::generate().unwrap();
        assert!(matches!(
            new.keyring.recover(&other),
            Err(RecoverError::WrongKey)
        ));
    }

    #[test]
    fn recovery_wrap_is_bound_to_the_store_id() {
        let new = Keyring::create_for_dev_key_file().unwrap();
        let mut moved = new.keyring.clone();
        moved.store_id[0] ^= 1;
        assert!(matches!(
            moved.recover(&new.recovery_key),
            Err(RecoverError::WrongKey)
        ));
        let mut flipped = new.keyring.clone();
        flipped.recovery.wrapped[3] ^= 1;
        flipped.recover(&new.recovery_key).unwrap_err();
    }

    #[test]
    fn keyring_json_round_trips_and_holds_no_secret() {
        let new = Keyring::create_for_dev_key_file().unwrap();
        let json = new.keyring.to_json();
        assert_eq!(Keyring::from_json(json.as_bytes()).unwrap(), new.keyring);
        assert!(!json.contains(&hex::encode(new.root.expose())));
        assert!(json.contains("\"protection\": \"dev-key-file\""), "{json}");
    }

    #[test]
    fn malformed_keyrings_are_refused_with_a_reason() {
        let good = Keyring::create_for_dev_key_file()
            .unwrap()
            .keyring
            .to_json();
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["format"] = "hearth-keyring/9".into();
        assert!(
            Keyring::from_json(v.to_string().as_bytes())
                .unwrap_err()
                .contains("hearth-keyring/9")
        );
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["colour"] = "red".into();
        assert!(
            Keyring::from_json(v.to_string().as_bytes())
                .unwrap_err()
                .contains("colour")
        );
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["store_id"] = "abcd".into();
        Keyring::from_json(v.to_string().as_bytes()).unwrap_err();
        for junk in [&b""[..], b"{}", b"[1]", b"\xff"] {
            Keyring::from_json(junk).unwrap_err();
        }
    }

    #[test]
    fn save_and_load_are_atomic_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let err = Keyring::load(&path).unwrap_err();
        assert!(matches!(err, KeyringError::NotFound { .. }), "{err}");
        let new = Keyring::create_for_dev_key_file().unwrap();
        new.keyring.save(&path).unwrap();
        new.keyring.save(&path).unwrap();
        assert_eq!(Keyring::load(&path).unwrap(), new.keyring);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn dev_key_file_round_trips_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let root = RootSecret::generate().unwrap();
        write_dev_key_file(&path, &root).unwrap();
        assert_eq!(read_dev_key_file(&path).unwrap().expose(), root.expose());
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(&path, "abcd\n").unwrap();
        assert!(matches!(
            read_dev_key_file(&path),
            Err(DevKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn lock_reason_names_the_pcrs() {
        let one = LockReason::PcrsChanged {
            selection: default_seal_pcrs(),
            changed: vec![11],
        };
        assert!(
            one.to_string().contains("PCR 11 changed since sealing"),
            "{one}"
        );
        assert!(one.to_string().contains("sha256:7,11"), "{one}");
        let two = LockReason::PcrsChanged {
            selection: default_seal_pcrs(),
            changed: vec![7, 11],
        };
        assert!(two.to_string().contains("PCRs 7, 11 changed"), "{two}");
        assert_eq!(two.changed_pcrs(), &[7, 11]);
    }

    #[test]
    fn config_defaults_to_pcrs_7_and_11_and_rejects_unknown_fields() {
        let c: KeysConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.seal_pcrs.to_string(), "sha256:7,11");
        serde_json::from_str::<KeysConfig>(r#"{"pcrs": 1}"#).unwrap_err();
        let c: KeysConfig = serde_json::from_str(r#"{"seal_pcrs": "sha256:0,7"}"#).unwrap();
        assert_eq!(c.seal_pcrs.to_string(), "sha256:0,7");
        let err =
            serde_json::from_str::<KeysConfig>(r#"{"seal_pcrs": "sha1:7+sha256:7"}"#).unwrap_err();
        assert!(err.to_string().contains("exactly one bank"), "{err}");
    }
}
