//! `window_count`: a keyed tumbling-window count built on host timers (the SDK's timer example).
//!
//! Contract: config `size_ms` (required, > 0), `key_field` (the JSON string/number field keying a
//! record without a record key) and `domain` (`event`, the default, or `processing`). A record
//! falls in the window `[start, start + size_ms)` of its time: its timestamp (the event time when
//! the stream has `event_time:`) or, for `processing`, the host's clock when it is processed.
//! The window's count lives in state store "default" under `[start: i64 BE][key]` (the `increment`
//! encoding), with a timer on that same key at `start + size_ms - 1`. When the timer fires (the
//! watermark or the clock reaches it) the plugin emits `{"key","window_start","window_end","count"}`
//! keyed by the key, timestamped `window_end - 1`, and deletes the count. An event-time record
//! whose window's timer time is at or before the watermark is late: it fails with code `late`
//! (the host sends it to `error_output`); a record without a key fails with `no-key`.
use arkflow_plugin_sdk::prelude::*;

struct WindowCount {
    store: Store,
    size_ms: i64,
    key_field: Option<String>,
    domain: TimeDomain,
}

impl WindowCount {
    fn key_of(&self, r: &RecordIn) -> Result<Vec<u8>, Error> {
        if let Some(k) = &r.key {
            return Ok(k.clone());
        }
        let (Some(field), Some(value)) = (&self.key_field, &r.value) else {
            return Err(Error::invalid_input("no-key", "record has no key and no `key_field` value"));
        };
        match json::field(value, field)? {
            Some(v) => v.as_key().map(|k| k.as_bytes().to_vec()),
            None => None,
        }
        .ok_or_else(|| Error::invalid_input("no-key", format!("no string/number field `{field}`")))
    }

    /// Counts one record in its window; registers the window's timer.
    fn add(&self, r: &RecordIn) -> Result<Outcome, Error> {
        let key = self.key_of(r)?;
        let time = match self.domain {
            TimeDomain::Event => r.timestamp_ms,
            TimeDomain::Processing => timers::now(),
        };
        let start = time.div_euclid(self.size_ms) * self.size_ms;
        let fire_at = start + self.size_ms - 1;
        if self.domain == TimeDomain::Event && fire_at <= timers::watermark() {
            let msg = format!("event time {time} is behind the watermark {}: window [{start}, {}) has closed", timers::watermark(), start + self.size_ms);
            return Err(Error::invalid_input("late", msg));
        }
        let mut skey = start.to_be_bytes().to_vec();
        skey.extend_from_slice(&key);
        timers::register(&skey, fire_at, self.domain)?;
        self.store.increment(&skey, 1)?;
        Ok(Outcome::Drop)
    }
}

impl Processor for WindowCount {
    const NAME: &'static str = "window_count";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const STATE_STORES: &'static [&'static str] = &["default"];

    fn init(config: Config) -> Result<Self, Error> {
        let size_ms: i64 = config.get_parse("size_ms")?.ok_or_else(|| Error::config("missing-size", "config `size_ms` is required"))?;
        if size_ms <= 0 {
            return Err(Error::config("bad-size", format!("`size_ms` must be > 0, got {size_ms}")));
        }
        let domain = match config.get_or("domain", "event") {
            "event" => TimeDomain::Event,
            "processing" => TimeDomain::Processing,
            other => return Err(Error::config("bad-domain", format!("`domain` must be `event` or `processing`, got `{other}`"))),
        };
        Ok(WindowCount { store: Store::open("default")?, size_ms, key_field: config.get("key_field").map(String::from), domain })
    }

    fn process_batch(&mut self, _ctx: &BatchContext, records: Vec<RecordIn>) -> Result<Vec<Outcome>, Error> {
        Ok(records.iter().map(|r| self.add(r).unwrap_or_else(Outcome::Fail)).collect())
    }

    fn on_timers(&mut self, _ctx: &TimerContext, fired: Vec<Timer>) -> Result<Vec<Outcome>, Error> {
        let mut out = Vec::with_capacity(fired.len());
        for t in fired {
            let Some(start) = t.key.get(..8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))) else {
                out.push(Outcome::Drop);
                continue;
            };
            let count = self.store.get(&t.key)?.as_deref().and_then(decode_i64).unwrap_or(0);
            self.store.delete(&t.key)?;
            let key = &t.key[8..];
            let mut v = br#"{"key":""#.to_vec();
            json::escape_bytes_into(&mut v, key);
            v.extend_from_slice(format!(r#"","window_start":{start},"window_end":{},"count":{count}}}"#, start + self.size_ms).as_bytes());
            out.push(Outcome::emit(RecordOut::new(v).with_key(key.to_vec()).with_timestamp(start + self.size_ms - 1)));
        }
        Ok(out)
    }
}

export_processor!(WindowCount);
