//! The model registry: every finished training run becomes a numbered version of a named model,
//! with its lineage (datasets and their digests, hyper-parameters, compute backend, the
//! appliance's PCR 11 value, the hearth version), its report (metrics, fairness, feature
//! importance), a signed model card ([`crate::card`]) and its weights in an encrypted blob.
//!
//! Stages: candidate -> approved -> retired. Retiring crypto-erases the weights' blob (its
//! wrapped data key is deleted): a retired version can neither be loaded nor served.

use hearth_store::{BlobError, BlobId, Json, Store, StoreError, Table};
use serde::{Deserialize, Serialize};

use crate::ColumnKind;
use crate::card::{self, SigningKey};
use crate::model::{Model, ModelError};

/// Model versions by `name@version` (version zero-padded, so keys sort).
pub const MODELS: Table<str, Json<ModelVersion>> = Table::new("ml/models");

/// Longest model name.
pub const MAX_NAME_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Registered by a training run; not yet servable.
    Candidate,
    /// Approved by an admin: may be deployed to endpoints.
    Approved,
    /// Withdrawn: its weights are crypto-erased.
    Retired,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Candidate => "candidate",
            Stage::Approved => "approved",
            Stage::Retired => "retired",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input column the model reads, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputField {
    pub name: String,
    pub kind: ColumnKind,
}

/// A dataset version a model was trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub name: String,
    pub version: u32,
    /// SHA-256 of the version's bytes, hex.
    pub sha256: String,
    pub rows: u64,
    /// How it was derived from its parent (e.g. pseudonymized columns), if it was.
    pub transform: Option<String>,
}

/// Where a model came from: what the card and bundles carry, and what the console shows as
/// the chain from data to model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub datasets: Vec<DatasetRef>,
    /// The training job.
    pub job: String,
    pub trained_by: String,
    pub hyperparameters: serde_json::Value,
    /// `cpu`, or the GPU backend's name.
    pub backend: String,
    /// The appliance's PCR 11 (SHA-256 bank) when it trained, hex; `None` when unreadable.
    pub pcr11: Option<String>,
    pub hearth_version: String,
    pub trained_unix_ms: u64,
}

/// A registered model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: u32,
    pub stage: Stage,
    pub created_unix_ms: u64,
    /// The encrypted blob with the weights ([`Model`] JSON), hex id.
    pub blob: String,
    /// SHA-256 of the weights' bytes, hex.
    pub weights_sha256: String,
    /// `binary`, `multiclass` or `regression`.
    pub task: String,
    pub target: String,
    pub classes: Vec<String>,
    pub inputs: Vec<InputField>,
    /// The training report: metrics, fairness, feature importance.
    pub report: serde_json::Value,
    pub lineage: Lineage,
    /// The model card (CycloneDX ML-BOM JSON), exactly the bytes that were signed.
    pub card: String,
    /// Ed25519 signature over `card` by the appliance's model-signing key, hex.
    pub card_signature: String,
    /// The signing key's public key, hex.
    pub signing_key: String,
    pub approved_by: Option<String>,
    pub approved_unix_ms: Option<u64>,
    pub retired_by: Option<String>,
    pub retired_unix_ms: Option<u64>,
}

impl ModelVersion {
    pub fn key(&self) -> String {
        version_key(&self.name, self.version)
    }

    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    pub fn blob_id(&self) -> Result<BlobId, RegistryError> {
        self.blob.parse().map_err(|_| RegistryError::Corrupt {
            what: "blob id".into(),
        })
    }
}

fn version_key(name: &str, version: u32) -> String {
    format!("{name}@{version:010}")
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid model name {name:?}: 1 to {MAX_NAME_LEN} of a-z, 0-9, '-', '_'")]
    InvalidName { name: String },
    #[error("no model {name}@{version}")]
    NotFound { name: String, version: u32 },
    #[error("no model {name:?}")]
    NoModel { name: String },
    #[error("{name}@{version} is {stage}; {action} needs {needed}")]
    Stage {
        name: String,
        version: u32,
        stage: Stage,
        action: &'static str,
        needed: &'static str,
    },
    #[error("the registry record is corrupt: {what}")]
    Corrupt { what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the model's weights")]
    Blob(#[from] BlobError),
    #[error("the model's weights do not decode")]
    Model(#[from] ModelError),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Makes a valid model name from anything (lowercase, other characters become `_`).
pub fn model_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_LEN)
        .collect();
    if s.is_empty() {
        s.push_str("model");
    }
    s
}

pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName { name: name.into() })
    }
}

/// Parses `name@version`.
pub fn parse_ref(s: &str) -> Option<(&str, u32)> {
    let (name, version) = s.rsplit_once('@')?;
    Some((name, version.parse().ok()?))
}

/// What a finished training run hands the registry.
pub struct Draft<'a> {
    pub name: &'a str,
    /// The stored weights.
    pub blob: BlobId,
    pub model: &'a Model,
    pub report: serde_json::Value,
    pub lineage: Lineage,
}

/// Registers the next version of `draft.name` as a candidate: builds and signs its card.
pub fn register(
    store: &Store,
    key: &SigningKey,
    draft: Draft<'_>,
) -> Result<ModelVersion, RegistryError> {
    validate_name(draft.name)?;
    let weights = store.read_blob(draft.blob)?;
    let weights_sha256 =
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &weights).as_ref());
    let model = draft.model;
    store
        .write(|w| {
            let prefix = format!("{}@", draft.name);
            let last = w
                .list(&MODELS)?
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.version)
                .max()
                .unwrap_or(0);
            let mut v = ModelVersion {
                name: draft.name.to_owned(),
                version: last + 1,
                stage: Stage::Candidate,
                created_unix_ms: now_ms(),
                blob: draft.blob.to_string(),
                weights_sha256: weights_sha256.clone(),
                task: format!("{:?}", model.task()).to_lowercase(),
                target: model.target.name.clone(),
                classes: model.classes().to_vec(),
                inputs: model
                    .prep
                    .features
                    .iter()
                    .map(|f| InputField {
                        name: f.name.clone(),
                        kind: f.kind,
                    })
                    .collect(),
                report: draft.report.clone(),
                lineage: draft.lineage.clone(),
                card: String::new(),
                card_signature: String::new(),
                signing_key: hex::encode(key.public_key()),
                approved_by: None,
                approved_unix_ms: None,
                retired_by: None,
                retired_unix_ms: None,
            };
            v.card = card::model_card(&v);
            v.card_signature = hex::encode(key.sign(v.card.as_bytes()));
            w.put(&MODELS, &v.key(), &v)?;
            Ok(v)
        })
        .map_err(RegistryError::from)
}

/// Every version, by name then version.
pub fn list(store: &Store) -> Result<Vec<ModelVersion>, RegistryError> {
    Ok(store.list(&MODELS)?.into_iter().map(|(_, v)| v).collect())
}

pub fn get(store: &Store, name: &str, version: u32) -> Result<ModelVersion, RegistryError> {
    store
        .get(&MODELS, &version_key(name, version))?
        .ok_or_else(|| RegistryError::NotFound {
            name: name.into(),
            version,
        })
}

/// Candidate -> approved.
pub fn approve(
    store: &Store,
    name: &str,
    version: u32,
    by: &str,
) -> Result<ModelVersion, RegistryError> {
    let key = version_key(name, version);
    store.write(|w| {
        let Some(mut v) = w.get(&MODELS, &key)? else {
            return Ok(Err(RegistryError::NotFound {
                name: name.into(),
                version,
            }));
        };
        if v.stage != Stage::Candidate {
            return Ok(Err(RegistryError::Stage {
                name: name.into(),
                version,
                stage: v.stage,
                action: "approving",
                needed: "a candidate",
            }));
        }
        v.stage = Stage::Approved;
        v.approved_by = Some(by.into());
        v.approved_unix_ms = Some(now_ms());
        w.put(&MODELS, &key, &v)?;
        Ok(Ok(v))
    })?
}

/// Any live stage -> retired, then crypto-erases the weights. The stage changes first, so
/// nothing loads the version while its blob goes.
pub fn retire(
    store: &Store,
    name: &str,
    version: u32,
    by: &str,
) -> Result<ModelVersion, RegistryError> {
    let key = version_key(name, version);
    let v = store.write(|w| {
        let Some(mut v) = w.get(&MODELS, &key)? else {
            return Ok(Err(RegistryError::NotFound {
                name: name.into(),
                version,
            }));
        };
        if v.stage == Stage::Retired {
            return Ok(Err(RegistryError::Stage {
                name: name.into(),
                version,
                stage: v.stage,
                action: "retiring",
                needed: "a candidate or approved version",
            }));
        }
        v.stage = Stage::Retired;
        v.retired_by = Some(by.into());
        v.retired_unix_ms = Some(now_ms());
        w.put(&MODELS, &key, &v)?;
        Ok(Ok(v))
    })??;
    store.erase_blob(v.blob_id()?)?;
    Ok(v)
}

/// The version's weights, as stored (refused once retired).
pub fn weights(store: &Store, v: &ModelVersion) -> Result<Vec<u8>, RegistryError> {
    if v.stage == Stage::Retired {
        return Err(RegistryError::Stage {
            name: v.name.clone(),
            version: v.version,
            stage: v.stage,
            action: "loading",
            needed: "a live version",
        });
    }
    Ok(store.read_blob(v.blob_id()?)?)
}

/// The version's model, ready to predict (refused once retired).
pub fn load(store: &Store, v: &ModelVersion) -> Result<Model, RegistryError> {
    Ok(Model::from_json(&weights(store, v)?)?)
}
