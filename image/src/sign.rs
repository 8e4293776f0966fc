//! Signing the release reference: Ed25519 (ring) over the exact bytes of reference.json.
//!
//! A release key is a PKCS#8 file given to the builder. When none is configured a development
//! key is generated once (kept next to the build output) and everything it signs says so.

use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the signing key {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the development key {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an Ed25519 PKCS#8 key")]
    BadKey { path: String },
    #[error("cannot generate a key")]
    Generate,
}

/// A signing key and whether it is a generated development key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub dev: bool,
}

impl SigningKey {
    /// The release key in `path` (PKCS#8 v1 or v2).
    pub fn load(path: &Path) -> Result<SigningKey, SignError> {
        let bytes = std::fs::read(path).map_err(|source| SignError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes).map_err(|_| SignError::BadKey {
                path: path.display().to_string(),
            })?;
        Ok(SigningKey { pair, dev: false })
    }

    /// The development key in `path`, generated there first if missing.
    pub fn dev(path: &Path) -> Result<SigningKey, SignError> {
        if !path.exists() {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| SignError::Generate)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| SignError::Write {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            std::fs::write(path, doc.as_ref()).map_err(|source| SignError::Write {
                path: path.display().to_string(),
                source,
            })?;
        }
        let mut key = SigningKey::load(path)?;
        key.dev = true;
        Ok(key)
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_is_made_once_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/dev.pk8");
        let a = SigningKey::dev(&path).unwrap();
        let b = SigningKey::dev(&path).unwrap();
        assert!(a.dev);
        assert_eq!(
            a.public_key(),
            b.public_key(),
            "the same key the second time"
        );
        let sig = a.sign(b"reference");
        assert_eq!(sig, b.sign(b"reference"), "Ed25519 is deterministic");
        assert!(verify(&a.public_key(), b"reference", &sig));
        assert!(!verify(&a.public_key(), b"reference!", &sig));
        let loaded = SigningKey::load(&path).unwrap();
        assert!(!loaded.dev);
        std::fs::write(dir.path().join("bad"), b"nope").unwrap();
        assert!(matches!(
            SigningKey::load(&dir.path().join("bad")),
            Err(SignError::BadKey { .. })
        ));
    }
}
