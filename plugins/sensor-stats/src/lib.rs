//! `sensor_stats`: per sensor, the running count, sum, minimum and maximum of a reading.
//!
//! Contract: a record's value is a JSON object with a string `sensor` and a number `value`. Each
//! record emits `{"sensor":"<s>","count":N,"sum":S,"min":A,"max":B}` over every record of that
//! sensor so far, this one included (key and timestamp of the input kept). A record without
//! either field fails (`invalid-input`, code `no-sensor` / `no-value`); one whose fields hold
//! other types fails with code `bad-field` and the host's reason. State: store "default", per
//! sensor 32 bytes (count as i64, sum, min, max as f64, little-endian). The plugin declares
//! `sensor` as its key (`KEY_BY`), so the host routes every reading of a sensor to one key group
//! whatever the input's partitioning.
//!
//! Config `read`: `fields` (default) reads both fields through the host's typed columns
//! (`fields::declare` + `Batch::fields`); `json` parses each value in the guest (`json::field`),
//! the way a plugin did before the `fields` import. Both give the same output; the benchmark runs
//! one against the other.
use arkflow_plugin_sdk::prelude::*;
use std::io::Write;

struct SensorStats {
    store: Store,
    typed: bool,
}

/// count, sum, min, max.
type Stats = (i64, f64, f64, f64);

fn decode(b: Option<&[u8]>) -> Option<Stats> {
    let b: &[u8; 32] = b?.try_into().ok()?;
    let f = |i: usize| f64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    Some((i64::from_le_bytes(b[..8].try_into().unwrap()), f(8), f(16), f(24)))
}

fn encode((n, sum, min, max): Stats) -> Vec<u8> {
    [n.to_le_bytes(), sum.to_le_bytes(), min.to_le_bytes(), max.to_le_bytes()].concat()
}

/// A record's (sensor, value), or why it has none.
type Reading<'b> = Result<(std::borrow::Cow<'b, str>, f64), Error>;

/// A reading as the guest parses it (the `read: json` path).
fn parse(r: &RecordRef<'_>) -> Result<(String, f64), Error> {
    let doc = r.value.ok_or_else(|| Error::invalid_input("no-value", "record has no value"))?;
    let sensor = match json::field(doc, "sensor")? {
        Some(JsonValue::String(s)) => s.into_owned(),
        None | Some(JsonValue::Null) => return Err(Error::invalid_input("no-sensor", "no `sensor` field")),
        Some(_) => return Err(Error::invalid_input("bad-field", "field `sensor`: not a string")),
    };
    let value = match json::field(doc, "value")? {
        Some(JsonValue::Number(n)) => n.parse().map_err(|_| Error::invalid_input("bad-field", "field `value`: not a number"))?,
        None | Some(JsonValue::Null) => return Err(Error::invalid_input("no-value", "no `value` field")),
        Some(_) => return Err(Error::invalid_input("bad-field", "field `value`: not a number")),
    };
    Ok((sensor, value))
}

impl SensorStats {
    /// Every record's (sensor, value), read as configured.
    fn readings<'b>(&self, batch: &'b Batch, fields: &'b Option<Fields>) -> Result<Vec<Reading<'b>>, Error> {
        let Some(f) = fields else {
            return Ok(batch.iter().map(|r| parse(&r).map(|(s, v)| (s.into(), v))).collect());
        };
        let (sensor, value) = (f.str("sensor")?, f.f64("value")?);
        Ok((0..batch.len())
            .map(|i| match (sensor.get(i), value.get(i), f.mismatch(i)) {
                (_, _, Some(why)) => Err(Error::invalid_input("bad-field", why)),
                (None, _, _) => Err(Error::invalid_input("no-sensor", "no `sensor` field")),
                (_, None, _) => Err(Error::invalid_input("no-value", "no `value` field")),
                (Some(s), Some(v), None) => Ok((s.into(), v)),
            })
            .collect())
    }
}

impl Processor for SensorStats {
    const NAME: &'static str = "sensor_stats";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const STATE_STORES: &'static [&'static str] = &["default"];
    const KEY_BY: Option<&'static str> = Some("sensor");

    fn init(config: Config) -> Result<Self, Error> {
        let typed = match config.get_or("read", "fields") {
            "fields" => true,
            "json" => false,
            other => return Err(Error::config("bad-config", format!("config `read`: `{other}` (fields or json)"))),
        };
        if typed {
            fields::declare(&[("sensor", FieldType::Utf8), ("value", FieldType::Float64)])?;
        }
        Ok(SensorStats { store: Store::open("default")?, typed })
    }

    fn process(&mut self, _ctx: &BatchContext, batch: &Batch, out: &mut Outcomes) -> Result<(), Error> {
        let fields = if self.typed { Some(batch.fields()?) } else { None };
        let readings = self.readings(batch, &fields)?;
        let mut cache = StateCache::load(&self.store, readings.iter().flatten().map(|(s, _)| s.as_bytes()))?;
        for (i, reading) in readings.into_iter().enumerate() {
            let (sensor, v) = match reading {
                Ok(r) => r,
                Err(e) => {
                    out.fail(i, e);
                    continue;
                }
            };
            let (n, sum, min, max) = decode(cache.get(sensor.as_bytes())).unwrap_or((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
            let s = (n + 1, sum + v, min.min(v), max.max(v));
            cache.put(sensor.as_bytes(), encode(s));
            out.emit_with(i, |buf| {
                buf.extend_from_slice(br#"{"sensor":""#);
                json::escape_bytes_into(buf, sensor.as_bytes());
                let _ = write!(buf, r#"","count":{},"sum":{},"min":{},"max":{}}}"#, s.0, s.1, s.2, s.3);
            });
        }
        cache.flush(&self.store)?;
        Ok(())
    }
}

export_processor!(SensorStats);
