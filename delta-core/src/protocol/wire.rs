//! The primitive encodings inside payloads (varints, zigzag, length-prefixed bytes) and a
//! bounded reader whose errors name the message and the field being read.

use super::error::ProtocolError;

/// Appends `v` as a minimal LEB128 varint (1 to 10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `put_varint` writes for `v`.
pub(crate) const fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Signed to unsigned so that small magnitudes stay short: 0, -1, 1, -2 → 0, 1, 2, 3.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends a varint length and the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads one payload; never reads past its end and never allocates.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(message: &'static str, data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            message,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn short(&self, field: &'static str) -> ProtocolError {
        ProtocolError::ShortMessage {
            message: self.message,
            field,
        }
    }

    pub(crate) fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        if n > self.remaining() {
            return Err(self.short(field));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtocolError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    pub(crate) fn u16_be(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64_be(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ProtocolError::BadValue {
                field,
                value: u64::from(v),
            }),
        }
    }

    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        let bad = ProtocolError::BadVarint {
            message: self.message,
            field,
        };
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(field)?;
            // The tenth byte holds bit 63 only; anything more overflows (or goes on).
            if i == 9 && b > 1 {
                return Err(bad);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // A final zero byte after others adds nothing: not the minimal encoding.
                if b == 0 && i > 0 {
                    return Err(bad);
                }
                return Ok(v);
            }
        }
        Err(bad)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        let v = self.varint(field)?;
        u32::try_from(v).map_err(|_| ProtocolError::BadValue { field, value: v })
    }

    /// A length of at most `limit` that the remaining payload can hold.
    pub(crate) fn len(
        &mut self,
        limit: usize,
        field: &'static str,
    ) -> Result<usize, ProtocolError> {
        let v = self.varint(field)?;
        if v > limit as u64 {
            return Err(ProtocolError::TooLong {
                field,
                len: v,
                limit: limit as u64,
            });
        }
        if v > self.remaining() as u64 {
            return Err(self.short(field));
        }
        Ok(v as usize)
    }

    /// Length-prefixed bytes, at most `limit` of them.
    pub(crate) fn bytes(
        &mut self,
        limit: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        let n = self.len(limit, field)?;
        self.take(n, field)
    }

    /// Length-prefixed UTF-8, at most `limit` bytes.
    pub(crate) fn string(
        &mut self,
        limit: usize,
        field: &'static str,
    ) -> Result<String, ProtocolError> {
        let b = self.bytes(limit, field)?;
        utf8(b, field)
    }

    /// A count of at most `limit` elements, each taking at least `min_len` bytes of what
    /// remains: so a huge count in a tiny payload is refused before anything is allocated.
    pub(crate) fn count(
        &mut self,
        limit: usize,
        min_len: usize,
        field: &'static str,
    ) -> Result<usize, ProtocolError> {
        let v = self.varint(field)?;
        if v > limit as u64 {
            return Err(ProtocolError::TooMany {
                message: self.message,
                field,
                count: v,
                limit: limit as u64,
            });
        }
        if v.saturating_mul(min_len.max(1) as u64) > self.remaining() as u64 {
            return Err(self.short(field));
        }
        Ok(v as usize)
    }

    /// Everything left, at most `limit` bytes.
    pub(crate) fn rest(
        &mut self,
        limit: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        let n = self.remaining();
        if n > limit {
            return Err(ProtocolError::TooLong {
                field,
                len: n as u64,
                limit: limit as u64,
            });
        }
        self.take(n, field)
    }

    /// Nothing may follow the last field.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ProtocolError::TrailingBytes {
                message: self.message,
                extra,
            }),
        }
    }
}

pub(crate) fn utf8(bytes: &[u8], field: &'static str) -> Result<String, ProtocolError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| ProtocolError::NotUtf8 { field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(bytes: &[u8]) -> Result<u64, ProtocolError> {
        let mut r = Reader::new("test", bytes);
        let v = r.varint("v")?;
        r.finish()?;
        Ok(v)
    }

    #[test]
    fn varint_edges() {
        for (v, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(varint_len(v), len, "{v}");
            assert_eq!(read(&out).unwrap(), v);
        }
        let bad = |b: &[u8]| matches!(read(b), Err(ProtocolError::BadVarint { .. }));
        assert!(bad(&[0x80, 0x00]), "not minimal");
        assert!(
            bad(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()),
            "overflow"
        );
        assert!(bad(&[0xff; 11]), "too long");
        assert!(matches!(
            read(&[0x80]),
            Err(ProtocolError::ShortMessage { .. })
        ));
        assert!(matches!(read(&[]), Err(ProtocolError::ShortMessage { .. })));
    }

    #[test]
    fn counts_and_lengths_are_checked_before_use() {
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        let mut r = Reader::new("test", &huge);
        assert!(matches!(
            r.count(10, 1, "things"),
            Err(ProtocolError::TooMany {
                count: u64::MAX,
                ..
            })
        ));
        let mut r = Reader::new("test", &huge);
        assert!(matches!(
            r.len(4096, "path"),
            Err(ProtocolError::TooLong { len: u64::MAX, .. })
        ));
        // Within the limit but more than the payload holds.
        let mut r = Reader::new("test", &[100, 1, 2, 3]);
        assert!(matches!(
            r.count(4096, 1, "things"),
            Err(ProtocolError::ShortMessage { .. })
        ));
        let mut r = Reader::new("test", &[100, 1, 2, 3]);
        assert!(matches!(
            r.bytes(4096, "path"),
            Err(ProtocolError::ShortMessage { .. })
        ));
        let mut r = Reader::new("test", &[2, 1, 2, 3]);
        assert_eq!(r.bytes(4096, "path").unwrap(), &[1, 2]);
        assert!(matches!(
            r.finish(),
            Err(ProtocolError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn bools_and_narrow_ints() {
        let mut r = Reader::new("test", &[0, 1, 2]);
        assert!(!r.bool("b").unwrap());
        assert!(r.bool("b").unwrap());
        assert_eq!(
            r.bool("b"),
            Err(ProtocolError::BadValue {
                field: "b",
                value: 2
            })
        );
        let mut out = Vec::new();
        put_varint(&mut out, u64::from(u32::MAX) + 1);
        assert!(matches!(
            Reader::new("t", &out).u32("uid"),
            Err(ProtocolError::BadValue { .. })
        ));
    }

    proptest! {
        #[test]
        fn varints_round_trip(v: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(read(&out)?, v);
        }

        #[test]
        fn zigzag_round_trips(v: i64) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
            prop_assert!(zigzag(v) <= v.unsigned_abs().saturating_mul(2));
        }

        #[test]
        fn any_bytes_read_as_at_most_one_canonical_varint(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut r = Reader::new("test", &bytes);
            if let Ok(v) = r.varint("v") {
                let mut out = Vec::new();
                put_varint(&mut out, v);
                prop_assert!(bytes.starts_with(&out));
            }
        }
    }
}
