//! `filter`: stateless; keeps records whose JSON member matches a predicate, drops the others.
//!
//! Contract: config `field` (required), `op` (required: eq, ne, gt, ge, lt, le, contains,
//! exists) and `value` (required unless op is `exists`); see [`predicate`] for the comparison
//! rules. A matching record is re-emitted unchanged (key, value, headers; timestamp inherited),
//! a non-matching one is dropped, or, with config `rejects_to: <name>`, sent unchanged to the
//! stream's named output `<name>` (YAML `outputs: {<name>: ...}`). A record without a value or with invalid JSON fails
//! (`invalid-input`, code `no-value` / `bad-json`). Opens no state store.
use arkflow_plugin_sdk::prelude::*;

pub mod predicate;
use predicate::{matches, Op};

struct Filter {
    field: String,
    op: Op,
    value: String,
    rejects_to: Option<String>,
}

impl Filter {
    fn keep(&self, r: &RecordIn) -> Result<bool, Error> {
        let doc = r.value.as_deref().ok_or_else(|| Error::invalid_input("no-value", "record has no value"))?;
        Ok(matches(self.op, json::field(doc, &self.field)?.as_ref(), &self.value))
    }
}

impl Processor for Filter {
    const NAME: &'static str = "filter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn init(config: Config) -> Result<Self, Error> {
        let field = config.require("field")?.to_string();
        let op: Op = config.require("op")?.parse().map_err(|e| Error::config("bad-config", format!("config `op`: {e}")))?;
        let value = match op {
            Op::Exists => config.get_or("value", "").to_string(),
            _ => config.require("value")?.to_string(),
        };
        let rejects_to = config.get("rejects_to").map(str::to_string);
        Ok(Filter { field, op, value, rejects_to })
    }

    fn process_batch(&mut self, _ctx: &BatchContext, records: Vec<RecordIn>) -> Result<Vec<Outcome>, Error> {
        Ok(records
            .into_iter()
            .map(|r| match self.keep(&r) {
                Ok(true) => Outcome::pass(r),
                Ok(false) => match &self.rejects_to {
                    Some(name) => Outcome::emit(RecordOut::from_input(r).to_output(name.clone())),
                    None => Outcome::Drop,
                },
                Err(e) => Outcome::Fail(e),
            })
            .collect())
    }
}

export_processor!(Filter);
