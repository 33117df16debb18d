//! {{name}}: a count per record key, kept by the host in state store "default".
//!
//! Each record emits `{"key":"<key>","count":N}`, N counting this record; a record without a key
//! fails with `invalid-input` / `no-key`. Per batch: one read of the batch's keys, one write.
use arkflow_plugin_sdk::prelude::*;
use std::io::Write;

struct Plugin {
    store: Store,
}

impl Processor for Plugin {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const STATE_STORES: &'static [&'static str] = &["default"];
    const STATE_FORMATS: &'static [(&'static str, ValueFormat)] = &[("default", ValueFormat::I64)];

    fn init(_config: Config) -> Result<Self, Error> {
        Ok(Plugin { store: Store::open("default")? })
    }

    fn process(&mut self, _ctx: &BatchContext, batch: &Batch, out: &mut Outcomes) -> Result<(), Error> {
        let mut counts = StateCache::load(&self.store, batch.iter().filter_map(|r| r.key))?;
        for (i, record) in batch.iter().enumerate() {
            let Some(key) = record.key else {
                out.fail(i, Error::invalid_input("no-key", "the record has no key"));
                continue;
            };
            let n = counts.increment(key, 1)?;
            out.emit_with(i, |v| {
                v.extend_from_slice(br#"{"key":""#);
                json::escape_bytes_into(v, key);
                let _ = write!(v, r#"","count":{n}}}"#);
            });
        }
        counts.flush(&self.store)
    }
}

export_processor!(Plugin);
