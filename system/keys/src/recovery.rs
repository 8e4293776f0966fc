//! The recovery key: 256 random bits, shown to the operator once, that wrap the root secret.
//!
//! # Format (`hearth recovery key v1`)
//!
//! 65 symbols of Crockford base32 (`0-9 A-Z` without `I L O U`), shown as 13 groups of 5
//! separated by dashes:
//!
//! ```text
//! 7K3QF-0ZB9M-...-R2D8W      (13 groups)
//!  ^^^^ four data symbols (20 bits), then one check symbol
//! ```
//!
//! - Data: the 256 key bits, then 4 bits of `SHA-256("hearth-recovery-key/v1" || key)` (a
//!   whole-key check), big-endian, 5 bits per symbol: 52 data symbols, 4 per group.
//! - Each group's 5th symbol `c` makes `2·s0 + 3·s1 + 4·s2 + 5·s3 + c = i` hold in GF(32)
//!   (polynomial x^5 + x^2 + 1), where `i` is the group's index (0-12). Because the weights are
//!   distinct and non-zero, every single wrong symbol and every transposition of two symbols
//!   within a group is caught, and named by its group; because `i` differs per group, swapped or
//!   repeated groups are caught too. Other errors slip a group check with probability 1/32,
//!   the whole-key check with 1/16, and are then refused by the AEAD that the key opens.
//! - Reading is forgiving where it cannot be ambiguous: case is ignored, spaces and dashes are
//!   ignored, `O` reads as `0` and `I`/`L` as `1` (Crockford).

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::secret::{KEY_LEN, RandomError, random_key};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Groups shown to the operator.
pub const RECOVERY_GROUPS: usize = 13;
const DATA_PER_GROUP: usize = 4;
const SYMBOLS_PER_GROUP: usize = DATA_PER_GROUP + 1;
/// Symbols in a recovery key, check symbols included (separators excluded).
pub const RECOVERY_SYMBOLS: usize = RECOVERY_GROUPS * SYMBOLS_PER_GROUP;
const WEIGHTS: [u8; DATA_PER_GROUP] = [2, 3, 4, 5];
const CHECK_LABEL: &[u8] = b"hearth-recovery-key/v1";

/// Why a typed recovery key was refused. Groups are numbered from 1, as the operator sees them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryKeyError {
    #[error("character {position} ({ch:?}) is not part of a recovery key")]
    BadCharacter { position: usize, ch: char },

    #[error("a recovery key has {RECOVERY_SYMBOLS} characters (13 groups of 5), not {symbols}")]
    WrongLength { symbols: usize },

    #[error("{}", describe_groups(groups))]
    Typo { groups: Vec<usize> },

    #[error("the recovery key's checksum does not match; check every group")]
    Checksum,
}

fn describe_groups(groups: &[usize]) -> String {
    match groups {
        [one] => format!("group {one} of the recovery key has a typo"),
        many => {
            let list: Vec<String> = many.iter().map(usize::to_string).collect();
            format!("groups {} of the recovery key have typos", list.join(", "))
        }
    }
}

/// A 256-bit recovery key. Zeroed on drop; `Debug` prints nothing of it; there is deliberately no
/// `Display`: showing it is an explicit [`RecoveryKey::to_display_string`].
pub struct RecoveryKey(Zeroizing<[u8; KEY_LEN]>);

impl RecoveryKey {
    pub fn generate() -> Result<RecoveryKey, RandomError> {
        random_key().map(RecoveryKey)
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as the operator writes it down: 13 dash-separated groups of 5 symbols.
    pub fn to_display_string(&self) -> Zeroizing<String> {
        let data = data_symbols(&self.0);
        let mut out = Zeroizing::new(String::with_capacity(RECOVERY_SYMBOLS + RECOVERY_GROUPS));
        for (i, group) in data.chunks(DATA_PER_GROUP).enumerate() {
            if i > 0 {
                out.push('-');
            }
            for &s in group {
                out.push(char::from(ALPHABET[usize::from(s)]));
            }
            out.push(char::from(ALPHABET[usize::from(check_symbol(i, group))]));
        }
        out
    }

    /// Reads a typed key, naming the groups that hold typos.
    pub fn parse(text: &str) -> Result<RecoveryKey, RecoveryKeyError> {
        // Bounded: symbols past the 65th are counted, not kept.
        let mut symbols = Zeroizing::new(Vec::with_capacity(RECOVERY_SYMBOLS));
        let mut count = 0;
        for (position, ch) in text.chars().enumerate() {
            if ch.is_whitespace() || ch == '-' {
                continue;
            }
            let value = symbol_value(ch).ok_or(RecoveryKeyError::BadCharacter {
                position: position + 1,
                ch,
            })?;
            count += 1;
            if symbols.len() < RECOVERY_SYMBOLS {
                symbols.push(value);
            }
        }
        if count != RECOVERY_SYMBOLS {
            return Err(RecoveryKeyError::WrongLength { symbols: count });
        }
        let mut data = Zeroizing::new(Vec::with_capacity(RECOVERY_GROUPS * DATA_PER_GROUP));
        let mut typos = Vec::new();
        for (i, group) in symbols.chunks(SYMBOLS_PER_GROUP).enumerate() {
            let (body, check) = group.split_at(DATA_PER_GROUP);
            if check_symbol(i, body) != check[0] {
                typos.push(i + 1);
            }
            data.extend_from_slice(body);
        }
        if !typos.is_empty() {
            return Err(RecoveryKeyError::Typo { groups: typos });
        }
        let bits = Bits::from_symbols(&data);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&bits.bytes[..KEY_LEN]);
        if bits.bytes[KEY_LEN] >> 4 != whole_key_check(&key) {
            return Err(RecoveryKeyError::Checksum);
        }
        Ok(RecoveryKey(key))
    }
}

impl FromStr for RecoveryKey {
    type Err = RecoveryKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecoveryKey::parse(s)
    }
}

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryKey([redacted])")
    }
}

fn symbol_value(ch: char) -> Option<u8> {
    let ch = match ch.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    let byte = u8::try_from(ch).ok()?;
    ALPHABET
        .iter()
        .position(|&a| a == byte)
        .and_then(|p| u8::try_from(p).ok())
}

fn whole_key_check(key: &[u8; KEY_LEN]) -> u8 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(CHECK_LABEL);
    ctx.update(key);
    ctx.finish().as_ref()[0] >> 4
}

/// 256 key bits then the 4-bit whole-key check: 33 bytes, the last half-used.
struct Bits {
    bytes: Zeroizing<[u8; KEY_LEN + 1]>,
}

impl Bits {
    fn get(&self, bit: usize) -> u8 {
        (self.bytes[bit / 8] >> (7 - bit % 8)) & 1
    }

    fn from_symbols(symbols: &[u8]) -> Bits {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN + 1]);
        for (i, &s) in symbols.iter().enumerate() {
            for b in 0..5 {
                let bit = i * 5 + b;
                if (s >> (4 - b)) & 1 == 1 && bit < bytes.len() * 8 {
                    bytes[bit / 8] |= 1 << (7 - bit % 8);
                }
            }
        }
        Bits { bytes }
    }
}

/// The 52 data symbols of `key` (5 bits each, big-endian; the last carries the check nibble).
fn data_symbols(key: &[u8; KEY_LEN]) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN + 1]);
    bytes[..KEY_LEN].copy_from_slice(key);
    bytes[KEY_LEN] = whole_key_check(key) << 4;
    let bits = Bits { bytes };
    let mut out = Zeroizing::new(Vec::with_capacity(RECOVERY_GROUPS * DATA_PER_GROUP));
    for i in 0..RECOVERY_GROUPS * DATA_PER_GROUP {
        let mut s = 0u8;
        for b in 0..5 {
            s = (s << 1) | bits.get(i * 5 + b);
        }
        out.push(s);
    }
    out
}

/// Multiplication in GF(32) modulo x^5 + x^2 + 1.
fn gf32_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    for _ in 0..5 {
        if b & 1 == 1 {
            product ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a & 0x20 != 0 {
            a ^= 0x25;
        }
    }
    product & 0x1f
}

/// The check symbol of group `index` with data symbols `body`.
fn check_symbol(index: usize, body: &[u8]) -> u8 {
    let mut sum = (index & 0x1f).to_le_bytes()[0];
    for (w, s) in WEIGHTS.iter().zip(body) {
        sum ^= gf32_mul(*w, *s);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (RecoveryKey, String) {
        let key = RecoveryKey::generate().unwrap();
        let text = key.to_display_string().to_string();
        (key, text)
    }

    fn symbols(text: &str) -> Vec<char> {
        text.chars().filter(|c| *c != '-').collect()
    }

    fn with_groups(chars: &[char]) -> String {
        chars
            .chunks(5)
            .map(|g| g.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }

    #[test]
    fn shows_thirteen_groups_of_five_and_reads_back() {
        for _ in 0..50 {
            let (key, text) = sample();
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(groups.len(), 13, "{text}");
            assert!(groups.iter().all(|g| g.len() == 5), "{text}");
            assert!(
                text.chars()
                    .all(|c| c == '-' || ALPHABET.contains(&u8::try_from(c).unwrap()))
            );
            let back = RecoveryKey::parse(&text).unwrap();
            assert_eq!(back.expose(), key.expose());
        }
    }

    #[test]
    fn reading_ignores_case_spaces_and_confusable_letters() {
        let (key, text) = sample();
        let sloppy: String = text
            .replace('-', " ")
            .to_lowercase()
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(RecoveryKey::parse(&sloppy).unwrap().expose(), key.expose());
        let squashed: String = symbols(&text).into_iter().collect();
        assert_eq!(
            RecoveryKey::parse(&format!("  {squashed}\n"))
                .unwrap()
                .expose(),
            key.expose()
        );
    }

    #[test]
    fn every_single_symbol_typo_is_caught_and_names_its_group() {
        let (_, text) = sample();
        let chars = symbols(&text);
        for pos in 0..chars.len() {
            for &replacement in ALPHABET {
                let replacement = char::from(replacement);
                if replacement == chars[pos] {
                    continue;
                }
                let mut typo = chars.clone();
                typo[pos] = replacement;
                let err = RecoveryKey::parse(&with_groups(&typo)).unwrap_err();
                assert_eq!(
                    err,
                    RecoveryKeyError::Typo {
                        groups: vec![pos / 5 + 1]
                    },
                    "position {pos}"
                );
            }
        }
    }

    #[test]
    fn every_transposition_within_a_group_is_caught() {
        for _ in 0..20 {
            let (_, text) = sample();
            let chars = symbols(&text);
            for group in 0..13 {
                for a in 0..5 {
                    for b in a + 1..5 {
                        let (i, j) = (group * 5 + a, group * 5 + b);
                        if chars[i] == chars[j] {
                            continue;
                        }
                        let mut swapped = chars.clone();
                        swapped.swap(i, j);
                        assert!(
                            RecoveryKey::parse(&with_groups(&swapped)).is_err(),
                            "swap {i} {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn swapped_or_repeated_groups_are_caught() {
        let (_, text) = sample();
        let groups: Vec<&str> = text.split('-').collect();
        let mut swapped = groups.clone();
        swapped.swap(3, 9);
        let err = RecoveryKey::parse(&swapped.join("-")).unwrap_err();
        assert_eq!(
            err,
            RecoveryKeyError::Typo {
                groups: vec![4, 10]
            }
        );
        let mut repeated = groups.clone();
        repeated[5] = groups[4];
        RecoveryKey::parse(&repeated.join("-")).unwrap_err();
    }

    #[test]
    fn missing_or_extra_symbols_are_a_length_error() {
        let (_, text) = sample();
        let err = RecoveryKey::parse(&text[1..]).unwrap_err();
        assert_eq!(err, RecoveryKeyError::WrongLength { symbols: 64 });
        let err = RecoveryKey::parse(&format!("{text}0")).unwrap_err();
        assert_eq!(err, RecoveryKeyError::WrongLength { symbols: 66 });
    }

    #[test]
    fn characters_outside_the_alphabet_are_named() {
        let (_, text) = sample();
        let bad = format!("{}U{}", &text[..2], &text[3..]);
        assert_eq!(
            RecoveryKey::parse(&bad).unwrap_err(),
            RecoveryKeyError::BadCharacter {
                position: 3,
                ch: 'U'
            }
        );
        assert!(matches!(
            RecoveryKey::parse("é").unwrap_err(),
            RecoveryKeyError::BadCharacter { .. }
        ));
    }

    #[test]
    fn group_checks_alone_do_not_make_a_key_valid() {
        // Data symbols changed with group checks recomputed: only the whole-key check (or, when
        // that collides, the AEAD) can tell. Find a change the whole-key check catches.
        let (key, _) = sample();
        let mut data = data_symbols(key.expose());
        let mut caught = 0;
        for v in 0..32u8 {
            data[0] = v;
            let text = with_groups(
                &data
                    .chunks(4)
                    .enumerate()
                    .flat_map(|(i, g)| {
                        let mut g = g.to_vec();
                        g.push(check_symbol(i, &g));
                        g
                    })
                    .map(|s| char::from(ALPHABET[usize::from(s)]))
                    .collect::<Vec<_>>(),
            );
            if matches!(RecoveryKey::parse(&text), Err(RecoveryKeyError::Checksum)) {
                caught += 1;
            }
        }
        assert!(caught > 20, "whole-key check caught only {caught} of 31");
    }

    #[test]
    fn debug_is_redacted() {
        let (key, text) = sample();
        let shown = format!("{key:?}");
        assert_eq!(shown, "RecoveryKey([redacted])");
        assert!(!shown.contains(&text[..5]));
    }

    #[test]
    fn gf32_weights_are_distinct_units() {
        // Every weight times every non-zero difference is non-zero: the code's guarantee.
        for w in WEIGHTS.iter().chain(&[1]) {
            for d in 1..32 {
                assert_ne!(gf32_mul(*w, d), 0);
            }
        }
        assert_eq!(gf32_mul(1, 17), 17);
        assert_eq!(gf32_mul(2, 16), 0x05); // x * x^4 = x^5 = x^2 + 1
    }
}
