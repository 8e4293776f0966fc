//! 32-byte values (SHA-256 hashes, HMAC-SHA256 tags) and their hex form.

use std::fmt;

/// A SHA-256 hash or an HMAC-SHA256 tag. Neither is secret: `Debug` and `Display` print hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex digits, found {len} characters{}", if *.bad_char { " with a non-hex one" } else { "" })]
pub struct DigestHexError {
    pub len: usize,
    pub bad_char: bool,
}

impl Digest {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// 64 hex digits, either case (for values people type, such as an expected head).
    pub fn from_hex(text: &str) -> Result<Digest, DigestHexError> {
        let error = |bad_char| DigestHexError {
            len: text.chars().count(),
            bad_char,
        };
        if text.len() != 64 {
            return Err(error(!text.bytes().all(|b| b.is_ascii_hexdigit())));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| error(true))?;
        Ok(Digest(out))
    }

    /// 64 lowercase hex digits only: the one spelling records use.
    pub(crate) fn from_canonical_hex(text: &str) -> Option<Digest> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Digest::from_hex(text).ok()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_other_lengths_and_digits() {
        let d = Digest([0xa5; 32]);
        assert_eq!(Digest::from_hex(&d.to_hex()), Ok(d));
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), Ok(d));
        assert_eq!(Digest::from_canonical_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_canonical_hex(&d.to_hex().to_uppercase()), None);
        Digest::from_hex(&"a".repeat(63)).unwrap_err();
        Digest::from_hex(&"g".repeat(64)).unwrap_err();
        Digest::from_hex(&"é".repeat(32)).unwrap_err();
    }
}
