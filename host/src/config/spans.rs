//! YAML paths and the span map: where every key and value of the document sits in the text.
//!
//! Contract: [`build`] runs yaml-rust2's marked event parser over the (already interpolated)
//! text and records, for every node path (`streams[0].input.count`), the character index of its
//! key (for mapping entries) and of its value. A block mapping's value position is its first
//! key (yaml-rust2 marks block mappings oddly); a flow mapping's is its `{`. Lookups fall back
//! to the nearest recorded ancestor, so a path that is absent (a defaulted key) still points at
//! the enclosing mapping. Duplicate keys and syntax errors are reported with their index.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a YAML path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root; displays as `streams[0].pipeline.processors[1].limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct YPath(Vec<Seg>);

impl YPath {
    pub fn root() -> Self {
        YPath(Vec::new())
    }
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_string()));
        p
    }
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }
    pub fn push(&mut self, seg: Seg) {
        self.0.push(seg);
    }
    pub fn parent(&self) -> Option<YPath> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }
    pub fn last(&self) -> Option<&Seg> {
        self.0.last()
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// `path` for messages: the rendered path, or `the top level` for the root.
    pub fn describe(&self) -> String {
        if self.is_root() {
            "the top level".to_string()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Character indices (in the interpolated text) of a node's key and value.
#[derive(Debug, Clone, Copy)]
struct Span {
    key: Option<usize>,
    value: usize,
}

/// Path -> span of every node of the first document.
#[derive(Debug, Default)]
pub(crate) struct SpanMap {
    spans: HashMap<YPath, Span>,
}

impl SpanMap {
    /// Index of the value at `path`, or of its nearest recorded ancestor.
    pub fn value(&self, path: &YPath) -> Option<usize> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(s) = self.spans.get(&cur) {
                return Some(s.value);
            }
            p = cur.parent();
        }
        None
    }

    /// Index of the key of `path` (a mapping entry); falls back like [`value`](Self::value).
    pub fn key(&self, path: &YPath) -> Option<usize> {
        match self.spans.get(path) {
            Some(Span { key: Some(k), .. }) => Some(*k),
            _ => self.value(path),
        }
    }
}

/// A syntax error or duplicate key at character `index` of the interpolated text.
#[derive(Debug)]
pub(crate) struct SpanError {
    pub index: usize,
    pub message: String,
}

enum Frame {
    Map { path: YPath, pending_key: Option<(String, usize)>, seen: HashMap<String, usize>, flow: bool },
    Seq { path: YPath, next: usize },
}

struct Recorder<'t> {
    chars: &'t [char],
    map: SpanMap,
    stack: Vec<Frame>,
    /// Depth inside a complex (non-scalar) mapping key, which is skipped.
    skip: usize,
    error: Option<SpanError>,
}

impl Recorder<'_> {
    /// The path of the node now starting, recording its key and value positions.
    fn child(&mut self, at: usize) -> YPath {
        let path = match self.stack.last_mut() {
            None => YPath::root(),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                path.index(*next - 1)
            }
            Some(Frame::Map { path, pending_key, .. }) => {
                let (k, kidx) = pending_key.take().unwrap_or_else(|| ("?".to_string(), at));
                let p = path.key(&k);
                self.map.spans.insert(p.clone(), Span { key: Some(kidx), value: at });
                return p;
            }
        };
        self.map.spans.insert(path.clone(), Span { key: None, value: at });
        path
    }

    /// A node starts (`scalar` is its text, None for a collection): None when it is a mapping
    /// key (recorded, or skipped if complex), else its path.
    fn node(&mut self, scalar: Option<&str>, at: usize) -> Option<YPath> {
        if self.take_key(scalar, at) {
            None
        } else {
            Some(self.child(at))
        }
    }

    /// True when the node now starting is a mapping key (and records it if it is a scalar).
    fn take_key(&mut self, scalar: Option<&str>, at: usize) -> bool {
        let Some(Frame::Map { path, pending_key: pk @ None, seen, flow }) = self.stack.last_mut() else {
            return false;
        };
        let Some(name) = scalar else {
            self.skip = 1;
            return true;
        };
        if seen.insert(name.to_string(), at).is_some() && self.error.is_none() {
            self.error = Some(SpanError { index: at, message: format!("duplicate key `{name}` in {}", path.describe()) });
        }
        if seen.len() == 1 && !*flow {
            if let Some(s) = self.map.spans.get_mut(path) {
                s.value = at;
            }
        }
        *pk = Some((name.to_string(), at));
        true
    }
}

impl MarkedEventReceiver for Recorder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = mark.index();
        if self.skip > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skip += 1,
                Event::MappingEnd | Event::SequenceEnd => self.skip -= 1,
                _ => {}
            }
            if self.skip == 0 {
                if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                    *pending_key = Some(("?".to_string(), at));
                }
            }
            return;
        }
        match ev {
            Event::Scalar(ref s, ..) => {
                self.node(Some(s), at);
            }
            Event::Alias(_) => {
                self.node(Some("*alias"), at);
            }
            Event::MappingStart(..) => {
                let flow = self.chars.get(at) == Some(&'{');
                if let Some(path) = self.node(None, at) {
                    self.stack.push(Frame::Map { path, pending_key: None, seen: HashMap::new(), flow });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(path) = self.node(None, at) {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Builds the span map of the first document of `text`.
pub(crate) fn build(text: &str) -> Result<SpanMap, SpanError> {
    let chars: Vec<char> = text.chars().collect();
    let mut rec = Recorder { chars: &chars, map: SpanMap::default(), stack: Vec::new(), skip: 0, error: None };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut rec, false) {
        return Err(SpanError { index: e.marker().index(), message: e.info().to_string() });
    }
    match rec.error {
        Some(e) => Err(e),
        None => Ok(rec.map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str, idx: usize) -> (usize, usize) {
        super::super::interp::LineIndex::new(text).position(idx)
    }

    #[test]
    fn records_keys_and_values() {
        let t = "a: 1\nstreams:\n  - name: x\n    input: {type: gen, n: [1, 2]}\n  - c: 3\n";
        let m = build(t).unwrap();
        let s0 = YPath::root().key("streams").index(0);
        assert_eq!(pos(t, m.key(&s0.key("name")).unwrap()), (3, 5));
        assert_eq!(pos(t, m.value(&s0.key("name")).unwrap()), (3, 11));
        assert_eq!(pos(t, m.value(&s0).unwrap()), (3, 5), "block map at its first key");
        assert_eq!(pos(t, m.value(&s0.key("input")).unwrap()), (4, 12), "flow map at its brace");
        assert_eq!(pos(t, m.value(&s0.key("input").key("n").index(1)).unwrap()), (4, 31));
        let s1 = YPath::root().key("streams").index(1);
        assert_eq!(pos(t, m.key(&s1.key("c")).unwrap()), (5, 5));
        assert_eq!(pos(t, m.value(&s1.key("missing").key("deeper")).unwrap()), (5, 5), "falls back");
        assert_eq!(s1.key("c").to_string(), "streams[1].c");
    }

    #[test]
    fn duplicate_keys_and_syntax_errors() {
        let e = build("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(pos("a: 1\nb:\n  c: 1\n  c: 2\n", e.index), (4, 3));
        assert_eq!(e.message, "duplicate key `c` in b");
        assert!(build("a: [1, 2\nb: 3").is_err());
        assert!(build("? [a, b]\n: 1\nc: 2\n").is_ok());
    }
}
