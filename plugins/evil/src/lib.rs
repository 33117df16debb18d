//! `evil`: misbehaves on purpose, for the host's sandbox tests. Never use it in a real stream.
//!
//! Contract — config `mode`:
//! - `loop`: process-batch spins forever (the host's deadline/fuel must stop it).
//! - `oom`: process-batch allocates and touches 16 MiB blocks until allocation fails (→ trap).
//! - `giant`: process-batch emits one `giant_bytes` (config, default 8 MiB) value for the first record
//!   of each batch (more than a host's output cap, less than its memory cap); passes the rest.
//! - `trap-first-attempt`: counts each record's key in store "default" (`increment`) and emits
//!   `{"key","count"}` like the counter, but traps after the increments when `ctx.attempt == 0`; so
//!   exact counts prove the host dropped the first attempt's staged writes.
//! - `trap`: process-batch panics (→ trap) every time.
//! - `trap-on-boom`: process-batch panics (→ trap) on a batch with a record whose value contains
//!   `boom`; passes the others through.
//! - `flood`: process-batch opens store "default" and `put`s `flood_count` (config, default
//!   2000000) distinct keys with 1 KiB values, ignoring every error, then passes records through.
//! - `init-trap`: init panics.
//! - `fail-batch`: process-batch returns Err (class internal, code `evil-fail-batch`).
//! - `wrong-count`: process-batch returns one outcome fewer than records (none for 0 or 1 record).
//! - `sleep`: process-batch sleeps `sleep_ms` (config, default 3600000) through WASI clocks/poll
//!   (`std::thread::sleep`), then passes records through: a blocking host call, not CPU.
//! - `log-flood`: logs one `log_bytes` (config, default 4000) error line per record, passes them.
//! - `metrics`: per batch, `counter-add("evil_records", n)`, `gauge-set("evil last batch", n)`,
//!   `histogram-record("evil_batch_size", n)`, and a counter with a fresh name per batch
//!   (`evil_series_{batch_id}`: unbounded cardinality); passes records through.
//! - `overflow`: `increment`s the record's key by i64::MAX twice; the error (a state error, not a
//!   wrapped value) fails the record with code `overflow`; a wrapped sum is emitted as `{"sum":n}`.
//! - `bad-output`: emits each record to the named output `nope` (one the stream does not have).
//! - `timer-storm`: passes records through and registers a processing-time timer at "now" per
//!   record; `on-timers` registers every fired timer again at "now" and drops it (never ends by
//!   itself; the end of a bounded input fires the pending ones once more).
//! - `timer-trap`: passes records through and registers an event-time timer at each record's
//!   timestamp; `on-timers` panics (→ trap).
//! - `timer-wrong-count`: like `timer-trap`, but `on-timers` returns no outcomes.
//! - `bad-sources`, `bad-ends`, `emit-and-fail`: process-batch replies, bypassing the SDK's
//!   checks, with outcomes that do not fit the batch (a source past the last input, a value ending past
//!   the data, an input that both emits and fails).
//! - `bad-column`: process-batch calls `store.get-column` with a key column ending past its data.
//! - `memory-counter`: counts each record's key like the counter, but in a map in guest memory,
//!   never in state: right until the instance is replaced (a restart, a retry, a swap), then
//!   counting starts again from zero (what `arkflow plugin test --checkpoint-every` must catch).
//! - `fields-misuse`: init declares 65 fields (refused; the error is kept), then `n` as int64;
//!   process-batch fetches the fields twice, declares again mid-batch and fetches a third time,
//!   and emits per record `{"n":<n or null>,"same":<both fetches agree>,"init_error":"...",
//!   "mid_batch_error":"..."}`.
//! - `amplify`: calls `store.put-many` through the raw canonical ABI with `amplify_entries`
//!   (config, default 2000) entries whose keys and values all point at one `amplify_bytes`
//!   (default 1 MiB) buffer: a few KiB of guest memory that would lift into entries x bytes x 2
//!   on the host. The host must refuse the call, not allocate it. Then passes records through.
//! - anything else (or no mode): pass-through, every record re-emitted unchanged.
//!
//! Declares state store "default" (used by `flood` only).
use arkflow_plugin_sdk::prelude::*;
use std::hint::black_box;

struct Evil {
    mode: String,
    flood_count: u64,
    giant_bytes: usize,
    sleep_ms: u64,
    log_bytes: usize,
    /// `memory-counter`'s counts, wrongly kept in guest memory.
    counts: std::collections::HashMap<Vec<u8>, i64>,
    /// `fields-misuse`: what the refused declaration said.
    init_error: String,
    /// `amplify`: (entries, bytes).
    amplify: (usize, usize),
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "arkflow:plugin/state@0.2.0")]
extern "C" {
    #[link_name = "[method]store.put-many"]
    fn raw_put_many(store: i32, entries: *const u32, len: usize, ret: *mut u8);
}

/// `amplify` (see the module docs).
fn amplify(entries: usize, bytes: usize) -> Result<(), Error> {
    let store = Store::open("default")?;
    let big = vec![7u8; bytes];
    let (p, n) = (big.as_ptr() as usize as u32, big.len() as u32);
    let list: Vec<u32> = (0..entries).flat_map(|_| [p, n, p, n]).collect();
    let mut ret = [0u64; 4];
    #[cfg(target_arch = "wasm32")]
    unsafe {
        raw_put_many(store.handle() as i32, list.as_ptr(), entries, ret.as_mut_ptr().cast())
    };
    black_box((&list, &mut ret, &store));
    Ok(())
}

/// `fields-misuse` (see the module docs).
fn fields_misuse(batch: &Batch, init_error: &str, out: &mut Outcomes) -> Result<(), Error> {
    let (a, b) = (batch.fields()?, batch.fields()?);
    fields::declare(&[("n", FieldType::Int64), ("s", FieldType::Utf8)])?;
    let mid = batch.fields().err().map(|e| e.message).unwrap_or_default();
    let (x, y) = (a.i64("n")?, b.i64("n")?);
    for i in 0..batch.len() {
        let n = x.get(i).map_or("null".to_string(), |n| n.to_string());
        let (init, mid) = (json::escape(init_error), json::escape(&mid));
        out.emit_value(i, format!(r#"{{"n":{n},"same":{},"init_error":"{init}","mid_batch_error":"{mid}"}}"#, x.get(i) == y.get(i)).as_bytes());
    }
    Ok(())
}

impl Processor for Evil {
    const NAME: &'static str = "evil";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const STATE_STORES: &'static [&'static str] = &["default"];

    fn init(config: Config) -> Result<Self, Error> {
        let mode = config.get_or("mode", "pass").to_string();
        if mode == "init-trap" {
            panic!("evil: init-trap");
        }
        let flood_count = config.get_parse_or("flood_count", 2_000_000u64)?;
        let giant_bytes = config.get_parse_or("giant_bytes", 8usize << 20)?;
        let sleep_ms = config.get_parse_or("sleep_ms", 3_600_000u64)?;
        let log_bytes = config.get_parse_or("log_bytes", 4000usize)?;
        let mut init_error = String::new();
        if mode == "fields-misuse" {
            let names: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
            let many: Vec<(&str, FieldType)> = names.iter().map(|n| (n.as_str(), FieldType::Utf8)).collect();
            init_error = fields::declare(&many).err().map(|e| format!("{:?}/{}: {}", e.class, e.code, e.message)).unwrap_or_default();
            fields::declare(&[("n", FieldType::Int64)])?;
        }
        let amplify = (config.get_parse_or("amplify_entries", 2000usize)?, config.get_parse_or("amplify_bytes", 1usize << 20)?);
        Ok(Evil { mode, flood_count, giant_bytes, sleep_ms, log_bytes, counts: Default::default(), init_error, amplify })
    }

    fn process(&mut self, ctx: &BatchContext, batch: &Batch, out: &mut Outcomes) -> Result<(), Error> {
        use arkflow_plugin_sdk::bindings::arkflow::plugin::types as wit;
        let n = batch.len() as u32;
        let col = |data: Vec<u8>, ends: Vec<u32>| wit::Column { data, ends, valid: vec![] };
        let empty = || wit::Outcomes {
            values: col(vec![], vec![]),
            sources: vec![],
            keys: col(vec![], vec![]),
            timestamps: vec![],
            headers: vec![],
            outputs: vec![],
            failed: vec![],
        };
        match self.mode.as_str() {
            "bad-sources" => *out = Outcomes::raw(wit::Outcomes { values: col(b"ab".to_vec(), vec![1, 2]), sources: vec![n, 0], ..empty() }),
            "bad-ends" => *out = Outcomes::raw(wit::Outcomes { values: col(b"x".to_vec(), (1..=n).map(|i| i * 1000).collect()), ..empty() }),
            "emit-and-fail" => {
                let e = Error::internal("evil", "both");
                *out = Outcomes::raw(wit::Outcomes { values: col(b"x".to_vec(), vec![1]), sources: vec![0], failed: vec![(0, e)], ..empty() })
            }
            "bad-column" => {
                Store::open("default")?.get_column(&col(b"k".to_vec(), vec![5]))?;
            }
            "fields-misuse" => fields_misuse(batch, &self.init_error, out)?,
            _ => return arkflow_plugin_sdk::process_records(self, ctx, batch, out),
        }
        Ok(())
    }

    fn process_batch(&mut self, ctx: &BatchContext, records: Vec<RecordIn>) -> Result<Vec<Outcome>, Error> {
        match self.mode.as_str() {
            "amplify" => {
                amplify(self.amplify.0, self.amplify.1)?;
                Ok(records.into_iter().map(Outcome::pass).collect())
            }
            "loop" => {
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![0xA5u8; 16 << 20]);
                    black_box(&hog);
                }
            }
            "giant" => Ok(records
                .into_iter()
                .enumerate()
                .map(|(i, r)| if i == 0 { Outcome::emit_one(vec![b'x'; self.giant_bytes]) } else { Outcome::pass(r) })
                .collect()),
            "trap-first-attempt" => {
                let store = Store::open("default")?;
                let mut out = Vec::with_capacity(records.len());
                for r in &records {
                    let key = r.key.clone().unwrap_or_default();
                    let n = store.increment(&key, 1)?;
                    let key = json::escape(&String::from_utf8_lossy(&key));
                    out.push(Outcome::emit_one(format!(r#"{{"key":"{key}","count":{n}}}"#)));
                }
                if ctx.attempt == 0 {
                    panic!("evil: trap after staging writes (attempt 0)");
                }
                Ok(out)
            }
            "memory-counter" => Ok(records
                .iter()
                .map(|r| {
                    let key = r.key.clone().unwrap_or_default();
                    let n = self.counts.entry(key.clone()).or_default();
                    *n += 1;
                    Outcome::emit_one(format!(r#"{{"key":"{}","count":{n}}}"#, json::escape(&String::from_utf8_lossy(&key))))
                })
                .collect()),
            "trap" => panic!("evil: trap in process-batch"),
            "trap-on-boom" => match records.iter().position(|r| r.value.as_deref().is_some_and(|v| v.windows(4).any(|w| w == b"boom"))) {
                Some(i) => panic!("evil: boom in record {i}"),
                None => Ok(records.into_iter().map(Outcome::pass).collect()),
            },
            "fail-batch" => Err(Error::internal("evil-fail-batch", "evil: process-batch fails on purpose")),
            "wrong-count" => Ok(records.into_iter().skip(1).map(Outcome::pass).collect()),
            "flood" => {
                if let Ok(store) = Store::open("default") {
                    let mut value = vec![0u8; 1024];
                    for i in 0..self.flood_count {
                        value[..8].copy_from_slice(&i.to_le_bytes());
                        let _ = store.put(format!("flood-{i:010}").as_bytes(), &value);
                    }
                }
                Ok(records.into_iter().map(Outcome::pass).collect())
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
                Ok(records.into_iter().map(Outcome::pass).collect())
            }
            "log-flood" => {
                let line = "x".repeat(self.log_bytes);
                for _ in &records {
                    log_error!("evil: {line}");
                }
                Ok(records.into_iter().map(Outcome::pass).collect())
            }
            "metrics" => {
                let n = records.len() as u64;
                metrics::counter_add("evil_records", n);
                metrics::gauge_set("evil last batch", n as f64);
                metrics::histogram_record("evil_batch_size", n as f64);
                metrics::counter_add(&format!("evil_series_{}", ctx.batch_id), 1);
                Ok(records.into_iter().map(Outcome::pass).collect())
            }
            "overflow" => {
                let store = Store::open("default")?;
                Ok(records
                    .iter()
                    .map(|r| {
                        let key = r.key.clone().unwrap_or_default();
                        let sum = store.increment(&key, i64::MAX).and_then(|_| store.increment(&key, i64::MAX));
                        match sum {
                            Ok(n) => Outcome::emit_one(format!(r#"{{"sum":{n}}}"#)),
                            Err(e) => Outcome::Fail(Error::state("overflow", format!("{e:?}"))),
                        }
                    })
                    .collect())
            }
            "bad-output" => Ok(records
                .into_iter()
                .map(|r| {
                    let mut out = RecordOut::from_input(r);
                    out.output = Some("nope".into());
                    Outcome::emit(out)
                })
                .collect()),
            "timer-storm" | "timer-trap" | "timer-wrong-count" => {
                for r in &records {
                    let key = r.key.clone().unwrap_or_default();
                    match self.mode.as_str() {
                        "timer-storm" => timers::register(&key, timers::now(), TimeDomain::Processing)?,
                        _ => timers::register(&key, r.timestamp_ms, TimeDomain::Event)?,
                    }
                }
                Ok(records.into_iter().map(Outcome::pass).collect())
            }
            _ => Ok(records.into_iter().map(Outcome::pass).collect()),
        }
    }

    fn on_timers(&mut self, _ctx: &TimerContext, fired: Vec<Timer>) -> Result<Vec<Outcome>, Error> {
        match self.mode.as_str() {
            "timer-storm" => {
                for t in &fired {
                    timers::register(&t.key, timers::now(), TimeDomain::Processing)?;
                }
                Ok(fired.iter().map(|_| Outcome::Drop).collect())
            }
            "timer-wrong-count" => Ok(Vec::new()),
            _ => panic!("evil: trap in on-timers"),
        }
    }
}

export_processor!(Evil);
