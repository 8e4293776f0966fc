//! A bounds-checked little-endian cursor over untrusted bytes.
//!
//! Every read checks the remaining input first, so a length field can never cause a read (or an
//! allocation) past the end of the input; errors name the absolute byte offset and the field.

use crate::error::ParseError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the whole log, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes of a fixed-size field.
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        if n > self.remaining() {
            return Err(ParseError::new(
                self.offset(),
                field,
                format!("needs {n} bytes, {} remain", self.remaining()),
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `len` bytes, where `len` was read from the input at `len_offset`: the error
    /// points at the length field, which is the one that lies.
    pub(crate) fn sized(
        &mut self,
        len: u64,
        len_offset: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ParseError> {
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => self.bytes(n, field),
            _ => Err(ParseError::new(
                len_offset,
                field,
                format!("{len} bytes, {} remain", self.remaining()),
            )),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// The rest of the input.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_fields_and_names_the_short_one() {
        let mut r = Reader::new(&[1, 0, 0, 0, 2, 0, 9], 100);
        assert_eq!(r.u32("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.offset(), 106);
        let err = r.u32("c").unwrap_err();
        assert_eq!(err.to_string(), "c: needs 4 bytes, 1 remain at byte 106");
    }

    #[test]
    fn a_lying_length_is_blamed_on_the_length_field() {
        let mut r = Reader::new(&[0; 8], 10);
        let err = r.sized(u64::MAX, 4, "x.size").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.size: 18446744073709551615 bytes, 8 remain at byte 4"
        );
        assert_eq!(r.sized(8, 4, "x.size").unwrap().len(), 8);
        assert!(r.is_empty());
    }
}
