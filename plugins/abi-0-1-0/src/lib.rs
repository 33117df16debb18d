//! `abi_0_1_0`: a plugin built against `arkflow:plugin@0.1.0` exactly as it was released (its own
//! copy of that WIT in `wit/`, without the SDK), so the host can prove that components of an
//! older 0.1.x package still load and run. Counts records per record key in store "default" with
//! `increment` and emits `{"key","count"}` like the counter.
wit_bindgen::generate!({ path: "wit", world: "plugin" });

use arkflow::plugin::state::Store;
use arkflow::plugin::types::{BatchContext, CheckpointContext, Error, ErrorClass, Info, RecordIn, RecordOut, RecordOutcome};
use exports::arkflow::plugin::processor::Guest;

struct Abi010;

fn err(e: impl std::fmt::Debug) -> Error {
    Error { class: ErrorClass::State, code: "state".into(), message: format!("{e:?}") }
}

impl Guest for Abi010 {
    fn describe() -> Info {
        Info { name: "abi_0_1_0".into(), version: "0.1.0".into(), abi: "0.1.0".into(), state_stores: vec!["default".into()], state_formats: vec![] }
    }

    fn init(_config: Vec<(String, String)>) -> Result<(), Error> {
        Ok(())
    }

    fn process_batch(_ctx: BatchContext, records: Vec<RecordIn>) -> Result<Vec<RecordOutcome>, Error> {
        let store = Store::open("default").map_err(err)?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let key = r.key.unwrap_or_default();
            let n = store.increment(&key, 1).map_err(err)?;
            let value = format!(r#"{{"key":"{}","count":{n}}}"#, String::from_utf8_lossy(&key));
            out.push(RecordOutcome::Emit(vec![RecordOut { key: None, value: Some(value.into_bytes()), headers: vec![], timestamp_ms: None, output: None }]));
        }
        Ok(out)
    }

    fn on_checkpoint(_ctx: CheckpointContext) -> Result<(), Error> {
        Ok(())
    }
}

export!(Abi010);
