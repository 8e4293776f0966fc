//! The verifier: evidence + references + the auditor's nonce -> a verdict that lists every check.
//!
//! Security verdicts are values: a failed check is reported, never raised. Only a reference that
//! cannot be used at all (none given) is an error; evidence that does not parse as JSON fails
//! earlier, in [`Evidence::from_json`].

use std::fmt;

use serde::Serialize;

use crate::evidence::Evidence;
use crate::pcr::PcrValues;
use crate::quote::{AkKey, Attest, EcdsaSignature, check_pcr_digest, check_signature};
use crate::reference::{Combined, Reference};

/// Overall appraisal, as EAR's `ear.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Affirming,
    Warning,
    Contraindicated,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Affirming => "affirming",
            Status::Warning => "warning",
            Status::Contraindicated => "contraindicated",
        })
    }
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Could not be checked (what it needs is missing): says why, never silently.
    Skipped,
    Warn,
    Fail,
}

/// The trustworthiness claim a check speaks to (EAR / AR4SI trustworthiness vector).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    InstanceIdentity,
    Hardware,
    Executables,
    Configuration,
}

/// One finding inside a check, e.g. one PCR: expected against actual.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub claim: Claim,
    pub outcome: Outcome,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl Check {
    fn new(id: &'static str, claim: Claim, outcome: Outcome, detail: impl Into<String>) -> Check {
        Check {
            id,
            claim,
            outcome,
            detail: detail.into(),
            findings: Vec::new(),
        }
    }
}

/// The verdict: every check, the overall status and the trustworthiness vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub checks: Vec<Check>,
}

/// AR4SI tiers as EAR encodes them.
const TIER_NONE: i8 = 0;
const TIER_AFFIRMING: i8 = 2;
const TIER_WARNING: i8 = 32;
const TIER_CONTRAINDICATED: i8 = 96;

impl Verdict {
    fn from_checks(checks: Vec<Check>) -> Verdict {
        let worst = checks
            .iter()
            .map(|c| c.outcome)
            .max()
            .unwrap_or(Outcome::Fail);
        let status = match worst {
            Outcome::Fail => Status::Contraindicated,
            Outcome::Warn => Status::Warning,
            Outcome::Pass | Outcome::Skipped => Status::Affirming,
        };
        Verdict { status, checks }
    }

    /// Whether the appliance can be trusted (affirming, or warning with every check passed or
    /// warned about: nothing failed).
    pub fn trusted(&self) -> bool {
        self.status != Status::Contraindicated
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The AR4SI tier of one claim: the worst outcome of its checks.
    pub fn tier(&self, claim: Claim) -> i8 {
        let worst = self
            .checks
            .iter()
            .filter(|c| c.claim == claim && c.outcome != Outcome::Skipped)
            .map(|c| c.outcome)
            .max();
        match worst {
            None => TIER_NONE,
            Some(Outcome::Pass | Outcome::Skipped) => TIER_AFFIRMING,
            Some(Outcome::Warn) => TIER_WARNING,
            Some(Outcome::Fail) => TIER_CONTRAINDICATED,
        }
    }

    /// The verdict as an EAR (Entity Attestation Result) JSON object.
    pub fn to_ear(&self, issued_at_unix: u64) -> serde_json::Value {
        serde_json::json!({
            "eat_profile": "tag:github.com,2023:veraison/ear",
            "iat": issued_at_unix,
            "ear.verifier-id": {
                "developer": "hearth",
                "build": concat!("hearth-attest ", env!("CARGO_PKG_VERSION")),
            },
            "submods": {
                "hearth-appliance": {
                    "ear.status": self.status,
                    "ear.trustworthiness-vector": {
                        "instance-identity": self.tier(Claim::InstanceIdentity),
                        "hardware": self.tier(Claim::Hardware),
                        "executables": self.tier(Claim::Executables),
                        "configuration": self.tier(Claim::Configuration),
                    },
                    "ear.appraisal-policy-id": "hearth/verify/1",
                    "hearth.checks": self.checks,
                }
            }
        })
    }
}

/// The verifier could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no reference given: nothing to verify against (Hearth has no accept-all default)")]
    NoReference,
}

/// PCRs whose values the release determines (boot manager, kernel and initrd, UKI, …); the others
/// describe the platform's configuration.
fn claim_of(pcr: u8) -> Claim {
    match pcr {
        4 | 8..=14 => Claim::Executables,
        _ => Claim::Configuration,
    }
}

/// Runs every check of `evidence` against `references` and the nonce the auditor chose.
pub fn verify(
    evidence: &Evidence,
    references: &[Reference],
    expected_nonce: &[u8],
) -> Result<Verdict, VerifyError> {
    if references.is_empty() {
        return Err(VerifyError::NoReference);
    }
    let combined = Combined::new(references);
    let mut checks = Vec::new();

    // The quote's structure, then its signature under the AK in the evidence.
    let attest = match Attest::parse(&evidence.quote) {
        Ok(a) => {
            checks.push(Check::new(
                "quote.structure",
                Claim::Hardware,
                Outcome::Pass,
                "TPMS_ATTEST is a TPM-generated quote (magic and type)",
            ));
            Some(a)
        }
        Err(e) => {
            checks.push(Check::new(
                "quote.structure",
                Claim::Hardware,
                Outcome::Fail,
                format!("the quote is not a TPM-generated TPMS_ATTEST: {e}"),
            ));
            None
        }
    };
    let signature = EcdsaSignature::parse(&evidence.signature);
    let ak = AkKey::from_tpm2b_public(&evidence.ak_public);
    checks.push(match (&signature, &ak) {
        (Ok(sig), Ok(ak)) => {
            let mut failures: Vec<String> = check_signature(&evidence.quote, sig, ak)
                .iter()
                .map(ToString::to_string)
                .collect();
            // Tools like tpm2_checkquote take the PEM: it must be the same key.
            if AkKey::from_pem(&evidence.ak_pem)
                .map(|k| k.point().to_vec())
                .ok()
                != Some(ak.point().to_vec())
            {
                failures.push("ak_pem is not the attestation key in ak_public".into());
            }
            if failures.is_empty() {
                Check::new(
                    "quote.signature",
                    Claim::Hardware,
                    Outcome::Pass,
                    "the quote's signature verifies under the attestation key",
                )
            } else {
                Check::new(
                    "quote.signature",
                    Claim::Hardware,
                    Outcome::Fail,
                    failures.join("; "),
                )
            }
        }
        (Err(e), _) => Check::new(
            "quote.signature",
            Claim::Hardware,
            Outcome::Fail,
            format!("the signature does not parse: {e}"),
        ),
        (_, Err(e)) => Check::new(
            "quote.signature",
            Claim::Hardware,
            Outcome::Fail,
            format!("the attestation key does not parse: {e}"),
        ),
    });

    checks.push(check_ak(evidence, &combined));
    checks.push(check_nonce(evidence, attest.as_ref(), expected_nonce));

    // Only PCR values the quote covers are authenticated; everything below uses those.
    let quoted = quoted_values(evidence, attest.as_ref());
    checks.push(match (&attest, &signature) {
        (Some(attest), Ok(sig)) => {
            let failures = check_pcr_digest(attest, sig.hash_alg, &evidence.pcrs);
            if failures.is_empty() {
                Check::new(
                    "quote.pcr_digest",
                    Claim::Hardware,
                    Outcome::Pass,
                    format!(
                        "the reported values of the {} quoted PCRs hash to the quoted digest",
                        attest.covered().len()
                    ),
                )
            } else {
                let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
                Check::new(
                    "quote.pcr_digest",
                    Claim::Hardware,
                    Outcome::Fail,
                    text.join("; "),
                )
            }
        }
        _ => Check::new(
            "quote.pcr_digest",
            Claim::Hardware,
            Outcome::Skipped,
            "no readable quote and signature to take the digest and its hash from",
        ),
    });

    let (log_check, analysis) = crate::logcheck::check_eventlog(evidence, &quoted);
    checks.push(log_check);
    checks.extend(check_references(&combined, &quoted));
    checks.push(crate::logcheck::check_runtime_events(
        evidence, &combined, &quoted, &analysis,
    ));
    checks.push(check_tpm_kind(evidence));

    Ok(Verdict::from_checks(checks))
}

fn check_ak(evidence: &Evidence, combined: &Combined) -> Check {
    let digest = Reference::ak_digest(&evidence.ak_public);
    if combined.ak_public_sha256.is_empty() {
        return Check::new(
            "ak.allowed",
            Claim::InstanceIdentity,
            Outcome::Fail,
            "no reference pins the attestation key, so the quote proves nothing about which TPM \
             signed it; capture one with `hearth attest reference --from-evidence`",
        );
    }
    let mut check = if combined.ak_public_sha256.contains(&digest) {
        Check::new(
            "ak.allowed",
            Claim::InstanceIdentity,
            Outcome::Pass,
            "the attestation key is one the references allow",
        )
    } else {
        Check::new(
            "ak.allowed",
            Claim::InstanceIdentity,
            Outcome::Fail,
            "the attestation key is not one the references allow",
        )
    };
    if check.outcome == Outcome::Fail {
        check.findings.push(Finding {
            subject: "ak_public_sha256".into(),
            expected: Some(
                combined
                    .ak_public_sha256
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
            actual: Some(digest),
            note: None,
        });
    }
    check
}

fn check_nonce(evidence: &Evidence, attest: Option<&Attest>, expected_nonce: &[u8]) -> Check {
    let Some(attest) = attest else {
        return Check::new(
            "quote.nonce",
            Claim::Hardware,
            Outcome::Skipped,
            "no readable quote to take the qualifying data from",
        );
    };
    let expected = Evidence::qualifying_data_with(
        expected_nonce,
        evidence.tls_spki_sha256.as_deref(),
        evidence.audit_head.as_deref(),
        evidence.model_signing_key_sha256.as_deref(),
    );
    let mut parts = Vec::new();
    if evidence.tls_spki_sha256.is_some() {
        parts.push("the TLS key");
    }
    if evidence.audit_head.is_some() {
        parts.push("the audit head");
    }
    if evidence.model_signing_key_sha256.is_some() {
        parts.push("the model-signing key");
    }
    let bound_text = match parts.as_slice() {
        [] => "the nonce".to_owned(),
        [one] => format!("the nonce bound with {one}"),
        [init @ .., last] => format!("the nonce bound with {} and {last}", init.join(", ")),
    };
    let bound = bound_text.as_str();
    let mut check = if attest.extra_data == expected {
        Check::new(
            "quote.nonce",
            Claim::Hardware,
            Outcome::Pass,
            format!("the quote is fresh: its qualifying data is {bound}"),
        )
    } else {
        Check::new(
            "quote.nonce",
            Claim::Hardware,
            Outcome::Fail,
            format!("the quote does not answer this nonce (qualifying data should be {bound})"),
        )
    };
    if check.outcome == Outcome::Fail {
        check.findings.push(Finding {
            subject: "qualifying data".into(),
            expected: Some(hex::encode(&expected)),
            actual: Some(hex::encode(&attest.extra_data)),
            note: (evidence.nonce != expected_nonce).then(|| {
                format!(
                    "the evidence says it answers nonce {}",
                    hex::encode(&evidence.nonce)
                )
            }),
        });
    }
    check
}

/// The reported PCR values that the quote covers (all of them when the quote is unreadable, so
/// the later checks still report something; the quote checks have failed then anyway).
fn quoted_values(evidence: &Evidence, attest: Option<&Attest>) -> PcrValues {
    let Some(attest) = attest else {
        return evidence.pcrs.clone();
    };
    let mut out = PcrValues::default();
    for (bank, pcr) in attest.covered() {
        if let Some(v) = evidence.pcrs.get(bank, pcr) {
            out.insert(bank, pcr, v.to_vec());
        }
    }
    out
}

fn check_references(combined: &Combined, quoted: &PcrValues) -> Vec<Check> {
    let mut out = Vec::new();
    for (id, claim, what) in [
        (
            "reference.executables",
            Claim::Executables,
            "release-determined PCRs (4, 8-14)",
        ),
        (
            "reference.configuration",
            Claim::Configuration,
            "platform and configuration PCRs",
        ),
    ] {
        let mut findings = Vec::new();
        let mut matched = 0usize;
        for ((bank, pcr), allowed) in &combined.pcrs {
            if claim_of(*pcr) != claim {
                continue;
            }
            let expected = allowed
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(" or ");
            match quoted.get(*bank, *pcr) {
                Some(actual) if allowed.contains(actual) => matched += 1,
                Some(actual) => findings.push(Finding {
                    subject: format!("{bank}:{pcr}"),
                    expected: Some(expected),
                    actual: Some(hex::encode(actual)),
                    note: None,
                }),
                None => findings.push(Finding {
                    subject: format!("{bank}:{pcr}"),
                    expected: Some(expected),
                    actual: None,
                    note: Some("referenced but not covered by the quote".into()),
                }),
            }
        }
        let check = if combined.pcrs.is_empty() {
            // Pinning only the AK checks nothing about the software: no accept-all default.
            Check::new(
                id,
                claim,
                Outcome::Fail,
                "no reference constrains any PCR: nothing about the running software is checked",
            )
        } else if matched == 0 && findings.is_empty() {
            Check::new(
                id,
                claim,
                Outcome::Warn,
                format!("no reference constrains the {what}"),
            )
        } else if findings.is_empty() {
            Check::new(
                id,
                claim,
                Outcome::Pass,
                format!("all {matched} referenced {what} match"),
            )
        } else {
            let mut c = Check::new(
                id,
                claim,
                Outcome::Fail,
                format!(
                    "{} of {} referenced {what} differ from the references",
                    findings.len(),
                    findings.len() + matched
                ),
            );
            c.findings = findings;
            c
        };
        out.push(check);
    }
    out
}

fn check_tpm_kind(evidence: &Evidence) -> Check {
    match &evidence.tpm {
        Some(tpm) if tpm.software => Check::new(
            "tpm.kind",
            Claim::Hardware,
            Outcome::Warn,
            format!(
                "the TPM reports itself as a software TPM ({} {}): no hardware root of trust",
                tpm.manufacturer, tpm.vendor
            ),
        ),
        Some(tpm) => Check::new(
            "tpm.kind",
            Claim::Hardware,
            Outcome::Pass,
            format!(
                "the TPM reports itself as hardware ({} {}, firmware {}); self-reported, the \
                 pinned attestation key is what proves it",
                tpm.manufacturer, tpm.vendor, tpm.firmware_version
            ),
        ),
        None => Check::new(
            "tpm.kind",
            Claim::Hardware,
            Outcome::Skipped,
            "the evidence does not say what kind of TPM made it",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::EVIDENCE_FORMAT;
    use crate::pcr::Bank;

    fn data(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/swtpm-quote");
        std::fs::read(format!("{dir}/{name}")).unwrap()
    }

    /// Evidence from the swtpm fixture quote (nonce "hearth-fixture"), without event logs.
    pub(crate) fn fixture_evidence() -> Evidence {
        Evidence {
            format: EVIDENCE_FORMAT.into(),
            nonce: b"hearth-fixture".to_vec(),
            quote: data("quote.msg"),
            signature: data("quote.sig"),
            ak_public: data("ak.tpm2b"),
            ak_pem: String::from_utf8(data("ak.pem")).unwrap(),
            pcrs: serde_json::from_slice(&data("pcrs.json")).unwrap(),
            eventlog: None,
            runtime_log: None,
            tls_spki_sha256: None,
            audit_head: None,
            model_signing_key_sha256: None,
            tpm: None,
        }
    }

    pub(crate) fn fixture_reference(ev: &Evidence) -> Reference {
        let mut r = Reference::from_pcrs(None, &ev.pcrs, &ev.pcrs.selection()).unwrap();
        r.ak_public_sha256.push(Reference::ak_digest(&ev.ak_public));
        r
    }

    #[test]
    fn sound_evidence_without_logs_is_a_warning() {
        let ev = fixture_evidence();
        let v = verify(&ev, &[fixture_reference(&ev)], b"hearth-fixture").unwrap();
        assert_eq!(v.status, Status::Warning);
        assert!(v.trusted());
        assert_eq!(v.check("eventlog.replay").unwrap().outcome, Outcome::Warn);
        assert_eq!(v.check("tpm.kind").unwrap().outcome, Outcome::Skipped);
        assert_eq!(v.tier(Claim::InstanceIdentity), TIER_AFFIRMING);
        assert_eq!(v.tier(Claim::Executables), TIER_WARNING);
    }

    #[test]
    fn no_reference_is_an_error_not_a_pass() {
        let ev = fixture_evidence();
        assert!(matches!(
            verify(&ev, &[], b"hearth-fixture"),
            Err(VerifyError::NoReference)
        ));
    }

    #[test]
    fn references_combine_as_alternatives_per_pcr() {
        let ev = fixture_evidence();
        let good = fixture_reference(&ev);
        let mut other = Reference::new(Some("next release".into()));
        other
            .pcrs
            .insert(crate::pcr::Bank::Sha256, 11, vec![0x11; 32]);
        let v = verify(&ev, &[good.clone(), other.clone()], b"hearth-fixture").unwrap();
        assert!(v.trusted(), "{:?}", v.checks);
        // Alone, the other release's value is wrong, and the verdict shows both values.
        let mut only_other = other;
        only_other.ak_public_sha256 = good.ak_public_sha256.clone();
        let v = verify(&ev, &[only_other], b"hearth-fixture").unwrap();
        let check = v.check("reference.executables").unwrap();
        assert_eq!(check.outcome, Outcome::Fail);
        assert_eq!(check.findings[0].subject, "sha256:11");
    }

    #[test]
    fn a_reference_pinning_only_the_ak_is_not_enough() {
        let ev = fixture_evidence();
        let mut r = Reference::new(None);
        r.ak_public_sha256.push(Reference::ak_digest(&ev.ak_public));
        let v = verify(&ev, &[r], b"hearth-fixture").unwrap();
        assert!(!v.trusted());
        let failed: Vec<&str> = v.failed().map(|c| c.id).collect();
        assert_eq!(failed, ["reference.executables", "reference.configuration"]);
    }

    #[test]
    fn a_quoted_bank_the_log_does_not_carry_fails() {
        // The fixture quote covers sha1:0 and sha256:0,7,11; this log carries sha256 only.
        let mut ev = fixture_evidence();
        ev.eventlog = Some(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../eventlog/tests/data/ovmf-uki-sha256.bin"
            ))
            .unwrap(),
        );
        let v = verify(&ev, &[fixture_reference(&ev)], b"hearth-fixture").unwrap();
        let check = v.check("eventlog.replay").unwrap();
        assert_eq!(check.outcome, Outcome::Fail);
        assert!(
            check.findings.iter().any(|f| f.subject == "bank sha1"),
            "{check:?}"
        );
    }

    #[test]
    fn runtime_events_must_be_proven_by_the_quote() {
        use crate::reference::AllowedRuntimeEvent;
        // The fixture quote does not cover PCR 15: a runtime log and an allowlist for it cannot
        // be checked, so they fail rather than pass vacuously.
        let mut ev = fixture_evidence();
        ev.runtime_log = Some(
            hearth_eventlog::RuntimeEvent::measure(15, "hearth-config", "good", &[Bank::Sha256])
                .to_line()
                + "\n",
        );
        let mut r = fixture_reference(&ev);
        r.runtime_events = Some(vec![AllowedRuntimeEvent {
            pcr: 15,
            kind: "hearth-config".into(),
            sha256: hex::encode(Bank::Sha256.hash(b"good")),
        }]);
        let v = verify(&ev, &[r.clone()], b"hearth-fixture").unwrap();
        let check = v.check("runtime.events").unwrap();
        assert_eq!(check.outcome, Outcome::Fail, "{check:?}");
        assert_eq!(check.findings[0].subject, "sha256:15");
        // Without a runtime log at all, the same reference still demands PCR 15 be quoted.
        ev.runtime_log = None;
        let v = verify(&ev, &[r], b"hearth-fixture").unwrap();
        assert_eq!(v.check("runtime.events").unwrap().outcome, Outcome::Fail);
    }

    #[test]
    fn a_pem_that_is_another_key_fails_the_signature_check() {
        let mut ev = fixture_evidence();
        ev.ak_pem = ev.ak_pem.replace('M', "N");
        let v = verify(&ev, &[fixture_reference(&ev)], b"hearth-fixture").unwrap();
        let check = v.check("quote.signature").unwrap();
        assert_eq!(check.outcome, Outcome::Fail);
        assert!(check.detail.contains("ak_pem"), "{}", check.detail);
    }

    #[test]
    fn unquoted_values_are_not_trusted() {
        // A PCR the evidence reports but the quote does not cover cannot satisfy a reference.
        let mut ev = fixture_evidence();
        ev.pcrs.insert(crate::pcr::Bank::Sha256, 4, vec![0x44; 32]);
        let mut r = fixture_reference(&fixture_evidence());
        r.pcrs.insert(crate::pcr::Bank::Sha256, 4, vec![0x44; 32]);
        let v = verify(&ev, &[r], b"hearth-fixture").unwrap();
        let check = v.check("reference.executables").unwrap();
        assert_eq!(check.outcome, Outcome::Fail);
        assert_eq!(
            check.findings[0].note.as_deref(),
            Some("referenced but not covered by the quote")
        );
    }

    #[test]
    fn the_model_signing_key_is_a_third_binding() {
        let n = b"nonce";
        // Absent, the encoding is the two-binding one (old evidence verifies unchanged).
        assert_eq!(
            Evidence::qualifying_data_with(n, Some(&[1; 32]), Some(&[2; 32]), None),
            Evidence::qualifying_data(n, Some(&[1; 32]), Some(&[2; 32]))
        );
        let three =
            Evidence::qualifying_data_with(n, Some(&[1; 32]), Some(&[2; 32]), Some(&[3; 32]));
        let mut buf = b"hearth-qd/1\x00\x05nonce\x07\x00\x20".to_vec();
        buf.extend_from_slice(&[1; 32]);
        buf.extend_from_slice(&[0, 32]);
        buf.extend_from_slice(&[2; 32]);
        buf.extend_from_slice(&[0, 32]);
        buf.extend_from_slice(&[3; 32]);
        assert_eq!(three, crate::pcr::Bank::Sha256.hash(&buf));
        // The key alone differs from the audit head alone with the same bytes.
        assert_ne!(
            Evidence::qualifying_data_with(n, None, None, Some(&[2; 32])),
            Evidence::qualifying_data(n, None, Some(&[2; 32]))
        );
        // Evidence claiming a key binding the quote does not carry fails the nonce check.
        let mut ev = fixture_evidence();
        ev.model_signing_key_sha256 = Some(vec![3; 32]);
        let v = verify(
            &ev,
            &[fixture_reference(&fixture_evidence())],
            b"hearth-fixture",
        )
        .unwrap();
        assert_eq!(v.check("quote.nonce").unwrap().outcome, Outcome::Fail);
        assert!(!v.trusted());
    }

    #[test]
    fn bindings_change_the_qualifying_data() {
        let n = b"nonce";
        assert_eq!(Evidence::qualifying_data(n, None, None), n);
        let both = Evidence::qualifying_data(n, Some(&[1; 32]), Some(&[2; 32]));
        let mut buf = b"hearth-qd/1\x00\x05nonce\x03\x00\x20".to_vec();
        buf.extend_from_slice(&[1; 32]);
        buf.extend_from_slice(&[0, 32]);
        buf.extend_from_slice(&[2; 32]);
        assert_eq!(both, crate::pcr::Bank::Sha256.hash(&buf));
        assert_ne!(both, Evidence::qualifying_data(n, Some(&[1; 32]), None));
        // Moving bytes between the nonce and a binding, or swapping the bindings, changes it.
        let mut longer = n.to_vec();
        longer.extend_from_slice(&[1; 32]);
        assert_ne!(
            both,
            Evidence::qualifying_data(&longer, None, Some(&[2; 32]))
        );
        assert_ne!(
            Evidence::qualifying_data(n, Some(&[2; 32]), None),
            Evidence::qualifying_data(n, None, Some(&[2; 32]))
        );
        // The fixture quote was made over the bare nonce: with a binding claimed, it fails.
        let mut ev = fixture_evidence();
        ev.audit_head = Some(vec![9; 32]);
        let v = verify(&ev, &[fixture_reference(&ev)], b"hearth-fixture").unwrap();
        assert_eq!(v.check("quote.nonce").unwrap().outcome, Outcome::Fail);
    }

    #[test]
    fn evidence_json_round_trips_and_refuses_unknown_fields() {
        let ev = fixture_evidence();
        let json = ev.to_json();
        assert_eq!(Evidence::from_json(json.as_bytes()).unwrap(), ev);
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["surprise"] = serde_json::json!(1);
        let err = Evidence::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        value.as_object_mut().unwrap().remove("surprise");
        value["audit_head"] = serde_json::json!("abcd");
        let err = Evidence::from_json(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "evidence audit_head is 2 bytes; a SHA-256 digest is 32"
        );
        value.as_object_mut().unwrap().remove("audit_head");
        value["format"] = serde_json::json!("hearth-evidence/99");
        let err = Evidence::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("hearth-evidence/99"), "{err}");
    }

    /// A small deterministic PRNG (xorshift64*) for mutation tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
        }
    }

    fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, u8::try_from(rng.below(256)).unwrap());
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.remove(i);
            }
            _ => {
                let i = rng.below(bytes.len() + 1);
                bytes.truncate(i);
            }
        }
    }

    #[test]
    fn thousands_of_mutated_evidences_never_panic() {
        let mut base = fixture_evidence();
        base.eventlog = Some(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../eventlog/tests/data/ovmf-uki-4banks.bin"
            ))
            .unwrap(),
        );
        base.runtime_log = Some(
            "{\"pcr\": 15, \"digests\": {\"sha256\": \"".to_owned()
                + &"ab".repeat(32)
                + "\"}, \"type\": \"t\", \"data\": \"d\"}\n",
        );
        let reference = fixture_reference(&base);
        let refs = std::slice::from_ref(&reference);
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let mut verdicts = 0usize;
        // Binary fields: every mutation still yields a verdict, never a panic.
        for round in 0..4000 {
            let mut ev = base.clone();
            for _ in 0..=rng.below(3) {
                match round % 5 {
                    0 => mutate(&mut rng, &mut ev.quote),
                    1 => mutate(&mut rng, &mut ev.signature),
                    2 => mutate(&mut rng, &mut ev.ak_public),
                    3 => mutate(&mut rng, ev.eventlog.as_mut().unwrap()),
                    _ => {
                        let mut text = ev.runtime_log.take().unwrap().into_bytes();
                        mutate(&mut rng, &mut text);
                        ev.runtime_log = Some(String::from_utf8_lossy(&text).into_owned());
                    }
                }
            }
            let v = verify(&ev, refs, b"hearth-fixture").unwrap();
            assert_eq!(v.checks.len(), 10);
            verdicts += 1;
        }
        // The JSON document: parse errors or verdicts, never a panic.
        let json = base.to_json().into_bytes();
        for _ in 0..2000 {
            let mut doc = json.clone();
            for _ in 0..=rng.below(4) {
                mutate(&mut rng, &mut doc);
            }
            if let Ok(ev) = Evidence::from_json(&doc) {
                verify(&ev, refs, b"hearth-fixture").unwrap();
                verdicts += 1;
            }
        }
        assert!(verdicts >= 4000);
    }
}
