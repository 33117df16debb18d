//! The `column` layout of `arkflow:plugin@0.2.0` (Arrow's variable-size binary: one data buffer,
//! one end offset per item, a validity bitmap that may be empty when every item is present):
//! reading columns a guest sent ([`Cols`], checked once, then indexed without further checks)
//! and building the ones the host sends ([`ColumnBuf`], buffers reused across calls).

use super::bindings::v02::wit::ColumnResult;

/// A checked view of a column: `ends` never decreases and stays within `data`.
#[derive(Clone, Copy)]
pub struct Cols<'a> {
    data: &'a [u8],
    ends: &'a [u32],
    valid: &'a [u8],
}

impl<'a> Cols<'a> {
    /// Checks the layout; `what` names the column in the error (a plugin bug).
    pub fn new(data: &'a [u8], ends: &'a [u32], valid: &'a [u8], what: &str) -> Result<Self, String> {
        let mut prev = 0u32;
        for (i, &e) in ends.iter().enumerate() {
            if e < prev || e as usize > data.len() {
                return Err(format!("{what}: item {i} ends at {e}, after {prev}, in {} data bytes (ends must not decrease nor pass the data)", data.len()));
            }
            prev = e;
        }
        if !valid.is_empty() && valid.len() < ends.len().div_ceil(8) {
            return Err(format!(
                "{what}: the validity bitmap has {} bytes for {} items (empty, or at least {})",
                valid.len(),
                ends.len(),
                ends.len().div_ceil(8)
            ));
        }
        Ok(Cols { data, ends, valid })
    }

    /// [`Cols::new`] over a column the guest sent.
    pub fn of(c: &'a ColumnResult, what: &str) -> Result<Self, String> {
        Self::new(&c.data, &c.ends, &c.valid, what)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Item `i`, None when absent. `i < len()`.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if !self.valid.is_empty() && self.valid[i / 8] & (1 << (i % 8)) == 0 {
            return None;
        }
        Some(self.bytes(i))
    }

    /// The bytes of item `i` whether present or not (an absent item's range is normally empty).
    pub fn bytes(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }
}

/// A column being built, kept between calls so its buffers are reused.
#[derive(Default)]
pub struct ColumnBuf {
    pub data: Vec<u8>,
    pub ends: Vec<u32>,
    pub valid: Vec<u8>,
    absent: bool,
}

impl ColumnBuf {
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.valid.clear();
        self.absent = false;
    }

    /// Appends an item (None: absent).
    pub fn push(&mut self, item: Option<&[u8]>) {
        let i = self.ends.len();
        if i.is_multiple_of(8) {
            self.valid.push(0);
        }
        match item {
            Some(b) => {
                self.data.extend_from_slice(b);
                self.valid[i / 8] |= 1 << (i % 8);
            }
            None => self.absent = true,
        }
        self.ends.push(self.data.len() as u32);
    }

    /// The validity bitmap to send: empty when every item is present.
    pub fn valid(&self) -> &[u8] {
        if self.absent {
            &self.valid
        } else {
            &[]
        }
    }

    /// The column as an owned WIT value (for a host function's result).
    pub fn into_column(self) -> ColumnResult {
        let valid = if self.absent { self.valid } else { Vec::new() };
        ColumnResult { data: self.data, ends: self.ends, valid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_columns_read_back_and_bad_layouts_are_named() {
        let mut b = ColumnBuf::default();
        for item in [Some(&b"ab"[..]), None, Some(b""), Some(b"xyz")] {
            b.push(item);
        }
        let c = Cols::new(&b.data, &b.ends, b.valid(), "keys").unwrap();
        assert_eq!((0..c.len()).map(|i| c.get(i)).collect::<Vec<_>>(), [Some(&b"ab"[..]), None, Some(b""), Some(b"xyz")]);
        b.clear();
        b.push(Some(b"q"));
        assert!(b.valid().is_empty(), "all present: no bitmap sent");
        let e = Cols::new(b"abc", &[2, 1], &[], "values").err().unwrap();
        assert!(e.starts_with("values: item 1 ends at 1, after 2"), "{e}");
        assert!(Cols::new(b"abc", &[4], &[], "values").is_err());
        assert!(Cols::new(&[0; 9], &[1; 9], &[0xff], "keys").err().unwrap().contains("bitmap has 1 bytes for 9 items"));
    }
}
