//! `dedupe`: drops records whose id was already seen within `ttl_ms`, by event time.
//!
//! Contract:
//! - id = the JSON string/number member `id_field` (config, default "id") of the record value;
//!   a record without a value, with invalid JSON or without such a member fails (`invalid-input`,
//!   codes `no-value` / `bad-json` / `no-id`).
//! - State store "default" maps id (UTF-8 bytes of the string, or the number's text) to the event
//!   time (8-byte LE i64) of the last record EMITTED for it.
//! - A record is a duplicate, and is dropped, when that stored time t0 exists and
//!   |timestamp-ms − t0| < `ttl_ms` (config, default 60000; 0 disables dropping). Otherwise it is
//!   re-emitted unchanged (key, value, headers; timestamp inherited) and max(t0, timestamp-ms) is
//!   stored. Duplicates do not extend the window.
//! - Per batch: one `get-many` of the distinct ids, in-order decisions in memory, one `put-many`.
//! - State is per key group: duplicates are caught only among records that share a key group,
//!   so key the stream by the id (or something the id determines).
//! - Old ids are not deleted: set the stream's `state_timeout_ms` (≥ ttl_ms) to expire them.
use arkflow_plugin_sdk::prelude::*;

struct Dedupe {
    store: Store,
    id_field: String,
    ttl_ms: u64,
}

impl Dedupe {
    fn id_of(&self, r: &RecordIn) -> Result<Vec<u8>, Error> {
        let value = r.value.as_deref().ok_or_else(|| Error::invalid_input("no-value", "record has no value"))?;
        match json::field(value, &self.id_field)? {
            Some(v) => v.as_key().map(|k| k.as_bytes().to_vec()),
            None => None,
        }
        .ok_or_else(|| Error::invalid_input("no-id", format!("no string/number field `{}`", self.id_field)))
    }
}

impl Processor for Dedupe {
    const NAME: &'static str = "dedupe";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const STATE_STORES: &'static [&'static str] = &["default"];
    const STATE_FORMATS: &'static [(&'static str, ValueFormat)] = &[("default", ValueFormat::I64)];

    fn init(config: Config) -> Result<Self, Error> {
        let ttl_ms = config.get_parse_or::<u64>("ttl_ms", 60_000)?;
        let id_field = config.get_or("id_field", "id").to_string();
        Ok(Dedupe { store: Store::open("default")?, id_field, ttl_ms })
    }

    fn process_batch(&mut self, _ctx: &BatchContext, records: Vec<RecordIn>) -> Result<Vec<Outcome>, Error> {
        let ids: Vec<_> = records.iter().map(|r| self.id_of(r)).collect();
        let mut seen = StateCache::load(&self.store, ids.iter().flatten().map(Vec::as_slice))?;
        let mut outcomes = Vec::with_capacity(records.len());
        for (record, id) in records.into_iter().zip(ids) {
            let decide = |seen: &mut StateCache| -> Result<Outcome, Error> {
                let id = id?;
                let ts = record.timestamp_ms;
                let last = seen.get_i64(&id)?;
                if let Some(t0) = last {
                    if ts.abs_diff(t0) < self.ttl_ms {
                        return Ok(Outcome::Drop);
                    }
                }
                seen.put_i64(&id, last.map_or(ts, |t0| t0.max(ts)));
                Ok(Outcome::pass(record))
            };
            outcomes.push(decide(&mut seen).unwrap_or_else(Outcome::Fail));
        }
        seen.flush(&self.store)?;
        Ok(outcomes)
    }
}

export_processor!(Dedupe);
