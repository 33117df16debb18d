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
    field_values(json, &[field]).pop().flatten()
}

/// A JSON scalar's bytes: a string unquoted, a number or bool as written; None otherwise.
pub fn scalar_bytes(raw: &str) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Scalar<'a> {
        Str(std::borrow::Cow<'a, str>),
        Num(serde_json::Number),
        Bool(bool),
    }
    match serde_json::from_str::<Scalar>(raw).ok()? {
        Scalar::Str(s) => Some(s.into_owned().into_bytes()),
        Scalar::Num(n) => Some(n.to_string().into_bytes()),
        Scalar::Bool(b) => Some(b.to_string().into_bytes()),
    }
}

/// The values of top-level fields `fields` of a JSON object, each as [`scalar_bytes`] gives it
/// (None: missing, null or nested; all None when the text is not an object).
fn field_values<F: AsRef<str>>(json: &[u8], fields: &[F]) -> Vec<Option<Vec<u8>>> {
    visit_fields(json, fields, scalar_bytes, false).unwrap_or_else(|_| vec![None; fields.len()])
}

/// The raw JSON text of top-level fields `fields` of a JSON object (None: missing; all None when
/// the text is not an object).
pub fn raw_fields<'a, F: AsRef<str>>(json: &'a [u8], fields: &[F]) -> Vec<Option<&'a str>> {
    visit_fields(json, fields, Some, false).unwrap_or_else(|_| vec![None; fields.len()])
}

/// [`raw_fields`], or why `json` is not one JSON object (trailing text included).
pub fn try_raw_fields<'a, F: AsRef<str>>(json: &'a [u8], fields: &[F]) -> Result<Vec<Option<&'a str>>, serde_json::Error> {
    visit_fields(json, fields, Some, true)
}

/// `json` is one JSON object (checked without building it).
pub fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(json).is_ok()
}

/// A JSON string's text, borrowed when it has no escapes.
#[derive(serde::Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub std::borrow::Cow<'a, str>);

/// `take` of the raw JSON text of each of top-level fields `fields` of a JSON object (None:
/// missing or not taken; a repeated name: its last value); an error when the text is not one
/// object (with `whole`, also when text follows it). One pass without building a map: the other
/// members are skipped.
fn visit_fields<'a, F: AsRef<str>, T: Clone>(
    json: &'a [u8],
    fields: &[F],
    take: impl Fn(&'a str) -> Option<T>,
    whole: bool,
) -> Result<Vec<Option<T>>, serde_json::Error> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use Text as Key;
    struct Fields<'f, F, G>(&'f [F], G);
    impl<'de, F: AsRef<str>, T: Clone, G: Fn(&'de str) -> Option<T>> Visitor<'de> for Fields<'_, F, G> {
        type Value = Vec<Option<T>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = vec![None; self.0.len()];
            while let Some(Key(k)) = map.next_key()? {
                match self.0.iter().position(|f| f.as_ref() == k) {
                    Some(i) => {
                        let raw: &'de serde_json::value::RawValue = map.next_value()?;
                        out[i] = (self.1)(raw.get());
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let out = de.deserialize_map(Fields(fields, take))?;
    if whole {
        de.end()?;
    }
    Ok(out)
}

/// One routing key from the values of its fields, in order (see [`fields_key`]).
pub fn join_key(values: impl IntoIterator<Item = Option<Vec<u8>>>) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            key.push(0x1f);
        }
        key.extend(v.unwrap_or_default());
    }
    key
}

/// The routing key made of top-level fields `fields` of a JSON object: one field's value as
/// [`field_bytes`] gives it; several joined by 0x1f. A missing or null field counts as empty.
/// The flag says whether any field was found.
pub fn fields_key(json: &[u8], fields: &[String]) -> (Vec<u8>, bool) {
    let values = field_values(json, fields);
    let found = values.iter().any(Option::is_some);
    (join_key(values), found)
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

    #[test]
    fn fields_are_read_in_one_pass_whatever_their_order_and_escapes() {
        let j = br#"{"a":{"x":[1,2]},"u\u0073er":"u7","n":12.5,"b":true,"z":null}"#;
        assert_eq!(field_bytes(j, "user").as_deref(), Some(&b"u7"[..]), "an escaped key");
        assert_eq!(field_bytes(j, "n").as_deref(), Some(&b"12.5"[..]));
        assert_eq!(field_bytes(j, "a"), None, "nested");
        assert_eq!(field_bytes(j, "z"), None, "null");
        assert_eq!(field_bytes(b"[1,2]", "a"), None, "not an object");
        assert_eq!(field_bytes(b"{\"a\":1", "a"), None, "truncated");
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(fields_key(j, &f(&["b", "user"])), (b"true\x1fu7".to_vec(), true));
        assert_eq!(fields_key(j, &f(&["missing", "user"])), (b"\x1fu7".to_vec(), true));
        assert_eq!(fields_key(j, &f(&["missing"])), (Vec::new(), false));
        assert_eq!(fields_key(j, &f(&["user"])).0, field_bytes(j, "user").unwrap(), "one field: its value as it is");
    }
}
