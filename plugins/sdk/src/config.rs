//! The plugin's `config` map (the YAML `config:` entry, values as strings, nested YAML as JSON).
//!
//! Contract: lookups return the LAST value given for a key; every failure is an [`Error`] of
//! class `config` with code `missing-config` or `bad-config` and a message naming the key.

use crate::Error;
use std::str::FromStr;

/// The `config` list handed to `init`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Config { entries }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or `default` when unset.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`, or a `missing-config` error.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key).ok_or_else(|| Error::config("missing-config", format!("config `{key}` is required")))
    }

    /// `key` parsed as `T`: `Ok(None)` when unset, a `bad-config` error when it does not parse.
    pub fn get_parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| Error::config("bad-config", format!("config `{key}`: cannot parse {raw:?} as {}: {e}", std::any::type_name::<T>()))),
        }
    }

    /// `key` parsed as `T`, or `default` when unset.
    pub fn get_parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.get_parse(key)?.unwrap_or(default))
    }

    /// All entries, in the order the host passed them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn getters() {
        let c = cfg(&[("a", "1"), ("b", "x"), ("a", "2")]);
        assert_eq!(c.get("a"), Some("2"));
        assert_eq!(c.get("z"), None);
        assert_eq!(c.get_or("z", "d"), "d");
        assert_eq!(c.get_parse::<u64>("a").unwrap(), Some(2));
        assert_eq!(c.get_parse::<u64>("z").unwrap(), None);
        assert_eq!(c.get_parse_or::<i64>("z", 7).unwrap(), 7);
        assert_eq!(c.require("b").unwrap(), "x");
    }

    #[test]
    fn errors_are_config_class_and_name_the_key() {
        let c = cfg(&[("ttl_ms", "soon")]);
        let e = c.get_parse::<i64>("ttl_ms").unwrap_err();
        assert_eq!(e.class, ErrorClass::Config);
        assert_eq!(e.code, "bad-config");
        assert!(e.message.contains("ttl_ms") && e.message.contains("soon"), "{}", e.message);
        let e = c.require("field").unwrap_err();
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::Config, "missing-config"));
    }
}
