//! Minimal JSON helpers for the data path: string escaping and top-level field extraction,
//! without building a DOM for every record.

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// The value of top-level field `field` of a JSON object, as bytes: strings unquoted, numbers and
/// other scalars as written. None when the text is not an object, lacks the field, or the field
/// is an object/array/null.
pub fn field_bytes(json: &[u8], field: &str) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Scalar<'a> {
        Str(std::borrow::Cow<'a, str>),
        Num(serde_json::Number),
        Bool(bool),
    }
    let map: std::collections::HashMap<std::borrow::Cow<'_, str>, &serde_json::value::RawValue> = serde_json::from_slice(json).ok()?;
    let raw = map.get(field)?;
    match serde_json::from_str::<Scalar>(raw.get()).ok()? {
        Scalar::Str(s) => Some(s.into_owned().into_bytes()),
        Scalar::Num(n) => Some(n.to_string().into_bytes()),
        Scalar::Bool(b) => Some(b.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut v = Vec::new();
        write_str(&mut v, "a\"b\\c\n\u{1}é");
        assert_eq!(String::from_utf8(v).unwrap(), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn fields() {
        let j = br#"{"user_id":"u1","n":42,"o":{"x":1},"s":"a\"b"}"#;
        assert_eq!(field_bytes(j, "user_id").unwrap(), b"u1");
        assert_eq!(field_bytes(j, "n").unwrap(), b"42");
        assert_eq!(field_bytes(j, "s").unwrap(), b"a\"b");
        assert!(field_bytes(j, "o").is_none());
        assert!(field_bytes(j, "missing").is_none());
        assert!(field_bytes(b"not json", "x").is_none());
    }
}
