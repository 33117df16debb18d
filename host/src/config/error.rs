//! `ConfigError`: the one error type of the configuration loader.
//!
//! Contract: `Display` is the complete user-facing message, `file:line:col: message` when the
//! problem has a place in the file, `file: message` otherwise. Lines and columns are 1-based,
//! columns count characters, and both refer to the file as written (before `${VAR}`
//! interpolation). `path()` is the YAML path of the offending node (e.g.
//! `streams[0].pipeline.processors[1].limits`) when there is one.

use std::fmt;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid YAML (or has duplicate keys).
    Syntax,
    /// `${VAR}` interpolation failed.
    Interpolation,
    /// A key that is not part of the format.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type or out of range (e.g. `count: abc`).
    InvalidType,
    /// An unknown `type:` of an input, processor or output, or an unknown enum name.
    UnknownVariant,
    /// A well-typed value that breaks a rule (e.g. `thread_num: 0`, duplicate stream names).
    Invalid,
}

/// A place in a config file: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name as used in messages.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// A configuration error; `Display` is the full user-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    kind: ConfigErrorKind,
    file: String,
    location: Option<(usize, usize)>,
    path: Option<String>,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind, file: &str, message: impl Into<String>) -> Self {
        ConfigError { kind, file: file.to_string(), location: None, path: None, message: message.into() }
    }

    pub(crate) fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = location;
        self
    }

    pub(crate) fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// `(file, line, col)` of the problem, 1-based, when it has a place in the file.
    pub fn location(&self) -> Option<(String, usize, usize)> {
        self.location.map(|(l, c)| (self.file.clone(), l, c))
    }

    /// Same as [`location`](Self::location), as a struct.
    pub fn location_info(&self) -> Option<Location> {
        self.location.map(|(line, col)| Location { file: self.file.clone(), line, col })
    }

    /// The file name used in the message (`<config>` when loaded from a string without origin).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The YAML path of the offending node, e.g. `streams[0].input.count`.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The message without the `file:line:col: ` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out).expect("writing to a String cannot fail");
        out
    }

    fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        match self.location {
            Some((line, col)) => write!(out, "{}:{}:{}: {}", self.file, line, col, self.message),
            None => write!(out, "{}: {}", self.file, self.message),
        }
    }
}
