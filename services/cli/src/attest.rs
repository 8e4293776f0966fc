//! `hearth attest …` (evidence and references) and `hearth verify`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use hearth_attest::evidence::{EVIDENCE_FORMAT, Evidence, TpmDescription};
use hearth_attest::pcr::{PcrSelection, PcrValues};
use hearth_attest::quote::{AkKey, Attest, EcdsaSignature, check_pcr_digest, check_signature};
use hearth_attest::reference::Reference;
use hearth_attest::verify::{Check, Claim, Finding, Outcome, Status, Verdict, verify};
use hearth_tpm::{TpmConfig, TpmHandle};

use crate::fetch;

/// Where Linux exposes the firmware's TCG event log.
const DEFAULT_EVENTLOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
/// Largest log, runtime log or evidence file read.
const MAX_INPUT: u64 = 16 * 1024 * 1024;

#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// Produce evidence for a verifier: a fresh quote over its nonce, the PCRs, the event logs.
    Evidence {
        /// The verifier's nonce, hex (at most 64 bytes).
        #[arg(long)]
        nonce: String,
        /// The firmware event log [default: /sys/kernel/security/tpm0/binary_bios_measurements,
        /// left out with a note when absent].
        #[arg(long)]
        eventlog: Option<PathBuf>,
        /// Leave the firmware event log out.
        #[arg(long, conflicts_with = "eventlog")]
        no_eventlog: bool,
        /// Hearth's runtime log (JSON lines).
        #[arg(long)]
        runtime_log: Option<PathBuf>,
        /// PCRs to quote, e.g. `0-15` or `sha256:0-15+sha1:0-15`.
        #[arg(long, default_value = "0-15")]
        pcrs: String,
        /// SHA-256 (hex) of the console's TLS SubjectPublicKeyInfo, to bind into the quote.
        #[arg(long)]
        tls_spki_sha256: Option<String>,
        /// Audit-log head (hex), to bind into the quote.
        #[arg(long)]
        audit_head: Option<String>,
    },
    /// Capture a reference (known-good values) from PCRs or from evidence.
    Reference {
        /// PCR values as `hearth tpm pcrs --json` writes them.
        #[arg(
            long,
            conflicts_with = "from_evidence",
            required_unless_present = "from_evidence"
        )]
        from_pcrs: Option<PathBuf>,
        /// Evidence: its quoted PCRs, and its attestation key is pinned. The evidence must be
        /// self-consistent (signature and PCR digest) to be captured.
        #[arg(long)]
        from_evidence: Option<PathBuf>,
        /// Which PCRs to pin, e.g. `0-7,9,11` [default: every PCR in the input].
        #[arg(long)]
        pcrs: Option<String>,
        /// A name for the reference, e.g. "platform of rack 3 box 12".
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A running appliance, `https://HOST[:PORT]`: fetch fresh evidence over TLS (with a new
    /// random nonce) and check that it binds the TLS key of this very connection. Without it,
    /// verify `--evidence` offline.
    #[arg(value_name = "TARGET", conflicts_with_all = ["evidence", "nonce"])]
    target: Option<String>,
    /// Evidence from `hearth attest evidence` (offline mode).
    #[arg(long, required_unless_present = "target")]
    evidence: Option<PathBuf>,
    /// Reference manifests; several combine (release + platform).
    #[arg(long = "reference", required = true)]
    references: Vec<PathBuf>,
    /// The release key: hex Ed25519, as the image build writes it (`signing-key.pub`). Every
    /// --reference with a signature beside it (FILE.sig, hex, as the image build writes
    /// `reference.json.sig`) must verify under it, and at least one must be signed.
    #[arg(long, value_name = "FILE")]
    release_key: Option<PathBuf>,
    /// The nonce you gave the appliance, hex (offline mode).
    #[arg(long, required_unless_present = "target")]
    nonce: Option<String>,
    /// With TARGET: the SHA-256 of the appliance's TLS certificate (DER), 64 hex digits, colons
    /// and case ignored. Any other certificate is refused (not trusted).
    #[arg(long, requires = "target", value_name = "SHA256")]
    fingerprint: Option<String>,
    /// With TARGET: write the fetched evidence here, as received, to archive and re-check offline.
    #[arg(long, requires = "target", value_name = "FILE")]
    save_evidence: Option<PathBuf>,
    /// With TARGET: give up when the appliance has not answered completely within this long.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    http_timeout_secs: u64,
    /// Print the verdict as EAR JSON.
    #[arg(long)]
    json: bool,
}

/// Input `hearth verify` cannot use at all: exit 2, distinct from "not trusted".
#[derive(Debug, thiserror::Error)]
#[error("unusable input")]
pub struct UnusableInput;

pub async fn run(config: TpmConfig, cmd: AttestCommand) -> Result<()> {
    match cmd {
        AttestCommand::Evidence {
            nonce,
            eventlog,
            no_eventlog,
            runtime_log,
            pcrs,
            tls_spki_sha256,
            audit_head,
        } => {
            let nonce = parse_hex("--nonce", &nonce)?;
            if nonce.is_empty() {
                bail!("--nonce is empty: the verifier must supply fresh qualifying data");
            }
            let tls = tls_spki_sha256
                .map(|h| parse_digest("--tls-spki-sha256", &h))
                .transpose()?;
            let audit = audit_head
                .map(|h| parse_digest("--audit-head", &h))
                .transpose()?;
            let selection: PcrSelection = pcrs.parse()?;
            let eventlog = match (eventlog, no_eventlog) {
                (_, true) => None,
                (Some(path), false) => Some(read_bounded(&path)?),
                (None, false) => {
                    let path = Path::new(DEFAULT_EVENTLOG);
                    if path.exists() {
                        Some(read_bounded(path)?)
                    } else {
                        eprintln!(
                            "note: no firmware event log at {DEFAULT_EVENTLOG}; evidence has none"
                        );
                        None
                    }
                }
            };
            let runtime_log = runtime_log
                .map(|p| {
                    String::from_utf8(read_bounded(&p)?)
                        .with_context(|| format!("{} is not UTF-8", p.display()))
                })
                .transpose()?;
            let tpm = TpmHandle::open(config).await?;
            let ak = tpm.ak_public().await?;
            let qualifying = Evidence::qualifying_data(&nonce, tls.as_deref(), audit.as_deref());
            let quote = tpm.quote(qualifying, selection).await?;
            let info = tpm.info();
            let evidence = Evidence {
                format: EVIDENCE_FORMAT.to_owned(),
                nonce,
                quote: quote.attest,
                signature: quote.signature,
                ak_public: ak.tpm2b_public,
                ak_pem: ak.pem,
                pcrs: quote.pcrs,
                eventlog,
                runtime_log,
                tls_spki_sha256: tls,
                audit_head: audit,
                model_signing_key_sha256: None,
                tpm: Some(TpmDescription {
                    manufacturer: info.manufacturer.clone(),
                    vendor: info.vendor.clone(),
                    firmware_version: info.firmware_version.clone(),
                    software: info.software,
                }),
            };
            println!("{}", evidence.to_json());
            Ok(())
        }
        AttestCommand::Reference {
            from_pcrs,
            from_evidence,
            pcrs,
            name,
        } => {
            let (values, ak) = match (from_pcrs, from_evidence) {
                (Some(path), _) => {
                    let values: PcrValues = serde_json::from_slice(&read_bounded(&path)?)
                        .with_context(|| format!("{} is not PCR values JSON", path.display()))?;
                    (values, None)
                }
                (None, Some(path)) => {
                    let evidence = Evidence::from_json(&read_bounded(&path)?)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let covered = self_consistent(&evidence).with_context(|| {
                        format!("{} cannot serve as a baseline", path.display())
                    })?;
                    // Only quoted values are authenticated: nothing else enters a baseline.
                    let mut quoted = PcrValues::default();
                    for (bank, pcr) in covered {
                        if let Some(v) = evidence.pcrs.get(bank, pcr) {
                            quoted.insert(bank, pcr, v.to_vec());
                        }
                    }
                    (quoted, Some(Reference::ak_digest(&evidence.ak_public)))
                }
                (None, None) => bail!("give --from-pcrs or --from-evidence"),
            };
            let selection = match pcrs {
                Some(text) => text.parse()?,
                None => values.selection(),
            };
            let mut reference =
                Reference::from_pcrs(name, &values, &selection).map_err(|(bank, pcr)| {
                    anyhow::anyhow!("the input has no (quoted) value for {bank}:{pcr}")
                })?;
            reference.ak_public_sha256.extend(ak);
            println!("{}", reference.to_json());
            Ok(())
        }
    }
}

/// A baseline must come from evidence whose signature and PCR digest hold; returns the (bank,
/// PCR) pairs the quote covers.
fn self_consistent(evidence: &Evidence) -> Result<Vec<(hearth_attest::pcr::Bank, u8)>> {
    let attest = Attest::parse(&evidence.quote)?;
    let sig = EcdsaSignature::parse(&evidence.signature)?;
    let ak = AkKey::from_tpm2b_public(&evidence.ak_public)?;
    let mut failures = check_signature(&evidence.quote, &sig, &ak);
    failures.extend(check_pcr_digest(&attest, sig.hash_alg, &evidence.pcrs));
    if let Some(first) = failures.first() {
        bail!("{first}");
    }
    Ok(attest.covered())
}

/// `hearth verify`: returns whether the appliance is trusted; unusable input is an error that
/// carries [`UnusableInput`].
pub async fn verify_command(args: VerifyArgs) -> Result<bool> {
    let unusable = |e: anyhow::Error| e.context(UnusableInput);
    let (evidence, nonce, remote, references) = match &args.target {
        Some(target) => {
            let (evidence, nonce, remote, references) = fetch_remote(target, &args).await?;
            (evidence, nonce, Some(remote), references)
        }
        None => {
            let (evidence, nonce) = read_offline(&args).map_err(unusable)?;
            (evidence, nonce, None, read_references(&args)?)
        }
    };
    let (references, signatures) = references;
    let mut verdict = verify(&evidence, &references, &nonce).map_err(|e| unusable(e.into()))?;
    if let Some(check) = signatures {
        if check.outcome == Outcome::Fail {
            verdict.status = Status::Contraindicated;
        }
        verdict.checks.push(check);
    }
    if let Some(remote) = &remote {
        let check = fetch::binding_check(&evidence, &remote.fetched);
        if check.outcome == Outcome::Fail {
            verdict.status = Status::Contraindicated;
        }
        verdict.checks.push(check);
    }
    if args.json {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut ear = verdict.to_ear(now);
        let submod = ear
            .pointer_mut("/submods/hearth-appliance")
            .and_then(serde_json::Value::as_object_mut);
        if let (Some(remote), Some(submod)) = (&remote, submod) {
            submod.insert("hearth.connection".into(), remote.to_json(&nonce));
        }
        println!("{}", serde_json::to_string_pretty(&ear)?);
    } else {
        if let Some(remote) = &remote {
            remote.print(&nonce);
        }
        print_verdict(&verdict);
    }
    Ok(verdict.trusted())
}

/// Offline mode: the evidence file and the nonce the auditor gave the appliance.
fn read_offline(args: &VerifyArgs) -> Result<(Evidence, Vec<u8>)> {
    // clap requires both when no TARGET is given.
    let (Some(path), Some(nonce)) = (&args.evidence, &args.nonce) else {
        bail!("give TARGET, or --evidence and --nonce");
    };
    let nonce = parse_hex("--nonce", nonce)?;
    if nonce.is_empty() {
        bail!("--nonce is empty: verify against the fresh nonce you gave the appliance");
    }
    let evidence = Evidence::from_json(&read_bounded(path)?)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((evidence, nonce))
}

/// The references, and the check of their signatures against the release key (none when there
/// is no key and no signature to speak of).
type References = (Vec<Reference>, Option<Check>);

fn read_references(args: &VerifyArgs) -> Result<References> {
    let unusable = |e: anyhow::Error| e.context(UnusableInput);
    let key = match &args.release_key {
        Some(path) => Some(read_hex_file(path, 32, "--release-key").map_err(unusable)?),
        None => None,
    };
    let mut references = Vec::new();
    let mut signed = Vec::new();
    for path in &args.references {
        let bytes = read_bounded(path).map_err(unusable)?;
        let r = Reference::from_json(&bytes)
            .with_context(|| format!("reading {}", path.display()))
            .map_err(unusable)?;
        references.push(r);
        let mut sig_path = path.clone().into_os_string();
        sig_path.push(".sig");
        let sig_path = PathBuf::from(sig_path);
        let signature = match read_bounded(&sig_path) {
            Ok(sig) => Some(sig),
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
            {
                None
            }
            Err(e) => return Err(unusable(e)),
        };
        signed.push((path.display().to_string(), bytes, signature));
    }
    Ok((references, signature_check(key.as_deref(), &signed)))
}

/// A file holding `len` bytes in hex (surrounding white space ignored).
fn read_hex_file(path: &Path, len: usize, flag: &str) -> Result<Vec<u8>> {
    let text = read_bounded(path)?;
    let bytes = parse_hex(flag, &String::from_utf8_lossy(&text))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() != len {
        bail!(
            "{flag}: {} holds {} bytes, not the {len} of an Ed25519 public key",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

/// A reference file as read: its name, its exact bytes, and its signature file's, if any.
type ReadReference = (String, Vec<u8>, Option<Vec<u8>>);

/// The check `reference.signature`: each reference against the release key.
fn signature_check(key: Option<&[u8]>, refs: &[ReadReference]) -> Option<Check> {
    let signed: Vec<&String> = refs
        .iter()
        .filter(|(_, _, sig)| sig.is_some())
        .map(|(name, _, _)| name)
        .collect();
    let Some(key) = key else {
        if signed.is_empty() {
            return None;
        }
        return Some(Check {
            id: "reference.signature",
            claim: Claim::Executables,
            outcome: Outcome::Skipped,
            detail: format!(
                "{} carries a signature, not checked: give --release-key to check where the \
                 references come from",
                list(&signed)
            ),
            findings: Vec::new(),
        });
    };
    let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key);
    let mut findings = Vec::new();
    let mut good = Vec::new();
    for (name, bytes, sig) in refs {
        let Some(sig) = sig else { continue };
        let sig = hex::decode(String::from_utf8_lossy(sig).trim());
        match &sig {
            Ok(sig) if public.verify(bytes, sig).is_ok() => good.push(name),
            _ => findings.push(Finding {
                subject: name.clone(),
                expected: Some("signed by the release key".into()),
                actual: Some(if sig.is_ok() {
                    "signed by another key, or the file was changed after signing".into()
                } else {
                    "an unreadable signature (not hex)".into()
                }),
                note: None,
            }),
        }
    }
    let fingerprint = hex::encode(&key[..8]);
    let (outcome, detail) = if !findings.is_empty() {
        (
            Outcome::Fail,
            format!(
                "{} of {} signed references fail the release key {fingerprint}…",
                findings.len(),
                signed.len()
            ),
        )
    } else if good.is_empty() {
        (
            Outcome::Fail,
            format!(
                "no reference is signed by the release key {fingerprint}… (give the release's \
                 reference.json with its reference.json.sig beside it)"
            ),
        )
    } else {
        (
            Outcome::Pass,
            format!("{} signed by the release key {fingerprint}…", list(&good)),
        )
    };
    Some(Check {
        id: "reference.signature",
        claim: Claim::Executables,
        outcome,
        detail,
        findings,
    })
}

fn list(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The live exchange behind `hearth verify https://…`: what the connection used.
struct Remote {
    target: fetch::Target,
    pinned: bool,
    fetched: fetch::Fetched,
}

impl Remote {
    fn print(&self, nonce: &[u8]) {
        println!("target: {}", self.target);
        println!("nonce: {}", hex::encode(nonce));
        let pin = if self.pinned {
            "pinned by --fingerprint"
        } else {
            "not pinned: pass --fingerprint to refuse any other"
        };
        println!(
            "certificate: sha256 {} ({pin})",
            hex::encode(self.fetched.certificate_sha256)
        );
    }

    fn to_json(&self, nonce: &[u8]) -> serde_json::Value {
        serde_json::json!({
            "target": self.target.to_string(),
            "nonce": hex::encode(nonce),
            "certificate_sha256": hex::encode(self.fetched.certificate_sha256),
            "certificate_pinned": self.pinned,
            "tls_spki_sha256": hex::encode(self.fetched.spki_sha256),
        })
    }
}

/// Parses the remote-mode flags, reads the references (before contacting anything), fetches
/// evidence over a fresh nonce and saves it when asked.
async fn fetch_remote(
    target: &str,
    args: &VerifyArgs,
) -> Result<(Evidence, Vec<u8>, Remote, References)> {
    let unusable = |e: anyhow::Error| e.context(UnusableInput);
    let target: fetch::Target = target
        .parse()
        .map_err(|e| unusable(anyhow::Error::new(e)))?;
    let pin = args
        .fingerprint
        .as_deref()
        .map(fetch::parse_fingerprint)
        .transpose()
        .map_err(unusable)?;
    let references = read_references(args)?;
    let nonce = fetch::fresh_nonce()?.to_vec();
    let timeout = std::time::Duration::from_secs(args.http_timeout_secs.max(1));
    let fetched = match fetch::fetch_evidence(&target, &nonce, pin, timeout).await {
        Ok(f) => f,
        // The appliance is not the one pinned: a trust failure, not unusable input.
        Err(e @ fetch::FetchError::FingerprintMismatch { .. }) => return Err(e.into()),
        Err(e) => return Err(unusable(e.into())),
    };
    if let Some(path) = &args.save_evidence {
        std::fs::write(path, &fetched.body)
            .with_context(|| format!("writing the evidence to {}", path.display()))
            .map_err(unusable)?;
    }
    let evidence = Evidence::from_json(&fetched.body)
        .with_context(|| format!("reading the evidence {target} answered with"))
        .map_err(unusable)?;
    let remote = Remote {
        target,
        pinned: pin.is_some(),
        fetched,
    };
    Ok((evidence, nonce, remote, references))
}

fn print_verdict(verdict: &Verdict) {
    let headline = if verdict.trusted() {
        "trusted"
    } else {
        "NOT trusted"
    };
    println!("verdict: {} ({headline})", verdict.status);
    for check in &verdict.checks {
        let tag = match check.outcome {
            Outcome::Pass => "pass",
            Outcome::Skipped => "skip",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        };
        println!("  {tag:<4}  {:<24} {}", check.id, check.detail);
        for f in &check.findings {
            let mut line = format!("        {}", f.subject);
            if let Some(e) = &f.expected {
                line.push_str(&format!(" expected {e}"));
            }
            if let Some(a) = &f.actual {
                line.push_str(&format!(" actual {a}"));
            }
            if let Some(n) = &f.note {
                line.push_str(&format!(" ({n})"));
            }
            println!("{line}");
        }
    }
}

fn parse_digest(flag: &str, text: &str) -> Result<Vec<u8>> {
    let bytes = parse_hex(flag, text)?;
    if bytes.len() != 32 {
        bail!(
            "{flag} must be a SHA-256 digest (64 hex digits), not {} bytes",
            bytes.len()
        );
    }
    Ok(bytes)
}

pub fn parse_hex(flag: &str, text: &str) -> Result<Vec<u8>> {
    hex::decode(text.trim().trim_start_matches("0x")).with_context(|| format!("{flag} is not hex"))
}

/// Reads a file of at most [`MAX_INPUT`] bytes.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = Vec::new();
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > MAX_INPUT {
        bail!("{} is larger than {MAX_INPUT} bytes", path.display());
    }
    Ok(buf)
}
