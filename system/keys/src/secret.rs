//! The root secret, the purpose keys derived from it, and the randomness they come from.

use std::fmt;

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Length in bytes of the root secret and of every key this crate derives or generates.
pub const KEY_LEN: usize = 32;

/// The operating system's random number generator failed; nothing secret can be made.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Fills `out` from the system CSPRNG (getrandom).
pub(crate) fn random_bytes(out: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(out).map_err(|_| RandomError)
}

/// A fresh random 32-byte key in a zeroizing buffer.
pub(crate) fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, RandomError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    random_bytes(key.as_mut())?;
    Ok(key)
}

/// HKDF-SHA256 (RFC 5869) of `ikm` under `salt`, with `info` as the label, into a 32-byte key.
pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    struct Len;
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            KEY_LEN
        }
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let filled = hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(info, Len)
        .and_then(|okm| okm.fill(out.as_mut()));
    // HKDF-SHA256 fails only for outputs over 255 * 32 bytes or a buffer of another length than
    // requested; both are the constant KEY_LEN here.
    filled.expect("HKDF-SHA256 of 32 bytes cannot fail");
    out
}

/// An AES-256-GCM key schedule for 32 key bytes.
pub(crate) fn aead_key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    // AES-256-GCM takes exactly 32-byte keys, which the array type guarantees.
    let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key is valid");
    LessSafeKey::new(unbound)
}

/// The appliance's root secret: 32 random bytes, sealed by the TPM and wrapped by the recovery
/// key, never stored in clear (except by the insecure dev key file). Every other key is derived
/// from it ([`RootSecret::derive`]).
///
/// Zeroed on drop; `Debug` prints nothing of it; it has no `Display`, `Clone` or serde.
pub struct RootSecret(Zeroizing<[u8; KEY_LEN]>);

impl RootSecret {
    /// A fresh random root secret.
    pub fn generate() -> Result<RootSecret, RandomError> {
        random_key().map(RootSecret)
    }

    /// Takes exactly [`KEY_LEN`] bytes (from an unsealed TPM object or an unwrapped recovery
    /// blob); anything else is `None`.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<RootSecret> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        let secret = RootSecret(Zeroizing::new(array));
        // The stack copy in `array` is a plain array; clear it too.
        let mut array = array;
        zeroize::Zeroize::zeroize(&mut array);
        Some(secret)
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Derives the key for `purpose` with HKDF-SHA256: `salt` is the store's id (so two stores
    /// never share keys even under one root), `info` the purpose label.
    pub fn derive(&self, salt: &[u8], purpose: Purpose) -> PurposeKey {
        PurposeKey {
            purpose,
            bytes: hkdf_sha256(self.0.as_ref(), salt, &[purpose.label().as_bytes()]),
        }
    }
}

impl fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootSecret([redacted])")
    }
}

/// What a derived key is for: its HKDF label. Two purposes never share a key.
///
/// Labels are `hearth/<use>/v<n>`; a new use, or a new format of an old one, gets a new label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Purpose(&'static str);

impl Purpose {
    /// Values of the encrypted key-value store.
    pub const STORE: Purpose = Purpose("hearth/store/v1");
    /// Wrapping the per-blob data keys of the blob store.
    pub const BLOB: Purpose = Purpose("hearth/blob/v1");
    /// The MAC key of the audit log's hash chain.
    pub const AUDIT_MAC: Purpose = Purpose("hearth/audit-mac/v1");
    /// Console session secrets.
    pub const SESSION: Purpose = Purpose("hearth/session/v1");

    /// A purpose not listed above; `label` follows the `hearth/<use>/v<n>` convention.
    pub const fn new(label: &'static str) -> Purpose {
        Purpose(label)
    }

    pub fn label(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A 32-byte key derived from the root secret for one [`Purpose`]. Zeroed on drop; `Debug`
/// shows only the purpose.
pub struct PurposeKey {
    purpose: Purpose,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl PurposeKey {
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The key bytes, for uses outside this crate (a MAC key, a session secret).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for PurposeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PurposeKey({}, [redacted])", self.purpose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(byte: u8) -> RootSecret {
        RootSecret::from_slice(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn derivation_is_deterministic_per_root_salt_and_purpose() {
        let a = root(1).derive(b"store-a", Purpose::STORE);
        assert_eq!(
            a.expose(),
            root(1).derive(b"store-a", Purpose::STORE).expose()
        );
        for other in [
            root(2).derive(b"store-a", Purpose::STORE),
            root(1).derive(b"store-b", Purpose::STORE),
            root(1).derive(b"store-a", Purpose::BLOB),
            root(1).derive(b"store-a", Purpose::new("hearth/store/v2")),
        ] {
            assert_ne!(a.expose(), other.expose(), "{other:?}");
        }
    }

    #[test]
    fn derivation_matches_rfc5869_hkdf_sha256() {
        // RFC 5869 test case 1, truncated to our 32-byte output.
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = hkdf_sha256(&ikm, &salt, &[&info]);
        assert_eq!(
            hex::encode(okm.as_ref()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn generated_roots_differ() {
        let a = RootSecret::generate().unwrap();
        let b = RootSecret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn debug_output_shows_no_key_bytes() {
        let r = root(0xab);
        let k = r.derive(b"s", Purpose::SESSION);
        for shown in [format!("{r:?}"), format!("{k:?}")] {
            assert!(shown.contains("redacted"), "{shown}");
            assert!(!shown.to_lowercase().contains("ab, ab"), "{shown}");
            assert!(!shown.contains(&hex::encode(k.expose())), "{shown}");
        }
        assert!(format!("{k:?}").contains("hearth/session/v1"));
    }

    #[test]
    fn root_secret_takes_exactly_32_bytes() {
        assert!(RootSecret::from_slice(&[0; 31]).is_none());
        assert!(RootSecret::from_slice(&[0; 33]).is_none());
        assert!(RootSecret::from_slice(&[0; 32]).is_some());
    }
}
