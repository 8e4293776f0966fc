//! The disk: a protective MBR and a GPT with fixed GUIDs (the firmware measures the GPT header
//! and entries into PCR 5, so they must not change between builds), an EFI system partition and
//! the data partition.

/// Sector size of the image.
pub const SECTOR: u64 = 512;
/// [`SECTOR`] as a buffer length.
const SECTOR_BYTES: usize = 512;
/// First usable LBA (1 MiB alignment).
pub const FIRST_LBA: u64 = 2048;
const ENTRIES: u32 = 128;
const ENTRY_SIZE: u32 = 128;
/// Sectors of the partition entry array (128 entries of 128 bytes).
const ENTRY_SECTORS: u64 = (ENTRIES as u64 * ENTRY_SIZE as u64) / SECTOR;

/// EFI System Partition type.
pub const TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// Linux file system data type.
pub const TYPE_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// Hearth's fixed disk GUID and partition GUIDs.
pub const DISK_GUID: &str = "48454152-5448-4449-534B-000000000001";
pub const ESP_GUID: &str = "48454152-5448-4553-5000-000000000001";
pub const DATA_GUID: &str = "48454152-5448-4441-5441-000000000001";

/// One partition: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub name: &'static str,
    pub type_guid: &'static str,
    pub guid: &'static str,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// The layout of a Hearth disk: ESP first, then data, then the backup GPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub total_sectors: u64,
    pub esp: Partition,
    pub data: Partition,
}

impl Layout {
    pub fn new(esp_mib: u64, data_mib: u64) -> Layout {
        let mib = 1024 * 1024 / SECTOR;
        let esp_first = FIRST_LBA;
        let esp_last = esp_first + esp_mib * mib - 1;
        let data_first = esp_last + 1;
        let data_last = data_first + data_mib * mib - 1;
        // 1 MiB at the end holds the backup entries and header.
        let total_sectors = data_last + 1 + mib;
        Layout {
            total_sectors,
            esp: Partition {
                name: "hearth-esp",
                type_guid: TYPE_ESP,
                guid: ESP_GUID,
                first_lba: esp_first,
                last_lba: esp_last,
            },
            data: Partition {
                name: "hearth-data",
                type_guid: TYPE_LINUX,
                guid: DATA_GUID,
                first_lba: data_first,
                last_lba: data_last,
            },
        }
    }

    pub fn size(&self) -> u64 {
        self.total_sectors * SECTOR
    }

    /// The structures to write: (byte offset, bytes), for the protective MBR, the primary
    /// header and entries, and the backup entries and header.
    pub fn tables(&self) -> Vec<(u64, Vec<u8>)> {
        let last = self.total_sectors - 1;
        let entries = self.entries();
        let entries_crc = crc32(&entries);
        let backup_entries_lba = last - ENTRY_SECTORS;
        let primary = header(1, last, 2, self, entries_crc);
        let backup = header(last, 1, backup_entries_lba, self, entries_crc);
        vec![
            (0, self.protective_mbr()),
            (SECTOR, primary),
            (2 * SECTOR, entries.clone()),
            (backup_entries_lba * SECTOR, entries),
            (last * SECTOR, backup),
        ]
    }

    fn protective_mbr(&self) -> Vec<u8> {
        let mut mbr = vec![0u8; SECTOR_BYTES];
        let p = &mut mbr[446..462];
        p[0] = 0x00; // not bootable
        p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
        p[4] = 0xEE; // GPT protective
        p[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        p[8..12].copy_from_slice(&1u32.to_le_bytes());
        let size = u32::try_from(self.total_sectors - 1).unwrap_or(u32::MAX);
        p[12..16].copy_from_slice(&size.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        mbr
    }

    fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (i, p) in [&self.esp, &self.data].into_iter().enumerate() {
            let e = &mut out[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
            e[0..16].copy_from_slice(&guid_bytes(p.type_guid));
            e[16..32].copy_from_slice(&guid_bytes(p.guid));
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            // Attributes 0; the name in UTF-16LE (at most 36 units).
            for (j, unit) in p.name.encode_utf16().take(36).enumerate() {
                e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }
}

fn header(
    my_lba: u64,
    alternate_lba: u64,
    entries_lba: u64,
    l: &Layout,
    entries_crc: u32,
) -> Vec<u8> {
    let mut h = vec![0u8; SECTOR_BYTES];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
    let first_usable = 2 + ENTRY_SECTORS;
    let last_usable = l.total_sectors - 2 - ENTRY_SECTORS;
    h[40..48].copy_from_slice(&first_usable.to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&guid_bytes(DISK_GUID));
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A GUID in its mixed-endian on-disk form. `text` is one of this module's constants.
fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn guid_is_mixed_endian() {
        assert_eq!(
            guid_bytes(TYPE_ESP),
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
    }

    #[test]
    fn layout_headers_are_consistent() {
        let l = Layout::new(64, 256);
        assert_eq!(l.esp.offset(), 1024 * 1024);
        assert_eq!(l.esp.size(), 64 * 1024 * 1024);
        assert_eq!(l.data.first_lba, l.esp.last_lba + 1);
        let tables = l.tables();
        let primary = &tables[1].1;
        assert_eq!(&primary[..8], b"EFI PART");
        let mut zeroed = primary[..92].to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(crc32(&zeroed).to_le_bytes(), primary[16..20]);
        assert_eq!(
            tables[2].1, tables[3].1,
            "backup entries equal the primary ones"
        );
        assert_eq!(tables[4].0, l.size() - SECTOR);
    }
}
