//! `redis` output: each record written to Redis by one command, a written batch as one
//! `MULTI`/`EXEC` transaction over one connection.
//!
//! Contract:
//! - `command` picks what a record does; `key` names the Redis key (the channel for `publish`),
//!   where `${key}` stands for the record's key (records without one are refused, naming the
//!   record's source position):
//!   - `rpush` (the default) / `lpush`: the value appended to the list `key`;
//!   - `set`: the value stored at `key` (with `ttl_ms`: expiring);
//!   - `hset`: the value stored in the hash `key`, its field the record's key;
//!   - `xadd`: a stream entry with the fields `value` (and `key`, when the record has one);
//!   - `publish`: the value published on the channel `key`.
//! - **Delivery.** A batch is written when its transaction ran, so a checkpoint is decided only
//!   after its records are in Redis. A lost connection or a timeout is retried `retry_count`
//!   times on a new connection (backing off from 100 ms, doubling, at most 5 s); a command Redis
//!   refuses (a key of another type, out of memory) fails the stream with Redis's message
//!   (Redis still ran the transaction's other commands: `EXEC` does not roll back). After
//!   a crash, what no decided checkpoint covers is written again: `set` and `hset` write the same
//!   values again (the result is the same), `rpush`, `lpush`, `xadd` and `publish` repeat them
//!   (at-least-once).

use super::Output;
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use std::time::Duration;

/// What each record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisCommand {
    /// default
    #[default]
    Rpush,
    Lpush,
    Set,
    Hset,
    Xadd,
    Publish,
}

crate::config::named_enum!(RedisCommand { "rpush" => Rpush, "lpush" => Lpush, "set" => Set, "hset" => Hset, "xadd" => Xadd, "publish" => Publish });

/// `type: redis` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOutputConfig {
    /// `redis://[user:password@]host:port[/db]` (required)
    pub url: String,
    pub command: RedisCommand,
    /// The key (channel for publish); `${key}` = the record's key (required)
    pub key: String,
    /// `set` only: expiry of the stored value; default none
    pub ttl_ms: Option<u64>,
    /// Connect and command timeout; default 5000
    pub timeout_ms: u64,
    /// Retries of a batch whose connection failed; default 5
    pub retry_count: u32,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRedisOutput {
    url: String,
    command: Option<String>,
    key: String,
    ttl_ms: Option<u64>,
    timeout_ms: Option<u64>,
    retry_count: Option<u32>,
}

impl Sink for RedisOutputConfig {
    const NAME: &'static str = "redis";
    type Raw = RawRedisOutput;

    fn from_raw(ctx: &Ctx, raw: RawRedisOutput, at: &YPath) -> Result<Self, ConfigError> {
        use redis::IntoConnectionInfo;
        if let Err(e) = raw.url.as_str().into_connection_info() {
            return Err(ctx.invalid(&at.key("url"), format!("{}: not a Redis URL like redis://127.0.0.1:6379/0 ({e})", at.key("url"))));
        }
        let cfg = RedisOutputConfig {
            url: raw.url,
            command: ctx.named(raw.command, &at.key("command"), "command", RedisCommand::NAMES, RedisCommand::from_name, RedisCommand::default())?,
            key: raw.key,
            ttl_ms: raw.ttl_ms,
            timeout_ms: raw.timeout_ms.unwrap_or(5_000),
            retry_count: raw.retry_count.unwrap_or(5),
        };
        if cfg.key.is_empty() {
            return Err(ctx.invalid(&at.key("key"), format!("{} must not be empty", at.key("key"))));
        }
        if cfg.ttl_ms.is_some() && cfg.command != RedisCommand::Set {
            return Err(ctx.invalid(&at.key("ttl_ms"), format!("{} applies to `command: set` only", at.key("ttl_ms"))));
        }
        ctx.at_least_if_set(&at.key("ttl_ms"), cfg.ttl_ms, 1)?;
        ctx.at_least(&at.key("timeout_ms"), cfg.timeout_ms, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { at_least_once: !matches!(self.command, RedisCommand::Set | RedisCommand::Hset), ..SinkCaps::default() }
    }

    fn open(&self, _cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut out = RedisOut { cfg: self.clone(), client, con: None };
        out.connection()?;
        Ok(Box::new(out))
    }
}

struct RedisOut {
    cfg: RedisOutputConfig,
    client: redis::Client,
    /// None after a failure: the next attempt connects again.
    con: Option<redis::Connection>,
}

impl RedisOut {
    fn where_(&self) -> String {
        let info = self.client.get_connection_info();
        format!("redis output {}", info.addr)
    }

    fn connection(&mut self) -> anyhow::Result<&mut redis::Connection> {
        if self.con.is_none() {
            let timeout = Duration::from_millis(self.cfg.timeout_ms);
            let con = self.client.get_connection_with_timeout(timeout).map_err(|e| anyhow::anyhow!("{}: cannot connect: {e}", self.where_()))?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("connected"))
    }

    /// The batch as one transaction.
    fn pipeline(&self, records: &[Record]) -> anyhow::Result<redis::Pipeline> {
        let mut p = redis::pipe();
        p.atomic();
        let templated = self.cfg.key.contains("${key}");
        for r in records {
            let record_key = || {
                r.key.as_deref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: the record at partition {} offset {} has no key, and `key: {}` needs one",
                        self.where_(),
                        r.partition,
                        r.offset,
                        self.cfg.key
                    )
                })
            };
            let key: Vec<u8> =
                if templated { self.cfg.key.replace("${key}", &String::from_utf8_lossy(record_key()?)).into_bytes() } else { self.cfg.key.as_bytes().to_vec() };
            let value = r.value.as_deref().unwrap_or_default();
            match self.cfg.command {
                RedisCommand::Rpush => p.cmd("RPUSH").arg(&key).arg(value),
                RedisCommand::Lpush => p.cmd("LPUSH").arg(&key).arg(value),
                RedisCommand::Set => match self.cfg.ttl_ms {
                    Some(ms) => p.cmd("SET").arg(&key).arg(value).arg("PX").arg(ms),
                    None => p.cmd("SET").arg(&key).arg(value),
                },
                RedisCommand::Hset => p.cmd("HSET").arg(&key).arg(record_key()?).arg(value),
                RedisCommand::Xadd => match &r.key {
                    Some(k) => p.cmd("XADD").arg(&key).arg("*").arg("value").arg(value).arg("key").arg(k.as_slice()),
                    None => p.cmd("XADD").arg(&key).arg("*").arg("value").arg(value),
                },
                RedisCommand::Publish => p.cmd("PUBLISH").arg(&key).arg(value),
            }
            .ignore();
        }
        Ok(p)
    }
}

impl Output for RedisOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let pipeline = self.pipeline(records)?;
        let mut attempt = 0u32;
        loop {
            let result = self.connection().and_then(|con| pipeline.query::<()>(con).map_err(anyhow::Error::from));
            let e = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let transient = e
                .downcast_ref::<redis::RedisError>()
                .is_none_or(|r| r.is_io_error() || r.is_timeout() || r.is_connection_dropped() || r.is_connection_refusal());
            if !transient || attempt >= self.cfg.retry_count {
                anyhow::bail!("{}: writing {} record(s) to `{}` failed after {} attempt(s): {e:#}", self.where_(), records.len(), self.cfg.key, attempt + 1);
            }
            tracing::warn!(attempt = attempt + 1, "{}: {e:#}; retrying on a new connection", self.where_());
            self.con = None;
            std::thread::sleep(Duration::from_millis(100u64 << attempt.min(6)).min(Duration::from_secs(5)));
            attempt += 1;
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
