//! Sealed blobs and the secrets they hold.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::TpmError;
use hearth_eventlog::pcr::{Bank, PcrSelection, PcrValues, policy_pcr_digest};

/// The format tag of [`SealedBlob`] JSON.
pub const SEALED_BLOB_FORMAT: &str = "hearth-tpm-sealed/1";

/// A secret sealed by the TPM to PCR values. Safe to store anywhere: the private part is
/// encrypted under the TPM's storage root key and only this TPM can load it, and only while
/// the PCRs hold the recorded values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBlob {
    pub format: String,
    /// The PCRs the policy covers.
    pub selection: PcrSelection,
    /// Their values at sealing time: what unsealing needs, and what a mismatch is reported
    /// against.
    pub pcrs: PcrValues,
    /// The object's PolicyPCR digest (sha256).
    #[serde(with = "hex_bytes")]
    pub policy: Vec<u8>,
    /// TPMT_PUBLIC of the sealed object.
    #[serde(with = "b64")]
    pub public: Vec<u8>,
    /// TPM2B_PRIVATE contents of the sealed object.
    #[serde(with = "b64")]
    pub private: Vec<u8>,
}

impl SealedBlob {
    pub(crate) fn new(
        selection: PcrSelection,
        pcrs: PcrValues,
        policy: Vec<u8>,
        public: Vec<u8>,
        private: Vec<u8>,
    ) -> Self {
        SealedBlob {
            format: SEALED_BLOB_FORMAT.to_owned(),
            selection,
            pcrs,
            policy,
            public,
            private,
        }
    }

    /// Parses the JSON form, with a clear error for anything else.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TpmError> {
        let blob: SealedBlob =
            serde_json::from_slice(bytes).map_err(|e| TpmError::MalformedBlob {
                reason: e.to_string(),
            })?;
        blob.check()?;
        Ok(blob)
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings, maps and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks that the recorded values produce the recorded policy, and returns the selection
    /// and the PCR digest to replay in the policy session.
    pub(crate) fn check(&self) -> Result<(PcrSelection, Vec<u8>), TpmError> {
        let bad = |reason: &str| TpmError::MalformedBlob {
            reason: reason.to_owned(),
        };
        if self.format != SEALED_BLOB_FORMAT {
            return Err(bad(&format!(
                "format is {:?}, expected {SEALED_BLOB_FORMAT:?}",
                self.format
            )));
        }
        if self.selection.single_bank().is_none() {
            return Err(bad("selection must cover exactly one PCR bank"));
        }
        for (bank, pcrs) in self.selection.iter() {
            for &pcr in pcrs {
                match self.pcrs.get(bank, pcr) {
                    Some(v) if v.len() == bank.digest_len() => {}
                    Some(_) => {
                        return Err(bad(&format!("value of {bank}:{pcr} has the wrong length")));
                    }
                    None => return Err(bad(&format!("no recorded value for {bank}:{pcr}"))),
                }
            }
        }
        let pcr_digest = self
            .pcrs
            .digest(&self.selection, Bank::Sha256)
            .map_err(|_| bad("recorded values do not cover the selection"))?;
        if policy_pcr_digest(&self.selection, &pcr_digest) != self.policy {
            return Err(bad("recorded PCR values do not match the policy digest"));
        }
        Ok((self.selection.clone(), pcr_digest))
    }
}

/// Secret bytes: zeroed on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
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
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> SealedBlob {
        let selection: PcrSelection = "sha256:7,11".parse().unwrap();
        let mut pcrs = PcrValues::default();
        pcrs.insert(Bank::Sha256, 7, vec![1; 32]);
        pcrs.insert(Bank::Sha256, 11, vec![2; 32]);
        let digest = pcrs.digest(&selection, Bank::Sha256).unwrap();
        let policy = policy_pcr_digest(&selection, &digest);
        SealedBlob::new(selection, pcrs, policy, vec![0; 8], vec![1; 8])
    }

    #[test]
    fn json_round_trips() {
        let b = blob();
        assert_eq!(SealedBlob::from_json(b.to_json().as_bytes()).unwrap(), b);
    }

    #[test]
    fn tampered_values_are_rejected_before_the_tpm_sees_them() {
        let mut b = blob();
        b.pcrs.insert(Bank::Sha256, 11, vec![3; 32]);
        let err = SealedBlob::from_json(b.to_json().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("do not match the policy"), "{err}");
    }

    #[test]
    fn garbage_gives_a_clear_error() {
        for bad in [&b"not json"[..], b"{}", b"{\"format\": \"x\"}", b"\xff\xfe"] {
            let err = SealedBlob::from_json(bad).unwrap_err();
            assert!(matches!(err, TpmError::MalformedBlob { .. }), "{err}");
        }
    }

    #[test]
    fn impossible_pcr_indices_are_refused() {
        let mut json: serde_json::Value = serde_json::from_str(&blob().to_json()).unwrap();
        json["selection"] = serde_json::json!({ "sha256": [7, 200] });
        let err = SealedBlob::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("PCR 200 does not exist"), "{err}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new(Zeroizing::new(b"hunter2".to_vec()));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("7 bytes"),
            "{shown}"
        );
    }
}
