//! A bounded big-endian reader for TPM wire structures.

/// A TPM structure that does not parse: what was being read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{structure}: {problem} at byte {offset}")]
pub struct ParseError {
    pub structure: &'static str,
    pub offset: usize,
    pub problem: String,
}

pub(crate) struct Reader<'a> {
    structure: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(structure: &'static str, bytes: &'a [u8]) -> Self {
        Reader {
            structure,
            bytes,
            pos: 0,
        }
    }

    pub(crate) fn error(&self, problem: impl Into<String>) -> ParseError {
        ParseError {
            structure: self.structure,
            offset: self.pos,
            problem: problem.into(),
        }
    }

    pub(crate) fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], ParseError> {
        let remaining = self.bytes.len() - self.pos;
        if n > remaining {
            return Err(self.error(format!("{field} needs {n} bytes, {remaining} remain")));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, ParseError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &str) -> Result<u16, ParseError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32, ParseError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, field: &str) -> Result<u64, ParseError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A TPM2B: u16 size, then that many bytes (at most `max`).
    pub(crate) fn tpm2b(&mut self, field: &str, max: usize) -> Result<&'a [u8], ParseError> {
        let size = usize::from(self.u16(field)?);
        if size > max {
            return Err(self.error(format!("{field} is {size} bytes, at most {max} allowed")));
        }
        self.take(size, field)
    }

    pub(crate) fn finish(&self) -> Result<(), ParseError> {
        let rest = self.bytes.len() - self.pos;
        if rest != 0 {
            return Err(self.error(format!("{rest} trailing bytes")));
        }
        Ok(())
    }
}
