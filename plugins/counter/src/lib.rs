//! `counter`: a per-key running count in state store "default".
//!
//! Contract: the key of a record is its record key (bytes; rendered as UTF-8, lossily) or, when
//! the record has no key, the JSON string/number member named by config `key_field` of its value;
//! with neither the record fails (`invalid-input`, code `no-key`). Config `read`: `json` (the
//! default) parses each value in the guest for `key_field`; `fields` declares `key_field` as a
//! utf8 field and reads it from the host's typed column (`Batch::fields`): then only a string
//! member is a key, and a value that is not a JSON object or whose `key_field` holds another type
//! fails with code `bad-field` and the host's reason. Each record emits one record
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
    /// `read: fields`: `key_field` comes from the host's typed column.
    typed: bool,
}

impl Counter {
    fn key_of<'r>(&self, r: &RecordRef<'r>, fields: Option<&'r Fields>) -> Result<Cow<'r, [u8]>, Error> {
        if let (Some(k), false) = (r.key, cfg!(feature = "declared-key")) {
            return Ok(Cow::Borrowed(k));
        }
        if let (Some(f), Some(field)) = (fields, &self.key_field) {
            if let Some(why) = f.mismatch(r.index) {
                return Err(Error::invalid_input("bad-field", why));
            }
            return f
                .str(field)?
                .get(r.index)
                .map(|k| Cow::Borrowed(k.as_bytes()))
                .ok_or_else(|| Error::invalid_input("no-key", format!("no string field `{field}`")));
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
        let typed = match config.get_or("read", "json") {
            "json" => false,
            "fields" => true,
            other => return Err(Error::config("bad-config", format!("config `read`: `{other}` (json or fields)"))),
        };
        if let (true, Some(field)) = (typed, key_field) {
            fields::declare(&[(field, FieldType::Utf8)])?;
        }
        Ok(Counter { store: Store::open("default")?, key_field: key_field.map(String::from), typed: typed && key_field.is_some() })
    }

    fn process(&mut self, _ctx: &BatchContext, batch: &Batch, out: &mut Outcomes) -> Result<(), Error> {
        let fields = if self.typed { Some(batch.fields()?) } else { None };
        let keys: Vec<_> = batch.iter().map(|r| self.key_of(&r, fields.as_ref())).collect();
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
