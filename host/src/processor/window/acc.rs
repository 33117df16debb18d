//! A window's aggregates: how they are configured (`count`, `count(f)`, `sum(f)`, `min(f)`,
//! `max(f)`, `avg(f)` over top-level numeric fields; a missing or non-numeric value is skipped,
//! as SQL skips NULL), accumulated, merged (sessions), stored and written out.
//!
//! Stored value of one window: `[u32 len][key JSON members][acc]`; an acc is `[i64 records]` then
//! per aggregate `[i64 values][f64 sum|min|max]`, little-endian.

use crate::config::{ConfigError, Ctx, YPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// One output member: `name: func(field)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub name: String,
    pub func: AggFn,
    /// None: `count` of records.
    pub field: Option<String>,
}

pub(super) fn parse_aggregates(ctx: &Ctx, m: serde_yaml::Mapping, at: &YPath) -> Result<Vec<Agg>, ConfigError> {
    let mut out: Vec<Agg> = Vec::new();
    for (k, v) in m {
        let (Some(name), Some(expr)) = (k.as_str(), v.as_str()) else {
            return Err(ctx.invalid(at, "each aggregate is `name: count | count(f) | sum(f) | min(f) | max(f) | avg(f)`"));
        };
        let here = at.key(name);
        if ["window_start", "window_end"].contains(&name) || out.iter().any(|a| a.name == name) {
            return Err(ctx.invalid(&here, format!("aggregate name `{name}` is used twice or reserved")));
        }
        let expr = expr.trim();
        let (func, arg) = match expr.split_once('(') {
            None => (expr, None),
            Some((f, rest)) => (f.trim(), Some(rest.strip_suffix(')').map(str::trim).unwrap_or("").to_string())),
        };
        let func = match func.to_ascii_lowercase().as_str() {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "avg" => AggFn::Avg,
            other => return Err(ctx.unknown_name(&here, "aggregate", other, &["count", "sum", "min", "max", "avg"])),
        };
        let field = match arg.as_deref() {
            None | Some("*") if func == AggFn::Count => None,
            Some(f) if !f.is_empty() && f != "*" => Some(f.to_string()),
            _ => return Err(ctx.invalid(&here, format!("`{expr}`: write {}(<field>)", format!("{func:?}").to_lowercase()))),
        };
        out.push(Agg { name: name.to_string(), func, field });
    }
    if out.is_empty() {
        return Err(ctx.invalid(at, "list at least one aggregate, e.g. `count: count`"));
    }
    Ok(out)
}

/// The running aggregates of one window.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Acc {
    pub records: i64,
    /// Per aggregate: values taken, and their sum (sum, avg), min or max.
    pub vals: Vec<(i64, f64)>,
}

impl Acc {
    pub fn new(n: usize) -> Self {
        Acc { records: 0, vals: vec![(0, 0.0); n] }
    }

    /// Adds one record whose aggregate inputs are `values` (None: missing or not a number).
    pub fn add(&mut self, aggs: &[Agg], values: &[Option<f64>]) {
        self.records += 1;
        for ((a, slot), v) in aggs.iter().zip(&mut self.vals).zip(values) {
            if let Some(v) = v {
                fold(a.func, slot, 1, *v);
            }
        }
    }

    /// Folds `other` (an adjacent session) into this one.
    pub fn merge(&mut self, aggs: &[Agg], other: &Acc) {
        self.records += other.records;
        for ((a, slot), (n, v)) in aggs.iter().zip(&mut self.vals).zip(&other.vals) {
            if *n > 0 {
                fold(a.func, slot, *n, *v);
            }
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.records.to_le_bytes());
        for (n, v) in &self.vals {
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Decodes an acc of `n` aggregates from the front of `b`, returning the rest.
    pub fn decode(b: &[u8], n: usize) -> Option<(Acc, &[u8])> {
        let i64_at = |b: &[u8], at: usize| b.get(at..at + 8).map(|s| i64::from_le_bytes(s.try_into().unwrap()));
        let records = i64_at(b, 0)?;
        let mut vals = Vec::with_capacity(n);
        for k in 0..n {
            let at = 8 + k * 16;
            vals.push((i64_at(b, at)?, f64::from_bits(i64_at(b, at + 8)? as u64)));
        }
        Some((Acc { records, vals }, &b[8 + n * 16..]))
    }

    /// Appends `,"name":value` for every aggregate.
    pub fn write(&self, aggs: &[Agg], out: &mut String) {
        use std::fmt::Write;
        for (a, (n, v)) in aggs.iter().zip(&self.vals) {
            let _ = write!(out, ",");
            let mut name = Vec::new();
            crate::util::json::write_str(&mut name, &a.name);
            out.push_str(&String::from_utf8_lossy(&name));
            out.push(':');
            match (a.func, a.field.is_some()) {
                (AggFn::Count, false) => write!(out, "{}", self.records),
                (AggFn::Count, true) => write!(out, "{n}"),
                _ if *n == 0 => write!(out, "null"),
                (AggFn::Avg, _) => write!(out, "{}", v / *n as f64),
                _ => write!(out, "{v}"),
            }
            .unwrap_or(());
        }
    }
}

fn fold(func: AggFn, slot: &mut (i64, f64), n: i64, v: f64) {
    let first = slot.0 == 0;
    slot.0 += n;
    slot.1 = match func {
        AggFn::Count => 0.0,
        AggFn::Sum | AggFn::Avg => slot.1 + v,
        AggFn::Min if first => v,
        AggFn::Max if first => v,
        AggFn::Min => slot.1.min(v),
        AggFn::Max => slot.1.max(v),
    };
}

/// `[u32 len][key]`: how every stored value of a window stage starts.
pub(super) fn key_prefix(key_json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key_json.len() + 64);
    out.extend_from_slice(&(key_json.len() as u32).to_le_bytes());
    out.extend_from_slice(key_json.as_bytes());
    out
}

/// `[u32 len][key][acc]`.
pub(super) fn encode_window(key_json: &str, acc: &Acc) -> Vec<u8> {
    let mut out = key_prefix(key_json);
    acc.encode(&mut out);
    out
}

/// The length of a value's key prefix (`[u32 len][key JSON]`), when it is whole.
pub(super) fn prefix_len(b: &[u8]) -> Option<usize> {
    let at = 4 + u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    (at <= b.len()).then_some(at)
}

/// The key JSON members and the rest (an acc, or a session list).
pub(super) fn split_key(b: &[u8]) -> Option<(String, &[u8])> {
    let at = prefix_len(b)?;
    let key = std::str::from_utf8(&b[4..at]).ok()?.to_string();
    Some((key, &b[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_fold_merge_round_trip_and_print_like_sql() {
        let aggs = vec![
            Agg { name: "n".into(), func: AggFn::Count, field: None },
            Agg { name: "s".into(), func: AggFn::Sum, field: Some("v".into()) },
            Agg { name: "lo".into(), func: AggFn::Min, field: Some("v".into()) },
            Agg { name: "hi".into(), func: AggFn::Max, field: Some("v".into()) },
            Agg { name: "avg".into(), func: AggFn::Avg, field: Some("v".into()) },
            Agg { name: "none".into(), func: AggFn::Sum, field: Some("w".into()) },
        ];
        let mut a = Acc::new(aggs.len());
        a.add(&aggs, &[None, Some(3.0), Some(3.0), Some(3.0), Some(3.0), None]);
        a.add(&aggs, &[None, None, None, None, None, None]);
        let mut b = Acc::new(aggs.len());
        b.add(&aggs, &[None, Some(-1.5), Some(-1.5), Some(-1.5), Some(-1.5), None]);
        a.merge(&aggs, &b);
        let bytes = encode_window("\"k\":1", &a);
        let (key, rest) = split_key(&bytes).unwrap();
        let (back, tail) = Acc::decode(rest, aggs.len()).unwrap();
        assert!(tail.is_empty());
        assert_eq!((key.as_str(), &back), ("\"k\":1", &a));
        let mut s = String::new();
        back.write(&aggs, &mut s);
        assert_eq!(s, r#","n":3,"s":1.5,"lo":-1.5,"hi":3,"avg":0.75,"none":null"#);
    }
}
