//! Reference manifests: what "good" looks like, as versioned JSON (documented in
//! docs/attestation.md).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::pcr::{Bank, PcrSelection, PcrValues};

/// The format tag of [`Reference`] JSON.
pub const REFERENCE_FORMAT: &str = "hearth-reference/1";

/// Largest reference document accepted.
pub const MAX_REFERENCE_BYTES: usize = 4 * 1024 * 1024;

/// Expected values. Several references combine: a release's PCR 4, 9 and 11 computed by the image
/// build, plus a machine's platform PCRs 0-7 and attestation key captured by IT at installation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub format: String,
    /// What this reference describes ("release 1.4.0", "platform of rack 3 box 12").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expected PCR values, per bank, for the PCRs this reference constrains.
    #[serde(default)]
    pub pcrs: PcrValues,
    /// Attestation keys allowed to sign: SHA-256 of each AK's TPMT_PUBLIC (its TPM name without
    /// the leading `000b`, as `tpm2_readpublic` prints it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ak_public_sha256: Vec<String>,
    /// Runtime-log events allowed, when present: every runtime event must match one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_events: Option<Vec<AllowedRuntimeEvent>>,
}

/// One allowed runtime event: its PCR, type and SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedRuntimeEvent {
    pub pcr: u8,
    #[serde(rename = "type")]
    pub kind: String,
    pub sha256: String,
}

/// A reference that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference is {size} bytes, more than the {MAX_REFERENCE_BYTES} accepted")]
    TooLarge { size: usize },
    #[error("reference is not valid JSON of format {REFERENCE_FORMAT}")]
    Json(#[source] serde_json::Error),
    #[error("reference format is {found:?}; this verifier reads {REFERENCE_FORMAT:?}")]
    Format { found: String },
    #[error("digest {0:?} (in ak_public_sha256 or runtime_events) is not 64 hex digits")]
    BadDigest(String),
}

impl Reference {
    pub fn new(name: Option<String>) -> Reference {
        Reference {
            format: REFERENCE_FORMAT.to_owned(),
            name,
            ..Reference::default()
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Reference, ReferenceError> {
        if bytes.len() > MAX_REFERENCE_BYTES {
            return Err(ReferenceError::TooLarge { size: bytes.len() });
        }
        let reference: Reference = serde_json::from_slice(bytes).map_err(ReferenceError::Json)?;
        if reference.format != REFERENCE_FORMAT {
            return Err(ReferenceError::Format {
                found: reference.format,
            });
        }
        let digests = reference
            .ak_public_sha256
            .iter()
            .chain(reference.runtime_events.iter().flatten().map(|e| &e.sha256));
        for d in digests {
            if d.len() != 64 || hex::decode(d).is_err() {
                return Err(ReferenceError::BadDigest(d.clone()));
            }
        }
        Ok(reference)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A reference pinning `selection` to the values in `pcrs`. Fails naming the first selected
    /// PCR that `pcrs` lacks.
    pub fn from_pcrs(
        name: Option<String>,
        pcrs: &PcrValues,
        selection: &PcrSelection,
    ) -> Result<Reference, (Bank, u8)> {
        let mut reference = Reference::new(name);
        for (bank, list) in selection.iter() {
            for &pcr in list {
                let value = pcrs.get(bank, pcr).ok_or((bank, pcr))?;
                reference.pcrs.insert(bank, pcr, value.to_vec());
            }
        }
        Ok(reference)
    }

    /// SHA-256 of an AK's TPMT_PUBLIC, given its TPM2B_PUBLIC.
    pub fn ak_digest(tpm2b_public: &[u8]) -> String {
        let body = tpm2b_public.get(2..).unwrap_or_default();
        hex::encode(Bank::Sha256.hash(body))
    }
}

/// References combined: for each (bank, PCR) the values any reference allows, the allowed AKs
/// and runtime events of all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Combined {
    pub pcrs: BTreeMap<(Bank, u8), BTreeSet<Vec<u8>>>,
    pub ak_public_sha256: BTreeSet<String>,
    /// `None` when no reference constrains runtime events.
    pub runtime_events: Option<BTreeSet<AllowedRuntimeEvent>>,
}

impl Combined {
    pub fn new(references: &[Reference]) -> Combined {
        let mut out = Combined::default();
        for r in references {
            for bank in r.pcrs.banks() {
                for (pcr, value) in r.pcrs.bank(bank) {
                    out.pcrs
                        .entry((bank, pcr))
                        .or_default()
                        .insert(value.to_vec());
                }
            }
            out.ak_public_sha256
                .extend(r.ak_public_sha256.iter().map(|d| d.to_ascii_lowercase()));
            if let Some(events) = &r.runtime_events {
                out.runtime_events
                    .get_or_insert_with(BTreeSet::new)
                    .extend(events.iter().map(|e| AllowedRuntimeEvent {
                        sha256: e.sha256.to_ascii_lowercase(),
                        ..e.clone()
                    }));
            }
        }
        out
    }
}
