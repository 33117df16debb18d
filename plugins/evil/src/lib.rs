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
//! - `flood`: process-batch opens store "default" and `put`s `flood_count` (config, default
//!   2000000) distinct keys with 1 KiB values, ignoring every error, then passes records through.
//! - `init-trap`: init panics.
//! - `fail-batch`: process-batch returns Err (class internal, code `evil-fail-batch`).
//! - `wrong-count`: process-batch returns one outcome fewer than records (none for 0 or 1 record).
//! - anything else (or no mode): pass-through, every record re-emitted unchanged.
//! Declares state store "default" (used by `flood` only).
use arkflow_plugin_sdk::prelude::*;
use std::hint::black_box;

struct Evil {
    mode: String,
    flood_count: u64,
    giant_bytes: usize,
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
        Ok(Evil { mode, flood_count, giant_bytes })
    }

    fn process_batch(&mut self, ctx: &BatchContext, records: Vec<RecordIn>) -> Result<Vec<Outcome>, Error> {
        match self.mode.as_str() {
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
            "trap" => panic!("evil: trap in process-batch"),
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
            _ => Ok(records.into_iter().map(Outcome::pass).collect()),
        }
    }
}

export_processor!(Evil);
