//! TPM quotes: parse TPMS_ATTEST, TPMT_SIGNATURE and the AK's TPM2B_PUBLIC, and verify them.
//!
//! Structures follow TPM 2.0 Library Part 2 (10.12 TPMS_ATTEST, 11.3 TPMT_SIGNATURE, 12.2
//! TPMT_PUBLIC). Sizes are capped at the spec's maxima before anything is read.

use std::fmt;

use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};

use crate::pcr::{Bank, PcrValues};
pub use crate::reader::ParseError;
use crate::reader::Reader;

/// TPM_GENERATED_VALUE: marks structures the TPM itself produced.
pub const TPM_GENERATED: u32 = 0xFF54_4347;
/// TPM_ST_ATTEST_QUOTE.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ALG_ECDSA: u16 = 0x0018;
const TPM_ALG_ECDAA: u16 = 0x001A;
const TPM_ECC_NIST_P256: u16 = 0x0003;
const TPM_ECC_NIST_P384: u16 = 0x0004;
/// Largest digest (sha512) and so the largest TPM2B_DIGEST / TPM2B_DATA.
const MAX_DIGEST: usize = 64;
/// TPMU_NAME: a handle or an algorithm ID plus a digest.
const MAX_NAME: usize = 2 + MAX_DIGEST;
/// Largest ECC coordinate Hearth accepts (P-521 rounds up to 66 bytes).
const MAX_ECC_COORD: usize = 66;
/// HASH_COUNT bound on TPML_PCR_SELECTION entries.
const MAX_BANKS: u32 = 16;
/// PCR_SELECT_MAX bound (bytes of bitmap; 3 on PC Client TPMs, 4 allowed).
const MAX_PCR_SELECT: u8 = 4;

/// The clock of the TPM when it signed (TPMS_CLOCK_INFO).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its last clear.
    pub clock: u64,
    /// TPM resets (reboots) since the last clear.
    pub reset_count: u32,
    /// TPM restarts (resumes) since the last reset.
    pub restart_count: u32,
    pub safe: bool,
}

/// A parsed TPMS_ATTEST of type quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data (the nonce, or a hash binding the nonce to more).
    pub extra_data: Vec<u8>,
    pub clock: ClockInfo,
    pub firmware_version: u64,
    /// The quoted PCRs, in the order the TPM concatenated them. Banks Hearth does not know are
    /// kept by algorithm ID so the verdict can name them.
    pub selection: Vec<(u16, Vec<u8>)>,
    pub pcr_digest: Vec<u8>,
}

impl Attest {
    pub fn parse(bytes: &[u8]) -> Result<Attest, ParseError> {
        let mut r = Reader::new("TPMS_ATTEST", bytes);
        let magic = r.u32("magic")?;
        if magic != TPM_GENERATED {
            return Err(r.error(format!("magic is {magic:#010x}, not TPM_GENERATED_VALUE")));
        }
        let kind = r.u16("type")?;
        if kind != TPM_ST_ATTEST_QUOTE {
            return Err(r.error(format!("type is {kind:#06x}, not TPM_ST_ATTEST_QUOTE")));
        }
        let qualified_signer = r.tpm2b("qualifiedSigner", MAX_NAME)?.to_vec();
        let extra_data = r.tpm2b("extraData", MAX_DIGEST)?.to_vec();
        let clock = ClockInfo {
            clock: r.u64("clockInfo.clock")?,
            reset_count: r.u32("clockInfo.resetCount")?,
            restart_count: r.u32("clockInfo.restartCount")?,
            safe: match r.u8("clockInfo.safe")? {
                0 => false,
                1 => true,
                other => return Err(r.error(format!("clockInfo.safe is {other}, not 0 or 1"))),
            },
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let count = r.u32("pcrSelect.count")?;
        if count > MAX_BANKS {
            return Err(r.error(format!("pcrSelect.count is {count}, at most {MAX_BANKS}")));
        }
        let mut selection = Vec::new();
        for _ in 0..count {
            let alg = r.u16("pcrSelections.hash")?;
            let size = r.u8("pcrSelections.sizeofSelect")?;
            if size > MAX_PCR_SELECT {
                return Err(r.error(format!("sizeofSelect is {size}, at most {MAX_PCR_SELECT}")));
            }
            let map = r.take(usize::from(size), "pcrSelections.pcrSelect")?;
            let mut pcrs = Vec::new();
            for (byte, bits) in (0u8..).zip(map) {
                for bit in 0..8u8 {
                    if bits & (1 << bit) != 0 {
                        pcrs.push(byte * 8 + bit);
                    }
                }
            }
            selection.push((alg, pcrs));
        }
        let pcr_digest = r.tpm2b("pcrDigest", MAX_DIGEST)?.to_vec();
        r.finish()?;
        Ok(Attest {
            qualified_signer,
            extra_data,
            clock,
            firmware_version,
            selection,
            pcr_digest,
        })
    }
}

/// An ECDSA signature (TPMT_SIGNATURE with sigAlg TPM_ALG_ECDSA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// TPM_ALG_ID of the hash that was signed.
    pub hash_alg: u16,
    pub r: Vec<u8>,
    pub s: Vec<u8>,
}

impl EcdsaSignature {
    pub fn parse(bytes: &[u8]) -> Result<EcdsaSignature, ParseError> {
        let mut r = Reader::new("TPMT_SIGNATURE", bytes);
        let alg = r.u16("sigAlg")?;
        if alg != TPM_ALG_ECDSA {
            return Err(r.error(format!(
                "sigAlg is {alg:#06x}; Hearth's attestation keys sign with ECDSA (0x0018)"
            )));
        }
        let hash_alg = r.u16("signature.hash")?;
        let sig_r = r.tpm2b("signatureR", MAX_ECC_COORD)?.to_vec();
        let sig_s = r.tpm2b("signatureS", MAX_ECC_COORD)?.to_vec();
        r.finish()?;
        Ok(EcdsaSignature {
            hash_alg,
            r: sig_r,
            s: sig_s,
        })
    }
}

/// The curves an attestation key may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn coord_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// An attestation key's public part.
#[derive(Clone, PartialEq, Eq)]
pub struct AkKey {
    pub curve: Curve,
    /// Uncompressed point: 0x04 ‖ X ‖ Y, coordinates padded to the curve's size.
    point: Vec<u8>,
    /// TPMA_OBJECT, when the key came from a TPM2B_PUBLIC.
    pub attributes: Option<u32>,
}

impl fmt::Debug for AkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AkKey({:?}, {})", self.curve, hex::encode(&self.point))
    }
}

impl AkKey {
    /// Parses a TPM2B_PUBLIC holding an ECC key.
    pub fn from_tpm2b_public(bytes: &[u8]) -> Result<AkKey, ParseError> {
        let mut outer = Reader::new("TPM2B_PUBLIC", bytes);
        let body = outer.tpm2b("publicArea", 4096)?;
        outer.finish()?;
        let mut r = Reader::new("TPMT_PUBLIC", body);
        let kind = r.u16("type")?;
        if kind != TPM_ALG_ECC {
            return Err(r.error(format!(
                "type is {kind:#06x}; attestation keys are ECC (0x0023)"
            )));
        }
        let _name_alg = r.u16("nameAlg")?;
        let attributes = r.u32("objectAttributes")?;
        let _policy = r.tpm2b("authPolicy", MAX_DIGEST)?;
        if r.u16("symmetric.algorithm")? != TPM_ALG_NULL {
            r.u16("symmetric.keyBits")?;
            r.u16("symmetric.mode")?;
        }
        let scheme = r.u16("scheme.scheme")?;
        if scheme != TPM_ALG_NULL {
            r.u16("scheme.hashAlg")?;
            if scheme == TPM_ALG_ECDAA {
                r.u16("scheme.count")?;
            }
        }
        let curve = match r.u16("curveID")? {
            TPM_ECC_NIST_P256 => Curve::P256,
            TPM_ECC_NIST_P384 => Curve::P384,
            other => return Err(r.error(format!("curve {other:#06x} is not NIST P-256 or P-384"))),
        };
        if r.u16("kdf.scheme")? != TPM_ALG_NULL {
            r.u16("kdf.hashAlg")?;
        }
        let x = r.tpm2b("unique.x", MAX_ECC_COORD)?;
        let y = r.tpm2b("unique.y", MAX_ECC_COORD)?;
        r.finish()?;
        let point = uncompressed_point(curve, x, y).map_err(|p| r.error(p))?;
        Ok(AkKey {
            curve,
            point,
            attributes: Some(attributes),
        })
    }

    /// Parses a SubjectPublicKeyInfo PEM of a P-256 key, as `hearth tpm quote` writes `ak.pem`.
    pub fn from_pem(pem: &str) -> Result<AkKey, ParseError> {
        const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
        let err = |problem: &str| ParseError {
            structure: "PEM public key",
            offset: 0,
            problem: problem.to_owned(),
        };
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| err("not base64"))?;
        let prefix = hex::decode(P256_SPKI_PREFIX).map_err(|_| err("bad prefix constant"))?;
        let point = der
            .strip_prefix(prefix.as_slice())
            .ok_or_else(|| err("not an uncompressed NIST P-256 SubjectPublicKeyInfo"))?;
        if point.len() != 65 || point[0] != 0x04 {
            return Err(err("not an uncompressed NIST P-256 point"));
        }
        Ok(AkKey {
            curve: Curve::P256,
            point: point.to_vec(),
            attributes: None,
        })
    }

    /// The uncompressed point 0x04 ‖ X ‖ Y.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// Whether the TPM marked the key a restricted, signing-only key that never leaves it
    /// (TPMA_OBJECT fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign; not decrypt),
    /// i.e. it signs only TPM-generated structures. `None` for keys from PEM. Self-reported by
    /// the public area: the reference's pin on the key is what makes it count.
    pub fn is_restricted_signing(&self) -> Option<bool> {
        const FIXED_TPM: u32 = 1 << 1;
        const FIXED_PARENT: u32 = 1 << 4;
        const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
        const RESTRICTED: u32 = 1 << 16;
        const DECRYPT: u32 = 1 << 17;
        const SIGN: u32 = 1 << 18;
        const REQUIRED: u32 = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;
        self.attributes
            .map(|a| a & REQUIRED == REQUIRED && a & DECRYPT == 0)
    }
}

fn uncompressed_point(curve: Curve, x: &[u8], y: &[u8]) -> Result<Vec<u8>, String> {
    let n = curve.coord_len();
    let mut point = vec![0x04];
    for (name, c) in [("x", x), ("y", y)] {
        // Strip leading zeros a TPM may leave, then pad to the curve size.
        let c = &c[c.iter().take_while(|b| **b == 0).count()..];
        if c.len() > n {
            return Err(format!("{name} coordinate longer than {n} bytes"));
        }
        point.extend(std::iter::repeat_n(0u8, n - c.len()));
        point.extend_from_slice(c);
    }
    Ok(point)
}

/// One failed check of a quote.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteFailure {
    #[error("the signature does not verify with the attestation key")]
    BadSignature,
    #[error("the signature's hash {hash_alg:#06x} is not usable with a {curve:?} key")]
    UnsupportedScheme { curve: Curve, hash_alg: u16 },
    #[error("the quote's qualifying data is {got}, expected {expected}")]
    NonceMismatch { expected: String, got: String },
    #[error("the quote covers {bank}:{pcr}, but no value for it was supplied")]
    MissingPcr { bank: String, pcr: u8 },
    #[error("the quote covers PCR bank {alg:#06x}, which Hearth does not know")]
    UnknownBank { alg: u16 },
    #[error("the quote's PCR digest is {quoted}, but the supplied PCR values hash to {computed}")]
    PcrDigestMismatch { quoted: String, computed: String },
    #[error("the attestation key is not a restricted signing key")]
    UnrestrictedKey,
}

/// The result of checking a quote: every check that failed, not only the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteVerdict {
    pub attest: Attest,
    pub failures: Vec<QuoteFailure>,
}

impl QuoteVerdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Verifies a quote: the signature over `attest` by `ak`, the qualifying data against
/// `expected_extra_data` (the nonce), and the quoted PCR digest against `pcrs`.
///
/// Malformed structures are errors ("cannot verify"); failed checks are listed in the verdict.
pub fn verify_quote(
    attest: &[u8],
    signature: &[u8],
    ak: &AkKey,
    expected_extra_data: &[u8],
    pcrs: &PcrValues,
) -> Result<QuoteVerdict, ParseError> {
    let parsed = Attest::parse(attest)?;
    let sig = EcdsaSignature::parse(signature)?;
    let mut failures = check_signature(attest, &sig, ak);
    if parsed.extra_data != expected_extra_data {
        failures.push(QuoteFailure::NonceMismatch {
            expected: hex::encode(expected_extra_data),
            got: hex::encode(&parsed.extra_data),
        });
    }
    failures.extend(check_pcr_digest(&parsed, sig.hash_alg, pcrs));
    Ok(QuoteVerdict {
        attest: parsed,
        failures,
    })
}

/// Checks that `sig` over the raw TPMS_ATTEST bytes verifies under `ak`, and that `ak` is a
/// restricted signing key (so it signs only structures the TPM generated).
pub fn check_signature(attest: &[u8], sig: &EcdsaSignature, ak: &AkKey) -> Vec<QuoteFailure> {
    let mut failures = Vec::new();
    if ak.is_restricted_signing() == Some(false) {
        failures.push(QuoteFailure::UnrestrictedKey);
    }
    let alg: Option<&'static signature::EcdsaVerificationAlgorithm> =
        match (ak.curve, Bank::from_alg_id(sig.hash_alg)) {
            (Curve::P256, Some(Bank::Sha256)) => Some(&signature::ECDSA_P256_SHA256_FIXED),
            (Curve::P384, Some(Bank::Sha384)) => Some(&signature::ECDSA_P384_SHA384_FIXED),
            _ => None,
        };
    match alg {
        None => failures.push(QuoteFailure::UnsupportedScheme {
            curve: ak.curve,
            hash_alg: sig.hash_alg,
        }),
        Some(alg) => {
            let fixed = uncompressed_point(ak.curve, &sig.r, &sig.s)
                .map(|p| p[1..].to_vec())
                .unwrap_or_default();
            let ok = !fixed.is_empty()
                && UnparsedPublicKey::new(alg, &ak.point)
                    .verify(attest, &fixed)
                    .is_ok();
            if !ok {
                failures.push(QuoteFailure::BadSignature);
            }
        }
    }
    failures
}

/// Checks that `pcrs` holds every PCR the quote covers and that they hash (with the signature's
/// hash, in the quote's order) to the quoted digest.
pub fn check_pcr_digest(attest: &Attest, sig_hash_alg: u16, pcrs: &PcrValues) -> Vec<QuoteFailure> {
    let mut failures = Vec::new();
    let mut concat = Vec::new();
    for (alg, list) in &attest.selection {
        let Some(bank) = Bank::from_alg_id(*alg) else {
            failures.push(QuoteFailure::UnknownBank { alg: *alg });
            continue;
        };
        for &pcr in list {
            match pcrs.get(bank, pcr) {
                Some(v) => concat.extend_from_slice(v),
                None => failures.push(QuoteFailure::MissingPcr {
                    bank: bank.to_string(),
                    pcr,
                }),
            }
        }
    }
    if failures.is_empty() {
        let computed = Bank::from_alg_id(sig_hash_alg)
            .unwrap_or(Bank::Sha256)
            .hash(&concat);
        if computed != attest.pcr_digest {
            failures.push(QuoteFailure::PcrDigestMismatch {
                quoted: hex::encode(&attest.pcr_digest),
                computed: hex::encode(computed),
            });
        }
    }
    failures
}

impl Attest {
    /// The (bank, PCR) pairs this quote covers, skipping banks Hearth does not know.
    pub fn covered(&self) -> Vec<(Bank, u8)> {
        self.selection
            .iter()
            .filter_map(|(alg, list)| Bank::from_alg_id(*alg).map(|b| (b, list)))
            .flat_map(|(b, list)| list.iter().map(move |p| (b, *p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote from swtpm 0.7.1 (sha256:0,7,11 + sha1:0, nonce "hearth-fixture"), the AK that
    /// signed it and the PCR values it covers: see tests/data/README.md.
    fn fixture() -> (Vec<u8>, Vec<u8>, Vec<u8>, PcrValues) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/swtpm-quote");
        let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap();
        let pcrs: PcrValues = serde_json::from_slice(&read("pcrs.json")).unwrap();
        (read("quote.msg"), read("quote.sig"), read("ak.tpm2b"), pcrs)
    }

    #[test]
    fn fixture_quote_verifies() {
        let (msg, sig, ak, pcrs) = fixture();
        let ak = AkKey::from_tpm2b_public(&ak).unwrap();
        assert_eq!(ak.is_restricted_signing(), Some(true));
        let verdict = verify_quote(&msg, &sig, &ak, b"hearth-fixture", &pcrs).unwrap();
        assert!(verdict.passed(), "{:?}", verdict.failures);
        assert_eq!(verdict.attest.selection.len(), 2);
    }

    #[test]
    fn every_failed_check_is_listed() {
        let (msg, sig, ak, mut pcrs) = fixture();
        let ak = AkKey::from_tpm2b_public(&ak).unwrap();
        pcrs.insert(Bank::Sha256, 7, vec![0xee; 32]);
        let verdict = verify_quote(&msg, &sig, &ak, b"another nonce", &pcrs).unwrap();
        assert!(matches!(
            verdict.failures.as_slice(),
            [
                QuoteFailure::NonceMismatch { .. },
                QuoteFailure::PcrDigestMismatch { .. }
            ]
        ));
    }

    #[test]
    fn flipped_bits_anywhere_are_rejected() {
        let (msg, sig, ak, pcrs) = fixture();
        let ak = AkKey::from_tpm2b_public(&ak).unwrap();
        for i in 0..msg.len() * 8 {
            let mut m = msg.clone();
            m[i / 8] ^= 1 << (i % 8);
            // A flip in a length or tag makes it unparseable (Err): also rejected.
            if let Ok(v) = verify_quote(&m, &sig, &ak, b"hearth-fixture", &pcrs) {
                assert!(v.failures.contains(&QuoteFailure::BadSignature), "bit {i}");
            }
        }
        for i in 0..sig.len() * 8 {
            let mut s = sig.clone();
            s[i / 8] ^= 1 << (i % 8);
            if let Ok(v) = verify_quote(&msg, &s, &ak, b"hearth-fixture", &pcrs) {
                assert!(!v.passed(), "signature bit {i}");
            }
        }
    }

    #[test]
    fn truncations_are_errors_not_panics() {
        let (msg, sig, ak, _) = fixture();
        for n in 0..msg.len() {
            let e = Attest::parse(&msg[..n]).unwrap_err();
            assert_eq!(e.structure, "TPMS_ATTEST");
        }
        for n in 0..sig.len() {
            EcdsaSignature::parse(&sig[..n]).unwrap_err();
        }
        for n in 0..ak.len() {
            AkKey::from_tpm2b_public(&ak[..n]).unwrap_err();
        }
    }

    #[test]
    fn parse_errors_name_field_and_offset() {
        let mut bytes = TPM_GENERATED.to_be_bytes().to_vec();
        bytes.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        bytes.extend_from_slice(&0xffffu16.to_be_bytes());
        let e = Attest::parse(&bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TPMS_ATTEST: qualifiedSigner is 65535 bytes, at most 66 allowed at byte 8"
        );
    }

    #[test]
    fn pem_and_tpm2b_give_the_same_key() {
        let (_, _, ak, _) = fixture();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/swtpm-quote");
        let pem = std::fs::read_to_string(format!("{dir}/ak.pem")).unwrap();
        let from_pem = AkKey::from_pem(&pem).unwrap();
        let from_tpm = AkKey::from_tpm2b_public(&ak).unwrap();
        assert_eq!(from_pem.point(), from_tpm.point());
    }
}
