//! Readable descriptions of firmware events, and whether an event's data matches its digests.

use std::fmt::Write as _;

use crate::efi::{self, hex_preview, quote, text_or_hex, utf16};
use crate::event_type::*;
use crate::log::{Event, parse_spec_id};
use crate::pcr::Bank;

/// Linux's EV_EVENT_TAG for the initrd it measured into PCR 9.
const TAG_LINUX_INITRD: u32 = 0x8F3B_22EC;
/// Linux's EV_EVENT_TAG for the load options (the kernel command line) it measured into PCR 9.
const TAG_LINUX_LOAD_OPTIONS: u32 = 0x8F3B_22ED;

impl Event {
    /// The event data decoded for a human: variable names with their GUIDs, boot options,
    /// device paths, GPT partitions, UKI section names, action strings. Never fails: data that
    /// does not decode is described as such, with a hex preview.
    pub fn describe(&self) -> String {
        let data = self.data.as_slice();
        match self.event_type {
            EV_NO_ACTION => describe_no_action(self),
            EV_SEPARATOR => match data {
                [0, 0, 0, 0] => "separator (00000000)".to_owned(),
                [1, 0, 0, 0] => "separator (00000001: error)".to_owned(),
                [0xff, 0xff, 0xff, 0xff] => "separator (ffffffff)".to_owned(),
                _ => format!("separator ({})", hex_preview(data)),
            },
            EV_ACTION | EV_EFI_ACTION | EV_OMIT_BOOT_DEVICE_EVENTS | EV_EFI_HCRTM_EVENT => {
                efi::text(data)
            }
            EV_S_CRTM_VERSION => match utf16(data) {
                Some(v) if efi::is_printable(&v) && data.len().is_multiple_of(2) => {
                    format!("CRTM version {}", quote(&v))
                }
                _ => format!("CRTM version {}", text_or_hex(data)),
            },
            EV_POST_CODE | EV_S_CRTM_CONTENTS | EV_POST_CODE2 => {
                if data.len() == 16 {
                    efi::firmware_blob(data, false)
                } else {
                    text_or_hex(data)
                }
            }
            EV_EFI_PLATFORM_FIRMWARE_BLOB => efi::firmware_blob(data, false),
            EV_EFI_PLATFORM_FIRMWARE_BLOB2 => efi::firmware_blob(data, true),
            EV_EFI_HANDOFF_TABLES => efi::handoff_tables(data, false),
            EV_EFI_HANDOFF_TABLES2 => efi::handoff_tables(data, true),
            EV_EFI_VARIABLE_DRIVER_CONFIG | EV_EFI_VARIABLE_BOOT | EV_EFI_VARIABLE_BOOT2 => {
                efi::describe_variable(data, false)
            }
            EV_EFI_VARIABLE_AUTHORITY => efi::describe_variable(data, true),
            EV_EFI_BOOT_SERVICES_APPLICATION
            | EV_EFI_BOOT_SERVICES_DRIVER
            | EV_EFI_RUNTIME_SERVICES_DRIVER => efi::image_load(data),
            EV_EFI_GPT_EVENT | EV_EFI_GPT_EVENT2 => efi::gpt(data),
            EV_IPL => describe_ipl(self),
            EV_EVENT_TAG => describe_tag(data),
            _ => text_or_hex(data),
        }
    }

    /// Whether the event's digests are the hashes of its data, for the event types whose
    /// digests the specification (and the firmware we test against) define that way:
    ///
    /// - `Some(true|false)` for EV_SEPARATOR, EV_ACTION, EV_EFI_ACTION, EV_S_CRTM_VERSION,
    ///   EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_AUTHORITY, EV_EFI_GPT_EVENT,
    ///   EV_OMIT_BOOT_DEVICE_EVENTS (the whole event data), and EV_EFI_VARIABLE_BOOT(2), where
    ///   either the whole UEFI_VARIABLE_DATA (the specification) or only its VariableData (what
    ///   EDK2/OVMF hashes) may be the measured bytes; so for boot variables only a change to
    ///   the variable's value is caught, not one to its name or GUID.
    /// - `Some(true)` or `None` for EV_IPL, EV_EVENT_TAG and EV_COMPACT_HASH, whose digest is
    ///   sometimes the data (SeaBIOS's tags, systemd-stub's section names, hashed as UTF-8 with
    ///   their NUL) and sometimes what the data names (a UKI section's contents, an initrd).
    /// - `None` for everything else (firmware blobs, images, handoff tables, EV_NO_ACTION).
    ///
    /// Only the digests of banks this crate knows are compared; `None` if there are none.
    pub fn data_matches_digest(&self) -> Option<bool> {
        if self.digests.is_empty() {
            return None;
        }
        let data = self.data.as_slice();
        match self.event_type {
            EV_SEPARATOR
            | EV_ACTION
            | EV_EFI_ACTION
            | EV_S_CRTM_VERSION
            | EV_EFI_VARIABLE_DRIVER_CONFIG
            | EV_EFI_VARIABLE_AUTHORITY
            | EV_EFI_GPT_EVENT
            | EV_OMIT_BOOT_DEVICE_EVENTS => Some(self.digests_are_hash_of(data)),
            EV_EFI_VARIABLE_BOOT | EV_EFI_VARIABLE_BOOT2 => Some(
                self.digests_are_hash_of(data)
                    || efi::variable(data).is_ok_and(|v| self.digests_are_hash_of(v.data)),
            ),
            EV_EVENT_TAG | EV_COMPACT_HASH => self.digests_are_hash_of(data).then_some(true),
            EV_IPL => {
                let name_hash = || {
                    utf16(data).is_some_and(|s| {
                        let mut z = s.into_bytes();
                        z.push(0);
                        self.digests_are_hash_of(&z)
                    })
                };
                (self.digests_are_hash_of(data) || name_hash()).then_some(true)
            }
            _ => None,
        }
    }

    fn digests_are_hash_of(&self, bytes: &[u8]) -> bool {
        self.digests
            .iter()
            .all(|(bank, digest)| bank.hash(bytes) == *digest)
    }

    /// Whether the digest in the first known bank is the hash of the UTF-8 text + NUL that
    /// the UTF-16 data spells (systemd-stub's measurement of a UKI section name).
    fn is_utf8_name_measurement(&self) -> bool {
        let Some((bank, digest)) = self.digests.first() else {
            return false;
        };
        utf16(&self.data).is_some_and(|s| {
            let mut z = s.into_bytes();
            z.push(0);
            Bank::hash(*bank, &z) == *digest
        })
    }
}

fn describe_no_action(event: &Event) -> String {
    let data = event.data.as_slice();
    if data.starts_with(b"Spec ID Event03\0") {
        return match parse_spec_id(event) {
            Ok(spec) => {
                let algs: Vec<String> = spec
                    .algorithms
                    .iter()
                    .map(|a| match a.bank {
                        Some(b) => b.name().to_owned(),
                        None => format!("0x{:04x} ({} bytes)", a.alg_id, a.digest_size),
                    })
                    .collect();
                format!(
                    "Spec ID Event03: PC Client spec {}.{} errata {}, {}-bit UINTN, algorithms {}",
                    spec.spec_version_major,
                    spec.spec_version_minor,
                    spec.spec_errata,
                    if spec.uintn_size == 1 { 32 } else { 64 },
                    algs.join(", ")
                )
            }
            Err(e) => format!("Spec ID Event03 <malformed: {e}>"),
        };
    }
    if data.len() == 17 && data.starts_with(b"StartupLocality\0") {
        return format!("StartupLocality {}", data[16]);
    }
    // Other EV_NO_ACTION events (Spec ID Event00/02, SP800-155 Event, NvIndexInstance…) start
    // with a NUL-terminated signature.
    if let Some(nul) = data.iter().take(24).position(|b| *b == 0)
        && let Ok(sig) = std::str::from_utf8(&data[..nul])
        && !sig.is_empty()
        && efi::is_printable(sig)
    {
        let rest = &data[nul + 1..];
        return if rest.is_empty() {
            quote(sig)
        } else {
            format!("{} + {}", quote(sig), hex_preview(rest))
        };
    }
    text_or_hex(data)
}

/// EV_IPL: text for the boot loader (systemd-stub section names, GRUB commands, kernel command
/// lines), UTF-16 or UTF-8.
fn describe_ipl(event: &Event) -> String {
    let data = event.data.as_slice();
    let text = efi::text(data);
    if event.is_utf8_name_measurement() {
        // systemd-stub measures a UKI section's name (this event), then its contents (an event
        // with the same data).
        format!("{text} (UKI section name)")
    } else {
        text
    }
}

/// EV_EVENT_TAG: TCG_PCClientTaggedEvent (taggedEventID, taggedEventDataSize, data).
fn describe_tag(data: &[u8]) -> String {
    if data.len() < 8 {
        return text_or_hex(data);
    }
    let id = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let size = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let body = &data[8..];
    let mut out = match id {
        TAG_LINUX_INITRD | TAG_LINUX_LOAD_OPTIONS => format!("Linux tag 0x{id:08x}"),
        1 => "SMBIOS tag (1)".to_owned(),
        7 => "option ROM executed tag (7)".to_owned(),
        _ => format!("tag 0x{id:08x}"),
    };
    if usize::try_from(size).ok() != Some(body.len()) {
        let _ = write!(
            out,
            " <taggedEventDataSize {size}, {} bytes follow>",
            body.len()
        );
    }
    match id {
        // SeaBIOS: reserved (2), PCI function address (2), SHA1 of the ROM (20).
        7 if body.len() == 24 => {
            let pfa = u16::from_le_bytes([body[2], body[3]]);
            let _ = write!(
                out,
                ": PCI function address 0x{pfa:04x}, ROM sha1 {}",
                hex::encode(&body[4..])
            );
        }
        _ => {
            let _ = write!(out, ": {}", text_or_hex(body));
        }
    }
    out
}
