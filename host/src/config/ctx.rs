//! The loading context: turns YAML paths into file:line:col and serde failures into messages.
//!
//! Contract: every `ConfigError` built during loading goes through a [`Ctx`], which knows the
//! file name, the span map, and how to map positions in the interpolated text back to the file
//! as written. [`Ctx::de`] deserializes a `serde_yaml::Value` into a raw section struct through
//! `serde_path_to_error` and rewrites serde's messages (unknown field, missing field, invalid
//! type/value) into the loader's own wording, located at the offending key or value.

use std::path::{Component, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::error::{ConfigError, ConfigErrorKind as K};
use super::interp::{Interpolated, LineIndex};
use super::spans::{Seg, SpanMap, YPath};
use super::suggest::closest;

pub(crate) struct Ctx {
    file: String,
    base_dir: Option<PathBuf>,
    spans: SpanMap,
    interp: Interpolated,
    lines: LineIndex,
}

impl Ctx {
    /// `original` is the text as written; `interp` its expansion, which `spans` indexes.
    pub fn new(file: String, base_dir: Option<PathBuf>, spans: SpanMap, interp: Interpolated, original: &str) -> Self {
        Ctx { file, base_dir, spans, interp, lines: LineIndex::new(original) }
    }

    /// 1-based (line, col) in the original text of a character index of the interpolated text.
    pub fn position(&self, expanded_index: usize) -> (usize, usize) {
        self.lines.position(self.interp.to_original(expanded_index))
    }

    /// An error at the value of `path` (or its nearest ancestor present in the file).
    pub fn at_value(&self, kind: K, path: &YPath, message: impl Into<String>) -> ConfigError {
        let loc = self.spans.value(path).map(|i| self.position(i));
        ConfigError::new(kind, &self.file, message).at(loc).with_path(path.to_string())
    }

    /// An error at the key of `path`, reported with the path of the enclosing mapping.
    pub fn at_key(&self, kind: K, path: &YPath, message: impl Into<String>) -> ConfigError {
        let loc = self.spans.key(path).map(|i| self.position(i));
        let parent = path.parent().unwrap_or_default();
        ConfigError::new(kind, &self.file, message).at(loc).with_path(parent.to_string())
    }

    /// "unknown key `k` in <map>" for the entry at `key_path`, with a suggestion from `known`.
    pub fn unknown_key(&self, key_path: &YPath, known: &[&str]) -> ConfigError {
        let key = match key_path.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => "?".to_string(),
        };
        let parent = key_path.parent().unwrap_or_default();
        let place = if parent.is_root() { "at the top level".to_string() } else { format!("in {parent}") };
        let hint = match closest(&key, known) {
            Some(s) => format!(" (did you mean `{s}`?)"),
            None if known.is_empty() => " (no keys are allowed here)".to_string(),
            None => format!(" (known keys: {})", known.join(", ")),
        };
        self.at_key(K::UnknownKey, key_path, format!("unknown key `{key}` {place}{hint}"))
    }

    /// "unknown <what> `value` at <path> (known: ...)" for enum-like names and `type:` values.
    pub fn unknown_name(&self, path: &YPath, what: &str, value: &str, known: &[&str]) -> ConfigError {
        let list = known.join(", ");
        let hint = match closest(value, known) {
            Some(s) => format!("did you mean `{s}`? known: {list}"),
            None => format!("known: {list}"),
        };
        self.at_value(K::UnknownVariant, path, format!("unknown {what} `{value}` at {path} ({hint})"))
    }

    /// Parses an enum-like lowercase name found at `path`; `None` gives `default`.
    pub fn named<E>(
        &self,
        value: Option<String>,
        path: &YPath,
        what: &str,
        names: &[&str],
        parse: fn(&str) -> Option<E>,
        default: E,
    ) -> Result<E, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) => parse(&v).ok_or_else(|| self.unknown_name(path, what, &v, names)),
        }
    }

    /// An `Invalid` error at the value of `path`.
    pub fn invalid(&self, path: &YPath, message: impl Into<String>) -> ConfigError {
        self.at_value(K::Invalid, path, message)
    }

    /// Requires `value >= min` for the setting at `path`.
    pub fn at_least<N: PartialOrd + std::fmt::Display>(&self, path: &YPath, value: N, min: N) -> Result<(), ConfigError> {
        if value < min {
            return Err(self.invalid(path, format!("{path} must be at least {min}, got {value}")));
        }
        Ok(())
    }

    /// [`Ctx::at_least`] for an optional setting: nothing to check when it is unset.
    pub fn at_least_if_set<N: PartialOrd + std::fmt::Display>(&self, path: &YPath, value: Option<N>, min: N) -> Result<(), ConfigError> {
        value.map_or(Ok(()), |v| self.at_least(path, v, min))
    }

    /// Deserializes `value` (found at `base`) into `T`. `extra_keys` are keys the caller
    /// already consumed (e.g. `type`), offered in "did you mean" suggestions.
    pub fn de<T: DeserializeOwned>(&self, value: Value, base: &YPath, extra_keys: &[&str]) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let mut path = base.clone();
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => path.push(Seg::Key(variant.clone())),
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            self.translate(&path, &e.inner().to_string(), extra_keys)
        })
    }

    fn translate(&self, path: &YPath, msg: &str, extra_keys: &[&str]) -> ConfigError {
        if msg.starts_with("unknown field `") {
            // "unknown field `k`, expected one of `a`, `b`" / "expected `a`" / "there are no fields"
            let mut known: Vec<&str> = msg.split('`').skip(3).step_by(2).collect();
            known.extend_from_slice(extra_keys);
            return self.unknown_key(path, &known);
        }
        if let Some(rest) = msg.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or(rest);
            return self.at_value(K::MissingKey, path, format!("missing required key `{field}` in {}", path.describe()));
        }
        for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
            if let Some(rest) = msg.strip_prefix(prefix) {
                if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                    let m = format!("invalid value for {}: expected {}, found {}", path.describe(), nice_expected(expected), nice_found(found));
                    return self.at_value(K::InvalidType, path, m);
                }
            }
        }
        self.at_value(K::InvalidType, path, format!("invalid value for {}: {msg}", path.describe()))
    }

    /// Resolves a relative path against the config file's directory (kept as is without one).
    pub fn resolve(&self, p: PathBuf) -> PathBuf {
        match &self.base_dir {
            Some(base) if p.is_relative() => base.join(p.components().filter(|c| *c != Component::CurDir).collect::<PathBuf>()),
            _ => p,
        }
    }
}

/// serde's "expected ..." in user terms.
fn nice_expected(expected: &str) -> String {
    let int_max = |bits: u32| format!("a non-negative integer (at most {})", (1u64 << bits) - 1);
    match expected {
        "u8" => int_max(8),
        "u16" => int_max(16),
        "u32" => int_max(32),
        "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "a boolean (true or false)".into(),
        "a sequence" => "a list".into(),
        e if e.starts_with("struct ") || e.starts_with("a map") || e.starts_with("a YAML mapping") => "a mapping".into(),
        e => e.to_string(),
    }
}

/// serde's description of the value found, in user terms.
fn nice_found(found: &str) -> String {
    match found {
        "unit value" => "an empty value (null)".into(),
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        f => f.replace("floating point", "number").replace('`', ""),
    }
}

/// Rejects an empty list or an empty entry.
pub(crate) fn non_empty_list(ctx: &Ctx, v: Vec<String>, at: &YPath) -> Result<Vec<String>, ConfigError> {
    if v.is_empty() || v.iter().any(|s| s.trim().is_empty()) {
        return Err(ctx.invalid(at, format!("{at} must be a non-empty list of non-empty names")));
    }
    Ok(v)
}

/// Rejects an empty path and resolves a relative one against the config file's directory.
pub(crate) fn non_empty_path(ctx: &Ctx, p: PathBuf, at: &YPath) -> Result<PathBuf, ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(ctx.invalid(at, format!("{at} must not be empty")));
    }
    Ok(ctx.resolve(p))
}
