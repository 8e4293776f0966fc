//! The TCG PC Client firmware event log: crypto-agile (TCG_PCR_EVENT2 after a "Spec ID Event03"
//! header) and legacy SHA1-only (TCG_PCClientPCREvent throughout).

use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};

use crate::error::ParseError;
use crate::event_type::{self, EV_NO_ACTION};
use crate::pcr::{Bank, HexBytes, PCR_COUNT};
use crate::reader::Reader;

/// The signature of the TCG_EfiSpecIdEvent that opens a crypto-agile log.
const SPEC_ID_03: &[u8; 16] = b"Spec ID Event03\0";
/// The signature of the EV_NO_ACTION event that sets PCR 0's starting locality.
const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";
/// Largest digest an undeclared-by-us algorithm may claim (SHA3-512 and SHA-512 are 64 bytes).
const MAX_UNKNOWN_DIGEST: u16 = 128;
/// Highest locality a TPM can start from (4 is the H-CRTM locality).
const MAX_LOCALITY: u8 = 4;

/// The two layouts of a PC Client event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// "Spec ID Event03" header, then TCG_PCR_EVENT2 records with a digest per declared bank.
    CryptoAgile,
    /// TCG_PCClientPCREvent records with one SHA1 digest each (TPM 1.2-era firmware).
    LegacySha1,
}

/// One algorithm declared by the Spec ID event, known to us or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeclaredAlgorithm {
    pub alg_id: u16,
    pub digest_size: u16,
    /// `None` for an algorithm this crate cannot hash: its digests are skipped, not replayed.
    pub bank: Option<Bank>,
}

/// The TCG_EfiSpecIdEvent of a crypto-agile log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpecId {
    pub platform_class: u32,
    pub spec_version_major: u8,
    pub spec_version_minor: u8,
    pub spec_errata: u8,
    /// 1: UINTN is 32 bits, 2: 64 bits.
    pub uintn_size: u8,
    pub algorithms: Vec<DeclaredAlgorithm>,
    pub vendor_info: HexBytes,
}

/// One event of the firmware log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the log, 0 for the first record (the Spec ID header in a crypto-agile log).
    pub index: usize,
    /// Byte offset of the record in the log.
    pub offset: usize,
    pub pcr: u8,
    pub event_type: u32,
    /// Digests of the banks this crate knows, in log order; digests of unknown algorithms are
    /// skipped (the Spec ID header lists them).
    pub digests: Vec<(Bank, Vec<u8>)>,
    pub data: Vec<u8>,
}

impl Event {
    /// The specification's name of the event type (`EV_SEPARATOR`, `EV_UNKNOWN(0x...)`).
    pub fn type_name(&self) -> String {
        event_type::name(self.event_type).into_owned()
    }

    /// Whether replay extends this event into its PCR (every event but EV_NO_ACTION).
    pub fn is_extended(&self) -> bool {
        self.event_type != EV_NO_ACTION
    }

    /// The event's digest in `bank`.
    pub fn digest(&self, bank: Bank) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(b, _)| *b == bank)
            .map(|(_, d)| d.as_slice())
    }
}

impl fmt::Display for Event {
    /// One line: `#12 PCR 1 EV_EFI_VARIABLE_BOOT: Boot0000 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} PCR {} {}: {}",
            self.index,
            self.pcr,
            event_type::name(self.event_type),
            self.describe()
        )
    }
}

/// Digests as `{"sha256": "hex"}`.
struct DigestMap<'a>(&'a [(Bank, Vec<u8>)]);

impl Serialize for DigestMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (bank, digest) in self.0 {
            map.serialize_entry(bank.name(), &hex::encode(digest))?;
        }
        map.end()
    }
}

pub(crate) fn serialize_digests<S: Serializer>(
    digests: &[(Bank, Vec<u8>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    DigestMap(digests).serialize(s)
}

/// JSON: `{"index", "offset", "pcr", "type", "type_id", "extended", "digests": {"sha256": hex},
/// "data": hex, "description", "data_matches_digest": true|false|null}`.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Event", 9)?;
        st.serialize_field("index", &self.index)?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("pcr", &self.pcr)?;
        st.serialize_field("type", &event_type::name(self.event_type))?;
        st.serialize_field("type_id", &self.event_type)?;
        st.serialize_field("extended", &self.is_extended())?;
        st.serialize_field("digests", &DigestMap(&self.digests))?;
        st.serialize_field("data", &hex::encode(&self.data))?;
        st.serialize_field("description", &self.describe())?;
        st.serialize_field("data_matches_digest", &self.data_matches_digest())?;
        st.end()
    }
}

/// A parsed firmware event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventLog {
    pub format: LogFormat,
    /// The banks replay computes: the known algorithms the Spec ID event declares, in its order
    /// (`[sha1]` for a legacy log).
    pub banks: Vec<Bank>,
    /// The crypto-agile header; `None` for a legacy log.
    pub spec_id: Option<SpecId>,
    /// Every record, the header included (as event 0, EV_NO_ACTION).
    pub events: Vec<Event>,
    /// The locality of the StartupLocality event (PCR 0 starts at `0…0 ‖ locality`), if the log
    /// has one.
    pub startup_locality: Option<u8>,
}

impl EventLog {
    /// Parses a whole log, as Linux exposes it in `binary_bios_measurements`.
    ///
    /// Strict: every record must be complete, the log must end exactly after its last record,
    /// every TCG_PCR_EVENT2 must carry exactly one digest for each algorithm the header
    /// declares, PCR indices must be below 24, and a StartupLocality event must come before any
    /// PCR 0 measurement and at most once.
    pub fn parse(bytes: &[u8]) -> Result<EventLog, ParseError> {
        let mut r = Reader::new(bytes, 0);
        if r.is_empty() {
            return Err(ParseError::new(0, "TCG_PCClientPCREvent", "empty log"));
        }
        let first = read_legacy(&mut r, 0)?;
        let mut log = if first.event_type == EV_NO_ACTION && first.data.starts_with(SPEC_ID_03) {
            let spec_id = parse_spec_id(&first)?;
            if first.pcr != 0 {
                return Err(ParseError::new(
                    first.offset,
                    "TCG_PCClientPCREvent.pcrIndex",
                    format!("the Spec ID event is logged in PCR {}, not 0", first.pcr),
                ));
            }
            if first.digests.iter().any(|(_, d)| d.iter().any(|b| *b != 0)) {
                return Err(ParseError::new(
                    first.offset + 8,
                    "TCG_PCClientPCREvent.digest",
                    "the Spec ID event's digest is not zero",
                ));
            }
            EventLog {
                format: LogFormat::CryptoAgile,
                banks: spec_id.algorithms.iter().filter_map(|a| a.bank).collect(),
                spec_id: Some(spec_id),
                events: vec![first],
                startup_locality: None,
            }
        } else {
            let mut log = EventLog {
                format: LogFormat::LegacySha1,
                banks: vec![Bank::Sha1],
                spec_id: None,
                events: Vec::new(),
                startup_locality: None,
            };
            log.push(first)?;
            log
        };
        while !r.is_empty() {
            let index = log.events.len();
            let event = match &log.spec_id {
                Some(spec) => read_event2(&mut r, index, spec)?,
                None => read_legacy(&mut r, index)?,
            };
            log.push(event)?;
        }
        Ok(log)
    }

    /// Appends an event, noting a StartupLocality event.
    fn push(&mut self, event: Event) -> Result<(), ParseError> {
        if event.event_type == EV_NO_ACTION && event.data.starts_with(STARTUP_LOCALITY) {
            self.startup_locality = Some(self.startup_locality_of(&event)?);
        }
        self.events.push(event);
        Ok(())
    }

    fn startup_locality_of(&self, event: &Event) -> Result<u8, ParseError> {
        let field = "StartupLocality";
        let at = event.offset;
        if event.data.len() != STARTUP_LOCALITY.len() + 1 {
            return Err(ParseError::new(
                at,
                field,
                format!("{} bytes of event data, expected 17", event.data.len()),
            ));
        }
        if event.pcr != 0 {
            return Err(ParseError::new(
                at,
                field,
                format!("logged in PCR {}, not 0", event.pcr),
            ));
        }
        if self.startup_locality.is_some() {
            return Err(ParseError::new(at, field, "a second StartupLocality event"));
        }
        if let Some(e) = self.events.iter().find(|e| e.pcr == 0 && e.is_extended()) {
            return Err(ParseError::new(
                at,
                field,
                format!("comes after event {}, which extended PCR 0", e.index),
            ));
        }
        let locality = event.data[STARTUP_LOCALITY.len()];
        if locality > MAX_LOCALITY {
            return Err(ParseError::new(
                at,
                field,
                format!("locality {locality} does not exist (0 to {MAX_LOCALITY})"),
            ));
        }
        Ok(locality)
    }
}

impl fmt::Display for EventLog {
    /// A header line, then one line per event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let banks: Vec<&str> = self.banks.iter().map(|b| b.name()).collect();
        let format = match self.format {
            LogFormat::CryptoAgile => "crypto-agile",
            LogFormat::LegacySha1 => "legacy SHA1",
        };
        writeln!(
            f,
            "{format} event log, {} events, banks {}",
            self.events.len(),
            banks.join(", ")
        )?;
        if let Some(locality) = self.startup_locality {
            writeln!(f, "startup locality {locality}")?;
        }
        for event in &self.events {
            writeln!(f, "{event}")?;
        }
        Ok(())
    }
}

fn read_pcr(r: &mut Reader<'_>, field: &'static str) -> Result<u8, ParseError> {
    let at = r.offset();
    let pcr = r.u32(field)?;
    match u8::try_from(pcr) {
        Ok(p) if p < PCR_COUNT => Ok(p),
        _ => Err(ParseError::new(
            at,
            field,
            format!("PCR {pcr} does not exist (0 to {})", PCR_COUNT - 1),
        )),
    }
}

/// TCG_PCClientPCREvent: pcrIndex, eventType, SHA1 digest, eventDataSize, event.
fn read_legacy(r: &mut Reader<'_>, index: usize) -> Result<Event, ParseError> {
    let offset = r.offset();
    let pcr = read_pcr(r, "TCG_PCClientPCREvent.pcrIndex")?;
    let event_type = r.u32("TCG_PCClientPCREvent.eventType")?;
    let digest = r.bytes(20, "TCG_PCClientPCREvent.digest")?.to_vec();
    let size_at = r.offset();
    let size = r.u32("TCG_PCClientPCREvent.eventDataSize")?;
    let data = r
        .sized(size.into(), size_at, "TCG_PCClientPCREvent.eventDataSize")?
        .to_vec();
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests: vec![(Bank::Sha1, digest)],
        data,
    })
}

/// TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event.
fn read_event2(r: &mut Reader<'_>, index: usize, spec: &SpecId) -> Result<Event, ParseError> {
    let offset = r.offset();
    let pcr = read_pcr(r, "TCG_PCR_EVENT2.pcrIndex")?;
    let event_type = r.u32("TCG_PCR_EVENT2.eventType")?;
    let count_at = r.offset();
    let count = r.u32("TCG_PCR_EVENT2.digests.count")?;
    let declared = spec.algorithms.len();
    if usize::try_from(count).ok() != Some(declared) {
        return Err(ParseError::new(
            count_at,
            "TCG_PCR_EVENT2.digests.count",
            format!("{count} digests, the Spec ID event declares {declared} algorithms"),
        ));
    }
    // Bounded by the number of declared algorithms, which the header's size bounded.
    let mut digests = Vec::with_capacity(declared);
    let mut seen = vec![false; declared];
    for _ in 0..declared {
        let alg_at = r.offset();
        let alg_id = r.u16("TCG_PCR_EVENT2.digests.hashAlg")?;
        let Some(i) = spec.algorithms.iter().position(|a| a.alg_id == alg_id) else {
            return Err(ParseError::new(
                alg_at,
                "TCG_PCR_EVENT2.digests.hashAlg",
                format!("algorithm 0x{alg_id:04x} is not declared by the Spec ID event"),
            ));
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(ParseError::new(
                alg_at,
                "TCG_PCR_EVENT2.digests.hashAlg",
                format!("a second digest for algorithm 0x{alg_id:04x}"),
            ));
        }
        let alg = &spec.algorithms[i];
        let digest = r.bytes(
            usize::from(alg.digest_size),
            "TCG_PCR_EVENT2.digests.digest",
        )?;
        if let Some(bank) = alg.bank {
            digests.push((bank, digest.to_vec()));
        }
    }
    let size_at = r.offset();
    let size = r.u32("TCG_PCR_EVENT2.eventSize")?;
    let data = r
        .sized(size.into(), size_at, "TCG_PCR_EVENT2.eventSize")?
        .to_vec();
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests,
        data,
    })
}

/// Offset of the event data in a TCG_PCClientPCREvent record.
const LEGACY_DATA_OFFSET: usize = 32;

/// TCG_EfiSpecIdEvent, from the data of the first (legacy-format) record.
pub(crate) fn parse_spec_id(first: &Event) -> Result<SpecId, ParseError> {
    let mut r = Reader::new(&first.data, first.offset + LEGACY_DATA_OFFSET);
    r.bytes(16, "TCG_EfiSpecIdEvent.signature")?;
    let platform_class = r.u32("TCG_EfiSpecIdEvent.platformClass")?;
    let spec_version_minor = r.u8("TCG_EfiSpecIdEvent.specVersionMinor")?;
    let spec_version_major = r.u8("TCG_EfiSpecIdEvent.specVersionMajor")?;
    let spec_errata = r.u8("TCG_EfiSpecIdEvent.specErrata")?;
    let uintn_at = r.offset();
    let uintn_size = r.u8("TCG_EfiSpecIdEvent.uintnSize")?;
    if !(1..=2).contains(&uintn_size) {
        return Err(ParseError::new(
            uintn_at,
            "TCG_EfiSpecIdEvent.uintnSize",
            format!("{uintn_size}, expected 1 (32-bit) or 2 (64-bit)"),
        ));
    }
    let count_at = r.offset();
    let count = r.u32("TCG_EfiSpecIdEvent.numberOfAlgorithms")?;
    // Each declaration is 4 bytes: check the count against the input before allocating.
    let fits = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(4))
        .is_some_and(|n| n <= r.remaining());
    if count == 0 || !fits {
        return Err(ParseError::new(
            count_at,
            "TCG_EfiSpecIdEvent.numberOfAlgorithms",
            format!(
                "{count} algorithms ({} bytes remain, 4 per algorithm, at least one)",
                r.remaining()
            ),
        ));
    }
    let mut algorithms: Vec<DeclaredAlgorithm> = Vec::new();
    for _ in 0..count {
        let alg_at = r.offset();
        let alg_id = r.u16("TCG_EfiSpecIdEvent.digestSizes.algorithmId")?;
        let size_at = r.offset();
        let digest_size = r.u16("TCG_EfiSpecIdEvent.digestSizes.digestSize")?;
        if algorithms.iter().any(|a| a.alg_id == alg_id) {
            return Err(ParseError::new(
                alg_at,
                "TCG_EfiSpecIdEvent.digestSizes.algorithmId",
                format!("algorithm 0x{alg_id:04x} declared twice"),
            ));
        }
        let bank = Bank::from_alg_id(alg_id);
        let size_ok = match bank {
            Some(b) => usize::from(digest_size) == b.digest_len(),
            None => (1..=MAX_UNKNOWN_DIGEST).contains(&digest_size),
        };
        if !size_ok {
            return Err(ParseError::new(
                size_at,
                "TCG_EfiSpecIdEvent.digestSizes.digestSize",
                match bank {
                    Some(b) => format!(
                        "{digest_size} bytes for {b}, whose digests are {} bytes",
                        b.digest_len()
                    ),
                    None => format!(
                        "{digest_size} bytes for algorithm 0x{alg_id:04x} (1 to {MAX_UNKNOWN_DIGEST})"
                    ),
                },
            ));
        }
        algorithms.push(DeclaredAlgorithm {
            alg_id,
            digest_size,
            bank,
        });
    }
    let vendor_at = r.offset();
    let vendor_size = r.u8("TCG_EfiSpecIdEvent.vendorInfoSize")?;
    let vendor_info = r
        .sized(
            vendor_size.into(),
            vendor_at,
            "TCG_EfiSpecIdEvent.vendorInfoSize",
        )?
        .to_vec();
    if !r.is_empty() {
        return Err(ParseError::new(
            r.offset(),
            "TCG_EfiSpecIdEvent",
            format!("{} bytes after vendorInfo", r.remaining()),
        ));
    }
    Ok(SpecId {
        platform_class,
        spec_version_major,
        spec_version_minor,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info: HexBytes(vendor_info),
    })
}
