//! `counter`: a per-key running count in state store "default".
//!
//! Contract: the key of a record is its record key (bytes; rendered as UTF-8, lossily) or, when
//! the record has no key, the JSON string/number member named by config `key_field` of its value;
//! with neither the record fails (`invalid-input`, code `no-key`). Each record emits one record
//! `{"key":"<key>","count":N}` (N includes this record; key/timestamp of the input kept). The
//! count is stored as an 8-byte LE i64 (the `increment` encoding). Per batch: one `get-column` of
//! the distinct keys, counting in order in memory, one `put-column`; the records are read in
//! place and the outputs written into one buffer (the batch API, `Processor::process`).
//! Feature `v2` (crate counter-v2) appends `,"v":2` to every output; feature `init-trap` (crate
//! counter-init-trap) panics in `init`: both exist for the live-swap tests. Feature
//! `declared-key` (crate counter-by-user) counts by the value's `user_id` field only, ignoring the
//! record key, and declares that key in `describe()` (`KEY_BY`), so the host routes by it with no
//! `key_by:` in the YAML.
use arkflow_plugin_sdk::prelude::*;
use std::borrow::Cow;
use std::io::Write;

/// The field the `declared-key` build counts by and declares.
const DECLARED_KEY: &str = "user_id";

struct Counter {
    store: Store,
    key_field: Option<String>,
}

impl Counter {
    fn key_of<'r>(&self, r: &RecordRef<'r>) -> Result<Cow<'r, [u8]>, Error> {
        if let (Some(k), false) = (r.key, cfg!(feature = "declared-key")) {
            return Ok(Cow::Borrowed(k));
        }
        let (Some(field), Some(value)) = (&self.key_field, r.value) else {
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
    const KEY_BY: Option<&'static str> = if cfg!(feature = "declared-key") { Some(DECLARED_KEY) } else { None };

    fn init(config: Config) -> Result<Self, Error> {
        if cfg!(feature = "init-trap") {
            panic!("counter-init-trap: init traps on purpose");
        }
        let key_field = if cfg!(feature = "declared-key") { Some(DECLARED_KEY) } else { config.get("key_field") };
        Ok(Counter { store: Store::open("default")?, key_field: key_field.map(String::from) })
    }

    fn process(&mut self, _ctx: &BatchContext, batch: &Batch, out: &mut Outcomes) -> Result<(), Error> {
        let keys: Vec<_> = batch.iter().map(|r| self.key_of(&r)).collect();
        let mut counts = StateCache::load(&self.store, keys.iter().flatten().map(|k| &**k))?;
        for (i, key) in keys.iter().enumerate() {
            match key.as_ref().map_err(Clone::clone).and_then(|k| Ok((k, counts.increment(k, 1)?))) {
                Ok((key, n)) => out.emit_with(i, |v| {
                    v.extend_from_slice(br#"{"key":""#);
                    json::escape_bytes_into(v, key);
                    v.extend_from_slice(br#"","count":"#);
                    let _ = write!(v, "{n}"); // into the buffer, no allocation
                    if cfg!(feature = "v2") {
                        v.extend_from_slice(br#","v":2"#);
                    }
                    v.push(b'}');
                }),
                Err(e) => out.fail(i, e),
            }
        }
        counts.flush(&self.store)?;
        Ok(())
    }
}

export_processor!(Counter);
