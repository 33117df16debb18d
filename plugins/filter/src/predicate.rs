//! The filter predicate, pure so it is unit-tested on the native target.
//!
//! Contract: `matches(op, field, value)` where `field` is the record's member (None = absent):
//! - `exists`: the member is present (any type, `null` included); `value` is ignored.
//! - every other op is false when the member is absent.
//! - the member is compared through its text ([`JsonValue::as_text`]: a string's contents, else
//!   its JSON text). `eq ne gt ge lt le` compare numerically when both sides parse as f64 (and
//!   are comparable, i.e. not NaN), else as strings (byte order). `contains`: substring test.

use arkflow_plugin_sdk::json::JsonValue;
use std::cmp::Ordering;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    Exists,
}

impl FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "contains" => Op::Contains,
            "exists" => Op::Exists,
            _ => return Err(format!("unknown op {s:?} (expected eq, ne, gt, ge, lt, le, contains or exists)")),
        })
    }
}

/// Numeric order when both sides parse as (comparable) f64, else string order.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or_else(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

pub fn matches(op: Op, field: Option<&JsonValue<'_>>, value: &str) -> bool {
    let Some(field) = field else { return false };
    let text = field.as_text();
    match op {
        Op::Exists => true,
        Op::Contains => text.contains(value),
        Op::Eq => compare(text, value) == Ordering::Equal,
        Op::Ne => compare(text, value) != Ordering::Equal,
        Op::Gt => compare(text, value) == Ordering::Greater,
        Op::Ge => compare(text, value) != Ordering::Less,
        Op::Lt => compare(text, value) == Ordering::Less,
        Op::Le => compare(text, value) != Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arkflow_plugin_sdk::json::field;

    fn m(op: &str, doc: &str, name: &str, value: &str) -> bool {
        let f = field(doc.as_bytes(), name).unwrap();
        matches(op.parse().unwrap(), f.as_ref(), value)
    }

    #[test]
    fn numeric_when_both_sides_are_numbers() {
        let d = r#"{"n": 10, "s": "10", "f": 2.5}"#;
        assert!(m("gt", d, "n", "9"));
        assert!(!m("gt", "{\"n\":\"10\"}", "n", "9x"), "string order: '1' < '9'");
        assert!(m("gt", d, "s", "9"), "a numeric string parses too");
        assert!(m("eq", d, "n", "10.0"));
        assert!(m("eq", d, "n", "1e1"));
        assert!(m("ge", d, "f", "2.5") && m("le", d, "f", "2.5"));
        assert!(m("lt", d, "f", "3") && !m("lt", d, "f", "2"));
        assert!(m("ne", d, "n", "11"));
    }

    #[test]
    fn strings_bools_nulls_and_contains() {
        let d = r#"{"s": "apple", "b": true, "z": null, "o": {"x": 1}}"#;
        assert!(m("eq", d, "s", "apple") && !m("eq", d, "s", "Apple"));
        assert!(m("lt", d, "s", "banana"));
        assert!(m("contains", d, "s", "ppl") && !m("contains", d, "s", "x"));
        assert!(m("eq", d, "b", "true"));
        assert!(m("eq", d, "z", "null"));
        assert!(m("contains", d, "o", "\"x\""));
    }

    #[test]
    fn absent_member() {
        let d = r#"{"z": null}"#;
        assert!(m("exists", d, "z", ""));
        assert!(!m("exists", d, "missing", ""));
        for op in ["eq", "ne", "gt", "ge", "lt", "le", "contains"] {
            assert!(!m(op, d, "missing", "1"), "{op}");
        }
    }

    #[test]
    fn nan_falls_back_to_strings_and_bad_ops_are_rejected() {
        assert_eq!(compare("NaN", "NaN"), Ordering::Equal);
        assert_eq!(compare("NaN", "1"), Ordering::Greater);
        assert!("like".parse::<Op>().is_err());
    }
}
