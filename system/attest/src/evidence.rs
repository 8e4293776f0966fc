//! Evidence: what an appliance hands an auditor, as versioned JSON.

use serde::{Deserialize, Serialize};

use crate::pcr::{Bank, PcrValues};

/// The format tag of [`Evidence`] JSON.
pub const EVIDENCE_FORMAT: &str = "hearth-evidence/1";

/// Largest evidence document accepted (a firmware log is tens of KiB; this leaves room).
pub const MAX_EVIDENCE_BYTES: usize = 16 * 1024 * 1024;

/// A fresh TPM quote with everything needed to check it offline.
///
/// The quote's qualifying data is the nonce itself, or, when either optional binding is present,
/// the length-prefixed, domain-separated hash described at [`Evidence::qualifying_data`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub format: String,
    /// The verifier's nonce this evidence answers.
    #[serde(with = "hex_bytes")]
    pub nonce: Vec<u8>,
    /// TPMS_ATTEST.
    #[serde(with = "b64")]
    pub quote: Vec<u8>,
    /// TPMT_SIGNATURE.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    /// The attestation key's TPM2B_PUBLIC.
    #[serde(with = "b64")]
    pub ak_public: Vec<u8>,
    /// The same key as SubjectPublicKeyInfo PEM, for tools like tpm2_checkquote.
    pub ak_pem: String,
    /// Values of every quoted PCR, in every quoted bank.
    pub pcrs: PcrValues,
    /// The firmware's TCG event log (binary_bios_measurements).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_b64")]
    pub eventlog: Option<Vec<u8>>,
    /// Hearth's runtime log (JSON lines), extended into PCR 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_log: Option<String>,
    /// SHA-256 of the console's TLS SubjectPublicKeyInfo, bound into the quote.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub tls_spki_sha256: Option<Vec<u8>>,
    /// Head of the audit log's hash chain, bound into the quote.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub audit_head: Option<Vec<u8>>,
    /// SHA-256 of the appliance's Ed25519 model-signing public key, bound into the quote: what
    /// signed model cards and export bundles are checked against.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub model_signing_key_sha256: Option<Vec<u8>>,
    /// What the TPM says it is. Self-reported: informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmDescription>,
}

/// The TPM's self-description (TPM_PT_MANUFACTURER and vendor strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmDescription {
    pub manufacturer: String,
    pub vendor: String,
    pub firmware_version: String,
    pub software: bool,
}

/// Evidence that cannot be read at all (as opposed to evidence that reads and fails checks).
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence is {size} bytes, more than the {MAX_EVIDENCE_BYTES} accepted")]
    TooLarge { size: usize },
    #[error("evidence is not valid JSON of format {EVIDENCE_FORMAT}")]
    Json(#[source] serde_json::Error),
    #[error("evidence format is {found:?}; this verifier reads {EVIDENCE_FORMAT:?}")]
    Format { found: String },
    #[error("evidence {field} is {len} bytes; a SHA-256 digest is 32")]
    BindingLength { field: &'static str, len: usize },
}

impl Evidence {
    pub fn from_json(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(EvidenceError::TooLarge { size: bytes.len() });
        }
        let evidence: Evidence = serde_json::from_slice(bytes).map_err(EvidenceError::Json)?;
        if evidence.format != EVIDENCE_FORMAT {
            return Err(EvidenceError::Format {
                found: evidence.format,
            });
        }
        for (field, value) in [
            ("tls_spki_sha256", &evidence.tls_spki_sha256),
            ("audit_head", &evidence.audit_head),
            (
                "model_signing_key_sha256",
                &evidence.model_signing_key_sha256,
            ),
        ] {
            if let Some(v) = value
                && v.len() != 32
            {
                return Err(EvidenceError::BindingLength {
                    field,
                    len: v.len(),
                });
            }
        }
        Ok(evidence)
    }

    pub fn to_json(&self) -> String {
        // Strings, numbers and maps only: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The qualifying data a quote answering `nonce` with these bindings must carry: the nonce
    /// itself without bindings, otherwise
    /// `sha256("hearth-qd/1" ‖ len ‖ nonce ‖ flags ‖ [len ‖ tls_spki_sha256] ‖ [len ‖ audit_head])`
    /// with u16 big-endian lengths and flags bit 0 = TLS key present, bit 1 = audit head present,
    /// so no two different bindings share an encoding.
    pub fn qualifying_data(
        nonce: &[u8],
        tls_spki_sha256: Option<&[u8]>,
        audit_head: Option<&[u8]>,
    ) -> Vec<u8> {
        Evidence::qualifying_data_with(nonce, tls_spki_sha256, audit_head, None)
    }

    /// [`Evidence::qualifying_data`] with the model-signing key's digest as a third binding:
    /// flags bit 2, its field after the audit head's. Without it, the encoding is exactly the
    /// two-binding one, so evidence from before the key existed verifies unchanged.
    pub fn qualifying_data_with(
        nonce: &[u8],
        tls_spki_sha256: Option<&[u8]>,
        audit_head: Option<&[u8]>,
        model_signing_key_sha256: Option<&[u8]>,
    ) -> Vec<u8> {
        if tls_spki_sha256.is_none() && audit_head.is_none() && model_signing_key_sha256.is_none() {
            return nonce.to_vec();
        }
        fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
            // Fields are bounded (nonce <= 64 bytes, bindings 32) long before u16::MAX.
            let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(bytes);
        }
        let mut buf = QD_DOMAIN.to_vec();
        field(&mut buf, nonce);
        buf.push(
            u8::from(tls_spki_sha256.is_some())
                | (u8::from(audit_head.is_some()) << 1)
                | (u8::from(model_signing_key_sha256.is_some()) << 2),
        );
        for binding in [tls_spki_sha256, audit_head, model_signing_key_sha256]
            .into_iter()
            .flatten()
        {
            field(&mut buf, binding);
        }
        Bank::Sha256.hash(&buf)
    }
}

/// Domain separation for the bound qualifying data.
const QD_DOMAIN: &[u8] = b"hearth-qd/1";

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD
            .decode(String::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}

mod opt_b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
