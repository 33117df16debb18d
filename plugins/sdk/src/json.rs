//! A tiny, allocation-light JSON reader and string escaper for record values.
//!
//! Contract:
//! - [`field`] validates the WHOLE document against RFC 8259 (UTF-8, nesting at most
//!   [`MAX_DEPTH`]) and returns the value of a top-level object member, or `Ok(None)` when the
//!   member is absent or the document is not an object. With duplicate names the first wins.
//! - [`JsonValue`] borrows from the document: strings are unescaped (borrowed when they hold no
//!   escapes), numbers, objects and arrays are their raw text.
//! - [`escape_into`] writes the body of a JSON string literal (no quotes) that decodes to `s`.
//!
//! No serde: this keeps plugin components small and avoids building a tree per record.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of objects/arrays [`field`] accepts.
pub const MAX_DEPTH: usize = 128;

/// A JSON value read from a document.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonValue<'a> {
    String(Cow<'a, str>),
    /// The number's text as written, e.g. `-1.5e3`.
    Number(&'a str),
    Bool(bool),
    Null,
    /// The object's raw text, braces included.
    Object(&'a str),
    /// The array's raw text, brackets included.
    Array(&'a str),
}

impl<'a> JsonValue<'a> {
    /// A string's contents or a number's text: what can serve as a key or id. `None` otherwise.
    pub fn as_key(&self) -> Option<&str> {
        match self {
            JsonValue::String(s) => Some(s),
            JsonValue::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The value as text: a string's contents, otherwise its JSON text (`true`, `null`, `1e3`, `{..}`).
    pub fn as_text(&self) -> &str {
        match self {
            JsonValue::String(s) => s,
            JsonValue::Number(n) | JsonValue::Object(n) | JsonValue::Array(n) => n,
            JsonValue::Bool(true) => "true",
            JsonValue::Bool(false) => "false",
            JsonValue::Null => "null",
        }
    }
}

/// Why a document is not valid JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where the problem was found.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for JsonError {}

/// Invalid JSON in a record is an `invalid-input` error with code `bad-json`.
impl From<JsonError> for crate::Error {
    fn from(e: JsonError) -> Self {
        crate::Error::invalid_input("bad-json", e.to_string())
    }
}

/// The top-level member `name` of the JSON document `doc` (see the module docs).
pub fn field<'a>(doc: &'a [u8], name: &str) -> Result<Option<JsonValue<'a>>, JsonError> {
    let s = std::str::from_utf8(doc).map_err(|e| JsonError { offset: e.valid_up_to(), reason: "not UTF-8" })?;
    let mut p = Parser { s, b: doc, pos: 0, depth: 0 };
    p.ws();
    let found = if p.peek() == Some(b'{') {
        p.object_members(Some(name))?
    } else {
        p.value()?;
        None
    };
    p.ws();
    if p.pos != p.b.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(found)
}

/// Checks that `doc` is one valid JSON document.
pub fn validate(doc: &[u8]) -> Result<(), JsonError> {
    field(doc, "").map(|_| ())
}

/// Appends the JSON-escaped form of `s` (without surrounding quotes) to `out`.
pub fn escape_into(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{08}' => Some("\\b"),
            '\u{0c}' => Some("\\f"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                use fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
}

/// Appends `bytes` (UTF-8, invalid sequences replaced) JSON-escaped, without quotes. Copies the
/// bytes straight through when nothing needs escaping (the common case for keys).
pub fn escape_bytes_into(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x80) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut s = String::new();
    escape_into(&mut s, &String::from_utf8_lossy(bytes));
    out.extend_from_slice(s.as_bytes());
}

/// `s` JSON-escaped, without surrounding quotes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    escape_into(&mut out, s);
    out
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, reason: &'static str) -> JsonError {
        JsonError { offset: self.pos, reason }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    fn value(&mut self) -> Result<JsonValue<'a>, JsonError> {
        self.ws();
        let start = self.pos;
        match self.peek() {
            Some(b'"') => Ok(JsonValue::String(self.string()?)),
            Some(b'{') => {
                self.object_members(None)?;
                Ok(JsonValue::Object(&self.s[start..self.pos]))
            }
            Some(b'[') => {
                self.array()?;
                Ok(JsonValue::Array(&self.s[start..self.pos]))
            }
            Some(b't') => self.literal("true", JsonValue::Bool(true)),
            Some(b'f') => self.literal("false", JsonValue::Bool(false)),
            Some(b'n') => self.literal("null", JsonValue::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &'static str, v: JsonValue<'a>) -> Result<JsonValue<'a>, JsonError> {
        if self.b[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        Ok(())
    }

    /// Parses an object at `pos`; returns the first member named `want` (if any).
    fn object_members(&mut self, want: Option<&str>) -> Result<Option<JsonValue<'a>>, JsonError> {
        self.enter()?;
        self.expect(b'{', "expected '{'")?;
        let mut found = None;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(None);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a member name"));
            }
            let name = self.string()?;
            self.ws();
            self.expect(b':', "expected ':'")?;
            let v = self.value()?;
            if found.is_none() && want.is_some_and(|w| w == name) {
                found = Some(v);
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.depth -= 1;
        Ok(found)
    }

    fn array(&mut self) -> Result<(), JsonError> {
        self.enter()?;
        self.expect(b'[', "expected '['")?;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<JsonValue<'a>, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(JsonValue::Number(&self.s[start..self.pos]))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.b.get(self.pos..self.pos + 4).ok_or_else(|| self.err("truncated \\u escape"))?;
        // Exactly four hex digits (from_str_radix alone would also take a sign, `\u+041`).
        let h = h.iter().all(u8::is_ascii_hexdigit).then(|| std::str::from_utf8(h).ok().and_then(|h| u32::from_str_radix(h, 16).ok())).flatten();
        match h {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.err("invalid \\u escape")),
        }
    }

    /// Parses a string at `pos` (which is `"`), returning its unescaped contents.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes.
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = &self.s[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(c) if c < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::from(&self.s[start..self.pos]);
        loop {
            let run = self.pos;
            loop {
                match self.peek() {
                    None => return Err(self.err("unterminated string")),
                    Some(b'"' | b'\\') => break,
                    Some(c) if c < 0x20 => return Err(self.err("control character in string")),
                    Some(_) => self.pos += 1,
                }
            }
            out.push_str(&self.s[run..self.pos]);
            if self.peek() == Some(b'"') {
                self.pos += 1;
                return Ok(Cow::Owned(out));
            }
            self.pos += 1; // the backslash
            let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
            self.pos += 1;
            match c {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{08}'),
                b'f' => out.push('\u{0c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = self.hex4()?;
                    let cp = if (0xD800..0xDC00).contains(&hi) {
                        if !self.b[self.pos..].starts_with(b"\\u") {
                            return Err(self.err("lone surrogate"));
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(self.err("lone surrogate"));
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00..0xE000).contains(&hi) {
                        return Err(self.err("lone surrogate"));
                    } else {
                        hi
                    };
                    out.push(char::from_u32(cp).ok_or_else(|| self.err("invalid \\u escape"))?);
                }
                _ => return Err(self.err("invalid escape")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<'a>(doc: &'a str, name: &str) -> Result<Option<JsonValue<'a>>, JsonError> {
        field(doc.as_bytes(), name)
    }

    #[test]
    fn finds_top_level_members() {
        let doc = r#" {"a": "x", "n": -12.5e2, "b": true, "z": null, "o": {"a": [1, {"q": 2}]}, "arr": [ ] } "#;
        assert_eq!(f(doc, "a").unwrap(), Some(JsonValue::String("x".into())));
        assert_eq!(f(doc, "n").unwrap(), Some(JsonValue::Number("-12.5e2")));
        assert_eq!(f(doc, "b").unwrap(), Some(JsonValue::Bool(true)));
        assert_eq!(f(doc, "z").unwrap(), Some(JsonValue::Null));
        assert_eq!(f(doc, "o").unwrap(), Some(JsonValue::Object(r#"{"a": [1, {"q": 2}]}"#)));
        assert_eq!(f(doc, "arr").unwrap(), Some(JsonValue::Array("[ ]")));
        assert_eq!(f(doc, "q").unwrap(), None, "nested members are not top-level");
        assert_eq!(f(doc, "missing").unwrap(), None);
        assert_eq!(f("[1,2]", "a").unwrap(), None);
        assert_eq!(f("\"s\"", "a").unwrap(), None);
        assert_eq!(f(r#"{"a":1,"a":2}"#, "a").unwrap(), Some(JsonValue::Number("1")));
    }

    #[test]
    fn unescapes_strings() {
        let doc = r#"{"k\u0041":"a\"b\\c\/\n\t\u00e9\ud83d\ude00"}"#;
        let v = f(doc, "kA").unwrap().unwrap();
        assert_eq!(v.as_text(), "a\"b\\c/\n\té😀");
        assert_eq!(f(r#"{"k":"héllo"}"#, "k").unwrap().unwrap().as_key(), Some("héllo"));
    }

    #[test]
    fn rejects_invalid_documents() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":\"x}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":1} x",
            "{\"a\":[1,]}",
            "{\"a\":\"\\u+041\"}",
            "{\"a\":\"tab\there\"}",
            "[1 2]",
            "nul",
            "{\"a\":NaN}",
        ] {
            assert!(f(bad, "a").is_err(), "accepted {bad:?}");
        }
        assert!(field(b"{\"a\":\"\xff\"}", "a").is_err());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(validate(deep.as_bytes()).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(validate(ok.as_bytes()).is_ok());
    }

    #[test]
    fn accepts_valid_scalars_and_errors_map_to_bad_json() {
        for good in ["0", "-0", "1.5E+3", "true", "null", "\"\"", "{}", " [ {} , [] ] "] {
            validate(good.as_bytes()).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        let e: crate::Error = f("{", "a").unwrap_err().into();
        assert_eq!((e.class, e.code.as_str()), (crate::ErrorClass::InvalidInput, "bad-json"));
    }

    #[test]
    fn escaping_round_trips() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\"b\\c\nd\u{1}é"), "a\\\"b\\\\c\\nd\\u0001é");
        for s in ["", "x", "\"\\/\u{0}\u{1f}\u{7f}\r\t\u{8}\u{c}😀 é", "end\\"] {
            let doc = format!("{{\"k\":\"{}\"}}", escape(s));
            assert_eq!(f(&doc, "k").unwrap().unwrap().as_text(), s, "{doc}");
        }
    }
}
