//! Built-in twin of the `counter` plugin, for benchmarks only: per-key running count in state,
//! emits `{"key":"<key>","count":N}` per record. It uses the same staged-write state path as plugins
//! so the wasm-vs-native ratio measures the sandbox, not a different state layer.

use std::sync::Arc;

use super::registry::{BuildCx, ProcessorType};
use super::FailurePolicy;
use super::{BatchCtx, BatchError, Processor, ProcessorFactory, StateSlot};
use crate::config::{ConfigError, Ctx, YPath, DEFAULT_STORE};
use crate::record::{Outcome, Record, RecordError};
use crate::state::Staging;

/// `type: native_counter` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeCounterConfig {
    /// default "default"
    pub store: String,
}

impl Default for NativeCounterConfig {
    fn default() -> Self {
        NativeCounterConfig { store: DEFAULT_STORE.to_string() }
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNativeCounter {
    store: Option<String>,
}

impl ProcessorType for NativeCounterConfig {
    const NAME: &'static str = "native_counter";
    type Raw = RawNativeCounter;

    fn from_raw(_: &Ctx, raw: RawNativeCounter, _: &YPath) -> Result<Self, ConfigError> {
        Ok(NativeCounterConfig { store: raw.store.unwrap_or_else(|| DEFAULT_STORE.to_string()) })
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        Ok(Arc::new(NativeCounterFactory::new(self, &cx.env.store_names, cx.label)?))
    }
}

pub struct NativeCounterFactory {
    store: u16,
    name: String,
}

impl NativeCounterFactory {
    pub fn new(cfg: &NativeCounterConfig, store_names: &[String], label: &str) -> anyhow::Result<Self> {
        let store = store_names
            .iter()
            .position(|n| *n == cfg.store)
            .ok_or_else(|| anyhow::anyhow!("{label}: native_counter store `{}` is not a state store of the stream", cfg.store))?;
        Ok(NativeCounterFactory { store: store as u16, name: "native_counter".into() })
    }
}

impl ProcessorFactory for NativeCounterFactory {
    fn name(&self) -> &str {
        &self.name
    }
    fn instantiate(&self, _: &super::ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        Ok(Box::new(NativeCounter { store: self.store, staging: Staging::default(), name: self.name.clone() }))
    }
}

pub struct NativeCounter {
    store: u16,
    staging: Staging,
    name: String,
}

impl Processor for NativeCounter {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        let st = state.as_mut().expect("worker state lent to processor");
        let mut out = Vec::with_capacity(records.len());
        {
            let mut scope = st.scope(&mut self.staging, ctx.key_group, ctx.now_ms);
            for r in records {
                let Some(key) = &r.key else {
                    out.push(Outcome::Fail(RecordError {
                        class: crate::record::ErrorClass::InvalidInput,
                        code: "no-key".into(),
                        message: "record has no key".into(),
                    }));
                    continue;
                };
                let n = scope
                    .increment(self.store, key.clone(), 1)
                    .map_err(|e| BatchError { message: format!("native_counter: {e}"), policy: FailurePolicy::Fail })?;
                let mut value = Vec::with_capacity(key.len() + 32);
                value.extend_from_slice(b"{\"key\":");
                crate::util::json::write_str(&mut value, &String::from_utf8_lossy(key));
                value.extend_from_slice(b",\"count\":");
                value.extend_from_slice(n.to_string().as_bytes());
                value.push(b'}');
                out.push(Outcome::Emit(vec![Record {
                    key: r.key.clone(),
                    value: Some(value),
                    headers: r.headers.clone(),
                    timestamp_ms: r.timestamp_ms,
                    partition: r.partition,
                    offset: r.offset,
                }]));
            }
        }
        st.commit(&mut self.staging, ctx.key_group, ctx.now_ms);
        Ok(out)
    }

    fn on_checkpoint(&mut self, _: u64, _: u32, _: i64, _: &mut StateSlot) -> Result<(), BatchError> {
        Ok(())
    }
}
