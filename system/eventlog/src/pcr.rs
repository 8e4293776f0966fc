//! PCR banks, selections and values, with the text forms the CLI and config files use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A PCR bank name, index or list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PcrError(pub String);

/// Number of PCRs in a PC Client TPM bank (TCG PC Client Platform TPM Profile).
pub const PCR_COUNT: u8 = 24;

/// A PCR bank, named by its hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bank {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    #[serde(rename = "sm3_256")]
    Sm3_256,
}

impl Bank {
    pub const ALL: [Bank; 5] = [
        Bank::Sha1,
        Bank::Sha256,
        Bank::Sha384,
        Bank::Sha512,
        Bank::Sm3_256,
    ];

    /// Digest size in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Bank::Sha1 => 20,
            Bank::Sha256 => 32,
            Bank::Sha384 => 48,
            Bank::Sha512 => 64,
            Bank::Sm3_256 => 32,
        }
    }

    /// The TPM_ALG_ID of the bank's hash.
    pub fn alg_id(self) -> u16 {
        match self {
            Bank::Sha1 => 0x0004,
            Bank::Sha256 => 0x000B,
            Bank::Sha384 => 0x000C,
            Bank::Sha512 => 0x000D,
            Bank::Sm3_256 => 0x0012,
        }
    }

    pub fn from_alg_id(id: u16) -> Option<Bank> {
        Bank::ALL.into_iter().find(|b| b.alg_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha1 => "sha1",
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
            Bank::Sha512 => "sha512",
            Bank::Sm3_256 => "sm3_256",
        }
    }

    /// Hash `data` with this bank's algorithm.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Bank::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Bank::Sha256 => &ring::digest::SHA256,
            Bank::Sha384 => &ring::digest::SHA384,
            Bank::Sha512 => &ring::digest::SHA512,
            Bank::Sm3_256 => {
                use sm3::Digest as _;
                return sm3::Sm3::digest(data).to_vec();
            }
        };
        ring::digest::digest(alg, data).as_ref().to_vec()
    }

    /// The value a PCR of this bank takes when `digest` is extended into `old`.
    pub fn extend(self, old: &[u8], digest: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(old.len() + digest.len());
        buf.extend_from_slice(old);
        buf.extend_from_slice(digest);
        self.hash(&buf)
    }
}

impl fmt::Display for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bank {
    type Err = PcrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bank::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                PcrError(format!(
                    "unknown PCR bank {s:?} (expected sha1, sha256, sha384, sha512 or sm3_256)"
                ))
            })
    }
}

/// A set of PCRs in one or more banks.
///
/// Text form (as tpm2-tools writes it): `sha256:0,1,7+sha1:0-7`; a bare list such as `7,11` or
/// `0-15` means the sha256 bank.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    into = "BTreeMap<Bank, BTreeSet<u8>>",
    try_from = "BTreeMap<Bank, BTreeSet<u8>>"
)]
pub struct PcrSelection {
    banks: BTreeMap<Bank, BTreeSet<u8>>,
}

impl From<PcrSelection> for BTreeMap<Bank, BTreeSet<u8>> {
    fn from(sel: PcrSelection) -> Self {
        sel.banks
    }
}

/// Deserialization checks every index, as parsing does.
impl TryFrom<BTreeMap<Bank, BTreeSet<u8>>> for PcrSelection {
    type Error = PcrError;

    fn try_from(banks: BTreeMap<Bank, BTreeSet<u8>>) -> Result<Self, PcrError> {
        let mut sel = PcrSelection::default();
        for (bank, pcrs) in banks {
            sel.add(bank, pcrs)?;
        }
        Ok(sel)
    }
}

impl PcrSelection {
    /// Selects `pcrs` of `bank`. Fails on a PCR index of 24 or more.
    pub fn new(bank: Bank, pcrs: impl IntoIterator<Item = u8>) -> Result<Self, PcrError> {
        let mut sel = PcrSelection::default();
        sel.add(bank, pcrs)?;
        Ok(sel)
    }

    /// All 24 PCRs of `bank`.
    pub fn all(bank: Bank) -> Self {
        let mut banks = BTreeMap::new();
        banks.insert(bank, (0..PCR_COUNT).collect());
        PcrSelection { banks }
    }

    pub fn add(&mut self, bank: Bank, pcrs: impl IntoIterator<Item = u8>) -> Result<(), PcrError> {
        let set = self.banks.entry(bank).or_default();
        for pcr in pcrs {
            if pcr >= PCR_COUNT {
                return Err(PcrError(format!(
                    "PCR {pcr} does not exist (PCRs are numbered 0 to {})",
                    PCR_COUNT - 1
                )));
            }
            set.insert(pcr);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.banks.values().all(BTreeSet::is_empty)
    }

    /// Banks in ascending algorithm order with their PCRs in ascending order, which is also the
    /// order in which a TPM concatenates PCR values for a policy or quote digest of this selection.
    pub fn iter(&self) -> impl Iterator<Item = (Bank, &BTreeSet<u8>)> {
        self.banks
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(b, p)| (*b, p))
    }

    pub fn banks(&self) -> impl Iterator<Item = Bank> + '_ {
        self.iter().map(|(b, _)| b)
    }

    /// The only bank of a single-bank selection.
    pub fn single_bank(&self) -> Option<(Bank, &BTreeSet<u8>)> {
        let mut it = self.iter();
        match (it.next(), it.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// The TPML_PCR_SELECTION for this selection, marshalled as the TPM does (banks in
    /// ascending algorithm order, 3-byte bitmaps).
    pub fn marshal(&self) -> Vec<u8> {
        let banks: Vec<_> = self.iter().collect();
        let mut out = Vec::with_capacity(4 + banks.len() * 6);
        out.extend_from_slice(&u32::try_from(banks.len()).unwrap_or(0).to_be_bytes());
        for (bank, pcrs) in banks {
            out.extend_from_slice(&bank.alg_id().to_be_bytes());
            out.push(3);
            let mut map = [0u8; 3];
            for &p in pcrs {
                map[usize::from(p / 8)] |= 1 << (p % 8);
            }
            out.extend_from_slice(&map);
        }
        out
    }
}

impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bank, pcrs) in self.iter() {
            if !first {
                f.write_str("+")?;
            }
            first = false;
            write!(f, "{bank}:")?;
            let list: Vec<String> = pcrs.iter().map(u8::to_string).collect();
            f.write_str(&list.join(","))?;
        }
        Ok(())
    }
}

impl FromStr for PcrSelection {
    type Err = PcrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut sel = PcrSelection::default();
        for part in s.split('+') {
            let (bank, list) = match part.split_once(':') {
                Some((bank, list)) => (bank.parse()?, list),
                None => (Bank::Sha256, part),
            };
            sel.add(bank, parse_pcr_list(list)?)?;
        }
        if sel.is_empty() {
            return Err(PcrError(format!("empty PCR selection {s:?}")));
        }
        Ok(sel)
    }
}

/// Parses `0,1,7`, `0-7`, `0-7,11` or `all` into PCR indices.
fn parse_pcr_list(list: &str) -> Result<Vec<u8>, PcrError> {
    let bad = |item: &str| {
        PcrError(format!(
            "bad PCR list item {item:?} (expected numbers 0-23 or ranges like 0-7)"
        ))
    };
    if list.trim().eq_ignore_ascii_case("all") {
        return Ok((0..PCR_COUNT).collect());
    }
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim) {
        match item.split_once('-') {
            Some((a, b)) => {
                let a: u8 = a.trim().parse().map_err(|_| bad(item))?;
                let b: u8 = b.trim().parse().map_err(|_| bad(item))?;
                if a > b || b >= PCR_COUNT {
                    return Err(bad(item));
                }
                out.extend(a..=b);
            }
            None => out.push(item.parse().map_err(|_| bad(item))?),
        }
    }
    Ok(out)
}

/// Bytes shown as lowercase hex in JSON.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s)
            .map(HexBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// PCR values by bank and index, as read from a TPM.
///
/// JSON form: `{"sha256": {"0": "hex", "7": "hex"}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    into = "BTreeMap<Bank, BTreeMap<u8, HexBytes>>",
    try_from = "BTreeMap<Bank, BTreeMap<u8, HexBytes>>"
)]
pub struct PcrValues {
    banks: BTreeMap<Bank, BTreeMap<u8, HexBytes>>,
}

impl From<PcrValues> for BTreeMap<Bank, BTreeMap<u8, HexBytes>> {
    fn from(values: PcrValues) -> Self {
        values.banks
    }
}

/// Deserialization checks every index and digest length.
impl TryFrom<BTreeMap<Bank, BTreeMap<u8, HexBytes>>> for PcrValues {
    type Error = PcrError;

    fn try_from(banks: BTreeMap<Bank, BTreeMap<u8, HexBytes>>) -> Result<Self, PcrError> {
        for (bank, values) in &banks {
            for (pcr, value) in values {
                if *pcr >= PCR_COUNT {
                    return Err(PcrError(format!("PCR {pcr} does not exist")));
                }
                if value.0.len() != bank.digest_len() {
                    return Err(PcrError(format!(
                        "{bank}:{pcr} is {} bytes, a {bank} digest is {}",
                        value.0.len(),
                        bank.digest_len()
                    )));
                }
            }
        }
        Ok(PcrValues { banks })
    }
}

impl PcrValues {
    pub fn insert(&mut self, bank: Bank, pcr: u8, value: Vec<u8>) {
        self.banks
            .entry(bank)
            .or_default()
            .insert(pcr, HexBytes(value));
    }

    pub fn get(&self, bank: Bank, pcr: u8) -> Option<&[u8]> {
        self.banks
            .get(&bank)
            .and_then(|m| m.get(&pcr))
            .map(|v| v.0.as_slice())
    }

    pub fn bank(&self, bank: Bank) -> impl Iterator<Item = (u8, &[u8])> {
        self.banks
            .get(&bank)
            .into_iter()
            .flat_map(|m| m.iter().map(|(p, v)| (*p, v.0.as_slice())))
    }

    pub fn banks(&self) -> impl Iterator<Item = Bank> + '_ {
        self.banks.keys().copied()
    }

    /// The selection these values cover.
    pub fn selection(&self) -> PcrSelection {
        PcrSelection {
            banks: self
                .banks
                .iter()
                .map(|(b, m)| (*b, m.keys().copied().collect()))
                .collect(),
        }
    }

    /// The values of `selection` concatenated in TPM order, or the first missing (bank, PCR).
    pub fn concat(&self, selection: &PcrSelection) -> Result<Vec<u8>, (Bank, u8)> {
        let mut out = Vec::new();
        for (bank, pcrs) in selection.iter() {
            for &pcr in pcrs {
                out.extend_from_slice(self.get(bank, pcr).ok_or((bank, pcr))?);
            }
        }
        Ok(out)
    }

    /// The PCR digest a TPM puts in a quote or PolicyPCR for `selection`: `hash` over the
    /// concatenated values.
    pub fn digest(&self, selection: &PcrSelection, hash: Bank) -> Result<Vec<u8>, (Bank, u8)> {
        Ok(hash.hash(&self.concat(selection)?))
    }
}

/// The policy digest of `TPM2_PolicyPCR(selection, pcr_digest)` in a fresh sha256 session
/// (TPM 2.0 Part 3, 23.7): `H(0…0 ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ pcrDigest)`.
///
/// Computing it here rather than in a trial session saves two TPM round-trips per seal and lets
/// callers seal to values the PCRs will have later (e.g. a release's reference values).
pub fn policy_pcr_digest(selection: &PcrSelection, pcr_digest: &[u8]) -> Vec<u8> {
    const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
    let mut buf = vec![0u8; 32];
    buf.extend_from_slice(&TPM_CC_POLICY_PCR.to_be_bytes());
    buf.extend_from_slice(&selection.marshal());
    buf.extend_from_slice(pcr_digest);
    Bank::Sha256.hash(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_lists_as_sha256() {
        let sel: PcrSelection = "7,11".parse().unwrap();
        assert_eq!(sel.to_string(), "sha256:7,11");
        let sel: PcrSelection = "0-3,7".parse().unwrap();
        assert_eq!(sel.to_string(), "sha256:0,1,2,3,7");
    }

    #[test]
    fn parses_multi_bank_selections() {
        let sel: PcrSelection = "sha1:0-1+sha256:7".parse().unwrap();
        assert_eq!(sel.to_string(), "sha1:0,1+sha256:7");
        assert_eq!(
            sel.banks().collect::<Vec<_>>(),
            vec![Bank::Sha1, Bank::Sha256]
        );
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        for bad in ["24", "0-24", "7-3", "sha999:1", "x", "", "1,,2", "sha256:"] {
            let err = bad.parse::<PcrSelection>().unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
    }

    #[test]
    fn marshals_selection_like_the_tpm() {
        let sel: PcrSelection = "sha256:0,7,11,23".parse().unwrap();
        assert_eq!(
            hex::encode(sel.marshal()),
            // count=1, alg=sha256, size=3, bitmap 0x81 0x08 0x80
            "00000001000b03810880"
        );
    }

    #[test]
    fn extend_matches_a_real_tpm() {
        // PCR 0 of swtpm after `hearth tpm extend --pcr 0 --data firmware` (tests/data).
        let sha256 = Bank::Sha256.extend(&[0; 32], &Bank::Sha256.hash(b"firmware"));
        assert_eq!(
            hex::encode(sha256),
            "3e287e57770de15677579228044a2abe6ca7c39d61de4b8a47fd6b7209dd0bab"
        );
        let sha1 = Bank::Sha1.extend(&[0; 20], &Bank::Sha1.hash(b"firmware"));
        assert_eq!(
            hex::encode(sha1),
            "6250f940440bb2b801a06e9c55ef91bacfd3d0ec"
        );
    }

    #[test]
    fn json_with_impossible_pcrs_or_digests_is_refused() {
        for bad in [
            r#"{"sha256": [7, 200]}"#,
            r#"{"sha999": [1]}"#,
            r#"{"sha256": "x"}"#,
        ] {
            serde_json::from_str::<PcrSelection>(bad).unwrap_err();
        }
        let zeros = "00".repeat(32);
        for bad in [
            format!(r#"{{"sha256": {{"24": "{zeros}"}}}}"#),
            format!(r#"{{"sha1": {{"0": "{zeros}"}}}}"#),
            r#"{"sha256": {"0": "zz"}}"#.to_owned(),
        ] {
            serde_json::from_str::<PcrValues>(&bad).unwrap_err();
        }
        let ok: PcrValues =
            serde_json::from_str(&format!(r#"{{"sha256": {{"23": "{zeros}"}}}}"#)).unwrap();
        assert_eq!(ok.get(Bank::Sha256, 23), Some(&[0u8; 32][..]));
    }

    #[test]
    fn sm3_matches_the_standard_test_vector() {
        // GB/T 32905-2016 example 1: SM3("abc").
        assert_eq!(
            hex::encode(Bank::Sm3_256.hash(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(Bank::from_alg_id(0x0012), Some(Bank::Sm3_256));
        assert_eq!("sm3_256".parse::<Bank>().unwrap(), Bank::Sm3_256);
    }

    #[test]
    fn values_round_trip_through_json() {
        let mut v = PcrValues::default();
        v.insert(Bank::Sha256, 7, vec![0xab; 32]);
        v.insert(Bank::Sha1, 0, vec![0; 20]);
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.contains(r#""sha256":{"7":"abab"#), "{json}");
        let back: PcrValues = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.selection().to_string(), "sha1:0+sha256:7");
    }
}
