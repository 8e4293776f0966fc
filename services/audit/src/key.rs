//! The audit MAC key and the MAC over a record's hash.

use std::fmt;

use ring::hmac;
use zeroize::Zeroizing;

use crate::digest::Digest;

/// Length in bytes of an [`AuditKey`].
pub const KEY_LEN: usize = 32;

/// The 32-byte HMAC-SHA256 key that MACs every record's hash.
///
/// hearthd derives it from the TPM-sealed root secret with HKDF (`hearth-keys`'
/// `Purpose::AUDIT_MAC`) and hands the bytes over with [`AuditKey::from_bytes`]. Zeroed on drop;
/// `Debug` prints nothing of it; it has no `Display`, `Clone` or serde.
///
/// ring's HMAC key schedule is built per MAC and dropped at once (ring does not zeroize it); only
/// this wrapper holds the key for long.
pub struct AuditKey(Zeroizing<[u8; KEY_LEN]>);

impl AuditKey {
    /// Copies the key bytes into a zeroizing buffer.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> AuditKey {
        AuditKey(Zeroizing::new(*bytes))
    }

    /// Takes exactly [`KEY_LEN`] bytes; anything else is `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<AuditKey> {
        let array: &[u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(AuditKey::from_bytes(array))
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.0.as_ref())
    }

    /// HMAC-SHA256 of the 32 hash bytes under this key.
    pub fn mac(&self, hash: &Digest) -> Digest {
        let tag = hmac::sign(&self.hmac_key(), hash.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Digest(out)
    }

    /// Whether `mac` is the MAC of `hash` under this key, compared in constant time.
    pub fn verify(&self, hash: &Digest, mac: &Digest) -> bool {
        hmac::verify(&self.hmac_key(), hash.as_bytes(), mac.as_bytes()).is_ok()
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = AuditKey::from_bytes(&[0xab; KEY_LEN]);
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn mac_is_hmac_sha256_of_the_hash_bytes() {
        // Against ring computed independently, and sensitive to both key and message.
        let key = AuditKey::from_bytes(&[1; KEY_LEN]);
        let hash = Digest([2; 32]);
        let mac = key.mac(&hash);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]), &[2; 32]);
        assert_eq!(mac.as_bytes().as_slice(), expected.as_ref());
        assert!(key.verify(&hash, &mac));
        assert!(!AuditKey::from_bytes(&[3; KEY_LEN]).verify(&hash, &mac));
        assert!(!key.verify(&Digest([4; 32]), &mac));
    }

    #[test]
    fn from_slice_takes_exactly_32_bytes() {
        assert!(AuditKey::from_slice(&[0; 31]).is_none());
        assert!(AuditKey::from_slice(&[0; 33]).is_none());
        assert!(AuditKey::from_slice(&[0; 32]).is_some());
    }
}
