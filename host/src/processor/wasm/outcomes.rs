//! What a guest call returned, checked against its inputs and turned into the host's outcomes.
//!
//! 0.1.x returns one `record-outcome` per input (`convert`). 0.2.0 returns one `outcomes` value
//! for the whole call; it is checked here, before anything is built: the columns' layout, one
//! source per emitted record (never decreasing, within the inputs) or the one-per-input form,
//! the sparse lists ascending and within the emitted records, failed inputs ascending and
//! emitting nothing. Any violation fails the call (a plugin bug, retried like a trap), so a
//! half-understood result is never passed on.

use super::bindings::v02::wit;
use super::calls::Returned;
use super::columns::Cols;
use super::convert::{from_wit, invalid_output, record_error};
use crate::record::{Outcome, Record};

impl Returned {
    /// The host's outcomes, one per input (`what` names the inputs in errors).
    pub fn into_host(self, inputs: &[Record], outputs: &[String], what: &str) -> Result<Vec<Outcome>, String> {
        match self {
            Returned::V01(o) if o.len() != inputs.len() => Err(format!("returned {} outcomes for {} {what}", o.len(), inputs.len())),
            Returned::V01(o) => Ok(from_wit(o, inputs, outputs)),
            Returned::V02(o) => from_outcomes(*o, inputs, outputs).map_err(|e| format!("returned outcomes that do not fit its {} {what}: {e}", inputs.len())),
        }
    }
}

/// Checks that `idx` (the first of each pair) ascend (`strict`: no repeats) and stay below `max`.
fn ascending<T>(list: &[(u32, T)], max: usize, strict: bool, what: &str) -> Result<(), String> {
    let mut prev: Option<u32> = None;
    for (i, (at, _)) in list.iter().enumerate() {
        let bad_order = prev.is_some_and(|p| if strict { *at <= p } else { *at < p });
        if bad_order || *at as usize >= max {
            return Err(format!("{what}[{i}] names index {at} (must ascend{} and be below {max})", if strict { " strictly" } else { "" }));
        }
        prev = Some(*at);
    }
    Ok(())
}

/// The 0.2.0 outcomes of a call with `inputs` (see the module doc for the checks).
pub(super) fn from_outcomes(o: wit::Outcomes, inputs: &[Record], outputs: &[String]) -> Result<Vec<Outcome>, String> {
    let n = inputs.len();
    let values = Cols::of(&o.values, "values")?;
    let m = values.len();
    let keys = Cols::of(&o.keys, "keys")?;
    if keys.len() != 0 && keys.len() != m {
        return Err(format!("keys has {} items for {m} emitted records (none, or one each)", keys.len()));
    }
    if o.sources.is_empty() {
        if m != 0 && m != n {
            return Err(format!("{m} values without sources (one per input, or none)"));
        }
    } else if o.sources.len() != m {
        return Err(format!("{} sources for {m} values", o.sources.len()));
    } else if let Some(j) = (0..m).find(|&j| o.sources[j] as usize >= n || (j > 0 && o.sources[j] < o.sources[j - 1])) {
        return Err(format!("sources[{j}] = {} (sources must not decrease and must name an input)", o.sources[j]));
    }
    ascending(&o.timestamps, m, true, "timestamps")?;
    ascending(&o.headers, m, false, "headers")?;
    ascending(&o.outputs, m, true, "outputs")?;
    ascending(&o.failed, n, true, "failed")?;
    let source = |j: usize| if o.sources.is_empty() { j } else { o.sources[j] as usize };

    let mut out: Vec<Outcome> = (0..n).map(|_| Outcome::Drop).collect();
    // Routes first: an unknown output name fails its input with all its outputs.
    let mut routes: Vec<(u32, u16)> = Vec::with_capacity(o.outputs.len());
    for (j, name) in &o.outputs {
        match outputs.iter().position(|k| k == name) {
            Some(r) => routes.push((*j, r as u16)),
            None => out[source(*j as usize)] = Outcome::Fail(invalid_output(name, outputs)),
        }
    }
    let (mut ts, mut hs, mut rs) = (o.timestamps.iter().peekable(), o.headers.into_iter().peekable(), routes.iter().peekable());
    for j in 0..m {
        let input = &inputs[source(j)];
        let mut r = Record {
            key: (keys.len() != 0).then(|| keys.get(j)).flatten().map(<[u8]>::to_vec).or_else(|| input.key.clone()),
            value: values.get(j).map(<[u8]>::to_vec),
            headers: Vec::new(),
            timestamp_ms: input.timestamp_ms,
            partition: input.partition,
            offset: input.offset,
        };
        if let Some((_, t)) = ts.next_if(|(at, _)| *at as usize == j) {
            r.timestamp_ms = *t;
        }
        while let Some((_, h)) = hs.next_if(|(at, _)| *at as usize == j) {
            r.headers.push((h.key, h.value));
        }
        let route = rs.next_if(|(at, _)| *at as usize == j).map(|(_, r)| *r);
        push(&mut out[source(j)], r, route);
    }
    for (i, e) in o.failed {
        let slot = &mut out[i as usize];
        if !matches!(slot, Outcome::Drop | Outcome::Fail(_)) {
            return Err(format!("input {i} both emitted records and failed"));
        }
        *slot = Outcome::Fail(record_error!(wit, e));
    }
    Ok(out)
}

/// Adds an emitted record to its input's outcome (`route`: a named output's index).
fn push(slot: &mut Outcome, r: Record, route: Option<u16>) {
    match (slot, route) {
        (Outcome::Fail(_), _) => {} // failed by an unknown output name: nothing of it goes on
        (slot @ Outcome::Drop, None) => *slot = Outcome::Emit(vec![r]),
        (slot @ Outcome::Drop, Some(i)) => *slot = Outcome::Split { main: vec![], side: vec![(i, r)] },
        (Outcome::Emit(v), None) => v.push(r),
        (slot @ Outcome::Emit(_), Some(i)) => {
            let Outcome::Emit(main) = std::mem::replace(slot, Outcome::Drop) else { unreachable!() };
            *slot = Outcome::Split { main, side: vec![(i, r)] };
        }
        (Outcome::Split { main, .. }, None) => main.push(r),
        (Outcome::Split { side, .. }, Some(i)) => side.push((i, r)),
    }
}

#[cfg(test)]
#[path = "outcomes_tests.rs"]
mod tests;
