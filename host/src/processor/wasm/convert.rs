//! Outcomes of `arkflow:plugin@0.1.x` (one `record-outcome` per input) into the host's, and the
//! error class mapping both ABIs share.

use super::bindings::v01::wit;
use crate::record::{ErrorClass, Outcome, Record, RecordError};

/// The host's error class of a WIT error class (of either ABI: `class_of!(wit, class)`).
macro_rules! class_of {
    ($wit:path, $c:expr) => {{
        use $wit as w;
        match $c {
            w::ErrorClass::InvalidInput => crate::record::ErrorClass::InvalidInput,
            w::ErrorClass::Config => crate::record::ErrorClass::Config,
            w::ErrorClass::State => crate::record::ErrorClass::State,
            w::ErrorClass::Retriable => crate::record::ErrorClass::Retriable,
            w::ErrorClass::Internal => crate::record::ErrorClass::Internal,
        }
    }};
}
pub(super) use class_of;

/// The host's record error of a plugin's (either ABI), its code and message capped.
macro_rules! record_error {
    ($wit:path, $e:expr) => {{
        let e = $e;
        crate::record::RecordError {
            class: crate::processor::wasm::convert::class_of!($wit, e.class),
            code: crate::processor::wasm::convert::truncate(&e.code, 256).to_string(),
            message: crate::processor::wasm::convert::truncate(&e.message, 4096).to_string(),
        }
    }};
}
pub(super) use record_error;

/// The error of a record emitted to an output the stream does not have.
pub(super) fn invalid_output(name: &str, outputs: &[String]) -> RecordError {
    let known = if outputs.is_empty() { "it has no named outputs".to_string() } else { format!("its outputs are: {}", outputs.join(", ")) };
    RecordError {
        class: ErrorClass::Config,
        code: "invalid-output".to_string(),
        message: format!("a record was emitted to output `{}`, which this stream does not have ({known})", truncate(name, 256)),
    }
}

pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// One outcome per input (checked by the caller) into the host's outcomes.
pub(super) fn from_wit(outcomes: Vec<wit::RecordOutcome>, inputs: &[Record], outputs: &[String]) -> Vec<Outcome> {
    let record = |o: wit::RecordOut, input: &Record| Record {
        key: o.key.or_else(|| input.key.clone()),
        value: o.value,
        headers: o.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        timestamp_ms: o.timestamp_ms.unwrap_or(input.timestamp_ms),
        partition: input.partition,
        offset: input.offset,
    };
    outcomes
        .into_iter()
        .zip(inputs)
        .map(|(o, input)| match o {
            wit::RecordOutcome::Drop => Outcome::Drop,
            wit::RecordOutcome::Fail(e) => Outcome::Fail(record_error!(wit, e)),
            wit::RecordOutcome::Emit(outs) if outs.iter().all(|o| o.output.is_none()) => Outcome::Emit(outs.into_iter().map(|o| record(o, input)).collect()),
            wit::RecordOutcome::Emit(outs) => {
                // A name the stream does not have fails the whole record: it must never fall
                // through to the main output, nor lose the record's other outputs half-way.
                let mut routes = Vec::with_capacity(outs.len());
                for o in &outs {
                    let route = match o.output.as_deref() {
                        None => None,
                        Some(name) => match outputs.iter().position(|k| k == name) {
                            Some(i) => Some(i as u16),
                            None => return Outcome::Fail(invalid_output(name, outputs)),
                        },
                    };
                    routes.push(route);
                }
                let (mut main, mut side) = (Vec::new(), Vec::new());
                for (o, route) in outs.into_iter().zip(routes) {
                    match route {
                        None => main.push(record(o, input)),
                        Some(i) => side.push((i, record(o, input))),
                    }
                }
                Outcome::Split { main, side }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(value: &str, output: Option<&str>) -> wit::RecordOut {
        wit::RecordOut { key: None, value: Some(value.as_bytes().to_vec()), headers: vec![], timestamp_ms: None, output: output.map(str::to_string) }
    }

    #[test]
    fn named_outputs_split_off_and_unknown_names_fail_the_whole_record() {
        let inputs = vec![Record { key: Some(b"k".to_vec()), timestamp_ms: 7, ..Default::default() }; 3];
        let outputs = vec!["audit".to_string(), "late".to_string()];
        let got = from_wit(
            vec![
                wit::RecordOutcome::Emit(vec![out("a", None)]),
                wit::RecordOutcome::Emit(vec![out("b", None), out("c", Some("late")), out("d", Some("audit"))]),
                wit::RecordOutcome::Emit(vec![out("e", None), out("f", Some("nope"))]),
            ],
            &inputs,
            &outputs,
        );
        assert!(matches!(&got[0], Outcome::Emit(v) if v.len() == 1 && v[0].key.as_deref() == Some(&b"k"[..])));
        let Outcome::Split { main, side } = &got[1] else { panic!("{:?}", got[1]) };
        assert_eq!(main.iter().map(|r| r.value.clone().unwrap()).collect::<Vec<_>>(), [b"b".to_vec()]);
        assert_eq!(
            side.iter().map(|(i, r)| (*i, r.value.clone().unwrap(), r.timestamp_ms)).collect::<Vec<_>>(),
            [(1, b"c".to_vec(), 7), (0, b"d".to_vec(), 7)]
        );
        let Outcome::Fail(e) = &got[2] else { panic!("{:?}", got[2]) };
        assert_eq!(e.code, "invalid-output");
        assert!(e.message.contains("`nope`") && e.message.contains("its outputs are: audit, late"), "{}", e.message);
        let none = from_wit(vec![wit::RecordOutcome::Emit(vec![out("x", Some("audit"))])], &inputs[..1], &[]);
        assert!(matches!(&none[0], Outcome::Fail(e) if e.message.contains("it has no named outputs")));
    }
}
