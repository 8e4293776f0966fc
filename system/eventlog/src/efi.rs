//! UEFI structures found in event data, decoded to text: GUIDs, UCS-2 strings, device paths,
//! load options, variables, signature lists, GPT headers and handoff tables.
//!
//! Every decoder takes untrusted bytes and returns text; malformed input yields a note in the
//! text, never a panic. Text taken from the input is quoted and escaped, so a log cannot put
//! control characters on an auditor's terminal.

use std::fmt;
use std::fmt::Write as _;

use crate::error::ParseError;
use crate::reader::Reader;

/// Longest text quoted from event data; the rest is elided.
const MAX_TEXT: usize = 1024;
/// Bytes of undecoded data shown as hex.
const HEX_PREVIEW: usize = 32;
/// Device path nodes decoded before the rest is elided.
const MAX_NODES: usize = 64;

/// An EFI_GUID: little-endian time fields, big-endian clock and node bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written `8be4df61-93ca-11d2-aa0d-00e098032b8c`.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// What the GUID stands for, for the GUIDs an auditor meets in a boot log.
    pub fn name(&self) -> Option<&'static str> {
        WELL_KNOWN
            .iter()
            .find(|(g, _)| g == self)
            .map(|(_, name)| *name)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9],
            g[10],
            g[11],
            g[12],
            g[13],
            g[14],
            g[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub const EFI_GLOBAL_VARIABLE: Guid = Guid::from_fields(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
pub const EFI_IMAGE_SECURITY_DATABASE: Guid = Guid::from_fields(
    0xd719_b2cb,
    0x3d3a,
    0x4596,
    [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
);
const EFI_CERT_SHA256: Guid = Guid::from_fields(
    0xc1c4_1626,
    0x504c,
    0x4092,
    [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
);
const EFI_CERT_X509: Guid = Guid::from_fields(
    0xa5c0_59a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);

const WELL_KNOWN: &[(Guid, &str)] = &[
    (EFI_GLOBAL_VARIABLE, "EFI global variable"),
    (EFI_IMAGE_SECURITY_DATABASE, "image security database"),
    (
        Guid::from_fields(
            0x605d_ab50,
            0xe046,
            0x4300,
            [0xab, 0xb6, 0x3d, 0xd8, 0x10, 0xdd, 0x8b, 0x23],
        ),
        "shim",
    ),
    (
        Guid::from_fields(
            0x4a67_b082,
            0x0a4c,
            0x41cf,
            [0xb6, 0xc7, 0x44, 0x0b, 0x29, 0xbb, 0x8c, 0x4f],
        ),
        "systemd-boot loader",
    ),
    (
        Guid::from_fields(
            0x55c5_d1f8,
            0x04cd,
            0x46b5,
            [0x8a, 0x20, 0xe5, 0x6c, 0xbb, 0x30, 0x52, 0xd0],
        ),
        "systemd-stub payload (the UKI's kernel)",
    ),
    (
        Guid::from_fields(
            0x5568_e427,
            0x68fc,
            0x4f3d,
            [0xac, 0x74, 0xca, 0x55, 0x52, 0x31, 0xcc, 0x68],
        ),
        "Linux initrd media",
    ),
    (
        Guid::from_fields(
            0x77fa_9abd,
            0x0359,
            0x4d32,
            [0xbd, 0x60, 0x28, 0xf4, 0xe7, 0x8f, 0x78, 0x4b],
        ),
        "Microsoft",
    ),
    (EFI_CERT_SHA256, "SHA-256 hash"),
    (EFI_CERT_X509, "X.509 certificate"),
    (
        Guid::from_fields(
            0x826c_a512,
            0xcf10,
            0x4ac9,
            [0xb1, 0x87, 0xbe, 0x01, 0x49, 0x66, 0x31, 0xbd],
        ),
        "SHA-1 hash",
    ),
    (
        Guid::from_fields(
            0x3c57_66e8,
            0x269c,
            0x4e34,
            [0xaa, 0x14, 0xed, 0x77, 0x6e, 0x85, 0xb3, 0xb6],
        ),
        "RSA-2048 key",
    ),
    (
        Guid::from_fields(
            0x462c_aa21,
            0x7614,
            0x4503,
            [0x83, 0x6e, 0x8a, 0xb6, 0xf4, 0x66, 0x23, 0x31],
        ),
        "UiApp",
    ),
    (
        Guid::from_fields(
            0x7c04_a583,
            0x9e3e,
            0x4f1c,
            [0xad, 0x65, 0xe0, 0x52, 0x68, 0xd0, 0xb4, 0xd1],
        ),
        "EFI Shell",
    ),
    (
        Guid::from_fields(
            0xc12a_7328,
            0xf81f,
            0x11d2,
            [0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b],
        ),
        "EFI System Partition",
    ),
    (
        Guid::from_fields(
            0xbc13_c2ff,
            0x59e6,
            0x4262,
            [0xa3, 0x52, 0xb2, 0x75, 0xfd, 0x6f, 0x71, 0x72],
        ),
        "Linux extended boot",
    ),
    (
        Guid::from_fields(
            0x0fc6_3daf,
            0x8483,
            0x4772,
            [0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4],
        ),
        "Linux filesystem",
    ),
    (
        Guid::from_fields(
            0x4f68_bce3,
            0xe8cd,
            0x4db1,
            [0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09],
        ),
        "Linux root (x86-64)",
    ),
    (
        Guid::from_fields(
            0x0657_fd6d,
            0xa4ab,
            0x43c4,
            [0x84, 0xe5, 0x09, 0x33, 0xc8, 0x4b, 0x4f, 0x4f],
        ),
        "Linux swap",
    ),
    (
        Guid::from_fields(
            0x2168_6148,
            0x6449,
            0x6e6f,
            [0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49],
        ),
        "BIOS boot",
    ),
    (
        Guid::from_fields(
            0xebd0_a0a2,
            0xb9e5,
            0x4433,
            [0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7],
        ),
        "Microsoft basic data",
    ),
    (
        Guid::from_fields(
            0xeb9d_2d30,
            0x2d88,
            0x11d3,
            [0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d],
        ),
        "ACPI 1.0 table",
    ),
    (
        Guid::from_fields(
            0x8868_e871,
            0xe4f1,
            0x11d3,
            [0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81],
        ),
        "ACPI 2.0 table",
    ),
    (
        Guid::from_fields(
            0xeb9d_2d31,
            0x2d88,
            0x11d3,
            [0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d],
        ),
        "SMBIOS table",
    ),
    (
        Guid::from_fields(
            0xf2fd_1544,
            0x9794,
            0x4a2c,
            [0x99, 0x2e, 0xe5, 0xbb, 0xcf, 0x20, 0xe3, 0x94],
        ),
        "SMBIOS 3 table",
    ),
];

/// `guid (name)` for a known GUID, the bare GUID otherwise.
pub fn guid_text(guid: &Guid) -> String {
    match guid.name() {
        Some(name) => format!("{guid} ({name})"),
        None => guid.to_string(),
    }
}

pub(crate) fn read_guid(r: &mut Reader<'_>, field: &'static str) -> Result<Guid, ParseError> {
    Ok(Guid(r.array(field)?))
}

/// A little-endian UCS-2/UTF-16 string up to its first NUL (or the end); `None` if the length
/// is odd or the code units are not valid UTF-16.
pub fn utf16(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0);
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

/// Whether text reads as text: no control characters but tab, newline and carriage return.
pub fn is_printable(s: &str) -> bool {
    s.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// `"text"`, escaped like a Rust string literal (quotes, backslashes, control and invisible
/// characters), elided past 1024 characters.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TEXT) + 2);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == MAX_TEXT {
            out.push('\u{2026}');
            break;
        }
        if is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.extend(c.escape_debug());
        }
    }
    out.push('"');
    out
}

/// Text shown bare (a file path): only control and invisible characters are escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TEXT));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_TEXT {
            out.push('\u{2026}');
            break;
        }
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that change how a terminal shows the text around them: bidirectional overrides
/// and isolates, zero-width characters, the BOM.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Hex of the first 32 bytes, with the length when longer.
pub fn hex_preview(bytes: &[u8]) -> String {
    if bytes.len() <= HEX_PREVIEW {
        hex::encode(bytes)
    } else {
        format!(
            "{}\u{2026} ({} bytes)",
            hex::encode(&bytes[..HEX_PREVIEW]),
            bytes.len()
        )
    }
}

/// Text if the bytes are printable UTF-8 (or, failing that, UTF-16) up to trailing NULs,
/// otherwise a hex preview.
pub fn text_or_hex(bytes: &[u8]) -> String {
    let trimmed = trim_nuls(bytes);
    if let Ok(s) = std::str::from_utf8(trimmed)
        && !s.is_empty()
        && is_printable(s)
    {
        return quote(s);
    }
    if let Some(s) = utf16(bytes) {
        // Firmware strings are Latin text; a UTF-16 reading of binary data is mostly CJK.
        let latin = s.chars().all(|c| u32::from(c) < 0x0800);
        if !s.is_empty() && latin && is_printable(&s) && utf16_len_matches(bytes, &s) {
            return quote(&s);
        }
    }
    if bytes.is_empty() {
        return "(no data)".to_owned();
    }
    hex_preview(bytes)
}

/// Data the specification defines as text (action strings, IPL text): quoted and escaped even
/// if it holds control characters, as UTF-8 or else UTF-16; a hex preview if it is neither.
pub fn text(bytes: &[u8]) -> String {
    let utf8 = std::str::from_utf8(trim_nuls(bytes));
    // ASCII in UTF-16 is valid UTF-8 with NULs between the letters: prefer UTF-16 then.
    if let Ok(s) = utf8
        && !s.contains('\0')
    {
        return quote(s);
    }
    if let Some(s) = utf16(bytes)
        && utf16_len_matches(bytes, &s)
    {
        return quote(&s);
    }
    match utf8 {
        Ok(s) => quote(s),
        Err(_) => hex_preview(bytes),
    }
}

/// A UTF-16 reading is plausible only if nothing but NULs follows the string.
fn utf16_len_matches(bytes: &[u8], s: &str) -> bool {
    let used = s.encode_utf16().count() * 2;
    bytes
        .get(used..)
        .is_some_and(|rest| rest.iter().all(|b| *b == 0))
}

fn trim_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// An EFI device path as UEFI's text form (`PciRoot(0x0)/Pci(0x1,0x0)/HD(1,GPT,…)/\EFI\x.EFI`).
pub fn device_path(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut r = Reader::new(bytes, 0);
    let mut sep = "";
    for _ in 0..MAX_NODES {
        if r.is_empty() {
            return out;
        }
        let (Ok(kind), Ok(sub), Ok(len)) = (
            r.u8("EFI_DEVICE_PATH.Type"),
            r.u8("EFI_DEVICE_PATH.SubType"),
            r.u16("EFI_DEVICE_PATH.Length"),
        ) else {
            out.push_str(sep);
            out.push_str("<truncated node>");
            return out;
        };
        let Some(body_len) = usize::from(len).checked_sub(4) else {
            let _ = write!(out, "{sep}<node length {len}>");
            return out;
        };
        let Ok(body) = r.bytes(body_len, "EFI_DEVICE_PATH") else {
            let _ = write!(
                out,
                "{sep}<node length {len}, {} bytes remain>",
                r.remaining() + 4
            );
            return out;
        };
        match (kind, sub) {
            (0x7f, 0xff) => {
                if !r.is_empty() {
                    let _ = write!(out, " <{} bytes after the end node>", r.remaining());
                }
                return out;
            }
            (0x7f, 0x01) => {
                out.push(',');
                sep = "";
            }
            _ => {
                out.push_str(sep);
                out.push_str(&node(kind, sub, body));
                sep = "/";
            }
        }
    }
    if !r.is_empty() {
        out.push_str("/\u{2026}");
    }
    out
}

fn eisa_id(id: u32) -> String {
    if id & 0xffff == 0x41d0 {
        format!("PNP{:04X}", id >> 16)
    } else {
        format!("0x{id:x}")
    }
}

fn node(kind: u8, sub: u8, body: &[u8]) -> String {
    let mut r = Reader::new(body, 0);
    let decoded: Result<String, ParseError> = (|| {
        let f = "EFI_DEVICE_PATH";
        Ok(match (kind, sub) {
            (0x01, 0x01) => {
                let function = r.u8(f)?;
                let device = r.u8(f)?;
                format!("Pci(0x{device:x},0x{function:x})")
            }
            (0x01, 0x02) => format!("PcCard(0x{:x})", r.u8(f)?),
            (0x01, 0x03) => format!(
                "MemoryMapped(0x{:x},0x{:x},0x{:x})",
                r.u32(f)?,
                r.u64(f)?,
                r.u64(f)?
            ),
            (0x01, 0x04) => vendor("VenHw", &mut r)?,
            (0x01, 0x05) => format!("Ctrl(0x{:x})", r.u32(f)?),
            (0x02, 0x01) => {
                let hid = r.u32(f)?;
                let uid = r.u32(f)?;
                match hid {
                    0x0a03_41d0 => format!("PciRoot(0x{uid:x})"),
                    0x0a08_41d0 => format!("PcieRoot(0x{uid:x})"),
                    _ => format!("Acpi({},0x{uid:x})", eisa_id(hid)),
                }
            }
            (0x02, 0x02) => {
                let hid = r.u32(f)?;
                let uid = r.u32(f)?;
                let cid = r.u32(f)?;
                format!("AcpiEx({},{},0x{uid:x})", eisa_id(hid), eisa_id(cid))
            }
            (0x02, 0x03) => format!("AcpiAdr(0x{:x})", r.u32(f)?),
            (0x03, 0x01) => {
                let primary = r.u8(f)?;
                let slave = r.u8(f)?;
                let lun = r.u16(f)?;
                format!(
                    "Ata({},{},0x{lun:x})",
                    if primary == 0 { "Primary" } else { "Secondary" },
                    if slave == 0 { "Master" } else { "Slave" }
                )
            }
            (0x03, 0x02) => format!("Scsi(0x{:x},0x{:x})", r.u16(f)?, r.u16(f)?),
            (0x03, 0x03) => {
                r.u32(f)?;
                format!("Fibre(0x{:x},0x{:x})", r.u64(f)?, r.u64(f)?)
            }
            (0x03, 0x05) => format!("USB(0x{:x},0x{:x})", r.u8(f)?, r.u8(f)?),
            (0x03, 0x0a) => vendor("VenMsg", &mut r)?,
            (0x03, 0x0b) => {
                let mac = r.bytes(32, f)?;
                let if_type = r.u8(f)?;
                let len = if if_type == 0 || if_type == 1 { 6 } else { 32 };
                format!("MAC({},0x{if_type:x})", hex::encode(&mac[..len]))
            }
            (0x03, 0x0c) => {
                let local = r.array::<4>(f)?;
                let remote = r.array::<4>(f)?;
                format!(
                    "IPv4({},{})",
                    std::net::Ipv4Addr::from(remote),
                    std::net::Ipv4Addr::from(local)
                )
            }
            (0x03, 0x0d) => {
                let local = r.array::<16>(f)?;
                let remote = r.array::<16>(f)?;
                format!(
                    "IPv6({},{})",
                    std::net::Ipv6Addr::from(remote),
                    std::net::Ipv6Addr::from(local)
                )
            }
            (0x03, 0x0f) => format!(
                "UsbClass(0x{:x},0x{:x},0x{:x},0x{:x},0x{:x})",
                r.u16(f)?,
                r.u16(f)?,
                r.u8(f)?,
                r.u8(f)?,
                r.u8(f)?
            ),
            (0x03, 0x12) => format!(
                "Sata(0x{:x},0x{:x},0x{:x})",
                r.u16(f)?,
                r.u16(f)?,
                r.u16(f)?
            ),
            (0x03, 0x17) => {
                let nsid = r.u32(f)?;
                let eui = r.bytes(8, f)?;
                let eui: Vec<String> = eui.iter().map(|b| format!("{b:02X}")).collect();
                format!("NVMe(0x{nsid:x},{})", eui.join("-"))
            }
            (0x03, 0x18) => match std::str::from_utf8(r.rest()) {
                Ok(uri) => format!("Uri({})", quote(uri)),
                Err(_) => "Uri(<not UTF-8>)".to_owned(),
            },
            (0x03, 0x1a) => format!("SD(0x{:x})", r.u8(f)?),
            (0x03, 0x1d) => format!("eMMC(0x{:x})", r.u8(f)?),
            (0x04, 0x01) => {
                let part = r.u32(f)?;
                let start = r.u64(f)?;
                let size = r.u64(f)?;
                let sig = r.array::<16>(f)?;
                let format = r.u8(f)?;
                let sig_type = r.u8(f)?;
                match (format, sig_type) {
                    (2, 2) => format!("HD({part},GPT,{},0x{start:x},0x{size:x})", Guid(sig)),
                    (1, 1) => format!(
                        "HD({part},MBR,0x{:08x},0x{start:x},0x{size:x})",
                        u32::from_le_bytes([sig[0], sig[1], sig[2], sig[3]])
                    ),
                    _ => format!("HD({part},{format},{sig_type},0x{start:x},0x{size:x})"),
                }
            }
            (0x04, 0x02) => format!(
                "CDROM(0x{:x},0x{:x},0x{:x})",
                r.u32(f)?,
                r.u64(f)?,
                r.u64(f)?
            ),
            (0x04, 0x03) => vendor("VenMedia", &mut r)?,
            (0x04, 0x04) => match utf16(r.rest()) {
                Some(path) if is_printable(&path) => {
                    // Quote only if the path would be ambiguous in the slash-separated text.
                    if path.contains(['/', '(', ')', '"', ',']) {
                        quote(&path)
                    } else {
                        escape(&path)
                    }
                }
                _ => "File(<not UTF-16>)".to_owned(),
            },
            (0x04, 0x05) => format!("Media({})", read_guid(&mut r, f)?),
            (0x04, 0x06) => format!("FvFile({})", read_guid(&mut r, f)?),
            (0x04, 0x07) => format!("Fv({})", read_guid(&mut r, f)?),
            (0x04, 0x08) => {
                r.u32(f)?;
                format!("Offset(0x{:x},0x{:x})", r.u64(f)?, r.u64(f)?)
            }
            (0x04, 0x09) => {
                let start = r.u64(f)?;
                let end = r.u64(f)?;
                let kind = read_guid(&mut r, f)?;
                format!("RamDisk(0x{start:x},0x{end:x},{kind})")
            }
            (0x05, 0x01) => {
                let dev_type = r.u16(f)?;
                let status = r.u16(f)?;
                let desc = String::from_utf8_lossy(trim_nuls(r.rest())).into_owned();
                format!("BBS(0x{dev_type:x},{},0x{status:x})", quote(&desc))
            }
            _ => return Err(ParseError::new(0, f, "unknown node")),
        })
    })();
    decoded.unwrap_or_else(|_| format!("Path({kind},{sub},{})", hex::encode(body)))
}

fn vendor(name: &str, r: &mut Reader<'_>) -> Result<String, ParseError> {
    let guid = read_guid(r, "EFI_DEVICE_PATH")?;
    let rest = r.rest();
    Ok(if rest.is_empty() {
        format!("{name}({guid})")
    } else {
        format!("{name}({guid},{})", hex_preview(rest))
    })
}

/// EFI_LOAD_OPTION (Boot####, Driver####): attributes, description, device path, optional data.
pub fn load_option(bytes: &[u8]) -> String {
    let mut r = Reader::new(bytes, 0);
    let parsed = (|| -> Result<String, ParseError> {
        let attributes = r.u32("EFI_LOAD_OPTION.Attributes")?;
        let path_len = r.u16("EFI_LOAD_OPTION.FilePathListLength")?;
        // The description runs to the first NUL code unit.
        let mut units = Vec::new();
        loop {
            match r.u16("EFI_LOAD_OPTION.Description")? {
                0 => break,
                u => units.push(u),
            }
        }
        let description = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect::<String>();
        let path = r.sized(path_len.into(), 0, "EFI_LOAD_OPTION.FilePathList")?;
        let optional = r.rest();
        let mut flags = Vec::new();
        flags.push(if attributes & 0x1 != 0 {
            "active"
        } else {
            "inactive"
        });
        if attributes & 0x8 != 0 {
            flags.push("hidden");
        }
        if attributes & 0x2 != 0 {
            flags.push("force-reconnect");
        }
        if attributes & 0x1f00 == 0x100 {
            flags.push("app");
        }
        let mut out = format!(
            "{} ({}) {}",
            quote(&description),
            flags.join(", "),
            device_path(path)
        );
        if !optional.is_empty() {
            let _ = write!(out, " + optional data {}", text_or_hex(optional));
        }
        Ok(out)
    })();
    parsed.unwrap_or_else(|e| format!("<malformed EFI_LOAD_OPTION: {e}> {}", hex_preview(bytes)))
}

/// UEFI_VARIABLE_DATA, split.
pub struct Variable<'a> {
    pub guid: Guid,
    pub name: String,
    pub data: &'a [u8],
    /// Bytes after VariableData (none in a well-formed event).
    pub trailing: usize,
}

/// Splits UEFI_VARIABLE_DATA: VariableName GUID, UnicodeNameLength and VariableDataLength
/// (UINT64, in characters and bytes), UnicodeName, VariableData.
pub fn variable(bytes: &[u8]) -> Result<Variable<'_>, ParseError> {
    let mut r = Reader::new(bytes, 0);
    let guid = read_guid(&mut r, "UEFI_VARIABLE_DATA.VariableName")?;
    let name_at = r.offset();
    let name_len = r.u64("UEFI_VARIABLE_DATA.UnicodeNameLength")?;
    let data_at = r.offset();
    let data_len = r.u64("UEFI_VARIABLE_DATA.VariableDataLength")?;
    let name_bytes = r.sized(
        name_len.saturating_mul(2),
        name_at,
        "UEFI_VARIABLE_DATA.UnicodeNameLength",
    )?;
    let name = char::decode_utf16(
        name_bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]])),
    )
    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
    .collect::<String>();
    let data = r.sized(data_len, data_at, "UEFI_VARIABLE_DATA.VariableDataLength")?;
    Ok(Variable {
        guid,
        name,
        data,
        trailing: r.remaining(),
    })
}

/// A variable event: `SecureBoot [8be4df61-…, EFI global variable] = disabled (00)`.
pub fn describe_variable(bytes: &[u8], authority: bool) -> String {
    let var = match variable(bytes) {
        Ok(v) => v,
        Err(e) => {
            return format!("<malformed UEFI_VARIABLE_DATA: {e}> {}", hex_preview(bytes));
        }
    };
    let name = var.name.trim_end_matches('\0');
    let shown_name: String = if is_printable(name) && !name.contains(['"', '\\', ' ']) {
        name.to_owned()
    } else {
        quote(name)
    };
    let value = if authority {
        authority_value(&var)
    } else {
        variable_value(&var, name)
    };
    let mut out = format!("{shown_name} [{}] = {value}", guid_text(&var.guid));
    if var.trailing > 0 {
        let _ = write!(out, " <{} bytes after VariableData>", var.trailing);
    }
    out
}

fn variable_value(var: &Variable<'_>, name: &str) -> String {
    let data = var.data;
    let global = var.guid == EFI_GLOBAL_VARIABLE;
    let security_db = var.guid == EFI_IMAGE_SECURITY_DATABASE;
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| n.len() == 4 && n.chars().all(|c| c.is_ascii_hexdigit()))
    };
    if global
        && matches!(
            name,
            "SecureBoot" | "SetupMode" | "AuditMode" | "DeployedMode"
        )
    {
        return match data {
            [0] => "disabled (00)".to_owned(),
            [1] => "enabled (01)".to_owned(),
            _ => hex_preview(data),
        };
    }
    if global
        && matches!(name, "BootOrder" | "DriverOrder" | "SysPrepOrder")
        && data.len().is_multiple_of(2)
    {
        let prefix = name.trim_end_matches("Order");
        if data.is_empty() {
            return "(empty)".to_owned();
        }
        let entries: Vec<String> = data
            .chunks_exact(2)
            .map(|c| format!("{prefix}{:04X}", u16::from_le_bytes([c[0], c[1]])))
            .collect();
        return entries.join(", ");
    }
    if global && matches!(name, "BootNext" | "BootCurrent") && data.len() == 2 {
        return format!("Boot{:04X}", u16::from_le_bytes([data[0], data[1]]));
    }
    if global
        && (numbered("Boot")
            || numbered("Driver")
            || numbered("SysPrep")
            || numbered("PlatformRecovery"))
    {
        return load_option(data);
    }
    if (global && matches!(name, "PK" | "KEK" | "PKDefault" | "KEKDefault"))
        || (security_db && matches!(name, "db" | "dbx" | "dbt" | "dbr"))
        || name == "MokList"
        || name == "MokListRT"
    {
        return signature_lists(data);
    }
    if data.is_empty() {
        return "(empty)".to_owned();
    }
    text_or_hex(data)
}

/// The VariableData of an EV_EFI_VARIABLE_AUTHORITY event: one EFI_SIGNATURE_DATA (owner GUID
/// and the certificate or hash that allowed an image), or for shim's variables their value.
fn authority_value(var: &Variable<'_>) -> String {
    let data = var.data;
    if var.guid == EFI_IMAGE_SECURITY_DATABASE && data.len() > 16 {
        let mut owner = [0u8; 16];
        owner.copy_from_slice(&data[..16]);
        return format!(
            "signature owned by {}, {} bytes",
            guid_text(&Guid(owner)),
            data.len() - 16
        );
    }
    if data.is_empty() {
        return "(empty)".to_owned();
    }
    text_or_hex(data)
}

/// A summary of a list of EFI_SIGNATURE_LISTs: `2 lists: 1 X.509 certificate, 77 SHA-256 hash`.
pub fn signature_lists(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".to_owned();
    }
    let mut r = Reader::new(bytes, 0);
    let mut lists = 0usize;
    let mut parts = Vec::new();
    while !r.is_empty() {
        let one = (|| -> Result<String, ParseError> {
            let kind = read_guid(&mut r, "EFI_SIGNATURE_LIST.SignatureType")?;
            let list_size = r.u32("EFI_SIGNATURE_LIST.SignatureListSize")?;
            let header_size = r.u32("EFI_SIGNATURE_LIST.SignatureHeaderSize")?;
            let sig_size = r.u32("EFI_SIGNATURE_LIST.SignatureSize")?;
            let body_len = u64::from(list_size)
                .checked_sub(28)
                .ok_or_else(|| ParseError::new(0, "EFI_SIGNATURE_LIST", "list size below 28"))?;
            let body = r.sized(body_len, 0, "EFI_SIGNATURE_LIST.SignatureListSize")?;
            let sigs_len = body
                .len()
                .checked_sub(usize::try_from(header_size).unwrap_or(usize::MAX))
                .ok_or_else(|| ParseError::new(0, "EFI_SIGNATURE_LIST", "header too long"))?;
            let count = match usize::try_from(sig_size) {
                Ok(s) if s >= 16 && sigs_len % s == 0 => sigs_len / s,
                _ => {
                    return Err(ParseError::new(
                        0,
                        "EFI_SIGNATURE_LIST.SignatureSize",
                        "does not divide the list",
                    ));
                }
            };
            let what = kind.name().map_or_else(|| kind.to_string(), str::to_owned);
            Ok(format!("{count} \u{00d7} {what}"))
        })();
        lists += 1;
        match one {
            Ok(part) => parts.push(part),
            Err(e) => {
                parts.push(format!("<malformed: {e}>"));
                break;
            }
        }
    }
    format!(
        "{lists} signature list{}: {}",
        if lists == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// UEFI_GPT_DATA: the partition table header, then the partition entries in use.
pub fn gpt(bytes: &[u8]) -> String {
    let mut r = Reader::new(bytes, 0);
    let parsed = (|| -> Result<String, ParseError> {
        let sig = r.bytes(8, "EFI_PARTITION_TABLE_HEADER.Signature")?;
        if sig != b"EFI PART" {
            return Err(ParseError::new(
                0,
                "EFI_PARTITION_TABLE_HEADER.Signature",
                "not \"EFI PART\"",
            ));
        }
        r.bytes(48, "EFI_PARTITION_TABLE_HEADER")?;
        let disk = read_guid(&mut r, "EFI_PARTITION_TABLE_HEADER.DiskGUID")?;
        r.u64("EFI_PARTITION_TABLE_HEADER.PartitionEntryLBA")?;
        r.u32("EFI_PARTITION_TABLE_HEADER.NumberOfPartitionEntries")?;
        let entry_size = r.u32("EFI_PARTITION_TABLE_HEADER.SizeOfPartitionEntry")?;
        r.u32("EFI_PARTITION_TABLE_HEADER.PartitionEntryArrayCRC32")?;
        let count_at = r.offset();
        let count = r.u64("UEFI_GPT_DATA.NumberOfPartitions")?;
        let entry_size = usize::try_from(entry_size).unwrap_or(usize::MAX);
        if entry_size < 128 {
            return Err(ParseError::new(
                0,
                "EFI_PARTITION_TABLE_HEADER.SizeOfPartitionEntry",
                format!("{entry_size}, below 128"),
            ));
        }
        let entries = r.sized(
            count.saturating_mul(u64::try_from(entry_size).unwrap_or(u64::MAX)),
            count_at,
            "UEFI_GPT_DATA.NumberOfPartitions",
        )?;
        let mut out = format!(
            "disk {disk}, {count} partition{}",
            if count == 1 { "" } else { "s" }
        );
        for (i, entry) in entries.chunks_exact(entry_size).enumerate() {
            let mut e = Reader::new(entry, 0);
            let kind = read_guid(&mut e, "EFI_PARTITION_ENTRY.PartitionTypeGUID")?;
            let unique = read_guid(&mut e, "EFI_PARTITION_ENTRY.UniquePartitionGUID")?;
            let first = e.u64("EFI_PARTITION_ENTRY.StartingLBA")?;
            let last = e.u64("EFI_PARTITION_ENTRY.EndingLBA")?;
            e.u64("EFI_PARTITION_ENTRY.Attributes")?;
            let name = utf16(e.bytes(72, "EFI_PARTITION_ENTRY.PartitionName")?)
                .unwrap_or_else(|| "<not UTF-16>".to_owned());
            let _ = write!(
                out,
                "{} {}: {} type {}, {unique}, LBA {first}-{last}",
                if i == 0 { ":" } else { ";" },
                i + 1,
                quote(&name),
                guid_text(&kind),
            );
        }
        if !r.is_empty() {
            let _ = write!(out, " <{} trailing bytes>", r.remaining());
        }
        Ok(out)
    })();
    parsed.unwrap_or_else(|e| format!("<malformed UEFI_GPT_DATA: {e}> {}", hex_preview(bytes)))
}

/// UEFI_IMAGE_LOAD_EVENT: where the image was loaded, its length, and its device path.
pub fn image_load(bytes: &[u8]) -> String {
    let mut r = Reader::new(bytes, 0);
    let parsed = (|| -> Result<String, ParseError> {
        let location = r.u64("UEFI_IMAGE_LOAD_EVENT.ImageLocationInMemory")?;
        let length = r.u64("UEFI_IMAGE_LOAD_EVENT.ImageLengthInMemory")?;
        let link = r.u64("UEFI_IMAGE_LOAD_EVENT.ImageLinkTimeAddress")?;
        let path_at = r.offset();
        let path_len = r.u64("UEFI_IMAGE_LOAD_EVENT.LengthOfDevicePath")?;
        let path = r.sized(
            path_len,
            path_at,
            "UEFI_IMAGE_LOAD_EVENT.LengthOfDevicePath",
        )?;
        let mut out = if path.is_empty() {
            "(no device path)".to_owned()
        } else {
            device_path(path)
        };
        let _ = write!(out, " ({length} bytes at 0x{location:x}");
        if link != 0 {
            let _ = write!(out, ", linked at 0x{link:x}");
        }
        out.push(')');
        if !r.is_empty() {
            let _ = write!(out, " <{} trailing bytes>", r.remaining());
        }
        Ok(out)
    })();
    parsed.unwrap_or_else(|e| {
        format!(
            "<malformed UEFI_IMAGE_LOAD_EVENT: {e}> {}",
            hex_preview(bytes)
        )
    })
}

/// UEFI_PLATFORM_FIRMWARE_BLOB (base, length) or, with `described`, UEFI_PLATFORM_FIRMWARE_BLOB2
/// (a description first).
pub fn firmware_blob(bytes: &[u8], described: bool) -> String {
    let mut r = Reader::new(bytes, 0);
    let parsed = (|| -> Result<String, ParseError> {
        let mut out = String::new();
        if described {
            let at = r.offset();
            let len = r.u8("UEFI_PLATFORM_FIRMWARE_BLOB2.BlobDescriptionSize")?;
            let desc = r.sized(
                len.into(),
                at,
                "UEFI_PLATFORM_FIRMWARE_BLOB2.BlobDescriptionSize",
            )?;
            out.push_str(&text_or_hex(desc));
            out.push(' ');
        }
        let base = r.u64("UEFI_PLATFORM_FIRMWARE_BLOB.BlobBase")?;
        let length = r.u64("UEFI_PLATFORM_FIRMWARE_BLOB.BlobLength")?;
        let _ = write!(out, "base 0x{base:x}, length 0x{length:x} ({length} bytes)");
        if !r.is_empty() {
            let _ = write!(out, " <{} trailing bytes>", r.remaining());
        }
        Ok(out)
    })();
    parsed.unwrap_or_else(|e| format!("<malformed firmware blob: {e}> {}", hex_preview(bytes)))
}

/// UEFI_HANDOFF_TABLE_POINTERS(2): the configuration tables handed to the OS.
pub fn handoff_tables(bytes: &[u8], described: bool) -> String {
    let mut r = Reader::new(bytes, 0);
    let parsed = (|| -> Result<String, ParseError> {
        let mut out = String::new();
        if described {
            let at = r.offset();
            let len = r.u8("UEFI_HANDOFF_TABLE_POINTERS2.TableDescriptionSize")?;
            let desc = r.sized(
                len.into(),
                at,
                "UEFI_HANDOFF_TABLE_POINTERS2.TableDescriptionSize",
            )?;
            out.push_str(&text_or_hex(desc));
            out.push(' ');
        }
        let count_at = r.offset();
        let count = r.u64("UEFI_HANDOFF_TABLE_POINTERS.NumberOfTables")?;
        let tables = r.sized(
            count.saturating_mul(24),
            count_at,
            "UEFI_HANDOFF_TABLE_POINTERS.NumberOfTables",
        )?;
        let _ = write!(out, "{count} table{}", if count == 1 { "" } else { "s" });
        for (i, t) in tables.chunks_exact(24).enumerate() {
            let mut g = [0u8; 16];
            g.copy_from_slice(&t[..16]);
            let mut p = [0u8; 8];
            p.copy_from_slice(&t[16..]);
            let _ = write!(
                out,
                "{} {} at 0x{:x}",
                if i == 0 { ":" } else { "," },
                guid_text(&Guid(g)),
                u64::from_le_bytes(p)
            );
        }
        Ok(out)
    })();
    parsed.unwrap_or_else(|e| format!("<malformed handoff tables: {e}> {}", hex_preview(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_in_registry_form() {
        assert_eq!(
            EFI_GLOBAL_VARIABLE.to_string(),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c"
        );
        assert_eq!(EFI_GLOBAL_VARIABLE.name(), Some("EFI global variable"));
    }

    #[test]
    fn quoting_escapes_control_characters_and_elides_long_text() {
        assert_eq!(quote("a\u{1b}[2J\n"), "\"a\\u{1b}[2J\\n\"");
        let long = "x".repeat(MAX_TEXT + 10);
        assert!(quote(&long).ends_with("\u{2026}\""));
    }

    #[test]
    fn device_paths_decode_to_uefi_text() {
        let dp = hex::decode("02010c00d041030a0000000001010600021f03120a000200ffff00007fff0400")
            .unwrap();
        assert_eq!(
            device_path(&dp),
            "PciRoot(0x0)/Pci(0x1f,0x2)/Sata(0x2,0xffff,0x0)"
        );
    }

    #[test]
    fn malformed_device_paths_are_noted_not_fatal() {
        assert_eq!(device_path(&[0x04, 0x04, 0x02, 0x00]), "<node length 2>");
        assert!(device_path(&[0x04, 0x04, 0xff, 0x00, 0x41]).contains("remain"));
        assert_eq!(device_path(&[0x04]), "<truncated node>");
    }

    #[test]
    fn utf16_stops_at_nul_and_rejects_lone_surrogates() {
        assert_eq!(utf16(b".\0l\0\0\0x\0").as_deref(), Some(".l"));
        assert_eq!(utf16(&[0x00, 0xd8, 0x41, 0x00]), None);
        assert_eq!(utf16(b"abc"), None);
    }
}
