//! Event types of the TCG PC Client Platform Firmware Profile (section 10.4.1) and their names.

use std::borrow::Cow;

pub const EV_PREBOOT_CERT: u32 = 0x0000_0000;
pub const EV_POST_CODE: u32 = 0x0000_0001;
pub const EV_UNUSED: u32 = 0x0000_0002;
pub const EV_NO_ACTION: u32 = 0x0000_0003;
pub const EV_SEPARATOR: u32 = 0x0000_0004;
pub const EV_ACTION: u32 = 0x0000_0005;
pub const EV_EVENT_TAG: u32 = 0x0000_0006;
pub const EV_S_CRTM_CONTENTS: u32 = 0x0000_0007;
pub const EV_S_CRTM_VERSION: u32 = 0x0000_0008;
pub const EV_CPU_MICROCODE: u32 = 0x0000_0009;
pub const EV_PLATFORM_CONFIG_FLAGS: u32 = 0x0000_000A;
pub const EV_TABLE_OF_DEVICES: u32 = 0x0000_000B;
pub const EV_COMPACT_HASH: u32 = 0x0000_000C;
pub const EV_IPL: u32 = 0x0000_000D;
pub const EV_IPL_PARTITION_DATA: u32 = 0x0000_000E;
pub const EV_NONHOST_CODE: u32 = 0x0000_000F;
pub const EV_NONHOST_CONFIG: u32 = 0x0000_0010;
pub const EV_NONHOST_INFO: u32 = 0x0000_0011;
pub const EV_OMIT_BOOT_DEVICE_EVENTS: u32 = 0x0000_0012;
pub const EV_POST_CODE2: u32 = 0x0000_0013;

pub const EV_EFI_EVENT_BASE: u32 = 0x8000_0000;
pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
pub const EV_EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
pub const EV_EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
pub const EV_EFI_GPT_EVENT: u32 = 0x8000_0006;
pub const EV_EFI_ACTION: u32 = 0x8000_0007;
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: u32 = 0x8000_0008;
pub const EV_EFI_HANDOFF_TABLES: u32 = 0x8000_0009;
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000A;
pub const EV_EFI_HANDOFF_TABLES2: u32 = 0x8000_000B;
pub const EV_EFI_VARIABLE_BOOT2: u32 = 0x8000_000C;
pub const EV_EFI_GPT_EVENT2: u32 = 0x8000_000D;
pub const EV_EFI_HCRTM_EVENT: u32 = 0x8000_0010;
pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00E0;
pub const EV_EFI_SPDM_FIRMWARE_BLOB: u32 = 0x8000_00E1;
pub const EV_EFI_SPDM_FIRMWARE_CONFIG: u32 = 0x8000_00E2;
pub const EV_EFI_SPDM_DEVICE_POLICY: u32 = 0x8000_00E3;
pub const EV_EFI_SPDM_DEVICE_AUTHORITY: u32 = 0x8000_00E4;

const NAMES: &[(u32, &str)] = &[
    (EV_PREBOOT_CERT, "EV_PREBOOT_CERT"),
    (EV_POST_CODE, "EV_POST_CODE"),
    (EV_UNUSED, "EV_UNUSED"),
    (EV_NO_ACTION, "EV_NO_ACTION"),
    (EV_SEPARATOR, "EV_SEPARATOR"),
    (EV_ACTION, "EV_ACTION"),
    (EV_EVENT_TAG, "EV_EVENT_TAG"),
    (EV_S_CRTM_CONTENTS, "EV_S_CRTM_CONTENTS"),
    (EV_S_CRTM_VERSION, "EV_S_CRTM_VERSION"),
    (EV_CPU_MICROCODE, "EV_CPU_MICROCODE"),
    (EV_PLATFORM_CONFIG_FLAGS, "EV_PLATFORM_CONFIG_FLAGS"),
    (EV_TABLE_OF_DEVICES, "EV_TABLE_OF_DEVICES"),
    (EV_COMPACT_HASH, "EV_COMPACT_HASH"),
    (EV_IPL, "EV_IPL"),
    (EV_IPL_PARTITION_DATA, "EV_IPL_PARTITION_DATA"),
    (EV_NONHOST_CODE, "EV_NONHOST_CODE"),
    (EV_NONHOST_CONFIG, "EV_NONHOST_CONFIG"),
    (EV_NONHOST_INFO, "EV_NONHOST_INFO"),
    (EV_OMIT_BOOT_DEVICE_EVENTS, "EV_OMIT_BOOT_DEVICE_EVENTS"),
    (EV_POST_CODE2, "EV_POST_CODE2"),
    (EV_EFI_EVENT_BASE, "EV_EFI_EVENT_BASE"),
    (
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        "EV_EFI_VARIABLE_DRIVER_CONFIG",
    ),
    (EV_EFI_VARIABLE_BOOT, "EV_EFI_VARIABLE_BOOT"),
    (
        EV_EFI_BOOT_SERVICES_APPLICATION,
        "EV_EFI_BOOT_SERVICES_APPLICATION",
    ),
    (EV_EFI_BOOT_SERVICES_DRIVER, "EV_EFI_BOOT_SERVICES_DRIVER"),
    (
        EV_EFI_RUNTIME_SERVICES_DRIVER,
        "EV_EFI_RUNTIME_SERVICES_DRIVER",
    ),
    (EV_EFI_GPT_EVENT, "EV_EFI_GPT_EVENT"),
    (EV_EFI_ACTION, "EV_EFI_ACTION"),
    (
        EV_EFI_PLATFORM_FIRMWARE_BLOB,
        "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    ),
    (EV_EFI_HANDOFF_TABLES, "EV_EFI_HANDOFF_TABLES"),
    (
        EV_EFI_PLATFORM_FIRMWARE_BLOB2,
        "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    ),
    (EV_EFI_HANDOFF_TABLES2, "EV_EFI_HANDOFF_TABLES2"),
    (EV_EFI_VARIABLE_BOOT2, "EV_EFI_VARIABLE_BOOT2"),
    (EV_EFI_GPT_EVENT2, "EV_EFI_GPT_EVENT2"),
    (EV_EFI_HCRTM_EVENT, "EV_EFI_HCRTM_EVENT"),
    (EV_EFI_VARIABLE_AUTHORITY, "EV_EFI_VARIABLE_AUTHORITY"),
    (EV_EFI_SPDM_FIRMWARE_BLOB, "EV_EFI_SPDM_FIRMWARE_BLOB"),
    (EV_EFI_SPDM_FIRMWARE_CONFIG, "EV_EFI_SPDM_FIRMWARE_CONFIG"),
    (EV_EFI_SPDM_DEVICE_POLICY, "EV_EFI_SPDM_DEVICE_POLICY"),
    (EV_EFI_SPDM_DEVICE_AUTHORITY, "EV_EFI_SPDM_DEVICE_AUTHORITY"),
];

/// The specification's name of an event type, `EV_UNKNOWN(0x...)` for one it does not define.
pub fn name(event_type: u32) -> Cow<'static, str> {
    match NAMES.iter().find(|(t, _)| *t == event_type) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(format!("EV_UNKNOWN(0x{event_type:08x})")),
    }
}

/// The event type of a specification name (the inverse of [`name`], for known types).
pub fn from_name(name: &str) -> Option<u32> {
    NAMES.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_types_show_their_number() {
        for (t, n) in NAMES {
            assert_eq!(name(*t), *n);
            assert_eq!(from_name(n), Some(*t));
        }
        assert_eq!(name(0x8000_00ff), "EV_UNKNOWN(0x800000ff)");
        assert_eq!(from_name("EV_UNKNOWN(0x800000ff)"), None);
    }
}
