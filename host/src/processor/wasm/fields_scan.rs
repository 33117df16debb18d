//! The fast path of [`super::fields::decode`]: one flat JSON object read in a single pass with no
//! visitor machinery.
//!
//! Contract: [`scan`] returns `Some(())` only when `text` is a JSON object (RFC 8259; whitespace
//! as serde_json allows it) whose member names and string values have no escapes and no control
//! characters, whose values are all scalars, and whose declared members (the first of a repeated
//! name) hold values of their declared types; then `slots` holds exactly what serde_json's path
//! would have read. Anything else returns `None` and the caller reads the record with serde_json,
//! which decides the result and the reason, so this path only decides speed.

use super::bindings::v02::arkflow::plugin::fields::FieldType;
use super::fields::Slot;
use std::borrow::Cow;

fn ws(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && matches!(t[i], b' ' | b'\n' | b'\t' | b'\r') {
        i += 1;
    }
    i
}

/// The string starting after the quote at `i - 1`: (its text, the index after its closing quote).
fn string(t: &[u8], i: usize) -> Option<(&str, usize)> {
    let mut j = i;
    loop {
        match *t.get(j)? {
            b'"' => break,
            b'\\' | 0..=0x1f => return None,
            _ => j += 1,
        }
    }
    Some((std::str::from_utf8(&t[i..j]).ok()?, j + 1))
}

/// The number at `i`: (its text, whether it is an integer literal, the index after it).
fn number(t: &[u8], i: usize) -> Option<(&str, bool, usize)> {
    let digits = |mut j: usize| {
        let from = j;
        while j < t.len() && t[j].is_ascii_digit() {
            j += 1;
        }
        (j > from).then_some(j)
    };
    let mut j = i + usize::from(t[i] == b'-');
    match t.get(j)? {
        b'0' => j += 1,
        b'1'..=b'9' => j = digits(j)?,
        _ => return None,
    }
    let mut integer = true;
    if t.get(j) == Some(&b'.') {
        integer = false;
        j = digits(j + 1)?;
    }
    if matches!(t.get(j), Some(b'e' | b'E')) {
        integer = false;
        j += 1;
        if matches!(t.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        j = digits(j)?;
    }
    // The slice is ASCII digits and signs.
    Some((std::str::from_utf8(&t[i..j]).ok()?, integer, j))
}

/// The value at `i` as a declared field of type `want` (`None`: undeclared or already set, only
/// checked): (its slot, the index after it). `None` when the value is not a scalar this path
/// reads, or does not fit `want`.
fn value<'a>(t: &'a [u8], i: usize, want: Option<FieldType>) -> Option<(Slot<'a>, usize)> {
    let lit = |word: &[u8], slot: Slot<'a>| t[i..].starts_with(word).then_some((slot, i + word.len()));
    match (t.get(i)?, want) {
        (b'"', Some(FieldType::Utf8)) => string(t, i + 1).map(|(s, j)| (Slot::Str(Cow::Borrowed(s)), j)),
        (b'"', None) => string(t, i + 1).map(|(_, j)| (Slot::Unset, j)),
        (b'-' | b'0'..=b'9', w) => {
            let (text, integer, j) = number(t, i)?;
            let slot = match w {
                None => Slot::Unset,
                // serde_json reads `-0` as the float -0.0 (a mismatch for int64): its path decides.
                Some(FieldType::Int64) if integer && text != "-0" => Slot::Int(text.parse().ok()?),
                Some(FieldType::Float64) => Slot::Float(text.parse::<f64>().ok().filter(|x| x.is_finite())?),
                Some(_) => return None,
            };
            Some((slot, j))
        }
        (b't', None | Some(FieldType::Boolean)) => lit(b"true", if want.is_some() { Slot::Bool(true) } else { Slot::Unset }),
        (b'f', None | Some(FieldType::Boolean)) => lit(b"false", if want.is_some() { Slot::Bool(false) } else { Slot::Unset }),
        (b'n', w) => lit(b"null", if w.is_some() { Slot::Null } else { Slot::Unset }),
        _ => None,
    }
}

/// Reads one record's declared fields into `slots` (all `Unset` on entry); see the module docs.
pub(super) fn scan<'a>(t: &'a [u8], fields: &[(String, FieldType)], slots: &mut [Slot<'a>]) -> Option<()> {
    let mut i = ws(t, 0);
    if t.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(t, i + 1);
    if t.get(i) == Some(&b'}') {
        return (ws(t, i + 1) == t.len()).then_some(());
    }
    loop {
        if t.get(i) != Some(&b'"') {
            return None;
        }
        let (name, j) = string(t, i + 1)?;
        i = ws(t, j);
        if t.get(i) != Some(&b':') {
            return None;
        }
        i = ws(t, i + 1);
        let at = fields.iter().position(|(n, _)| n == name).filter(|&k| matches!(slots[k], Slot::Unset));
        let (slot, j) = value(t, i, at.map(|k| fields[k].1))?;
        if let Some(k) = at {
            slots[k] = slot;
        }
        i = ws(t, j);
        match t.get(i)? {
            b',' => i = ws(t, i + 1),
            b'}' => return (ws(t, i + 1) == t.len()).then_some(()),
            _ => return None,
        }
    }
}
