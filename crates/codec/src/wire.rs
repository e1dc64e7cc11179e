//! A minimal reader for the protobuf wire format.

use crate::CodecError;

/// One encoded field value, as found on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (no Kubernetes field uses it; the value is skipped).
    Fixed64,
    /// Wire type 2: strings, bytes, embedded messages, packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5 (no Kubernetes field uses it; the value is skipped).
    Fixed32,
}

impl WireValue<'_> {
    /// Protobuf wire type number, for error messages.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64 => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32 => 5,
        }
    }
}

/// Iterates over the `(field number, value)` pairs of one encoded message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether all input has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a base-128 varint (at most 10 bytes).
    pub(crate) fn varint(&mut self) -> Result<u64, CodecError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(CodecError::Truncated);
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(CodecError::Malformed("varint overflows 64 bits".into()));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::Malformed("varint overflows 64 bits".into()))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(len).ok_or(CodecError::Truncated)?;
        let slice = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    /// Reads the next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, CodecError> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > 0x1fff_ffff {
            return Err(CodecError::Malformed(format!(
                "illegal field number {number}"
            )));
        }
        let number = u32::try_from(number).expect("checked to be below 2^29");
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| CodecError::Truncated)?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed32
            }
            wt => {
                return Err(CodecError::Malformed(format!(
                    "illegal wire type {wt} for field {number}"
                )));
            }
        };
        Ok(Some((number, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        // field 1 varint 150, field 2 bytes "hi", field 3 fixed32 1, field 4 fixed64 2
        let data = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let mut r = Reader::new(&data);
        assert!(matches!(
            r.next_field(),
            Ok(Some((1, WireValue::Varint(150))))
        ));
        assert!(matches!(
            r.next_field(),
            Ok(Some((2, WireValue::Bytes(b"hi"))))
        ));
        assert!(matches!(r.next_field(), Ok(Some((3, WireValue::Fixed32)))));
        assert!(matches!(r.next_field(), Ok(Some((4, WireValue::Fixed64)))));
        assert!(matches!(r.next_field(), Ok(None)));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Reader::new(&[0x08]).next_field(),
            Err(CodecError::Truncated)
        ));
        assert!(matches!(
            Reader::new(&[0x12, 0x05, b'a']).next_field(),
            Err(CodecError::Truncated)
        ));
        assert!(matches!(
            Reader::new(&[0x0b]).next_field(),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            Reader::new(&[0x00, 0x00]).next_field(),
            Err(CodecError::Malformed(_))
        ));
        let overlong = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(matches!(
            Reader::new(&overlong).next_field(),
            Err(CodecError::Malformed(_))
        ));
        // -1 as a 10-byte varint is fine
        let minus_one = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(
            Reader::new(&minus_one).next_field(),
            Ok(Some((1, WireValue::Varint(u64::MAX))))
        ));
    }
}
