//! The page headers of a Parquet file, checked before its reader sees them.
//!
//! The Parquet crate trusts a page header's sizes and counts: a dictionary page that claims
//! a billion values makes it allocate the dictionary before it finds the page short of
//! them (found by fuzzing: 1 GiB for a 300-byte file), and a compressed page that claims
//! 2 GiB uncompressed gets a buffer of that capacity. [`check_pages`] walks every column
//! chunk's pages (headers only: a few KiB read per page) and refuses a file whose pages do
//! not fit their chunk, claim more than [`MAX_PAGE_BYTES`], or list more dictionary values
//! than the page can hold or than [`MAX_DICTIONARY_VALUES`].
//!
//! The headers are Thrift compact-protocol structs. The crate's own decoder is private, so
//! this module reads the few fields it needs ([`PageHeader`]) and skips the rest, with a
//! nesting limit.

use std::fs::File;

use parquet::basic::Type as PhysicalType;
use parquet::file::metadata::ParquetMetaData;

/// Largest page read, compressed or not. Writers cut pages at about 1 MiB by default.
pub const MAX_PAGE_BYTES: i64 = 64 << 20;

/// Most values a dictionary page may list. Writers fall back from dictionary encoding at
/// about 1 MiB of dictionary, so real dictionaries have at most a few hundred thousand.
pub const MAX_DICTIONARY_VALUES: i64 = 4 << 20;

/// Bytes of a page header read at first; a larger one (long statistics) is read again
/// whole, up to [`MAX_HEADER_BYTES`].
const FIRST_READ: usize = 4 << 10;
const MAX_HEADER_BYTES: usize = 16 << 20;

/// The page types of the Parquet format.
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;
const DATA_PAGE_V2: i32 = 3;

/// What the checks need from a page header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageHeader {
    /// Page type (0 data, 1 index, 2 dictionary, 3 data v2).
    pub page_type: i32,
    /// Bytes once decompressed.
    pub uncompressed: i32,
    /// Bytes in the file after the header.
    pub compressed: i32,
    /// Values the page holds (a data page's levels, a dictionary's entries).
    pub num_values: i32,
    /// Bytes the header itself took.
    pub header_len: usize,
}

/// Why a header could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The bytes ran out: read more, or the header is truncated.
    Short,
    /// Not a valid header.
    Bad(&'static str),
}

/// A Thrift compact-protocol reader over a byte slice.
struct Compact<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> Result<u8, HeaderError> {
        let b = *self.bytes.get(self.at).ok_or(HeaderError::Short)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, HeaderError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(HeaderError::Bad("a varint overflows"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(HeaderError::Bad("a varint overflows"))
    }

    fn zigzag(&mut self) -> Result<i64, HeaderError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, HeaderError> {
        i32::try_from(self.zigzag()?).map_err(|_| HeaderError::Bad("an i32 out of range"))
    }

    fn advance(&mut self, n: u64) -> Result<(), HeaderError> {
        let n = usize::try_from(n).map_err(|_| HeaderError::Short)?;
        if self.bytes.len() - self.at < n {
            return Err(HeaderError::Short);
        }
        self.at += n;
        Ok(())
    }

    /// Reads a container's element count, which cannot exceed the bytes left (every
    /// element takes at least `min_bytes`).
    fn count(&mut self, n: u64, min_bytes: u64) -> Result<u64, HeaderError> {
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_bytes) > left {
            return Err(HeaderError::Short);
        }
        Ok(n)
    }

    /// Skips one element of compact type `t` inside a list, set or map, where a boolean
    /// takes a byte of its own.
    fn skip_element(&mut self, t: u8, depth: u32) -> Result<(), HeaderError> {
        match t {
            1 | 2 => self.advance(1),
            t => self.skip(t, depth),
        }
    }

    /// Skips one field value of compact type `t` (a boolean field's value is its type).
    fn skip(&mut self, t: u8, depth: u32) -> Result<(), HeaderError> {
        if depth > 32 {
            return Err(HeaderError::Bad("nested too deeply"));
        }
        match t {
            1 | 2 => Ok(()),
            3 => self.advance(1),
            4..=6 => self.varint().map(drop),
            7 => self.advance(8),
            8 => {
                let n = self.varint()?;
                self.advance(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                for _ in 0..self.count(n, 1)? {
                    self.skip_element(h & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            11 => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..self.count(n, 2)? {
                    self.skip_element(kv >> 4, depth + 1)?;
                    self.skip_element(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            12 => self.fields(depth + 1, &[], |_, _| Ok(())),
            _ => Err(HeaderError::Bad("an unknown Thrift type")),
        }
    }

    /// Reads a struct's fields to its stop byte. Each field `known` lists (id and compact
    /// type; 1 stands for either boolean) must have that type and appear at most once, and
    /// is read by `field(reader, id)`; other fields are skipped. Strict, because the
    /// Parquet crate reads known fields by id whatever type they declare: a header this
    /// module read one way must not be read another way there.
    fn fields(
        &mut self,
        depth: u32,
        known: &[(i16, u8)],
        mut field: impl FnMut(&mut Self, i16) -> Result<(), HeaderError>,
    ) -> Result<(), HeaderError> {
        let mut id: i16 = 0;
        let mut seen = 0u32;
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            let t = h & 0x0f;
            id = match h >> 4 {
                0 => i16::try_from(self.zigzag()?).map_err(|_| HeaderError::Bad("a field id"))?,
                delta => id.wrapping_add(i16::from(delta)),
            };
            match known.iter().position(|(k, _)| *k == id) {
                Some(i) => {
                    let want = known[i].1;
                    if !(t == want || (want == 1 && t == 2)) {
                        return Err(HeaderError::Bad("a field of the wrong type"));
                    }
                    if seen & (1 << i) != 0 {
                        return Err(HeaderError::Bad("a repeated field"));
                    }
                    seen |= 1 << i;
                    field(self, id)?;
                }
                None => self.skip(t, depth)?,
            }
        }
    }
}

/// Compact types.
const BOOL: u8 = 1;
const I32: u8 = 5;
const I64: u8 = 6;
const BINARY: u8 = 8;
const STRUCT: u8 = 12;

/// The fields of the Parquet format's `Statistics`.
const STATISTICS: &[(i16, u8)] = &[
    (1, BINARY),
    (2, BINARY),
    (3, I64),
    (4, I64),
    (5, BINARY),
    (6, BINARY),
    (7, BOOL),
    (8, BOOL),
];

/// Reads a page header from the start of `bytes`.
pub fn read_page_header(bytes: &[u8]) -> Result<PageHeader, HeaderError> {
    // PageHeader: type, sizes, crc, then one of the data, index, dictionary and data v2
    // page headers.
    const PAGE: &[(i16, u8)] = &[
        (1, I32),
        (2, I32),
        (3, I32),
        (4, I32),
        (5, STRUCT),
        (6, STRUCT),
        (7, STRUCT),
        (8, STRUCT),
    ];
    const DATA: &[(i16, u8)] = &[(1, I32), (2, I32), (3, I32), (4, I32), (5, STRUCT)];
    const DICTIONARY: &[(i16, u8)] = &[(1, I32), (2, I32), (3, BOOL)];
    const DATA_V2: &[(i16, u8)] = &[
        (1, I32),
        (2, I32),
        (3, I32),
        (4, I32),
        (5, I32),
        (6, I32),
        (7, BOOL),
        (8, STRUCT),
    ];
    let mut r = Compact { bytes, at: 0 };
    let mut h = PageHeader::default();
    let (mut has_type, mut sizes, mut kinds) = (false, 0, 0);
    r.fields(0, PAGE, |r, id| {
        match id {
            1 => {
                h.page_type = r.i32()?;
                has_type = true;
            }
            2 => {
                h.uncompressed = r.i32()?;
                sizes += 1;
            }
            3 => {
                h.compressed = r.i32()?;
                sizes += 1;
            }
            4 => drop(r.i32()?),
            _ => {
                kinds += 1;
                let known = match id {
                    5 => DATA,
                    7 => DICTIONARY,
                    8 => DATA_V2,
                    _ => &[],
                };
                // Each starts with num_values; the data pages' statistics are checked too.
                r.fields(1, known, |r, field| {
                    match (field, id) {
                        (1, _) => h.num_values = r.i32()?,
                        (5, 5) | (8, 8) => r.fields(2, STATISTICS, |r, s| match s {
                            3 | 4 => r.zigzag().map(drop),
                            7 | 8 => Ok(()),
                            _ => r.skip(BINARY, 3),
                        })?,
                        (_, 7) if field == 3 => {}
                        (7, 8) => {}
                        _ => drop(r.i32()?),
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    })?;
    if !has_type || sizes != 2 {
        return Err(HeaderError::Bad("a page header without its type or sizes"));
    }
    if kinds > 1 {
        return Err(HeaderError::Bad("a page header of several kinds"));
    }
    h.header_len = r.at;
    Ok(h)
}

/// Bytes `n` dictionary entries take at least, PLAIN-encoded.
fn dictionary_bytes(n: i64, t: PhysicalType, type_length: i32) -> i64 {
    let entry = match t {
        // Bit-packed.
        PhysicalType::BOOLEAN => return n.saturating_add(7) / 8,
        PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 4,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 8,
        PhysicalType::INT96 => 12,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => i64::from(type_length.max(1)),
    };
    n.saturating_mul(entry)
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// Where a column chunk starts, as the Parquet reader computes it (not through
/// `byte_range`, which panics on the negative values a hostile footer holds).
pub fn chunk_start(c: &parquet::file::metadata::ColumnChunkMetaData) -> i64 {
    c.dictionary_page_offset().unwrap_or(c.data_page_offset())
}

/// Checks every page header of every column chunk (see the module docs). The footer's
/// chunk offsets and sizes must have been checked against the file first. Errors say
/// where and what, for the user.
pub fn check_pages(file: &File, meta: &ParquetMetaData) -> Result<(), String> {
    let mut buf = Vec::new();
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let at = |what: String| {
                format!(
                    "row group {g}, column '{}': {what}",
                    c.column_path().string()
                )
            };
            let start = chunk_start(c) as u64;
            let end = start + c.compressed_size() as u64;
            let (physical, width) = (c.column_type(), c.column_descr().type_length());
            let mut offset = start;
            while offset < end {
                let left = (end - offset) as usize;
                let mut want = FIRST_READ.min(left);
                let header = loop {
                    buf.resize(want, 0);
                    let got = read_at(file, &mut buf, offset).map_err(|e| at(e.to_string()))?;
                    match read_page_header(&buf[..got]) {
                        Ok(h) => break h,
                        Err(HeaderError::Short) if want < left.min(MAX_HEADER_BYTES) => {
                            want = (want * 16).min(left).min(MAX_HEADER_BYTES);
                        }
                        Err(HeaderError::Short) => {
                            return Err(at(format!(
                                "the file is corrupt: the page header at byte {offset} runs past its column chunk"
                            )))
                        }
                        Err(HeaderError::Bad(why)) => {
                            return Err(at(format!(
                                "the file is corrupt: the page header at byte {offset} is unreadable ({why})"
                            )))
                        }
                    }
                };
                let page = |what: String| at(format!("the page at byte {offset} {what}"));
                let (compressed, uncompressed) =
                    (i64::from(header.compressed), i64::from(header.uncompressed));
                if compressed < 0 || uncompressed < 0 || header.num_values < 0 {
                    return Err(page("has a negative size or count".into()));
                }
                let body = offset + header.header_len as u64;
                if body + compressed as u64 > end {
                    return Err(page(format!(
                        "claims {compressed} bytes, past the end of its column chunk"
                    )));
                }
                if compressed.max(uncompressed) > MAX_PAGE_BYTES {
                    return Err(page(format!(
                        "is {} bytes; at most {MAX_PAGE_BYTES} are read (write smaller pages)",
                        compressed.max(uncompressed)
                    )));
                }
                if header.page_type == DICTIONARY_PAGE {
                    let n = i64::from(header.num_values);
                    if n > MAX_DICTIONARY_VALUES {
                        return Err(page(format!(
                            "is a dictionary of {n} values; at most {MAX_DICTIONARY_VALUES} are read"
                        )));
                    }
                    if dictionary_bytes(n, physical, width) > uncompressed {
                        return Err(page(format!(
                            "is a dictionary of {n} values in {uncompressed} bytes: the file is corrupt"
                        )));
                    }
                } else if !matches!(header.page_type, DATA_PAGE | DATA_PAGE_V2 | 1) {
                    return Err(page(format!("has an unknown type {}", header.page_type)));
                }
                offset = body + compressed as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn i32_field(delta: u8, v: i32, out: &mut Vec<u8>) {
        out.push((delta << 4) | 5);
        varint(((v << 1) ^ (v >> 31)) as u32 as u64, out);
    }

    /// A dictionary page header: type 2, sizes, then field 7 {num_values, encoding}.
    fn dictionary_header(uncompressed: i32, compressed: i32, values: i32) -> Vec<u8> {
        let mut h = Vec::new();
        i32_field(1, DICTIONARY_PAGE, &mut h);
        i32_field(1, uncompressed, &mut h);
        i32_field(1, compressed, &mut h);
        h.push((4 << 4) | 12); // field 7, a struct
        i32_field(1, values, &mut h);
        i32_field(1, 0, &mut h); // encoding PLAIN
        h.push(0);
        h.push(0);
        h
    }

    #[test]
    fn a_dictionary_header_is_read_whole() {
        let mut bytes = dictionary_header(800, 800, 100);
        let len = bytes.len();
        bytes.extend_from_slice(&[0xAA; 16]); // the page body follows
        let h = read_page_header(&bytes).unwrap();
        assert_eq!(
            h,
            PageHeader {
                page_type: DICTIONARY_PAGE,
                uncompressed: 800,
                compressed: 800,
                num_values: 100,
                header_len: len,
            }
        );
    }

    #[test]
    fn unknown_fields_are_skipped_and_damage_is_refused() {
        // A crc (field 4), then a data page header (field 5) with fields this reader does
        // not know (a binary and a list, as a newer format version may add) before
        // num_values.
        let mut h = Vec::new();
        i32_field(1, DATA_PAGE, &mut h);
        i32_field(1, 10, &mut h);
        i32_field(1, 10, &mut h);
        i32_field(1, 1234, &mut h); // crc
        h.push((1 << 4) | 12); // field 5: data page header
        h.push((9 << 4) | 8); // its field 9: a binary of 3 bytes
        varint(3, &mut h);
        h.extend_from_slice(b"abc");
        h.push((1 << 4) | 9); // its field 10: a list of two i32
        h.push((2 << 4) | 5);
        varint(2, &mut h);
        varint(4, &mut h);
        h.push(5); // a field header without a delta: the id follows (zigzag 1)
        varint(2, &mut h);
        varint(14, &mut h); // num_values 7 (zigzag)
        h.push(0);
        h.push(0);
        let got = read_page_header(&h).unwrap();
        assert_eq!((got.page_type, got.num_values), (DATA_PAGE, 7));
        for cut in 0..h.len() {
            assert_eq!(
                read_page_header(&h[..cut]),
                Err(HeaderError::Short),
                "{cut}"
            );
        }
        assert!(matches!(
            read_page_header(&[0x1d, 0, 0]),
            Err(HeaderError::Bad(_))
        ));
        assert!(matches!(read_page_header(&[0]), Err(HeaderError::Bad(_))));
        // A size given twice, or with another type, and a header of two kinds: the
        // Parquet crate would read them differently, so they are refused.
        let mut h = Vec::new();
        i32_field(1, DICTIONARY_PAGE, &mut h);
        i32_field(1, 800, &mut h);
        i32_field(1, 800, &mut h);
        h.push((15 << 4) | 6); // field 18 (3 + 15), unknown: an i64, skipped
        varint(2, &mut h);
        h.push(0);
        assert!(read_page_header(&h).is_ok(), "an unknown field is skipped");
        let mut h = Vec::new();
        i32_field(1, DICTIONARY_PAGE, &mut h);
        i32_field(1, 800, &mut h);
        h.push((1 << 4) | 6); // field 3 as an i64
        varint(2, &mut h);
        h.push(0);
        assert_eq!(
            read_page_header(&h),
            Err(HeaderError::Bad("a field of the wrong type"))
        );
        let mut h = Vec::new();
        i32_field(1, DICTIONARY_PAGE, &mut h);
        i32_field(1, 800, &mut h);
        i32_field(1, 800, &mut h);
        h.push(5); // field 3 again, its id given in full (zigzag 3)
        varint(6, &mut h);
        varint(200, &mut h);
        h.push(0);
        assert_eq!(
            read_page_header(&h),
            Err(HeaderError::Bad("a repeated field"))
        );
        let mut h = dictionary_header(800, 800, 1);
        h.pop(); // reopen the page header after its dictionary struct (field 7)
        h.push((1 << 4) | 12); // field 8: a data page v2 header too
        i32_field(1, 1, &mut h);
        h.push(0);
        h.push(0);
        assert_eq!(
            read_page_header(&h),
            Err(HeaderError::Bad("a page header of several kinds"))
        );
        // A map of booleans claiming 2^60 entries in a few bytes ends at once.
        let mut h = Vec::new();
        i32_field(1, DICTIONARY_PAGE, &mut h);
        h.push((9 << 4) | 11); // field 10, a map
        varint(1 << 60, &mut h);
        h.push(0x11);
        h.extend_from_slice(&[0; 8]);
        assert_eq!(read_page_header(&h), Err(HeaderError::Short));
        let deep: Vec<u8> = std::iter::repeat_n(0x1c, 100).collect();
        assert!(read_page_header(&deep).is_err());
    }
}
