//! The little of PE/COFF the image builder needs: the section table, the Authenticode digest
//! (what UEFI firmware measures into PCR 4 for each image it loads) and zeroing the fields that
//! would make a build depend on the clock.

use ring::digest::{Context, SHA256};

#[derive(Debug, thiserror::Error)]
pub enum PeError {
    #[error("{what}: not a PE image ({problem})")]
    Malformed { what: String, problem: &'static str },
}

/// One section header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub size_of_raw_data: u32,
    pub pointer_to_raw_data: u32,
}

/// Offsets and values parsed from a PE image.
#[derive(Clone, Debug)]
pub struct Pe {
    /// File offset of the COFF TimeDateStamp.
    pub timestamp_offset: usize,
    /// File offset of the optional header's CheckSum.
    pub checksum_offset: usize,
    /// File offset of the certificate table's data-directory entry (8 bytes), if present.
    pub cert_dir_offset: Option<usize>,
    pub image_base: u64,
    pub section_alignment: u32,
    pub size_of_headers: u32,
    pub sections: Vec<Section>,
    /// File offset and size of the certificate table (0 when unsigned).
    pub cert_table: (u32, u32),
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

impl Pe {
    /// Parses the headers of `bytes`; `what` names the image in errors.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Pe, PeError> {
        let bad = |problem| PeError::Malformed {
            what: what.to_owned(),
            problem,
        };
        if bytes.get(..2) != Some(b"MZ") {
            return Err(bad("no MZ signature"));
        }
        let pe = u32_at(bytes, 0x3C).ok_or_else(|| bad("truncated DOS header"))? as usize;
        if bytes.get(pe..pe + 4) != Some(b"PE\0\0") {
            return Err(bad("no PE signature"));
        }
        let coff = pe + 4;
        let nsections = u16_at(bytes, coff + 2).ok_or_else(|| bad("truncated COFF header"))?;
        let opt_size = u16_at(bytes, coff + 16).ok_or_else(|| bad("truncated COFF header"))?;
        let opt = coff + 20;
        let magic = u16_at(bytes, opt).ok_or_else(|| bad("no optional header"))?;
        let (image_base, nrva_off, dirs_off) = match magic {
            0x20B => (u64_at(bytes, opt + 24), opt + 108, opt + 112),
            0x10B => (u32_at(bytes, opt + 28).map(u64::from), opt + 92, opt + 96),
            _ => return Err(bad("unknown optional header magic")),
        };
        let image_base = image_base.ok_or_else(|| bad("truncated optional header"))?;
        let section_alignment =
            u32_at(bytes, opt + 32).ok_or_else(|| bad("truncated optional header"))?;
        let size_of_headers =
            u32_at(bytes, opt + 60).ok_or_else(|| bad("truncated optional header"))?;
        let nrva = u32_at(bytes, nrva_off).ok_or_else(|| bad("truncated optional header"))?;
        let (cert_dir_offset, cert_table) = if nrva > 4 {
            let off = dirs_off + 4 * 8;
            let addr = u32_at(bytes, off).ok_or_else(|| bad("truncated data directories"))?;
            let size = u32_at(bytes, off + 4).ok_or_else(|| bad("truncated data directories"))?;
            (Some(off), (addr, size))
        } else {
            (None, (0, 0))
        };
        let table = opt + usize::from(opt_size);
        let mut sections = Vec::with_capacity(usize::from(nsections));
        for i in 0..usize::from(nsections) {
            let s = table + 40 * i;
            let raw = bytes
                .get(s..s + 40)
                .ok_or_else(|| bad("truncated section table"))?;
            let name_bytes = &raw[..8];
            let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(8);
            sections.push(Section {
                name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
                virtual_size: u32_at(raw, 8).unwrap_or(0),
                virtual_address: u32_at(raw, 12).unwrap_or(0),
                size_of_raw_data: u32_at(raw, 16).unwrap_or(0),
                pointer_to_raw_data: u32_at(raw, 20).unwrap_or(0),
            });
        }
        Ok(Pe {
            timestamp_offset: coff + 4,
            checksum_offset: opt + 64,
            cert_dir_offset,
            image_base,
            section_alignment,
            size_of_headers,
            sections,
            cert_table,
        })
    }

    /// The first address after the last section, aligned to the section alignment: where
    /// new sections may go (relative to the image base).
    pub fn end_of_sections(&self) -> u64 {
        let end = self
            .sections
            .iter()
            .map(|s| {
                u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.size_of_raw_data))
            })
            .max()
            .unwrap_or(0);
        align_up(end, u64::from(self.section_alignment.max(4096)))
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

pub fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// Sets the COFF TimeDateStamp and the optional header CheckSum to zero (objcopy writes the
/// current time; UEFI ignores both).
pub fn zero_timestamp_and_checksum(bytes: &mut [u8], pe: &Pe) {
    for off in [pe.timestamp_offset, pe.checksum_offset] {
        if let Some(field) = bytes.get_mut(off..off + 4) {
            field.fill(0);
        }
    }
}

/// The Authenticode SHA-256 of a PE image, as EDK2 (OVMF) measures it into PCR 4: the headers
/// without the CheckSum and the certificate-table entry, the sections in file order, then any
/// data after them except the certificate table.
pub fn authenticode_sha256(what: &str, bytes: &[u8]) -> Result<[u8; 32], PeError> {
    let pe = Pe::parse(what, bytes)?;
    let bad = |problem| PeError::Malformed {
        what: what.to_owned(),
        problem,
    };
    let headers_end = pe.size_of_headers as usize;
    if headers_end > bytes.len() || pe.checksum_offset + 4 > headers_end {
        return Err(bad("headers larger than the file"));
    }
    let mut ctx = Context::new(&SHA256);
    ctx.update(&bytes[..pe.checksum_offset]);
    match pe.cert_dir_offset {
        Some(cert) if cert + 8 <= headers_end => {
            ctx.update(&bytes[pe.checksum_offset + 4..cert]);
            ctx.update(&bytes[cert + 8..headers_end]);
        }
        _ => ctx.update(&bytes[pe.checksum_offset + 4..headers_end]),
    }
    let mut sections: Vec<&Section> = pe
        .sections
        .iter()
        .filter(|s| s.size_of_raw_data > 0)
        .collect();
    sections.sort_by_key(|s| s.pointer_to_raw_data);
    let mut hashed = headers_end;
    for s in sections {
        let start = s.pointer_to_raw_data as usize;
        let end = start + s.size_of_raw_data as usize;
        let data = bytes
            .get(start..end)
            .ok_or_else(|| bad("section beyond the end of the file"))?;
        ctx.update(data);
        hashed += data.len();
    }
    let cert_size = pe.cert_table.1 as usize;
    let tail_end = bytes.len().saturating_sub(cert_size);
    if tail_end > hashed {
        ctx.update(&bytes[hashed..tail_end]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_pe() {
        Pe::parse("x", b"not a PE").unwrap_err();
        authenticode_sha256("x", b"MZ").unwrap_err();
    }

    #[test]
    fn align_up_rounds_to_the_boundary() {
        assert_eq!(align_up(0, 4096), 0);
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(8192, 4096), 8192);
    }
}
