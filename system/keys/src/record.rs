//! AEAD records: one value of the key-value store, encrypted and bound to where it lives.
//!
//! Envelope (format version 1), [`RECORD_OVERHEAD`] = 29 bytes more than the plaintext:
//!
//! ```text
//! offset  len  field
//! 0       1    format version (1)
//! 1       12   nonce = epoch (8 bytes, random per cipher instance) || counter (4 bytes, big endian)
//! 13      n    AES-256-GCM ciphertext
//! 13+n    16   GCM tag
//! ```
//!
//! The associated data is `"hearth-record" || version || len(table) || table || len(key) || key`
//! (lengths as 8-byte big-endian), so an envelope copied to another key or table, or relabelled
//! with another version, fails authentication like any flipped bit.
//!
//! Nonces never repeat without a persisted counter: each [`RecordCipher`] draws a fresh random
//! 64-bit epoch and counts up from zero; when the 32-bit counter runs out it draws a new epoch.
//! Two epochs collide with probability about `E² / 2^65` after `E` epochs (opens), i.e. never in
//! practice (2^-25 after a million opens).

use std::fmt;
use std::sync::{Mutex, PoisonError};

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce, Tag};

use crate::secret::{PurposeKey, RandomError, aead_key, random_bytes};

/// The record envelope format this crate writes.
pub const RECORD_FORMAT_VERSION: u8 = 1;
/// Bytes an envelope adds to its plaintext: version, nonce, tag.
pub const RECORD_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
const AAD_LABEL: &[u8] = b"hearth-record";

/// Why a record could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The stored envelope did not authenticate: it was altered, truncated, moved to another key
    /// or table, or written under another key. Nothing of its plaintext is returned.
    #[error("record {table}/{key} failed its integrity check: {reason}")]
    Integrity {
        table: String,
        key: String,
        reason: &'static str,
    },

    /// The plaintext is larger than AES-GCM can take in one message.
    #[error("record {table}/{key} is too large to encrypt ({len} bytes)")]
    TooLarge {
        table: String,
        key: String,
        len: usize,
    },

    /// A new nonce epoch was needed and the system RNG failed.
    #[error("could not draw a new nonce epoch")]
    Random(#[source] RandomError),
}

fn integrity(table: &str, key: &[u8], reason: &'static str) -> RecordError {
    RecordError::Integrity {
        table: table.to_owned(),
        key: describe_key(key),
        reason,
    }
}

/// Shows a record key in errors and logs: as text when it is printable UTF-8, else as hex.
/// (Keys are not secret; the store documents that keys must not hold personal data.)
pub fn describe_key(key: &[u8]) -> String {
    const MAX: usize = 64;
    match std::str::from_utf8(key) {
        Ok(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
            if text.chars().count() > MAX {
                let cut: String = text.chars().take(MAX).collect();
                format!("{cut}…")
            } else {
                text.to_owned()
            }
        }
        _ if key.len() > MAX => format!("0x{}…", hex::encode(&key[..MAX])),
        _ => format!("0x{}", hex::encode(key)),
    }
}

struct NonceSeq {
    epoch: [u8; 8],
    next: u32,
    exhausted: bool,
}

/// Seals and opens record envelopes under one purpose key (normally [`crate::Purpose::STORE`]).
/// `Send + Sync`; one instance per open store.
pub struct RecordCipher {
    key: LessSafeKey,
    nonces: Mutex<NonceSeq>,
}

impl fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCipher").finish_non_exhaustive()
    }
}

impl RecordCipher {
    /// A cipher with a fresh random nonce epoch.
    pub fn new(key: &PurposeKey) -> Result<RecordCipher, RandomError> {
        let mut epoch = [0u8; 8];
        random_bytes(&mut epoch)?;
        Ok(RecordCipher {
            key: aead_key(key.expose()),
            nonces: Mutex::new(NonceSeq {
                epoch,
                next: 0,
                exhausted: false,
            }),
        })
    }

    fn next_nonce(&self) -> Result<[u8; NONCE_LEN], RandomError> {
        // A panic while holding this lock cannot leave the sequence half-updated: every update
        // below is a plain store, so a poisoned lock is still consistent.
        let mut seq = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        if seq.exhausted {
            random_bytes(&mut seq.epoch)?;
            seq.next = 0;
            seq.exhausted = false;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&seq.epoch);
        nonce[8..].copy_from_slice(&seq.next.to_be_bytes());
        match seq.next.checked_add(1) {
            Some(n) => seq.next = n,
            None => seq.exhausted = true,
        }
        Ok(nonce)
    }

    /// Encrypts `plaintext` as the value of `key` in `table`.
    pub fn seal(&self, table: &str, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RecordError> {
        let nonce = self.next_nonce().map_err(RecordError::Random)?;
        let mut envelope = Vec::with_capacity(RECORD_OVERHEAD + plaintext.len());
        envelope.push(RECORD_FORMAT_VERSION);
        envelope.extend_from_slice(&nonce);
        envelope.extend_from_slice(plaintext);
        let tag = with_aad(RECORD_FORMAT_VERSION, table, key, |aad| {
            self.key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aad,
                &mut envelope[HEADER_LEN..],
            )
        })
        .map_err(|_| RecordError::TooLarge {
            table: table.to_owned(),
            key: describe_key(key),
            len: plaintext.len(),
        })?;
        envelope.extend_from_slice(tag.as_ref());
        Ok(envelope)
    }

    /// Authenticates and decrypts the envelope stored at `table`/`key`, in place; returns the
    /// plaintext part of `envelope`. On failure nothing of the plaintext is returned (ring zeroes
    /// what it decrypted).
    pub fn open_in_place<'a>(
        &self,
        table: &str,
        key: &[u8],
        envelope: &'a mut [u8],
    ) -> Result<&'a mut [u8], RecordError> {
        let (version, nonce) = self.check_envelope(table, key, envelope)?;
        with_aad(version, table, key, |aad| {
            self.key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    aad,
                    &mut envelope[HEADER_LEN..],
                )
                .map(|plain| &mut plain[..])
        })
        .map_err(|_| integrity(table, key, "authentication failed"))
    }

    /// Like [`RecordCipher::open_in_place`], into a new buffer of exactly the plaintext's size:
    /// the ciphertext is copied once and decrypted where it lands, checked against the tag read
    /// from `envelope`. This is the store's read path: one allocation and one copy per value,
    /// as a plain database read that returns an owned value makes.
    pub fn open(&self, table: &str, key: &[u8], envelope: &[u8]) -> Result<Vec<u8>, RecordError> {
        let (version, nonce) = self.check_envelope(table, key, envelope)?;
        let (ciphertext, tag) = envelope[HEADER_LEN..].split_at(envelope.len() - RECORD_OVERHEAD);
        let tag = Tag::try_from(tag).map_err(|_| integrity(table, key, "malformed tag"))?;
        let mut buf = ciphertext.to_vec();
        with_aad(version, table, key, |aad| {
            self.key
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    aad,
                    tag,
                    &mut buf,
                    0..,
                )
                .map(|_| ())
        })
        .map_err(|_| integrity(table, key, "authentication failed"))?;
        Ok(buf)
    }

    fn check_envelope(
        &self,
        table: &str,
        key: &[u8],
        envelope: &[u8],
    ) -> Result<(u8, [u8; NONCE_LEN]), RecordError> {
        if envelope.len() < RECORD_OVERHEAD {
            return Err(integrity(table, key, "shorter than an envelope"));
        }
        let version = envelope[0];
        if version != RECORD_FORMAT_VERSION {
            return Err(integrity(table, key, "unknown format version"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&envelope[1..HEADER_LEN]);
        Ok((version, nonce))
    }
}

/// Fixed part of the associated data: label, version and the two length prefixes.
const AAD_FIXED: usize = AAD_LABEL.len() + 1 + 8 + 8;
/// Associated data up to this size is built on the stack; longer (long table names or keys) on
/// the heap.
const AAD_INLINE: usize = 192;

/// Runs `f` with the associated data of an envelope (see the module documentation), built in
/// one buffer on the stack unless table and key are long.
#[inline]
fn with_aad<R>(version: u8, table: &str, key: &[u8], f: impl FnOnce(Aad<&[u8]>) -> R) -> R {
    let len = AAD_FIXED + table.len() + key.len();
    let mut inline = [0u8; AAD_INLINE];
    let mut heap = Vec::new();
    let buf = if len <= AAD_INLINE {
        &mut inline[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    let (label, rest) = buf.split_at_mut(AAD_LABEL.len());
    label.copy_from_slice(AAD_LABEL);
    let (v, rest) = rest.split_at_mut(1);
    v[0] = version;
    let (table_len, rest) = rest.split_at_mut(8);
    table_len.copy_from_slice(&(table.len() as u64).to_be_bytes());
    let (table_bytes, rest) = rest.split_at_mut(table.len());
    table_bytes.copy_from_slice(table.as_bytes());
    let (key_len, key_bytes) = rest.split_at_mut(8);
    key_len.copy_from_slice(&(key.len() as u64).to_be_bytes());
    key_bytes.copy_from_slice(key);
    f(Aad::from(&*buf))
}

/// A parsed envelope header, for inspection and fuzzing: checks the framing only (nothing is
/// authenticated until [`RecordCipher::open_in_place`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub version: u8,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext_len: usize,
}

impl EnvelopeHeader {
    /// Parses the framing of `envelope`; `None` when it cannot be a version-1 envelope.
    pub fn parse(envelope: &[u8]) -> Option<EnvelopeHeader> {
        if envelope.len() < RECORD_OVERHEAD || envelope[0] != RECORD_FORMAT_VERSION {
            return None;
        }
        let nonce = envelope[1..HEADER_LEN].try_into().ok()?;
        Some(EnvelopeHeader {
            version: envelope[0],
            nonce,
            ciphertext_len: envelope.len() - RECORD_OVERHEAD,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Purpose, RootSecret, aead_key};

    fn cipher() -> RecordCipher {
        let root = RootSecret::generate().unwrap();
        RecordCipher::new(&root.derive(b"store", Purpose::STORE)).unwrap()
    }

    #[test]
    fn sealed_records_open_to_their_plaintext() {
        let c = cipher();
        for len in [0usize, 1, 15, 16, 17, 1024, 70_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7).to_le_bytes()[0]).collect();
            let env = c.seal("users", b"alice", &plain).unwrap();
            assert_eq!(env.len(), plain.len() + RECORD_OVERHEAD);
            assert_eq!(c.open("users", b"alice", &env).unwrap(), plain);
        }
    }

    #[test]
    fn every_single_byte_flip_is_an_integrity_error_naming_table_and_key() {
        let c = cipher();
        let plain = b"the quick brown fox jumps over the lazy dog".to_vec();
        let env = c.seal("users", b"alice", &plain).unwrap();
        for i in 0..env.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = env.clone();
                bad[i] ^= flip;
                let err = c.open("users", b"alice", &bad).unwrap_err();
                let RecordError::Integrity { table, key, .. } = &err else {
                    panic!("byte {i}: {err}");
                };
                assert_eq!((table.as_str(), key.as_str()), ("users", "alice"));
                let text = err.to_string();
                assert!(text.contains("users/alice"), "{text}");
                assert!(!text.contains("fox"), "{text}");
            }
        }
    }

    #[test]
    fn truncated_or_extended_envelopes_are_rejected() {
        let c = cipher();
        let env = c.seal("t", b"k", b"value").unwrap();
        for cut in 0..env.len() {
            let Err(_) = c.open("t", b"k", &env[..cut]) else {
                panic!("cut at {cut}");
            };
        }
        let mut longer = env.clone();
        longer.push(0);
        c.open("t", b"k", &longer).unwrap_err();
    }

    #[test]
    fn envelope_moved_to_another_key_or_table_is_rejected() {
        let c = cipher();
        let env = c.seal("users", b"alice", b"admin").unwrap();
        c.open("users", b"bob", &env).unwrap_err();
        c.open("roles", b"alice", &env).unwrap_err();
        // Length prefixes keep (table, key) boundaries unambiguous.
        c.open("user", b"salice", &env).unwrap_err();
    }

    #[test]
    fn long_tables_and_keys_are_bound_like_short_ones() {
        let c = cipher();
        let long_key = vec![b'k'; 500];
        let env = c.seal("a-table", &long_key, b"v").unwrap();
        assert_eq!(c.open("a-table", &long_key, &env).unwrap(), b"v");
        let mut other = long_key.clone();
        other[499] = b'j';
        c.open("a-table", &other, &env).unwrap_err();
        c.open("b-table", &long_key, &env).unwrap_err();
        let mut buf = env.clone();
        assert_eq!(
            c.open_in_place("a-table", &long_key, &mut buf).unwrap(),
            b"v"
        );
    }

    #[test]
    fn envelopes_follow_the_documented_format() {
        // Checked against ring alone, with the associated data spelled out as the module
        // documentation gives it: what this code seals, ring opens, and the other way round.
        let root = RootSecret::from_slice(&[7; 32]).unwrap();
        let key = root.derive(b"s", Purpose::STORE);
        let c = RecordCipher::new(&key).unwrap();
        let ring_key = aead_key(key.expose());
        // Short (associated data on the stack) and long (on the heap).
        for (table, k) in [("users", b"alice".to_vec()), ("a-table", vec![b'k'; 500])] {
            let mut aad = b"hearth-record".to_vec();
            aad.push(RECORD_FORMAT_VERSION);
            aad.extend_from_slice(&(table.len() as u64).to_be_bytes());
            aad.extend_from_slice(table.as_bytes());
            aad.extend_from_slice(&(k.len() as u64).to_be_bytes());
            aad.extend_from_slice(&k);

            let env = c.seal(table, &k, b"value").unwrap();
            assert_eq!(env[0], RECORD_FORMAT_VERSION);
            let nonce: [u8; NONCE_LEN] = env[1..HEADER_LEN].try_into().unwrap();
            let mut body = env[HEADER_LEN..].to_vec();
            let plain = ring_key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    &mut body,
                )
                .unwrap();
            assert_eq!(plain, b"value");

            let nonce = [9u8; NONCE_LEN];
            let mut env = vec![RECORD_FORMAT_VERSION];
            env.extend_from_slice(&nonce);
            env.extend_from_slice(b"other value");
            let tag = ring_key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    &mut env[HEADER_LEN..],
                )
                .unwrap();
            env.extend_from_slice(tag.as_ref());
            let opened = c.open(table, &k, &env).unwrap();
            assert_eq!(opened, b"other value");
            let mut buf = env.clone();
            assert_eq!(
                c.open_in_place(table, &k, &mut buf).unwrap(),
                b"other value"
            );
        }
    }

    #[test]
    fn another_store_key_cannot_open_a_record() {
        let env = cipher().seal("t", b"k", b"value").unwrap();
        cipher().open("t", b"k", &env).unwrap_err();
    }

    #[test]
    fn nonces_are_unique_within_and_across_cipher_instances() {
        let root = RootSecret::generate().unwrap();
        let key = root.derive(b"s", Purpose::STORE);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            // Same key, as after a restart: a new epoch each time.
            let c = RecordCipher::new(&key).unwrap();
            for _ in 0..1000 {
                let env = c.seal("t", b"k", b"").unwrap();
                assert!(seen.insert(env[1..13].to_vec()), "nonce repeated");
            }
        }
    }

    #[test]
    fn counter_exhaustion_draws_a_new_epoch() {
        let c = cipher();
        let first_epoch = {
            let mut seq = c.nonces.lock().unwrap();
            seq.next = u32::MAX;
            seq.epoch
        };
        let last = c.seal("t", b"k", b"").unwrap();
        assert_eq!(&last[1..9], &first_epoch);
        assert_eq!(&last[9..13], &u32::MAX.to_be_bytes());
        let after = c.seal("t", b"k", b"").unwrap();
        assert_ne!(&after[1..9], &first_epoch);
        assert_eq!(&after[9..13], &0u32.to_be_bytes());
        assert_eq!(c.open("t", b"k", &after).unwrap(), b"");
    }

    #[test]
    fn keys_are_described_readably() {
        assert_eq!(describe_key(b"alice"), "alice");
        assert_eq!(describe_key(&7u64.to_be_bytes()), "0x0000000000000007");
        assert_eq!(describe_key(b""), "0x");
        assert_eq!(describe_key(b"a\nb"), "0x610a62");
        assert!(describe_key(&[0xff; 100]).ends_with('…'));
    }

    #[test]
    fn envelope_header_parses_framing_only() {
        let env = cipher().seal("t", b"k", b"abc").unwrap();
        let h = EnvelopeHeader::parse(&env).unwrap();
        assert_eq!((h.version, h.ciphertext_len), (1, 3));
        assert!(EnvelopeHeader::parse(&env[..10]).is_none());
    }
}
