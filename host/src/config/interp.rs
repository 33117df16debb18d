//! `${VAR}` environment interpolation of the raw config text, done before YAML parsing.
//!
//! Contract:
//! - `${NAME}` is replaced by the variable's value; an unset variable is an error.
//! - `${NAME:-default}` uses `default` when NAME is unset or empty (shell semantics).
//! - `$${` is an escape and produces a literal `${`; any other `$` is kept as is.
//! - NAME is `[A-Za-z_][A-Za-z0-9_]*`; the default runs to the next `}` on the same line.
//! - Lines whose first non-blank character is `#` (whole-line comments) are left untouched.
//! - Values are spliced in verbatim: they are YAML text, not quoted strings.
//!
//! The result remembers where every output character came from, so positions found in the
//! expanded text can be reported against the file as written ([`Interpolated::to_original`]).
//! All positions in this module are character indices.

/// The expanded text plus a map back to the original text.
#[derive(Debug)]
pub(crate) struct Interpolated {
    pub text: String,
    segments: Vec<Segment>,
    original_len: usize,
}

/// A run of output characters: copied verbatim (`literal`) or produced by one `${...}`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    out_start: usize,
    orig_start: usize,
    len: usize,
    literal: bool,
}

/// An interpolation failure at character `index` of the original text.
#[derive(Debug)]
pub(crate) struct InterpError {
    pub index: usize,
    pub message: String,
}

impl Interpolated {
    /// Maps a character index of the expanded text to one of the original text; characters
    /// produced by a substitution map to the `$` that started it.
    pub fn to_original(&self, out_index: usize) -> usize {
        let n = self.segments.partition_point(|s| s.out_start <= out_index);
        if n == 0 {
            return out_index.min(self.original_len);
        }
        let seg = self.segments[n - 1];
        if out_index >= seg.out_start + seg.len && n == self.segments.len() {
            return self.original_len;
        }
        if seg.literal {
            seg.orig_start + (out_index - seg.out_start)
        } else {
            seg.orig_start
        }
    }
}

struct Builder {
    out: String,
    out_len: usize,
    segments: Vec<Segment>,
}

impl Builder {
    fn literal(&mut self, orig_index: usize, c: char) {
        match self.segments.last_mut() {
            Some(s) if s.literal && s.orig_start + s.len == orig_index && s.out_start + s.len == self.out_len => s.len += 1,
            _ => self.segments.push(Segment { out_start: self.out_len, orig_start: orig_index, len: 1, literal: true }),
        }
        self.out.push(c);
        self.out_len += 1;
    }

    fn substituted(&mut self, orig_index: usize, value: &str) {
        let len = value.chars().count();
        self.segments.push(Segment { out_start: self.out_len, orig_start: orig_index, len, literal: false });
        self.out.push_str(value);
        self.out_len += len;
    }
}

/// Expands `${...}` in `text`, reading variables through `lookup`.
pub(crate) fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Interpolated, InterpError> {
    let chars: Vec<char> = text.chars().collect();
    let mut b = Builder { out: String::with_capacity(text.len()), out_len: 0, segments: Vec::new() };
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        if line_start {
            line_start = false;
            let first = chars[i..].iter().position(|c| *c != ' ' && *c != '\t').map(|p| i + p);
            if first.is_some_and(|f| chars[f] == '#') {
                while i < chars.len() && chars[i] != '\n' {
                    b.literal(i, chars[i]);
                    i += 1;
                }
                continue;
            }
        }
        let c = chars[i];
        if c == '\n' {
            line_start = true;
        }
        if c == '$' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            b.substituted(i, "${");
            i += 3;
        } else if c == '$' && chars.get(i + 1) == Some(&'{') {
            i = expand_one(&chars, i, lookup, &mut b)?;
        } else {
            b.literal(i, c);
            i += 1;
        }
    }
    Ok(Interpolated { text: b.out, segments: b.segments, original_len: chars.len() })
}

/// Expands the `${...}` starting at `start`; returns the index just past its `}`.
fn expand_one(chars: &[char], start: usize, lookup: &dyn Fn(&str) -> Option<String>, b: &mut Builder) -> Result<usize, InterpError> {
    let bad = |msg: String| InterpError { index: start, message: msg };
    let mut j = start + 2;
    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    let name: String = chars[start + 2..j].iter().collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad(
            "invalid variable reference: `${` must be followed by a variable name ([A-Za-z_][A-Za-z0-9_]*); write `$${` for a literal `${`".to_string()
        ));
    }
    let (default, end) = match (chars.get(j), chars.get(j + 1)) {
        (Some('}'), _) => (None, j + 1),
        (Some(':'), Some('-')) => {
            let from = j + 2;
            let close = chars[from..].iter().position(|c| *c == '}' || *c == '\n').map(|p| from + p);
            match close {
                Some(k) if chars[k] == '}' => (Some(chars[from..k].iter().collect::<String>()), k + 1),
                _ => return Err(bad(format!("unterminated `${{{name}:-...`: missing `}}` on the same line"))),
            }
        }
        _ => return Err(bad(format!("invalid variable reference `${{{name}...`: expected `}}` or `:-default}}` after the name"))),
    };
    let value = match (lookup(&name), default) {
        (Some(v), Some(d)) if v.is_empty() => d,
        (Some(v), _) => v,
        (None, Some(d)) => d,
        (None, None) => {
            return Err(bad(format!("environment variable `{name}` is not set (referenced as `${{{name}}}`; use `${{{name}:-default}}` to give a default)")))
        }
    };
    b.substituted(start, &value);
    Ok(end)
}

/// Converts character indices of a text to 1-based (line, column) and back.
#[derive(Debug)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        for (i, c) in text.chars().enumerate() {
            if c == '\n' {
                starts.push(i + 1);
            }
        }
        LineIndex { starts }
    }

    /// 1-based (line, column) of character `index`.
    pub fn position(&self, index: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|s| *s <= index).max(1);
        (line, index - self.starts[line - 1] + 1)
    }

    /// Character index of 1-based (line, column), clamped to known lines.
    pub fn index(&self, line: usize, col: usize) -> usize {
        let line = line.clamp(1, self.starts.len());
        self.starts[line - 1] + col.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.org".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_escapes_and_comments() {
        let r = interpolate("a: ${HOST}\nb: ${NOPE:-x y}\nc: ${EMPTY:-d}\nd: $${HOST} $5\n  # ${NOPE}\n", &env).unwrap();
        assert_eq!(r.text, "a: example.org\nb: x y\nc: d\nd: ${HOST} $5\n  # ${NOPE}\n");
    }

    #[test]
    fn maps_positions_back() {
        let src = "a: ${HOST}, z\nb: 1";
        let r = interpolate(src, &env).unwrap();
        let z_out = r.text.find('z').unwrap();
        assert_eq!(r.to_original(z_out), src.find('z').unwrap());
        assert_eq!(r.to_original(5), 3, "inside the substitution maps to its `$`");
        let b_out = r.text.find('b').unwrap();
        assert_eq!(r.to_original(b_out), src.find('b').unwrap());
    }

    #[test]
    fn errors() {
        let e = interpolate("a: 1\nb: x ${NOPE}\n", &env).unwrap_err();
        assert_eq!(e.index, 10);
        assert!(e.message.contains("`NOPE` is not set"), "{}", e.message);
        assert!(interpolate("a: ${1X}", &env).is_err());
        assert!(interpolate("a: ${X:-abc\n}", &env).is_err());
        assert!(interpolate("a: ${X", &env).is_err());
    }

    #[test]
    fn line_index() {
        let li = LineIndex::new("ab\nécd\n");
        assert_eq!(li.position(0), (1, 1));
        assert_eq!(li.position(4), (2, 2));
        assert_eq!(li.index(2, 2), 4);
    }
}
