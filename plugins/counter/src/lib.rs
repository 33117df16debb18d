//! `counter`: a per-key running count in state store "default".
//!
//! Contract: the key of a record is its record key (bytes; rendered as UTF-8, lossily) or, when
//! the record has no key, the JSON string/number member named by config `key_field` of its value;
//! with neither the record fails (`invalid-input`, code `no-key`). Each record emits one record
//! `{"key":"<key>","count":N}` (N includes this record; key/timestamp of the input kept). The
//! count is stored as an 8-byte LE i64 (the `increment` encoding). Per batch: one `get-many` of
//! the distinct keys, counting in order in memory, one `put-many`.
//! Feature `v2` (crate counter-v2) appends `,"v":2` to every output; feature `init-trap` (crate
//! counter-init-trap) panics in `init`: both exist for the live-swap tests.
use arkflow_plugin_sdk::prelude::*;
use std::borrow::Cow;

struct Counter {
    store: Store,
    key_field: Option<String>,
}

impl Counter {
    fn key_of<'r>(&self, r: &'r RecordIn) -> Result<Cow<'r, [u8]>, Error> {
        if let Some(k) = &r.key {
            return Ok(Cow::Borrowed(k));
        }
        let (Some(field), Some(value)) = (&self.key_field, &r.value) else {
            return Err(Error::invalid_input("no-key", "record has no key and no `key_field` value"));
        };
        match json::field(value, field)? {
            Some(v) => v.as_key().map(|k| Cow::Owned(k.as_bytes().to_vec())),
            None => None,
        }
        .ok_or_else(|| Error::invalid_input("no-key", format!("no string/number field `{field}`")))
    }
}

impl Processor for Counter {
    const NAME: &'static str = "counter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const STATE_STORES: &'static [&'static str] = &["default"];
    const STATE_FORMATS: &'static [(&'static str, ValueFormat)] = &[("default", ValueFormat::I64)];

    fn init(config: Config) -> Result<Self, Error> {
        if cfg!(feature = "init-trap") {
            panic!("counter-init-trap: init traps on purpose");
        }
        Ok(Counter { store: Store::open("default")?, key_field: config.get("key_field").map(String::from) })
    }

    fn process_batch(&mut self, _ctx: &BatchContext, records: Vec<RecordIn>) -> Result<Vec<Outcome>, Error> {
        let keys: Vec<_> = records.iter().map(|r| self.key_of(r)).collect();
        let mut counts = StateCache::load(&self.store, keys.iter().flatten().map(|k| &**k))?;
        let outcomes = keys.iter().map(|key| {
            let key = key.as_ref().map_err(Clone::clone)?;
            let n = counts.increment(key, 1)?;
            let mut v = Vec::with_capacity(key.len() + 32);
            v.extend_from_slice(br#"{"key":""#);
            json::escape_bytes_into(&mut v, key);
            v.extend_from_slice(br#"","count":"#);
            v.extend_from_slice(n.to_string().as_bytes());
            if cfg!(feature = "v2") {
                v.extend_from_slice(br#","v":2"#);
            }
            v.push(b'}');
            Ok(Outcome::emit_one(v))
        });
        let outcomes = outcomes.map(|o: Result<_, Error>| o.unwrap_or_else(Outcome::Fail)).collect();
        counts.flush(&self.store)?;
        Ok(outcomes)
    }
}

export_processor!(Counter);
