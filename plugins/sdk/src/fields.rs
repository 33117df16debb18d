//! Typed fields decoded by the host (the `fields` import): declare the top-level JSON fields the
//! plugin reads once, in `init` ([`declare`]), then read them per batch as typed columns
//! ([`Batch::fields`](crate::Batch::fields)): no JSON is parsed in the guest.
//!
//! Contract:
//! - [`declare`] replaces any earlier declaration; the host checks it (at most 64 fields, names
//!   non-empty and unique) and its error becomes `config` / `bad-fields`.
//! - [`Fields`] holds one column per declared field, indexed by record. `get(i)` is `None` where
//!   record `i` lacks the field, holds `null`, has no value, or is in [`Fields::mismatched`]
//!   (its value is not a JSON object, or a declared field holds another type: the host's reason
//!   names the field).
//! - Columns are looked up by name ([`Fields::i64`], [`Fields::f64`], [`Fields::bool`],
//!   [`Fields::str`]); a name that was not declared with that type is an `internal` /
//!   `undeclared-field` error naming it.

use crate::bindings::arkflow::plugin::fields as wit;
use crate::Error;
use std::cell::RefCell;

pub use wit::FieldType;

thread_local! {
    // Single-threaded on wasm: the names declared last, in order (the host's column order).
    static DECLARED: RefCell<Vec<(String, FieldType)>> = const { RefCell::new(Vec::new()) };
}

/// Declares the fields [`Batch::fields`](crate::Batch::fields) returns (see the module docs).
pub fn declare(fields: &[(&str, FieldType)]) -> Result<(), Error> {
    let list: Vec<wit::Field> = fields.iter().map(|(n, t)| wit::Field { name: n.to_string(), type_: *t }).collect();
    wit::declare(&list).map_err(|e| Error::config("bad-fields", e))?;
    DECLARED.with(|d| *d.borrow_mut() = fields.iter().map(|(n, t)| (n.to_string(), *t)).collect());
    Ok(())
}

/// The declared fields of one batch.
pub struct Fields {
    raw: wit::Decoded,
    names: Vec<(String, FieldType)>,
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// An int64 column: `values[i]` is meaningful where `get(i)` is `Some`.
#[derive(Clone, Copy)]
pub struct I64s<'a> {
    pub valid: &'a [u8],
    pub values: &'a [i64],
}

/// A float64 column.
#[derive(Clone, Copy)]
pub struct F64s<'a> {
    pub valid: &'a [u8],
    pub values: &'a [f64],
}

/// A boolean column (`values` is a bitmap).
#[derive(Clone, Copy)]
pub struct Bools<'a> {
    pub valid: &'a [u8],
    pub values: &'a [u8],
}

/// A UTF-8 column in Arrow's layout.
#[derive(Clone, Copy)]
pub struct Strs<'a> {
    pub valid: &'a [u8],
    pub data: &'a [u8],
    pub ends: &'a [u32],
}

impl I64s<'_> {
    pub fn get(&self, i: usize) -> Option<i64> {
        bit(self.valid, i).then(|| self.values[i])
    }
}

impl F64s<'_> {
    pub fn get(&self, i: usize) -> Option<f64> {
        bit(self.valid, i).then(|| self.values[i])
    }
}

impl Bools<'_> {
    pub fn get(&self, i: usize) -> Option<bool> {
        bit(self.valid, i).then(|| bit(self.values, i))
    }
}

impl<'a> Strs<'a> {
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if !bit(self.valid, i) {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        std::str::from_utf8(&self.data[start..self.ends[i] as usize]).ok()
    }
}

macro_rules! column {
    ($fn:ident, $ty:ident, $variant:ident, $name:literal, |$v:ident, $valid:ident| $make:expr) => {
        #[doc = concat!("The ", $name, " column of the field `name`.")]
        pub fn $fn(&self, name: &str) -> Result<$ty<'_>, Error> {
            let c = self.column(name, FieldType::$variant)?;
            let $valid = &c.valid[..];
            match &c.values {
                wit::TypedValues::$variant($v) => Ok($make),
                _ => Err(undeclared(name, $name)),
            }
        }
    };
}

fn undeclared(name: &str, t: &str) -> Error {
    Error::internal("undeclared-field", format!("field `{name}` was not declared as {t} (fields::declare)"))
}

impl Fields {
    /// Wraps what the host returned for the fields declared now.
    pub(crate) fn fetch() -> Result<Self, Error> {
        let raw = wit::columns().map_err(|e| Error::internal("fields", e))?;
        Ok(Self::from_raw(raw, DECLARED.with(|d| d.borrow().clone())))
    }

    /// A batch's fields as the host would return them for `names` (for unit tests of plugin code).
    pub fn from_raw(raw: wit::Decoded, names: Vec<(String, FieldType)>) -> Self {
        Fields { raw, names }
    }

    fn column(&self, name: &str, t: FieldType) -> Result<&wit::TypedColumn, Error> {
        let at = self.names.iter().position(|(n, d)| n == name && *d == t);
        at.and_then(|j| self.raw.columns.get(j)).ok_or_else(|| undeclared(name, &format!("{t:?}").to_lowercase()))
    }

    column!(i64, I64s, Int64, "int64", |v, valid| I64s { valid, values: v });
    column!(f64, F64s, Float64, "float64", |v, valid| F64s { valid, values: v });
    column!(bool, Bools, Boolean, "boolean", |v, valid| Bools { valid, values: v });
    column!(str, Strs, Utf8, "utf8", |v, valid| Strs { valid, data: &v.data, ends: &v.ends });

    /// (record index, reason) of the records whose value did not fit the declaration, ascending.
    pub fn mismatched(&self) -> &[(u32, String)] {
        &self.raw.mismatched
    }

    /// The reason record `i` did not fit the declaration, if it did not.
    pub fn mismatch(&self, i: usize) -> Option<&str> {
        let m = &self.raw.mismatched;
        m.binary_search_by_key(&(i as u32), |(j, _)| *j).ok().map(|k| m[k].1.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::arkflow::plugin::types::Column;

    #[test]
    fn columns_are_read_by_name_and_type() {
        let raw = wit::Decoded {
            columns: vec![
                wit::TypedColumn { valid: vec![0b101], values: wit::TypedValues::Int64(vec![7, 0, -2]) },
                wit::TypedColumn { valid: vec![0b011], values: wit::TypedValues::Utf8(Column { data: b"abc".to_vec(), ends: vec![1, 3, 3], valid: vec![] }) },
                wit::TypedColumn { valid: vec![0b110], values: wit::TypedValues::Boolean(vec![0b010]) },
            ],
            mismatched: vec![(2, "field `s`: a number where utf8 was declared".into())],
        };
        let names = vec![("n".into(), FieldType::Int64), ("s".into(), FieldType::Utf8), ("b".into(), FieldType::Boolean)];
        let f = Fields::from_raw(raw, names);
        let n = f.i64("n").unwrap();
        assert_eq!((0..3).map(|i| n.get(i)).collect::<Vec<_>>(), [Some(7), None, Some(-2)]);
        let s = f.str("s").unwrap();
        assert_eq!((0..3).map(|i| s.get(i)).collect::<Vec<_>>(), [Some("a"), Some("bc"), None]);
        let b = f.bool("b").unwrap();
        assert_eq!((0..3).map(|i| b.get(i)).collect::<Vec<_>>(), [None, Some(true), Some(false)]);
        assert!(f.f64("n").is_err(), "declared as int64, asked as float64");
        assert_eq!(f.i64("zz").err().unwrap().code, "undeclared-field");
        assert_eq!(f.mismatch(2), Some("field `s`: a number where utf8 was declared"));
        assert_eq!(f.mismatch(1), None);
    }
}
