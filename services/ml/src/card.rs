//! Model cards, the appliance's model-signing key, and signed export bundles.
//!
//! A model card is CycloneDX 1.6 ML-BOM JSON (a `machine-learning-model` component with its
//! `modelCard`), with Hearth's lineage as `hearth:` properties. The registry signs the card's
//! exact bytes with an Ed25519 key derived from the store's root secret
//! ([`SIGNING_PURPOSE`]); the key's SHA-256 is bound into attestation evidence, so a verifier
//! who trusts the appliance's quote can trust what the key signed.
//!
//! A bundle ([`encode_bundle`], [`verify_bundle`]) carries a model out of the appliance: card,
//! lineage, weights, the card's signature, the public key, and a signature over every byte
//! before it. The format is strict (lowercase hex, exact lengths, nothing trailing), so any
//! changed byte makes verification fail.

use std::fmt;

use hearth_store::{Purpose, Store, StoreError};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Serialize;
use serde_json::json;

use crate::model::Model;
use crate::registry::{Lineage, ModelVersion};

/// The purpose label of the model-signing key.
pub const SIGNING_PURPOSE: Purpose = Purpose::new("hearth/model-signing/v1");
/// The first line of a bundle.
pub const BUNDLE_MAGIC: &str = "hearth-model-bundle/1";
/// Largest bundle read.
pub const MAX_BUNDLE_BYTES: usize = 256 << 20;

/// The appliance's Ed25519 model-signing key. `Debug` shows only the public key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", hex::encode(self.public_key()))
    }
}

impl SigningKey {
    /// The key derived from `seed` (32 secret bytes).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        // A 32-byte seed is always a valid Ed25519 private key: this cannot fail.
        match Ed25519KeyPair::from_seed_unchecked(seed) {
            Ok(pair) => SigningKey { pair },
            Err(_) => unreachable!("ring accepts every 32-byte Ed25519 seed"),
        }
    }

    /// The appliance's key, derived from the store's root secret (never stored itself).
    pub fn from_store(store: &Store) -> Result<SigningKey, StoreError> {
        let seed = store.purpose_key(SIGNING_PURPOSE)?;
        Ok(SigningKey::from_seed(seed.expose()))
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// SHA-256 of the public key: what attestation evidence binds.
    pub fn public_key_sha256(&self) -> [u8; 32] {
        sha256(&self.public_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
pub fn signature_valid(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// The lineage as the bytes a bundle carries (and whose digest the card records).
pub fn lineage_bytes(lineage: &Lineage) -> Vec<u8> {
    // Strings, numbers and maps only: serialization cannot fail.
    serde_json::to_vec_pretty(lineage).unwrap_or_default()
}

fn metric_entries(report: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if let Some(m) = report.get("metrics").and_then(|m| m.as_object()) {
        for (k, v) in m {
            if let Some(x) = v.as_f64() {
                out.push(json!({"type": k, "value": format!("{x}"), "slice": "test split"}));
            }
        }
    }
    out
}

/// The model card of `v`: CycloneDX 1.6 JSON, keys sorted, as the bytes to sign.
pub fn model_card(v: &ModelVersion) -> String {
    let lineage = &v.lineage;
    let datasets: Vec<_> = lineage
        .datasets
        .iter()
        .map(|d| {
            json!({
                "type": "dataset",
                "name": d.name,
                "version": d.version.to_string(),
                "hashes": [{"alg": "SHA-256", "content": d.sha256}],
                "description": d.transform.clone().unwrap_or_else(|| "as uploaded".into()),
            })
        })
        .collect();
    let architecture = match v.report.pointer("/model/kind").and_then(|k| k.as_str()) {
        Some("log_reg") => "logistic regression".to_owned(),
        Some("mlp") => format!(
            "multilayer perceptron (hidden {})",
            v.report
                .pointer("/model/hidden")
                .map_or_else(String::new, ToString::to_string)
        ),
        Some(other) => other.to_owned(),
        None => "unknown".to_owned(),
    };
    let fairness = v.report.get("fairness").filter(|f| !f.is_null()).map(|f| {
        vec![json!({
            "groupAtRisk": "each group of the fairness column",
            "benefits": "per-group rates reported",
            "harms": f.to_string(),
            "mitigationStrategy": "reviewed by an admin before approval",
        })]
    });
    let mut properties = vec![
        json!({"name": "hearth:job", "value": lineage.job}),
        json!({"name": "hearth:trained-by", "value": lineage.trained_by}),
        json!({"name": "hearth:backend", "value": lineage.backend}),
        json!({"name": "hearth:hearth-version", "value": lineage.hearth_version}),
        json!({"name": "hearth:pcr11-sha256", "value": lineage.pcr11.clone().unwrap_or_else(|| "unreadable".into())}),
        json!({"name": "hearth:hyperparameters", "value": lineage.hyperparameters.to_string()}),
        json!({"name": "hearth:lineage-sha256", "value": hex::encode(sha256(&lineage_bytes(lineage)))}),
        json!({"name": "hearth:signing-key", "value": v.signing_key}),
        json!({"name": "hearth:target", "value": v.target}),
    ];
    if let Some(imp) = v.report.get("importance") {
        properties.push(json!({"name": "hearth:feature-importance", "value": imp.to_string()}));
    }
    let card = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "hearth", "version": lineage.hearth_version}]},
        },
        "components": [{
            "type": "machine-learning-model",
            "bom-ref": v.label(),
            "name": v.name,
            "version": v.version.to_string(),
            "hashes": [{"alg": "SHA-256", "content": v.weights_sha256}],
            "modelCard": {
                "modelParameters": {
                    "approach": {"type": "supervised"},
                    "task": v.task,
                    "architectureFamily": architecture,
                    "datasets": datasets,
                    "inputs": v.inputs.iter().map(|i| json!({"format": format!("{}: {:?}", i.name, i.kind).to_lowercase()})).collect::<Vec<_>>(),
                    "outputs": [{"format": if v.classes.is_empty() { "value".to_owned() } else { format!("class of {} ({})", v.target, v.classes.join(", ")) }}],
                },
                "quantitativeAnalysis": {"performanceMetrics": metric_entries(&v.report)},
                "considerations": {"fairnessAssessments": fairness.unwrap_or_default()},
            },
            "properties": properties,
        }],
    });
    card.to_string()
}

/// What an export bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub card: Vec<u8>,
    pub lineage: Vec<u8>,
    pub weights: Vec<u8>,
    pub card_signature: [u8; 64],
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
    /// The bytes the bundle signature covers (everything before the `signature` line).
    pub signed_len: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the bundle is {size} bytes, more than the {MAX_BUNDLE_BYTES} read")]
    TooLarge { size: usize },
    #[error("not a {BUNDLE_MAGIC} bundle at byte {offset}: {what}")]
    Malformed { offset: usize, what: String },
}

/// Encodes a bundle for `v` with its `weights`, signed by `key`.
pub fn encode_bundle(v: &ModelVersion, weights: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(weights.len() + v.card.len() + 4096);
    out.extend_from_slice(BUNDLE_MAGIC.as_bytes());
    out.push(b'\n');
    let lineage = lineage_bytes(&v.lineage);
    for (name, bytes) in [
        ("card", v.card.as_bytes()),
        ("lineage", &lineage[..]),
        ("weights", weights),
    ] {
        out.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("card-signature {}\n", v.card_signature).as_bytes());
    out.extend_from_slice(format!("key {}\n", hex::encode(key.public_key())).as_bytes());
    let signature = key.sign(&signed_message(&out));
    out.extend_from_slice(format!("signature {}\n", hex::encode(signature)).as_bytes());
    out
}

/// Domain separation for the bundle signature.
fn signed_message(prefix: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(prefix.len() + 32);
    m.extend_from_slice(b"hearth-model-bundle-signature/1\0");
    m.extend_from_slice(prefix);
    m
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, BundleError> {
        Err(BundleError::Malformed {
            offset: self.at,
            what: what.into(),
        })
    }

    /// One line (without its `\n`).
    fn line(&mut self) -> Result<&'a str, BundleError> {
        let rest = &self.bytes[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail("a line without its end");
        };
        let Ok(text) = std::str::from_utf8(&rest[..end]) else {
            return self.fail("a line that is not UTF-8");
        };
        self.at += end + 1;
        Ok(text)
    }

    /// `name <len>\n<len bytes>\n`.
    fn section(&mut self, name: &str) -> Result<&'a [u8], BundleError> {
        let start = self.at;
        let line = self.line()?;
        let Some(len) = line.strip_prefix(name).and_then(|l| l.strip_prefix(' ')) else {
            self.at = start;
            return self.fail(format!("expected the {name} section"));
        };
        let canonical = !len.is_empty() && (len == "0" || !len.starts_with('0'));
        let len = match len.parse::<usize>() {
            Ok(n) if canonical && len.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                self.at = start;
                return self.fail(format!("bad {name} length"));
            }
        };
        let end = self.at.checked_add(len).filter(|&e| e < self.bytes.len());
        let Some(end) = end else {
            return self.fail(format!("the {name} section is cut short"));
        };
        if self.bytes[end] != b'\n' {
            self.at = end;
            return self.fail(format!("the {name} section does not end its line"));
        }
        let body = &self.bytes[self.at..end];
        self.at = end + 1;
        Ok(body)
    }

    /// `name <lowercase hex of N bytes>\n`.
    fn hex_line<const N: usize>(&mut self, name: &str) -> Result<[u8; N], BundleError> {
        let start = self.at;
        let line = self.line()?;
        let value = line.strip_prefix(name).and_then(|l| l.strip_prefix(' '));
        let mut out = [0u8; N];
        match value {
            Some(h)
                if h.len() == 2 * N
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    && hex::decode_to_slice(h, &mut out).is_ok() =>
            {
                Ok(out)
            }
            _ => {
                self.at = start;
                self.fail(format!("expected {name} as {} lowercase hex digits", 2 * N))
            }
        }
    }
}

/// Parses a bundle strictly (no verification).
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge { size: bytes.len() });
    }
    let mut c = Cursor { bytes, at: 0 };
    if c.line()? != BUNDLE_MAGIC {
        c.at = 0;
        return c.fail("wrong first line");
    }
    let card = c.section("card")?.to_vec();
    let lineage = c.section("lineage")?.to_vec();
    let weights = c.section("weights")?.to_vec();
    let card_signature = c.hex_line::<64>("card-signature")?;
    let public_key = c.hex_line::<32>("key")?;
    let signed_len = c.at;
    let signature = c.hex_line::<64>("signature")?;
    if c.at != bytes.len() {
        return c.fail("bytes after the signature");
    }
    Ok(Bundle {
        card,
        lineage,
        weights,
        card_signature,
        public_key,
        signature,
        signed_len,
    })
}

/// One check of a bundle and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BundleCheck {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// What verifying a bundle found: every check, passed or not (a verdict, not an error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BundleVerdict {
    /// `name@version` as the card says, if it reads.
    pub model: Option<String>,
    /// The signing key, hex.
    pub public_key: String,
    /// SHA-256 of the signing key, hex (compare with the appliance's attestation evidence).
    pub public_key_sha256: String,
    pub checks: Vec<BundleCheck>,
}

impl BundleVerdict {
    pub fn trusted(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

fn card_property<'a>(card: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    card.pointer("/components/0/properties")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))?
        .get("value")?
        .as_str()
}

/// Verifies a bundle offline: both signatures, the weights' and lineage's digests against the
/// card, that the weights decode as a model whose inputs the card lists, and (when given) that
/// the key is the one expected (e.g. the SHA-256 an appliance's evidence binds).
pub fn verify_bundle(
    bytes: &[u8],
    expected_key_sha256: Option<&[u8; 32]>,
) -> Result<BundleVerdict, BundleError> {
    let b = parse_bundle(bytes)?;
    let mut checks = Vec::new();
    let mut check = |name: &'static str, passed: bool, detail: String| {
        checks.push(BundleCheck {
            name,
            passed,
            detail,
        });
    };
    let ok = signature_valid(
        &b.public_key,
        &signed_message(&bytes[..b.signed_len]),
        &b.signature,
    );
    check(
        "bundle-signature",
        ok,
        if ok {
            "the bundle is signed by its key".into()
        } else {
            "the bundle signature does not match its contents".into()
        },
    );
    let ok = signature_valid(&b.public_key, &b.card, &b.card_signature);
    check(
        "card-signature",
        ok,
        if ok {
            "the model card is signed by the same key".into()
        } else {
            "the card signature does not match the card".into()
        },
    );
    let key_sha = sha256(&b.public_key);
    if let Some(expected) = expected_key_sha256 {
        let ok = &key_sha == expected;
        check(
            "signing-key",
            ok,
            format!(
                "key SHA-256 {} {} the expected {}",
                hex::encode(key_sha),
                if ok { "is" } else { "is not" },
                hex::encode(expected)
            ),
        );
    }
    let card: Option<serde_json::Value> = serde_json::from_slice(&b.card).ok();
    let model_label = card.as_ref().and_then(|c| {
        Some(format!(
            "{}@{}",
            c.pointer("/components/0/name")?.as_str()?,
            c.pointer("/components/0/version")?.as_str()?
        ))
    });
    check(
        "card",
        card.is_some() && model_label.is_some(),
        "the card is CycloneDX JSON naming the model".into(),
    );
    let card = card.unwrap_or(serde_json::Value::Null);
    let weights_sha = hex::encode(sha256(&b.weights));
    let stated = card
        .pointer("/components/0/hashes/0/content")
        .and_then(|v| v.as_str());
    check(
        "weights-digest",
        stated == Some(weights_sha.as_str()),
        format!("weights SHA-256 {weights_sha}, card says {stated:?}"),
    );
    let lineage_sha = hex::encode(sha256(&b.lineage));
    let stated = card_property(&card, "hearth:lineage-sha256");
    let lineage: Option<Lineage> = serde_json::from_slice(&b.lineage).ok();
    check(
        "lineage",
        stated == Some(lineage_sha.as_str()) && lineage.is_some(),
        match &lineage {
            Some(l) => format!(
                "lineage SHA-256 {lineage_sha} (card says {stated:?}): datasets {}",
                l.datasets
                    .iter()
                    .map(|d| format!("{}@{} sha256:{}", d.name, d.version, d.sha256))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "the lineage section is not lineage JSON".into(),
        },
    );
    let model = Model::from_json(&b.weights);
    let inputs_listed = card
        .pointer("/components/0/modelCard/modelParameters/inputs")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len);
    check(
        "weights",
        matches!(&model, Ok(m) if m.prep.features.len() == inputs_listed),
        match &model {
            Ok(m) => format!(
                "the weights decode: {} inputs (the card lists {inputs_listed})",
                m.prep.features.len()
            ),
            Err(e) => format!("the weights do not decode: {e}"),
        },
    );
    Ok(BundleVerdict {
        model: model_label,
        public_key: hex::encode(b.public_key),
        public_key_sha256: hex::encode(key_sha),
        checks,
    })
}
