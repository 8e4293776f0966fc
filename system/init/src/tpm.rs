//! TPM2_PCR_Extend over the kernel's TPM character device, as raw command bytes.
//!
//! PID 1 extends one PCR once per boot; linking the TSS for that is not worth it. The command
//! is the TPM 2.0 Part 3 one: a password session with an empty password (PCR 15 has no auth).

use std::io::{Read, Write};
use std::path::Path;

const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_ALG_SHA256: u16 = 0x000B;

#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    #[error("cannot talk to the TPM at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the TPM answered {len} bytes, not a response")]
    Short { len: usize },
    #[error("the TPM refused PCR_Extend of PCR {pcr}: response code {code:#010x}")]
    Refused { pcr: u8, code: u32 },
}

/// The TPM2_PCR_Extend command extending `pcr`'s SHA-256 bank with `digest`.
pub fn extend_command(pcr: u8, digest: &[u8; 32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&u32::from(pcr).to_be_bytes()); // pcrHandle
    // Authorization area: one password session, empty nonce, no attributes, empty password.
    let mut auth = Vec::new();
    auth.extend_from_slice(&TPM_RS_PW.to_be_bytes());
    auth.extend_from_slice(&0u16.to_be_bytes());
    auth.push(0);
    auth.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&u32::try_from(auth.len()).unwrap_or(u32::MAX).to_be_bytes());
    body.extend_from_slice(&auth);
    // TPML_DIGEST_VALUES with one TPMT_HA.
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    body.extend_from_slice(digest);
    let mut cmd = Vec::with_capacity(10 + body.len());
    cmd.extend_from_slice(&TPM_ST_SESSIONS.to_be_bytes());
    let size = u32::try_from(10 + body.len()).unwrap_or(u32::MAX);
    cmd.extend_from_slice(&size.to_be_bytes());
    cmd.extend_from_slice(&TPM_CC_PCR_EXTEND.to_be_bytes());
    cmd.extend_from_slice(&body);
    cmd
}

/// The response code of a TPM response.
pub fn response_code(response: &[u8]) -> Option<u32> {
    let code = response.get(6..10)?;
    Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]))
}

/// Extends `pcr` (SHA-256 bank) through the TPM device at `device`.
pub fn extend(device: &Path, pcr: u8, digest: &[u8; 32]) -> Result<(), ExtendError> {
    let io = |source| ExtendError::Io {
        path: device.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(io)?;
    f.write_all(&extend_command(pcr, digest)).map_err(io)?;
    let mut response = [0u8; 4096];
    let len = f.read(&mut response).map_err(io)?;
    let response = response.get(..len).unwrap_or_default();
    match response_code(response) {
        None => Err(ExtendError::Short { len }),
        Some(0) => Ok(()),
        Some(code) => Err(ExtendError::Refused { pcr, code }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_command_is_the_part_3_layout() {
        let cmd = extend_command(15, &[0xAA; 32]);
        assert_eq!(cmd.len(), 65);
        assert_eq!(&cmd[..2], &[0x80, 0x02]);
        assert_eq!(&cmd[2..6], &65u32.to_be_bytes());
        assert_eq!(&cmd[6..10], &[0, 0, 1, 0x82]);
        assert_eq!(&cmd[10..14], &[0, 0, 0, 15]);
        assert_eq!(&cmd[14..18], &9u32.to_be_bytes());
        assert_eq!(&cmd[18..22], &[0x40, 0, 0, 9]);
        assert_eq!(&cmd[27..31], &1u32.to_be_bytes());
        assert_eq!(&cmd[31..33], &[0, 0x0B]);
        assert_eq!(&cmd[33..], &[0xAA; 32]);
    }

    #[test]
    fn response_codes() {
        assert_eq!(response_code(&[0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]), Some(0));
        assert_eq!(
            response_code(&[0x80, 1, 0, 0, 0, 10, 0, 0, 0x09, 0x22]),
            Some(0x922)
        );
        assert_eq!(response_code(&[0x80, 1]), None);
    }
}
