//! `memory`: records written in the config itself (examples, tests, fixtures), as ArkFlow's
//! `memory` input. Each entry of `messages` is one record: a string is the value as written, any
//! other YAML value (mapping, list, number) is encoded as JSON. `key_field` makes a JSON field
//! the record key. Position = the index of the next message, so a restart resumes after the last
//! decided checkpoint and the input is exactly-once like a file.

use super::{json_line_record, Input, Position};
use crate::config::{non_empty_list, ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;
use std::sync::Arc;

/// `type: memory` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// The record values, in order (shared: every open reads the same list).
    pub messages: Arc<Vec<Vec<u8>>>,
    /// JSON field holding the record key; default None
    pub key_field: Option<String>,
    /// Records per input batch; default 1024
    pub batch_size: usize,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    messages: Vec<serde_json::Value>,
    key_field: Option<String>,
    batch_size: Option<usize>,
}

impl Source for MemoryConfig {
    const NAME: &'static str = "memory";
    type Raw = RawMemory;

    fn from_raw(ctx: &Ctx, raw: RawMemory, path: &YPath) -> Result<Self, ConfigError> {
        if raw.messages.is_empty() {
            // The same message as every other required list.
            non_empty_list(ctx, Vec::new(), &path.key("messages"))?;
        }
        let messages = raw
            .messages
            .into_iter()
            .map(|m| match m {
                serde_json::Value::String(s) => s.into_bytes(),
                other => other.to_string().into_bytes(),
            })
            .collect();
        let cfg =
            MemoryConfig { messages: Arc::new(messages), key_field: raw.key_field, batch_size: raw.batch_size.unwrap_or(super::DEFAULT_INPUT_BATCH_SIZE) };
        ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: true, key_field: self.key_field.clone(), ..SourceCaps::default() }
    }

    fn open(&self, _: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        Ok(Box::new(MemoryInput { cfg: self.clone(), next: 0 }))
    }
}

/// The index of the next message.
#[derive(serde::Serialize, serde::Deserialize)]
struct MemoryPosition {
    memory: u64,
}

impl super::Position for MemoryPosition {
    const SOURCE: &'static str = "memory";
}

/// Reads [`MemoryConfig::messages`] from `next` on.
pub struct MemoryInput {
    cfg: MemoryConfig,
    next: usize,
}

impl Input for MemoryInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        let all = &self.cfg.messages;
        if self.next >= all.len() {
            return Ok(None);
        }
        let end = (self.next + self.cfg.batch_size).min(all.len());
        let now = crate::util::time::now_ms();
        let key_field = self.cfg.key_field.as_deref();
        let batch = (self.next..end).map(|i| json_line_record(&all[i], key_field, i as u64, now)).collect();
        self.next = end;
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        MemoryPosition { memory: self.next as u64 }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let next = MemoryPosition::decode(position)?.memory;
        if next as usize > self.cfg.messages.len() {
            anyhow::bail!(
                "memory input: the checkpoint resumes at message {next}, but the config lists only {} (the messages changed)",
                self.cfg.messages.len()
            );
        }
        self.next = next as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keys_positions_and_seek() {
        let messages = vec![br#"{"u":"a"}"#.to_vec(), b"plain".to_vec(), br#"{"u":"c"}"#.to_vec()];
        let cfg = MemoryConfig { messages: Arc::new(messages), key_field: Some("u".into()), batch_size: 2 };
        let mut input = MemoryInput { cfg: cfg.clone(), next: 0 };
        let b1 = input.next_batch().unwrap().unwrap();
        assert_eq!((b1.len(), b1[0].key.as_deref(), b1[1].key.as_deref()), (2, Some(&b"a"[..]), None));
        let pos = input.position();
        let b2 = input.next_batch().unwrap().unwrap();
        assert_eq!((b2[0].offset, b2[0].key.as_deref()), (2, Some(&b"c"[..])));
        assert!(input.next_batch().unwrap().is_none());
        let mut again = MemoryInput { cfg, next: 0 };
        again.seek(&pos).unwrap();
        assert_eq!(again.next_batch().unwrap().unwrap()[0].value, b2[0].value);
        assert!(again.seek(&serde_json::json!({ "memory": 9 })).unwrap_err().to_string().contains("lists only 3"));
    }
}
