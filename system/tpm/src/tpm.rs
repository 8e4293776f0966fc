//! The blocking TPM client. One [`Tpm`] owns one TSS context; [`crate::TpmHandle`] puts it on an
//! owner thread for async callers.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tss_esapi::abstraction::AsymmetricAlgorithmSelection;
use tss_esapi::abstraction::ek::retrieve_ek_pubcert;
use tss_esapi::attributes::{
    NvIndexAttributesBuilder, ObjectAttributesBuilder, SessionAttributesBuilder,
};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::{CapabilityType, NvIndexType, PropertyTag, SessionType};
use tss_esapi::handles::{
    KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PcrHandle, PersistentTpmHandle,
    SessionHandle, TpmHandle,
};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    AttestInfo, CapabilityData, Data, Digest, DigestValues, EccParameter, EccPoint, EccScheme,
    HashScheme, KeyDerivationFunctionScheme, KeyedHashScheme, NvPublicBuilder, Private, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData,
    SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::{DeviceConfig, NetworkTPMConfig};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

use crate::config::{TpmConfig, Transport};
use crate::error::TpmError;
use crate::seal::{SealedBlob, Secret};
use crate::tss;
use hearth_eventlog::pcr::{Bank, PCR_COUNT, PcrSelection, PcrValues, policy_pcr_digest};

/// Largest secret a TPM seals into a keyed-hash object (MAX_SYM_DATA).
pub const MAX_SEALED_SECRET: usize = 128;
/// Largest nonce a quote can carry (TPM2B_DATA holds a TPMT_HA).
pub const MAX_NONCE: usize = 64;

/// What the TPM says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmInfo {
    /// Where it was reached, as a TCTI string.
    pub transport: String,
    /// TPM_PT_MANUFACTURER as text, e.g. "IBM", "INTC", "STM".
    pub manufacturer: String,
    /// TPM_PT_VENDOR_STRING_1..4 joined, e.g. "SW   TPM" for swtpm.
    pub vendor: String,
    /// TPM_PT_FIRMWARE_VERSION_1 and _2 as hex.
    pub firmware_version: String,
    /// A software TPM (swtpm) gives no hardware root of trust.
    pub software: bool,
    /// Allocated PCR banks that Hearth knows.
    pub banks: Vec<Bank>,
}

/// An attestation key's public part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AkPublic {
    /// The persistent handle it lives at.
    pub handle: u32,
    /// TPM2B_PUBLIC, as `tpm2_readpublic -f tpmt`-style tools and verifiers take it.
    #[serde(with = "crate::seal::b64")]
    pub tpm2b_public: Vec<u8>,
    /// SubjectPublicKeyInfo PEM of the ECC P-256 key.
    pub pem: String,
}

/// A TPM quote and the PCR values it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// TPMS_ATTEST as signed by the AK.
    #[serde(with = "crate::seal::b64")]
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE, as tpm2_quote writes it.
    #[serde(with = "crate::seal::b64")]
    pub signature: Vec<u8>,
    /// The quoted PCRs' values, read right after the quote and checked against its digest.
    pub pcrs: PcrValues,
}

/// An endorsement key certificate from the TPM's NV storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkCertificate {
    /// "rsa2048", "ecc-p256", …
    pub algorithm: &'static str,
    /// The TCG-assigned NV index it was read from.
    pub nv_index: u32,
    /// DER-encoded X.509 certificate.
    pub der: Vec<u8>,
}

/// The blocking TPM client. Not `Sync`: share it through [`crate::TpmHandle`].
pub struct Tpm {
    ctx: Context,
    info: TpmInfo,
    ak_handle: u32,
    /// The storage root key and whether it is persistent (closed, not flushed, on drop).
    srk: Option<(KeyHandle, bool)>,
    ak: Option<KeyHandle>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Tpm {
    /// Connects to the TPM described by `config`.
    ///
    /// A socket that refuses the connection fails at once; one that accepts and never answers
    /// blocks this call, which is why async callers go through [`crate::TpmHandle`] (it bounds
    /// every call by `config.timeout`).
    pub fn open(config: &TpmConfig) -> Result<Tpm, TpmError> {
        let tcti_text = config.transport.to_string();
        let unreachable = |source: std::io::Error| TpmError::Unreachable {
            tcti: tcti_text.clone(),
            source,
        };
        let tcti = match &config.transport {
            Transport::Device { path } => {
                std::fs::metadata(path).map_err(unreachable)?;
                let text = path.to_str().ok_or_else(|| {
                    TpmError::InvalidInput(format!("TPM device path {path:?} is not UTF-8"))
                })?;
                let conf = text
                    .parse::<DeviceConfig>()
                    .map_err(|e| TpmError::tss("TCTI configuration", e))?;
                TctiNameConf::Device(conf)
            }
            Transport::Swtpm { host, port } => {
                // Probe both the command and the control port, so a dead or wrong endpoint is
                // reported as such instead of as an opaque TCTI failure.
                for p in [*port, port.saturating_add(1)] {
                    probe(host, p, config.timeout).map_err(unreachable)?;
                }
                let conf = format!("host={host},port={port}")
                    .parse::<NetworkTPMConfig>()
                    .map_err(|e| TpmError::tss("TCTI configuration", e))?;
                TctiNameConf::Swtpm(conf)
            }
        };
        let ctx = Context::new(tcti).map_err(|e| match e {
            tss_esapi::Error::Tss2Error(_) => unreachable(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                e.to_string(),
            )),
            other => TpmError::tss("TCTI initialisation", other),
        })?;
        let mut tpm = Tpm {
            ctx,
            info: TpmInfo {
                transport: tcti_text,
                manufacturer: String::new(),
                vendor: String::new(),
                firmware_version: String::new(),
                software: config.transport.is_software(),
                banks: Vec::new(),
            },
            ak_handle: config.ak_handle,
            srk: None,
            ak: None,
        };
        tpm.read_info()?;
        if tpm.info.software {
            tracing::warn!(
                component = "tpm",
                transport = %tpm.info.transport,
                vendor = %tpm.info.vendor,
                "software TPM in use: no hardware root of trust, dev and test only"
            );
            // swtpm has no resource manager: objects a killed client left loaded stay loaded and
            // eat the TPM's three object slots. swtpm serves one client at a time, so anything
            // loaded now is a leftover. (Sessions are flushed best effort: ESYS cannot always
            // address a session it did not start, and saved sessions are not ours to drop.)
            if matches!(config.transport, Transport::Swtpm { .. }) {
                tpm.flush_leftovers();
            }
        }
        Ok(tpm)
    }

    pub fn info(&self) -> &TpmInfo {
        &self.info
    }

    /// Whether this is a software TPM (swtpm, vendor string "SW"): no hardware root of trust.
    pub fn is_software(&self) -> bool {
        self.info.software
    }

    fn read_info(&mut self) -> Result<(), TpmError> {
        let mut prop = |tag| {
            self.ctx
                .get_tpm_property(tag)
                .map_err(|e| TpmError::tss("GetCapability", e))
        };
        let text = |v: Option<u32>| -> String {
            v.unwrap_or(0)
                .to_be_bytes()
                .iter()
                .filter(|b| b.is_ascii_graphic() || **b == b' ')
                .map(|b| char::from(*b))
                .collect()
        };
        let manufacturer = text(prop(PropertyTag::Manufacturer)?).trim().to_owned();
        let mut vendor = String::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            vendor.push_str(&text(prop(tag)?));
        }
        let fw1 = prop(PropertyTag::FirmwareVersion1)?.unwrap_or(0);
        let fw2 = prop(PropertyTag::FirmwareVersion2)?.unwrap_or(0);
        let (caps, _) = self
            .ctx
            .get_capability(CapabilityType::AssignedPcr, 0, 8)
            .map_err(|e| TpmError::tss("GetCapability", e))?;
        let banks = match caps {
            CapabilityData::AssignedPcr(list) => list
                .get_selections()
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| tss::bank(s.hashing_algorithm()))
                .collect(),
            other => {
                return Err(TpmError::Unexpected(format!(
                    "GetCapability(PCRS) returned {other:?}"
                )));
            }
        };
        self.info.software |= vendor.trim_start().starts_with("SW");
        self.info.manufacturer = manufacturer;
        self.info.vendor = vendor.trim().to_owned();
        self.info.firmware_version = format!("{fw1:08x}.{fw2:08x}");
        self.info.banks = banks;
        Ok(())
    }

    fn flush_leftovers(&mut self) {
        const TRANSIENT_FIRST: u32 = 0x8000_0000;
        const LOADED_SESSION_FIRST: u32 = 0x0200_0000;
        for first in [TRANSIENT_FIRST, LOADED_SESSION_FIRST] {
            let Ok((CapabilityData::Handles(handles), _)) =
                self.ctx.get_capability(CapabilityType::Handles, first, 64)
            else {
                continue;
            };
            for handle in handles.iter() {
                let flushed = self
                    .ctx
                    .execute_without_session(|c| c.tr_from_tpm_public(*handle))
                    .and_then(|obj| self.ctx.flush_context(obj));
                tracing::debug!(
                    component = "tpm",
                    ?handle,
                    ok = flushed.is_ok(),
                    "flushed leftover"
                );
            }
        }
    }

    // ---- PCRs -------------------------------------------------------------------------------

    /// Reads the selected PCRs. Fails if a bank is not allocated.
    pub fn pcr_read(&mut self, selection: &PcrSelection) -> Result<PcrValues, TpmError> {
        let mut values = PcrValues::default();
        for (bank, pcrs) in selection.iter() {
            let mut remaining: Vec<u8> = pcrs.iter().copied().collect();
            while !remaining.is_empty() {
                // TPM2_PCR_Read returns at most 8 digests per call.
                let chunk: Vec<u8> = remaining.iter().take(8).copied().collect();
                let request = tss::selection(&PcrSelection::new(bank, chunk)?)?;
                let (_, read, digests) = self
                    .ctx
                    .execute_without_session(|c| c.pcr_read(request))
                    .map_err(|e| TpmError::tss("PCR_Read", e))?;
                let mut got = Vec::new();
                let mut digests = digests.value().iter();
                for sel in read.get_selections() {
                    if tss::bank(sel.hashing_algorithm()) != Some(bank) {
                        continue;
                    }
                    for slot in sel.selected() {
                        let pcr = tss::pcr_index(slot);
                        let digest = digests.next().ok_or_else(|| {
                            TpmError::Unexpected("PCR_Read returned fewer digests than PCRs".into())
                        })?;
                        values.insert(bank, pcr, digest.value().to_vec());
                        got.push(pcr);
                    }
                }
                if got.is_empty() {
                    return Err(TpmError::InvalidInput(format!(
                        "PCR bank {bank} is not allocated on this TPM (allocated: {})",
                        self.banks_text()
                    )));
                }
                remaining.retain(|p| !got.contains(p));
            }
        }
        Ok(values)
    }

    fn banks_text(&self) -> String {
        let names: Vec<&str> = self.info.banks.iter().map(|b| b.name()).collect();
        names.join(", ")
    }

    /// Extends `pcr` in every allocated bank with the bank's hash of `data`, as measured-boot
    /// components do for an event.
    pub fn pcr_extend(&mut self, pcr: u8, data: &[u8]) -> Result<(), TpmError> {
        let digests = self
            .info
            .banks
            .iter()
            .map(|b| (*b, b.hash(data)))
            .collect::<Vec<_>>();
        self.pcr_extend_digests(pcr, &digests)
    }

    /// Extends `pcr` with the given per-bank digests.
    pub fn pcr_extend_digests(
        &mut self,
        pcr: u8,
        digests: &[(Bank, Vec<u8>)],
    ) -> Result<(), TpmError> {
        if pcr >= PCR_COUNT {
            return Err(TpmError::InvalidInput(format!("PCR {pcr} does not exist")));
        }
        let handle =
            PcrHandle::try_from(u32::from(pcr)).map_err(|e| TpmError::tss("PCR_Extend", e))?;
        let mut values = DigestValues::new();
        for (bank, digest) in digests {
            if digest.len() != bank.digest_len() {
                return Err(TpmError::InvalidInput(format!(
                    "a {bank} digest is {} bytes, not {}",
                    bank.digest_len(),
                    digest.len()
                )));
            }
            let d = Digest::try_from(digest.clone()).map_err(|e| TpmError::tss("PCR_Extend", e))?;
            values.set(tss::alg(*bank), d);
        }
        self.ctx
            .execute_with_nullauth_session(|c| c.pcr_extend(handle, values))
            .map_err(|e| TpmError::tss("PCR_Extend", e))
    }

    // ---- Sealing ----------------------------------------------------------------------------

    /// The storage root key: the TCG standard ECC P-256 SRK (TCG TPM v2.0 Provisioning Guidance)
    /// at its recommended persistent handle 0x81000001, so that this process, later ones and
    /// other stacks that follow the guidance share it without regenerating it.
    /// Falls back to a transient copy when that handle holds a different key or cannot be
    /// written.
    fn srk(&mut self) -> Result<KeyHandle, TpmError> {
        if let Some((srk, _)) = self.srk {
            return Ok(srk);
        }
        let template = srk_template().map_err(|e| TpmError::tss("CreatePrimary", e))?;
        let persistent =
            PersistentTpmHandle::new(SRK_HANDLE).map_err(|e| TpmError::tss("CreatePrimary", e))?;
        let slot_free = match self.persistent_key(persistent)? {
            Some((key, public)) if same_key_template(&public, &template) => {
                self.srk = Some((key, true));
                return Ok(key);
            }
            Some((key, _)) => {
                tracing::info!(
                    component = "tpm",
                    "0x81000001 holds another storage key; using a transient SRK"
                );
                self.close_key(key);
                false
            }
            None => true,
        };
        let key = self
            .ctx
            .execute_with_nullauth_session(|c| {
                c.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(|e| TpmError::tss("CreatePrimary", e))?
            .key_handle;
        if slot_free {
            let persisted = self.ctx.execute_with_nullauth_session(|c| {
                c.evict_control(
                    Provision::Owner,
                    key.into(),
                    Persistent::Persistent(persistent),
                )
            });
            match persisted {
                Ok(obj) => {
                    self.flush(key.into());
                    let key = KeyHandle::from(obj);
                    self.srk = Some((key, true));
                    return Ok(key);
                }
                Err(e) => {
                    tracing::info!(component = "tpm", error = %e, "could not persist the SRK");
                }
            }
        }
        self.srk = Some((key, false));
        Ok(key)
    }

    /// A session salted with the SRK that encrypts the first command and response parameters,
    /// so secrets never cross the bus in clear.
    fn encrypting_session(&mut self, kind: SessionType) -> Result<AuthSession, TpmError> {
        let srk = self.srk()?;
        let session = self
            .ctx
            .start_auth_session(
                Some(srk),
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(|e| TpmError::tss("StartAuthSession", e))?
            .ok_or_else(|| TpmError::Unexpected("StartAuthSession returned no session".into()))?;
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .build();
        if let Err(e) = self.ctx.tr_sess_set_attributes(session, attributes, mask) {
            self.flush(ObjectHandle::from(SessionHandle::from(session)));
            return Err(TpmError::tss("TRSess_SetAttributes", e));
        }
        Ok(session)
    }

    fn flush(&mut self, handle: ObjectHandle) {
        if let Err(e) = self.ctx.flush_context(handle) {
            tracing::debug!(component = "tpm", error = %e, "flush failed");
        }
    }

    /// Seals `secret` (1 to 128 bytes) to the current values of `selection` (one bank).
    pub fn seal(
        &mut self,
        secret: &[u8],
        selection: &PcrSelection,
    ) -> Result<SealedBlob, TpmError> {
        if secret.is_empty() || secret.len() > MAX_SEALED_SECRET {
            return Err(TpmError::InvalidInput(format!(
                "a sealed secret must be 1 to {MAX_SEALED_SECRET} bytes, not {}",
                secret.len()
            )));
        }
        if selection.single_bank().is_none() {
            return Err(TpmError::InvalidInput(
                "seal to PCRs of exactly one bank, e.g. sha256:7,11".into(),
            ));
        }
        // The policy binds the values read here; if a PCR moves before the object exists
        // (another process extending through the resource manager), the blob could never be
        // unsealed, so read again afterwards and retry.
        for _ in 0..3 {
            let pcrs = self.pcr_read(selection)?;
            let blob = self.seal_to(secret, selection, pcrs.clone())?;
            if self.pcr_read(selection)? == pcrs {
                return Ok(blob);
            }
            tracing::debug!(component = "tpm", "PCRs changed during seal; retrying");
        }
        Err(TpmError::Unexpected(
            "PCRs kept changing while sealing".into(),
        ))
    }

    fn seal_to(
        &mut self,
        secret: &[u8],
        selection: &PcrSelection,
        pcrs: PcrValues,
    ) -> Result<SealedBlob, TpmError> {
        let pcr_digest = pcrs
            .digest(selection, Bank::Sha256)
            .map_err(|(b, p)| TpmError::Unexpected(format!("PCR {b}:{p} was not read")))?;
        let policy = policy_pcr_digest(selection, &pcr_digest);
        let public = sealed_object_template(&policy)?;
        let sensitive =
            SensitiveData::try_from(secret.to_vec()).map_err(|e| TpmError::tss("Create", e))?;
        let srk = self.srk()?;
        let session = self.encrypting_session(SessionType::Hmac)?;
        let created = self.ctx.execute_with_session(Some(session), |c| {
            c.create(srk, public, None, Some(sensitive), None, None)
        });
        self.flush(ObjectHandle::from(SessionHandle::from(session)));
        let created = created.map_err(|e| TpmError::tss("Create", e))?;
        let public = created
            .out_public
            .marshall()
            .map_err(|e| TpmError::tss("Create", e))?;
        Ok(SealedBlob::new(
            selection.clone(),
            pcrs,
            policy,
            public,
            created.out_private.value().to_vec(),
        ))
    }

    /// Unseals a blob made by [`Tpm::seal`], through a salted PolicyPCR session that encrypts
    /// the response. If the PCRs moved, fails with [`TpmError::PolicyMismatch`] naming them.
    pub fn unseal(&mut self, blob: &SealedBlob) -> Result<Secret, TpmError> {
        let (selection, pcr_digest) = blob.check()?;
        let public = Public::unmarshall(&blob.public).map_err(|_| TpmError::MalformedBlob {
            reason: "public area does not unmarshal as TPMT_PUBLIC".into(),
        })?;
        // The recorded policy must be the object's own: otherwise doctored PCR values with a
        // recomputed policy would make a mismatch report name PCRs that never moved.
        match &public {
            Public::KeyedHash {
                auth_policy,
                object_attributes,
                ..
            } if auth_policy.value() == blob.policy.as_slice()
                && !object_attributes.user_with_auth() => {}
            _ => {
                return Err(TpmError::MalformedBlob {
                    reason: "the sealed object's policy is not the recorded one".into(),
                });
            }
        }
        let private =
            Private::try_from(blob.private.clone()).map_err(|_| TpmError::MalformedBlob {
                reason: "private area is too large".into(),
            })?;
        let srk = self.srk()?;
        let object = self
            .ctx
            .execute_with_nullauth_session(|c| c.load(srk, private, public))
            .map_err(|e| match e {
                tss_esapi::Error::Tss2Error(rc)
                    if matches!(
                        rc.kind(),
                        Some(Tss2ResponseCodeKind::Integrity | Tss2ResponseCodeKind::Size)
                    ) =>
                {
                    TpmError::MalformedBlob {
                        reason: "it was not sealed by this TPM, or it was altered".into(),
                    }
                }
                other => TpmError::tss("Load", other),
            })?;
        let result = self.unseal_loaded(object, &selection, pcr_digest);
        self.flush(object.into());
        match result {
            Ok(secret) => Ok(secret),
            Err(err) => {
                // Tell a moved PCR from any other failure by looking at the PCRs themselves.
                let Ok(now) = self.pcr_read(&selection) else {
                    return Err(err);
                };
                let changed: Vec<u8> = selection
                    .iter()
                    .flat_map(|(bank, pcrs)| pcrs.iter().map(move |p| (bank, *p)))
                    .filter(|(bank, pcr)| now.get(*bank, *pcr) != blob.pcrs.get(*bank, *pcr))
                    .map(|(_, pcr)| pcr)
                    .collect();
                if changed.is_empty() {
                    Err(err)
                } else {
                    Err(TpmError::PolicyMismatch { changed })
                }
            }
        }
    }

    fn unseal_loaded(
        &mut self,
        object: KeyHandle,
        selection: &PcrSelection,
        pcr_digest: Vec<u8>,
    ) -> Result<Secret, TpmError> {
        let session = self.encrypting_session(SessionType::Policy)?;
        let result = (|| {
            let policy_session =
                PolicySession::try_from(session).map_err(|e| TpmError::tss("PolicyPCR", e))?;
            let digest = Digest::try_from(pcr_digest).map_err(|e| TpmError::tss("PolicyPCR", e))?;
            let tss_selection = tss::selection(selection)?;
            self.ctx
                .execute_without_session(|c| c.policy_pcr(policy_session, digest, tss_selection))
                .map_err(|e| TpmError::tss("PolicyPCR", e))?;
            let data = self
                .ctx
                .execute_with_session(Some(session), |c| c.unseal(object.into()))
                .map_err(|e| TpmError::tss("Unseal", e))?;
            Ok(Secret::new(Zeroizing::new(data.value().to_vec())))
        })();
        self.flush(ObjectHandle::from(SessionHandle::from(session)));
        result
    }

    // ---- Attestation ------------------------------------------------------------------------

    /// The attestation key: ECC P-256, restricted, ECDSA-SHA256, a primary of the endorsement
    /// hierarchy persisted at the configured handle. Created on first use; survives restarts.
    fn ak(&mut self) -> Result<KeyHandle, TpmError> {
        if let Some(ak) = self.ak {
            return Ok(ak);
        }
        let persistent = PersistentTpmHandle::new(self.ak_handle).map_err(|_| {
            TpmError::InvalidInput(format!(
                "{:#010x} is not a persistent handle",
                self.ak_handle
            ))
        })?;
        let key = match self.persistent_key(persistent)? {
            Some((key, public)) if is_hearth_ak(&public) => key,
            Some((key, _)) => {
                self.close_key(key);
                return Err(TpmError::ForeignAk {
                    handle: self.ak_handle,
                });
            }
            None => self.create_ak(persistent)?,
        };
        self.ak = Some(key);
        Ok(key)
    }

    /// The key at a persistent handle and its public area; `None` when the handle is empty.
    fn persistent_key(
        &mut self,
        handle: PersistentTpmHandle,
    ) -> Result<Option<(KeyHandle, Public)>, TpmError> {
        let existing = self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(handle)));
        let key = match existing {
            Ok(obj) => KeyHandle::from(obj),
            Err(tss_esapi::Error::Tss2Error(rc))
                if rc.kind() == Some(Tss2ResponseCodeKind::Handle) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(TpmError::tss("TR_FromTPMPublic", e)),
        };
        match self.ctx.execute_without_session(|c| c.read_public(key)) {
            Ok((public, _, _)) => Ok(Some((key, public))),
            Err(e) => {
                self.close_key(key);
                Err(TpmError::tss("ReadPublic", e))
            }
        }
    }

    /// Releases the ESYS resource of a persistent key (the key stays in the TPM).
    fn close_key(&mut self, key: KeyHandle) {
        let mut obj = ObjectHandle::from(key);
        if let Err(e) = self.ctx.tr_close(&mut obj) {
            tracing::debug!(component = "tpm", error = %e, "TR_Close failed");
        }
    }

    fn create_ak(&mut self, persistent: PersistentTpmHandle) -> Result<KeyHandle, TpmError> {
        // A primary of the endorsement hierarchy: the TPM reports true reset and restart counts
        // in quotes signed by it (keys of the owner hierarchy get them obfuscated), so a
        // verifier can tell that the appliance rebooted between two quotes.
        let loaded = self
            .ctx
            .execute_with_nullauth_session(|c| {
                c.create_primary(
                    Hierarchy::Endorsement,
                    ak_template()?,
                    None,
                    None,
                    None,
                    None,
                )
            })
            .map_err(|e| TpmError::tss("CreatePrimary", e))?
            .key_handle;
        let persisted = self.ctx.execute_with_nullauth_session(|c| {
            c.evict_control(
                Provision::Owner,
                loaded.into(),
                Persistent::Persistent(persistent),
            )
        });
        self.flush(loaded.into());
        let persisted = persisted.map_err(|e| TpmError::tss("EvictControl", e))?;
        tracing::info!(
            component = "tpm",
            handle = format_args!("{:#010x}", self.ak_handle),
            "created attestation key"
        );
        Ok(KeyHandle::from(persisted))
    }

    /// The attestation key's public part (creating the key on first use).
    pub fn ak_public(&mut self) -> Result<AkPublic, TpmError> {
        let ak = self.ak()?;
        let (public, _, _) = self
            .ctx
            .execute_without_session(|c| c.read_public(ak))
            .map_err(|e| TpmError::tss("ReadPublic", e))?;
        let tpmt = public
            .marshall()
            .map_err(|e| TpmError::tss("ReadPublic", e))?;
        let len = u16::try_from(tpmt.len())
            .map_err(|_| TpmError::Unexpected("public area larger than 64 KiB".into()))?;
        let mut tpm2b = len.to_be_bytes().to_vec();
        tpm2b.extend_from_slice(&tpmt);
        let Public::Ecc { unique, .. } = &public else {
            return Err(TpmError::ForeignAk {
                handle: self.ak_handle,
            });
        };
        let pem = p256_spki_pem(unique.x().value(), unique.y().value())?;
        Ok(AkPublic {
            handle: self.ak_handle,
            tpm2b_public: tpm2b,
            pem,
        })
    }

    /// Quotes `selection` with the attestation key over `nonce` (at most 64 bytes), and returns
    /// the PCR values that the quote's digest covers.
    pub fn quote(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<Quote, TpmError> {
        if nonce.len() > MAX_NONCE {
            return Err(TpmError::InvalidInput(format!(
                "a quote nonce is at most {MAX_NONCE} bytes, not {}",
                nonce.len()
            )));
        }
        if selection.is_empty() {
            return Err(TpmError::InvalidInput(
                "quote of an empty PCR selection".into(),
            ));
        }
        let ak = self.ak()?;
        // PCRs can move between the quote and the read that follows it (another process may
        // extend through the kernel's resource manager); retry until they match the quote.
        for _ in 0..3 {
            let data = Data::try_from(nonce.to_vec()).map_err(|e| TpmError::tss("Quote", e))?;
            let tss_selection = tss::selection(selection)?;
            let (attest, signature) = self
                .ctx
                .execute_with_nullauth_session(|c| {
                    c.quote(ak, data, SignatureScheme::Null, tss_selection)
                })
                .map_err(|e| TpmError::tss("Quote", e))?;
            let AttestInfo::Quote { info } = attest.attested() else {
                return Err(TpmError::Unexpected(
                    "Quote returned a non-quote attestation".into(),
                ));
            };
            let pcrs = self.pcr_read(selection)?;
            // Concatenate in the order the TPM used, which its quote info records.
            let mut concat = Vec::new();
            for sel in info.pcr_selection().get_selections() {
                let bank = tss::bank(sel.hashing_algorithm())
                    .ok_or_else(|| TpmError::Unexpected("quote over an unknown bank".into()))?;
                for slot in sel.selected() {
                    let pcr = tss::pcr_index(slot);
                    let value = pcrs.get(bank, pcr).ok_or_else(|| {
                        TpmError::Unexpected(format!(
                            "quote covers {bank}:{pcr}, which was not read"
                        ))
                    })?;
                    concat.extend_from_slice(value);
                }
            }
            if Bank::Sha256.hash(&concat) == info.pcr_digest().value() {
                return Ok(Quote {
                    attest: attest.marshall().map_err(|e| TpmError::tss("Quote", e))?,
                    signature: signature
                        .marshall()
                        .map_err(|e| TpmError::tss("Quote", e))?,
                    pcrs,
                });
            }
            tracing::debug!(component = "tpm", "PCRs changed during quote; retrying");
        }
        Err(TpmError::Unexpected(
            "PCRs kept changing while quoting".into(),
        ))
    }

    /// The endorsement key certificates provisioned in NV storage (none on a TPM without them).
    pub fn ek_certificates(&mut self) -> Result<Vec<EkCertificate>, TpmError> {
        let candidates = [
            (
                "rsa2048",
                0x01c0_0002,
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            ),
            (
                "ecc-p256",
                0x01c0_000a,
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            ),
            (
                "ecc-p384",
                0x01c0_0016,
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
            ),
            (
                "ecc-p521",
                0x01c0_0018,
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP521),
            ),
            (
                "rsa3072",
                0x01c0_001c,
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa3072),
            ),
            (
                "rsa4096",
                0x01c0_001e,
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa4096),
            ),
        ];
        let mut out = Vec::new();
        for (algorithm, nv_index, selection) in candidates {
            match retrieve_ek_pubcert(&mut self.ctx, selection) {
                Ok(der) => out.push(EkCertificate {
                    algorithm,
                    nv_index,
                    der,
                }),
                Err(tss_esapi::Error::Tss2Error(rc))
                    if rc.kind() == Some(Tss2ResponseCodeKind::Handle) => {}
                Err(e) => return Err(TpmError::tss("NV_Read", e)),
            }
        }
        Ok(out)
    }

    // ---- NV counters ------------------------------------------------------------------------

    fn nv_index(index: u32) -> Result<NvIndexTpmHandle, TpmError> {
        NvIndexTpmHandle::new(index).map_err(|_| {
            TpmError::InvalidInput(format!(
                "{index:#010x} is not an NV index (expected 0x01000000 to 0x01ffffff)"
            ))
        })
    }

    /// Opens the counter at `index`; `None` if it is not defined.
    fn open_counter(&mut self, index: u32) -> Result<Option<NvIndexHandle>, TpmError> {
        let tpm_handle = Self::nv_index(index)?;
        let handle = match self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle)))
        {
            Ok(obj) => NvIndexHandle::from(obj),
            Err(tss_esapi::Error::Tss2Error(rc))
                if rc.kind() == Some(Tss2ResponseCodeKind::Handle) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(TpmError::tss("TR_FromTPMPublic", e)),
        };
        let (public, _) = self
            .ctx
            .execute_without_session(|c| c.nv_read_public(handle))
            .map_err(|e| TpmError::tss("NV_ReadPublic", e))?;
        match public.attributes().index_type() {
            Ok(NvIndexType::Counter) => Ok(Some(handle)),
            _ => Err(TpmError::NotACounter { index }),
        }
    }

    fn close(&mut self, handle: NvIndexHandle) {
        let mut obj = ObjectHandle::from(handle);
        if let Err(e) = self.ctx.tr_close(&mut obj) {
            tracing::debug!(component = "tpm", error = %e, "TR_Close failed");
        }
    }

    /// Reads the monotonic counter at `index`.
    pub fn counter_read(&mut self, index: u32) -> Result<u64, TpmError> {
        let handle = self
            .open_counter(index)?
            .ok_or(TpmError::CounterNotDefined { index })?;
        let result = self
            .ctx
            .execute_with_nullauth_session(|c| c.nv_read(NvAuth::Owner, handle, 8, 0));
        self.close(handle);
        let data = result.map_err(|e| TpmError::tss("NV_Read", e))?;
        let bytes: [u8; 8] = data
            .value()
            .try_into()
            .map_err(|_| TpmError::Unexpected("counter is not 8 bytes".into()))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Increments the monotonic counter at `index`, defining it first if absent (owner
    /// authorization, no dictionary-attack protection), and returns the new value.
    pub fn counter_increment(&mut self, index: u32) -> Result<u64, TpmError> {
        let handle = match self.open_counter(index)? {
            Some(handle) => handle,
            None => self.define_counter(index)?,
        };
        let result = self
            .ctx
            .execute_with_nullauth_session(|c| c.nv_increment(NvAuth::Owner, handle));
        self.close(handle);
        result.map_err(|e| TpmError::tss("NV_Increment", e))?;
        self.counter_read(index)
    }

    fn define_counter(&mut self, index: u32) -> Result<NvIndexHandle, TpmError> {
        let attributes = NvIndexAttributesBuilder::new()
            .with_nv_index_type(NvIndexType::Counter)
            .with_owner_write(true)
            .with_owner_read(true)
            .with_no_da(true)
            .build()
            .map_err(|e| TpmError::tss("NV_DefineSpace", e))?;
        let public = NvPublicBuilder::new()
            .with_nv_index(Self::nv_index(index)?)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(8)
            .build()
            .map_err(|e| TpmError::tss("NV_DefineSpace", e))?;
        let handle = self
            .ctx
            .execute_with_nullauth_session(|c| c.nv_define_space(Provision::Owner, None, public))
            .map_err(|e| TpmError::tss("NV_DefineSpace", e))?;
        tracing::info!(
            component = "tpm",
            index = format_args!("{index:#010x}"),
            "defined NV counter"
        );
        Ok(handle)
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        match self.srk.take() {
            Some((srk, true)) => {
                let mut obj = ObjectHandle::from(srk);
                let _ = self.ctx.tr_close(&mut obj);
            }
            Some((srk, false)) => self.flush(srk.into()),
            None => {}
        }
        if let Some(ak) = self.ak.take() {
            // A persistent object: close the ESYS resource, the key stays in the TPM.
            let mut obj = ObjectHandle::from(ak);
            let _ = self.ctx.tr_close(&mut obj);
        }
    }
}

/// Connects to `host:port` and hangs up, within `timeout`.
fn probe(host: &str, port: u16, timeout: Duration) -> std::io::Result<()> {
    let addrs = (host, port).to_socket_addrs()?;
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} has no address"),
    );
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => {
                last = std::io::Error::new(e.kind(), format!("{addr}: {e}"));
            }
        }
    }
    Err(last)
}

/// TCG-recommended persistent handle of the storage root key.
const SRK_HANDLE: u32 = 0x8100_0001;

/// The ECC P-256 storage root key template of the TCG Provisioning Guidance (7.5.1): AES-128-CFB,
/// noDA, unique fields of 32 zero bytes.
fn srk_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_no_da(true)
        .build()?;
    let zeros = || EccParameter::try_from(vec![0u8; 32]);
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::new(zeros()?, zeros()?))
        .build()
}

/// Whether `public` is a key made from `template` (everything but the unique field agrees).
fn same_key_template(public: &Public, template: &Public) -> bool {
    match (public, template) {
        (
            Public::Ecc {
                object_attributes: a1,
                name_hashing_algorithm: n1,
                auth_policy: p1,
                parameters: e1,
                ..
            },
            Public::Ecc {
                object_attributes: a2,
                name_hashing_algorithm: n2,
                auth_policy: p2,
                parameters: e2,
                ..
            },
        ) => a1 == a2 && n1 == n2 && p1 == p2 && e1 == e2,
        _ => false,
    }
}

fn sealed_object_template(policy: &[u8]) -> Result<Public, TpmError> {
    let err = |e| TpmError::tss("Create", e);
    // No userWithAuth: only the PCR policy authorizes use. No sensitiveDataOrigin: we supply
    // the data.
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .build()
        .map_err(err)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(Digest::try_from(policy.to_vec()).map_err(err)?)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(err)
}

fn ak_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new()
                .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                .with_curve(EccCurve::NistP256)
                .with_is_signing_key(true)
                .with_is_decryption_key(false)
                .with_restricted(true)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_symmetric(SymmetricDefinitionObject::Null)
                .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

fn is_hearth_ak(public: &Public) -> bool {
    match public {
        Public::Ecc {
            object_attributes,
            parameters,
            ..
        } => {
            object_attributes.restricted()
                && object_attributes.sign_encrypt()
                && object_attributes.fixed_tpm()
                && !object_attributes.decrypt()
                && parameters.ecc_curve() == EccCurve::NistP256
                // Quotes are checked with SHA-256 PCR digests: the key must sign with SHA-256.
                && parameters.ecc_scheme()
                    == EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256))
        }
        _ => false,
    }
}

/// SubjectPublicKeyInfo PEM for an uncompressed P-256 point.
fn p256_spki_pem(x: &[u8], y: &[u8]) -> Result<String, TpmError> {
    use base64::Engine as _;
    if x.len() > 32 || y.len() > 32 {
        return Err(TpmError::Unexpected(
            "ECC coordinate longer than 32 bytes".into(),
        ));
    }
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04 || X || Y }
    let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200")
        .map_err(|_| TpmError::Unexpected("bad DER prefix".into()))?;
    der.push(0x04);
    for coord in [x, y] {
        der.extend(std::iter::repeat_n(0u8, 32 - coord.len()));
        der.extend_from_slice(coord);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Ok(pem)
}
