//! The `fields` import of `arkflow:plugin@0.2.0`: a plugin declares top-level fields of its
//! records' JSON values ([`Declared::new`]) and reads them as typed columns decoded by the host
//! ([`decode`]), so the guest parses no JSON.
//!
//! Contract of [`decode`]: one column per declared field, one item per record. A record's item is
//! valid when its value is a JSON object whose member of that name (the first, when a name
//! repeats) holds a value of the declared type: `true`/`false` for boolean; an integer literal
//! (no fraction, no exponent) within i64 for int64; any number for float64; a string for utf8.
//! A missing member, `null`, or a record without a value leaves the item invalid. A value that
//! is not a JSON object (invalid JSON included), or one whose declared member holds another type,
//! lists the record in `mismatched` with serde_json's message naming the field and the column of
//! the value, and leaves all of that record's items invalid. Nothing is allocated per record
//! except the text of a string with escapes.

use super::bindings::v02::arkflow::plugin::fields::{Decoded, Field, FieldType, TypedColumn, TypedValues};
use super::bindings::v02::wit::ColumnResult;
use crate::record::Record;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Most fields one declaration may name.
pub const MAX_FIELDS: usize = 64;
/// Longest field name, in bytes.
pub const MAX_NAME: usize = 256;

/// A checked declaration.
#[derive(Debug, Clone, Default)]
pub struct Declared(Vec<(String, FieldType)>);

impl Declared {
    /// Checks a declaration: at most [`MAX_FIELDS`] fields, names non-empty, at most
    /// [`MAX_NAME`] bytes and unique.
    pub fn new(fields: Vec<Field>) -> Result<Self, String> {
        if fields.len() > MAX_FIELDS {
            return Err(format!("fields.declare: {} fields, at most {MAX_FIELDS}", fields.len()));
        }
        for (i, f) in fields.iter().enumerate() {
            if f.name.is_empty() || f.name.len() > MAX_NAME {
                return Err(format!("fields.declare: field {i} has a name of {} bytes (1 to {MAX_NAME})", f.name.len()));
            }
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("fields.declare: field `{}` is declared twice", f.name));
            }
        }
        Ok(Declared(fields.into_iter().map(|f| (f.name, f.type_)).collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One field's value in the record being read.
pub(super) enum Slot<'de> {
    Unset,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'de, str>),
}

/// A column being filled.
struct Builder {
    valid: Vec<u8>,
    values: Values,
}

enum Values {
    Bool(Vec<u8>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str { data: Vec<u8>, ends: Vec<u32> },
}

impl Builder {
    fn new(t: FieldType, rows: usize) -> Self {
        let bits = rows.div_ceil(8);
        let values = match t {
            FieldType::Boolean => Values::Bool(vec![0; bits]),
            FieldType::Int64 => Values::Int(Vec::with_capacity(rows)),
            FieldType::Float64 => Values::Float(Vec::with_capacity(rows)),
            FieldType::Utf8 => Values::Str { data: Vec::new(), ends: Vec::with_capacity(rows) },
        };
        Builder { valid: vec![0; bits], values }
    }

    /// Appends record `i`'s item (`slot` None: invalid).
    fn push(&mut self, i: usize, slot: Option<&Slot<'_>>) {
        let bit = 1u8 << (i % 8);
        let mut set = true;
        match (&mut self.values, slot) {
            (Values::Bool(v), Some(Slot::Bool(b))) => v[i / 8] |= if *b { bit } else { 0 },
            (Values::Int(v), Some(Slot::Int(n))) => v.push(*n),
            (Values::Float(v), Some(Slot::Float(x))) => v.push(*x),
            (Values::Str { data, ends }, Some(Slot::Str(s))) => {
                data.extend_from_slice(s.as_bytes());
                ends.push(data.len() as u32);
            }
            (values, _) => {
                set = false;
                match values {
                    Values::Bool(_) => {}
                    Values::Int(v) => v.push(0),
                    Values::Float(v) => v.push(0.0),
                    Values::Str { data, ends } => ends.push(data.len() as u32),
                }
            }
        }
        if set {
            self.valid[i / 8] |= bit;
        }
    }

    fn finish(self) -> TypedColumn {
        let values = match self.values {
            Values::Bool(v) => TypedValues::Boolean(v),
            Values::Int(v) => TypedValues::Int64(v),
            Values::Float(v) => TypedValues::Float64(v),
            Values::Str { data, ends } => TypedValues::Utf8(ColumnResult { data, ends, valid: Vec::new() }),
        };
        TypedColumn { valid: self.valid, values }
    }
}

/// Decodes the declared fields of every record (see the module docs).
pub fn decode(declared: &Declared, records: &[Record]) -> Decoded {
    decode_with(declared, records, true)
}

/// [`decode`], with or without the fast path (`fields_scan`) tried first: the same result.
fn decode_with(declared: &Declared, records: &[Record], fast: bool) -> Decoded {
    let fields = &declared.0;
    let mut cols: Vec<Builder> = fields.iter().map(|(_, t)| Builder::new(*t, records.len())).collect();
    let mut mismatched = Vec::new();
    let mut slots: Vec<Slot<'_>> = Vec::with_capacity(fields.len());
    for (i, r) in records.iter().enumerate() {
        slots.clear();
        slots.extend(fields.iter().map(|_| Slot::Unset));
        let ok = match r.value.as_deref() {
            None => false,
            Some(v) if fast && super::fields_scan::scan(v, fields, &mut slots).is_some() => true,
            Some(v) => {
                slots.iter_mut().for_each(|s| *s = Slot::Unset);
                match read_object(v, fields, &mut slots) {
                    Ok(()) => true,
                    Err(e) => {
                        mismatched.push((i as u32, e.to_string()));
                        false
                    }
                }
            }
        };
        for (c, s) in cols.iter_mut().zip(&slots) {
            c.push(i, ok.then_some(s));
        }
    }
    Decoded { columns: cols.into_iter().map(Builder::finish).collect(), mismatched }
}

fn read_object<'de>(text: &'de [u8], fields: &[(String, FieldType)], slots: &mut [Slot<'de>]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    de.deserialize_map(Object { fields, slots })?;
    de.end()
}

/// Reads one object's members into `slots`.
struct Object<'a, 'de> {
    fields: &'a [(String, FieldType)],
    slots: &'a mut [Slot<'de>],
}

impl<'de> Visitor<'de> for Object<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(at) = map.next_key_seed(KeySeed(self.fields))? {
            match at {
                Some(j) if matches!(self.slots[j], Slot::Unset) => {
                    let (name, t) = &self.fields[j];
                    self.slots[j] = map.next_value_seed(ValueSeed { name, t: *t })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A member name: the index of the declared field it names, if any.
struct KeySeed<'a>(&'a [(String, FieldType)]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(n, _)| n == s))
    }
}

/// A declared member's value.
struct ValueSeed<'a> {
    name: &'a str,
    t: FieldType,
}

impl ValueSeed<'_> {
    fn wrong<E: serde::de::Error>(&self, got: &str) -> E {
        let want = match self.t {
            FieldType::Boolean => "boolean",
            FieldType::Int64 => "int64",
            FieldType::Float64 => "float64",
            FieldType::Utf8 => "utf8",
        };
        E::custom(format_args!("field `{}`: {got} where {want} was declared", self.name))
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Slot<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Slot<'de>, D::Error> {
        if self.t != FieldType::Float64 {
            return d.deserialize_any(self);
        }
        // serde_json's own float parsing may miss the nearest f64 by an ulp (without its
        // `float_roundtrip` feature): a number's text is parsed by the standard library instead.
        let raw = <&serde_json::value::RawValue as serde::Deserialize>::deserialize(d)?.get();
        match raw.as_bytes()[0] {
            b'-' | b'0'..=b'9' => match raw.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Slot::Float(x)),
                _ => Err(self.wrong("a number beyond the float64 range")),
            },
            b'n' => Ok(Slot::Null),
            b'"' => Err(self.wrong("a string")),
            b't' | b'f' => Err(self.wrong("a boolean")),
            b'{' => Err(self.wrong("an object")),
            _ => Err(self.wrong("an array")),
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Slot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Slot<'de>, E> {
        match self.t {
            FieldType::Boolean => Ok(Slot::Bool(b)),
            _ => Err(self.wrong("a boolean")),
        }
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Slot<'de>, E> {
        match self.t {
            FieldType::Int64 => Ok(Slot::Int(n)),
            _ => Err(self.wrong("a number")),
        }
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Slot<'de>, E> {
        match (self.t, i64::try_from(n)) {
            (FieldType::Int64, Ok(n)) => Ok(Slot::Int(n)),
            (FieldType::Int64, Err(_)) => Err(self.wrong("an integer beyond the int64 range")),
            _ => Err(self.wrong("a number")),
        }
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Slot<'de>, E> {
        match self.t {
            FieldType::Int64 => Err(self.wrong("a number with a fraction or an exponent")),
            _ => Err(self.wrong("a number")),
        }
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Slot<'de>, E> {
        match self.t {
            FieldType::Utf8 => Ok(Slot::Str(Cow::Borrowed(s))),
            _ => Err(self.wrong("a string")),
        }
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Slot<'de>, E> {
        match self.t {
            FieldType::Utf8 => Ok(Slot::Str(Cow::Owned(s.to_string()))),
            _ => Err(self.wrong("a string")),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Slot<'de>, A::Error> {
        Err(self.wrong("an object"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Slot<'de>, A::Error> {
        Err(self.wrong("an array"))
    }
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
