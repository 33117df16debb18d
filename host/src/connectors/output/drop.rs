//! `drop`: discards every record (benchmarks, streams kept for their state or side outputs).

use super::Output;
use crate::config::{ConfigError, Ctx, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;

/// `type: drop` (no settings).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DropConfig;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrop {}

impl Sink for DropConfig {
    const NAME: &'static str = "drop";
    type Raw = RawDrop;

    fn from_raw(_: &Ctx, _: RawDrop, _: &YPath) -> Result<Self, ConfigError> {
        Ok(DropConfig)
    }

    fn open(&self, _: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        Ok(Box::new(Dropping))
    }
}

/// Discards everything.
pub struct Dropping;

impl Output for Dropping {
    fn write_batch(&mut self, _: &[Record]) -> anyhow::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn discards(&self) -> bool {
        true
    }
}
