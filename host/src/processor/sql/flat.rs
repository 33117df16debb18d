//! The lane's fast decoder: a block of flat JSON objects, one per line, straight into Arrow
//! columns of a known schema, in one pass with no tape and no per-value allocation.
//!
//! Contract: `decode(text, schema, strict, rows)` returns the batch arrow-json's decoder returns
//! for the same text, schema and strictness, or None when the block leaves the subset it reads:
//! then the caller decodes the block with arrow-json as before, so the subset only decides speed,
//! never a result. The subset: each non-blank line is one object of strict JSON (RFC 8259
//! numbers, strings with their escapes, `true`/`false`/`null`) whose keys have no escapes, no key
//! twice, and whose values are scalars of the column's type: an integer literal within i64 for
//! Int64, any number for Float64 (finite), a string for Utf8, a boolean for Boolean, `null` for
//! any column. A key the schema lacks is refused when `strict`, skipped (a scalar) otherwise.
//! Missing fields are null. Exactly `rows` objects, else None.

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, NullArray, RecordBatch, StringArray};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use std::sync::Arc;

/// The values of one column, as they are read.
enum Values {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str { offsets: Vec<i32>, data: Vec<u8> },
    Bool(Vec<bool>),
    Null,
}

struct Column {
    values: Values,
    /// Rows whose value is null (their slot holds a default).
    nulls: Vec<usize>,
    /// The last row that set this column, plus one (0: none).
    set: usize,
}

impl Column {
    fn new(t: &DataType, rows: usize) -> Option<Column> {
        let values = match t {
            DataType::Int64 => Values::Int(Vec::with_capacity(rows)),
            DataType::Float64 => Values::Float(Vec::with_capacity(rows)),
            DataType::Utf8 => Values::Str { offsets: Vec::with_capacity(rows + 1), data: Vec::with_capacity(rows * 8) },
            DataType::Boolean => Values::Bool(Vec::with_capacity(rows)),
            DataType::Null => Values::Null,
            _ => return None,
        };
        let mut c = Column { values, nulls: Vec::new(), set: 0 };
        if let Values::Str { offsets, .. } = &mut c.values {
            offsets.push(0);
        }
        Some(c)
    }

    fn push_null(&mut self, row: usize) {
        self.nulls.push(row);
        match &mut self.values {
            Values::Int(v) => v.push(0),
            Values::Float(v) => v.push(0.0),
            Values::Str { offsets, data } => offsets.push(data.len() as i32),
            Values::Bool(v) => v.push(false),
            Values::Null => {}
        }
    }

    fn finish(self, rows: usize) -> Option<ArrayRef> {
        let nulls = (!self.nulls.is_empty()).then(|| {
            let mut valid = vec![true; rows];
            self.nulls.iter().for_each(|r| valid[*r] = false);
            NullBuffer::from(valid)
        });
        Some(match self.values {
            Values::Int(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Float(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Str { offsets, data } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(StringArray::try_new(offsets, data.into(), nulls).ok()?)
            }
            Values::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
            Values::Null => Arc::new(NullArray::new(rows)),
        })
    }
}

/// See the module doc.
pub fn decode(text: &[u8], schema: &SchemaRef, strict: bool, rows: usize) -> Option<RecordBatch> {
    let names: Vec<&[u8]> = schema.fields().iter().map(|f| f.name().as_bytes()).collect();
    // A name a key without escapes cannot spell is left to arrow-json.
    if names.iter().any(|n| n.iter().any(|c| *c == b'"' || *c == b'\\' || *c < 0x20)) {
        return None;
    }
    let mut columns: Vec<Column> = schema.fields().iter().map(|f| Column::new(f.data_type(), rows)).collect::<Option<_>>()?;
    let mut scratch = Vec::new();
    let mut keys = Keys::new(names);
    // One pass over the whole block: blank lines and the blanks around an object are skipped as
    // `Lines` trims them (ASCII whitespace); inside an object only JSON's blanks other than a
    // newline are, so an object over two lines is declined; after it, only its line's end.
    let mut p = Parser { b: text, i: 0 };
    let mut row = 0;
    loop {
        while p.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            p.i += 1;
        }
        if p.i == text.len() {
            break;
        }
        if row == rows {
            return None;
        }
        p.object(&mut keys, &mut columns, strict, row, &mut scratch)?;
        while matches!(p.peek(), Some(b' ' | b'\t' | b'\r' | 0x0c)) {
            p.i += 1;
        }
        if !matches!(p.peek(), Some(b'\n') | None) {
            return None;
        }
        for c in columns.iter_mut().filter(|c| c.set != row + 1) {
            c.push_null(row);
        }
        row += 1;
    }
    if row != rows {
        return None;
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|c| c.finish(rows)).collect::<Option<_>>()?;
    RecordBatch::try_new(schema.clone(), arrays).ok()
}

/// Whether the eight bytes of `w` (little-endian) are all ASCII digits.
fn eight_digits(w: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    (w & HIGH) | ((w.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4) == 0x3333_3333_3333_3333
}

/// The number eight ASCII digits spell, in four multiplications instead of eight.
fn eight_value(w: u64) -> u64 {
    let mut v = w - 0x3030_3030_3030_3030;
    v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v * 10_000 + (v >> 32)) & 0xFFFF_FFFF
}

/// `a == b`, inlined: keys are short, a call to `memcmp` per key cost more than the compare.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// The schema's names; for each column (and the start of a line, at index `names.len()`) the
/// column whose key came next in the last line that had it (`next`); and each name of up to
/// seven bytes also as one word, the name and its closing quote with the mask of those bytes, so
/// that such a key is matched with one compare (`words`).
struct Keys<'s> {
    names: Vec<&'s [u8]>,
    next: Vec<usize>,
    words: Vec<Option<(u64, u64)>>,
}

impl<'s> Keys<'s> {
    fn new(names: Vec<&'s [u8]>) -> Self {
        let word = |name: &[u8]| {
            let n = name.len();
            (n < 8).then(|| {
                let mut want = [0u8; 8];
                want[..n].copy_from_slice(name);
                want[n] = b'"';
                (u64::from_le_bytes(want), u64::MAX >> (8 * (7 - n)))
            })
        };
        Keys { next: (1..=names.len()).chain([0]).collect(), words: names.iter().map(|n| word(n)).collect(), names }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    /// One object into row `row` of `columns`.
    fn object(&mut self, keys: &mut Keys<'_>, columns: &mut [Column], strict: bool, row: usize, scratch: &mut Vec<u8>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        // Fields usually come in the order of the line before: try the column that followed the
        // previous one there first.
        let mut prev = keys.names.len();
        loop {
            let guess = keys.next[prev];
            let (key, col) = match keys.names.get(guess).filter(|n| self.key_is(n, keys.words[guess])) {
                Some(_) => (&b""[..], Some(guess)),
                None => {
                    let key = self.key()?;
                    (key, keys.names.iter().position(|n| same(n, key)))
                }
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            match col {
                Some(c) => {
                    let column = &mut columns[c];
                    if column.set == row + 1 {
                        return None;
                    }
                    column.set = row + 1;
                    self.value(column, row)?;
                    keys.next[prev] = c;
                    prev = c;
                }
                None if strict || std::str::from_utf8(key).is_err() => return None,
                None => self.skip_scalar(scratch)?,
            }
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Moves past the key `"name"` when it comes next (`word`: see `Keys`).
    fn key_is(&mut self, name: &[u8], word: Option<(u64, u64)>) -> bool {
        let at = self.i + 1;
        let n = name.len();
        let hit = self.peek() == Some(b'"')
            && match (word, self.b.get(at..at + 8)) {
                (Some((want, mask)), Some(w)) => (u64::from_le_bytes(w.try_into().unwrap_or_default()) ^ want) & mask == 0,
                _ => self.b.get(at..at + n).is_some_and(|k| same(k, name)) && self.b.get(at + n) == Some(&b'"'),
            };
        if hit {
            self.i = at + n + 1;
        }
        hit
    }

    /// A key: a string without escapes or control characters (its UTF-8 is checked only when
    /// no column has its name).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let from = self.i;
        while self.peek().is_some_and(|c| c != b'"' && c != b'\\' && c >= 0x20) {
            self.i += 1;
        }
        let b: &'a [u8] = self.b;
        let key = &b[from..self.i];
        self.eat(b'"')?;
        Some(key)
    }

    fn value(&mut self, column: &mut Column, row: usize) -> Option<()> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            column.push_null(row);
            return Some(());
        }
        match &mut column.values {
            Values::Int(v) => v.push(self.integer()?),
            Values::Float(v) => {
                let from = self.i;
                self.number()?;
                // The token is ASCII digits and signs only.
                let f: f64 = std::str::from_utf8(&self.b[from..self.i]).ok()?.parse().ok()?;
                v.push(f.is_finite().then_some(f)?);
            }
            Values::Str { offsets, data } => {
                self.string(data)?;
                offsets.push(i32::try_from(data.len()).ok()?);
            }
            Values::Bool(v) => match self.peek()? {
                b't' => self.literal(b"true").map(|_| v.push(true))?,
                _ => self.literal(b"false").map(|_| v.push(false))?,
            },
            Values::Null => return None,
        }
        Some(())
    }

    /// An integer literal (no fraction, no exponent) within i64.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let b: &'a [u8] = self.b;
        let rest = &b[self.i..];
        // Eight digits at a time while they cannot overflow, then one at a time up to nineteen
        // (nineteen always fit a u64; more never fit an i64).
        let (mut n, mut len) = (0u64, 0);
        while len <= 8 {
            match rest.get(len..len + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default())).filter(|w| eight_digits(*w)) {
                Some(w) => (n, len) = (n * 100_000_000 + eight_value(w), len + 8),
                None => break,
            }
        }
        while let Some(d) = rest.get(len).filter(|c| c.is_ascii_digit()) {
            if len == 19 {
                return None;
            }
            (n, len) = (n * 10 + u64::from(d - b'0'), len + 1);
        }
        if len == 0 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        self.i += len;
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        match negative {
            true if n <= i64::MAX as u64 + 1 => Some((n as i64).wrapping_neg()),
            false if n <= i64::MAX as u64 => Some(n as i64),
            _ => None,
        }
    }

    /// Moves past a number token of strict JSON grammar.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let from = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - from
        };
        let first = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[first] == b'0') {
            return None;
        }
        if self.eat(b'.').is_some() && digits(self) == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A string, its escapes decoded, appended to `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.eat(b'"')?;
        let start = out.len();
        let mut ascii = true;
        loop {
            let from = self.i;
            // Eight plain bytes at a time: none is `"`, `\\`, a control character or non-ASCII.
            while let Some(w) = self.b.get(self.i..self.i + 8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())) {
                const ONES: u64 = 0x0101_0101_0101_0101;
                const HIGH: u64 = 0x8080_8080_8080_8080;
                let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
                if (zero(w ^ (ONES * 0x22)) | zero(w ^ (ONES * 0x5c)) | (w.wrapping_sub(ONES * 0x20) & !w) | w) & HIGH != 0 {
                    break;
                }
                self.i += 8;
            }
            while let Some(c) = self.peek().filter(|c| *c != b'"' && *c != b'\\' && *c >= 0x20) {
                ascii &= c < 0x80;
                self.i += 1;
            }
            out.extend_from_slice(&self.b[from..self.i]);
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    self.escape(out)?;
                }
                _ => return None,
            }
        }
        (ascii || std::str::from_utf8(&out[start..]).is_ok()).then_some(())
    }

    /// The escape after a backslash, decoded into `out`.
    fn escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let c = self.peek()?;
        self.i += 1;
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = self.hex4()?;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => hi,
                };
                let ch = char::from_u32(code)?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                return Some(());
            }
            _ => return None,
        };
        out.push(simple);
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let s = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(s, 16).ok()?;
        // from_str_radix takes a leading `+`.
        (!s.starts_with('+')).then(|| self.i += 4)?;
        Some(v)
    }

    /// Moves past a scalar value of a key the schema lacks.
    fn skip_scalar(&mut self, scratch: &mut Vec<u8>) -> Option<()> {
        match self.peek()? {
            b'"' => {
                scratch.clear();
                self.string(scratch)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
